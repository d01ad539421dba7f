/**
 * The table and goal lines of bench/joblib.ts, from its samples: medians,
 * throughputs, latencies and the ratios joblib time ÷ memjob time.
 */
import type { BenchRow } from './memmap.js';
import { latencyRow, median, throughputRow } from './steps.js';

export interface JoblibBenchOptions {
  /** Size of the array in the uncompressed files, in bytes. */
  bytes: number;
  /** Size of the array in the zlib-compressed files, in bytes. */
  zlibBytes: number;
  /** Rounds of each write and read; the table shows medians. */
  repeats: number;
  /** Timed mapped loads per round (after `warmupOpens` untimed ones). */
  opens: number;
  /** Interpreter that runs bench/joblib_interop.py. */
  python: string;
}

export interface JoblibBenchResult {
  rows: BenchRow[];
  /** One line per goal: met or MISSED, with the figures. */
  goals: string[];
  /** joblib, numpy and python versions, or why joblib was skipped. */
  joblib: string;
}

/** Every series of timings a run collects, in milliseconds. */
export const names = [
  'dumpSync', 'dump', 'joblibDump', 'loadSync', 'load', 'joblibLoad', 'readFileSync',
  'mmapSync', 'mmap', 'joblibMmap', 'zDumpSync', 'zDump', 'joblibZDump', 'zLoadSync', 'zLoad', 'joblibZLoad',
] as const;
export type Samples = Record<(typeof names)[number], number[]>;


/** The rows (medians, GB/s of array bytes, latencies, ratios) and one goal line per goal. */
export function summarize(s: Samples, options: JoblibBenchOptions, warmupOpens: number, level: number): Omit<JoblibBenchResult, 'joblib'> {
  const { bytes, zlibBytes, opens, repeats } = options;
  const latency = (measurement: string, samples: number[], note: string): BenchRow =>
    latencyRow(measurement, bytes, samples, `${samples.length} opens (${opens} per round after ${warmupOpens} warm-up); ${note}`);
  // joblib's median time ÷ memjob's: above 1, memjob is faster.
  const ratio = (measurement: string, size: number, memjob: number[], joblib: number[], what: string): BenchRow => ({
    measurement,
    bytes: size,
    value: median(joblib) / median(memjob),
    unit: 'x',
    note: `${what}${what.endsWith('latency') ? '' : ' time'} ÷ memjob's; goal ≥ 1`,
  });
  const z = `zlib level ${level}`;
  const rows: BenchRow[] = [
    throughputRow('memjob dumpJoblibSync()', bytes, s.dumpSync, 'temp file, writeSync of pickle + inline array, fsync, rename'),
    throughputRow('memjob dumpJoblib() (async)', bytes, s.dump, 'temp file, write stream, fsync, rename'),
    throughputRow('joblib.dump', bytes, s.joblibDump, 'the same dict from numpy'),
    throughputRow('memjob loadJoblibSync()', bytes, s.loadSync, "joblib's file: read whole, unpickle, copy the array out"),
    throughputRow('memjob loadJoblib() (async)', bytes, s.load, 'the same, file read off the main thread'),
    throughputRow('joblib.load', bytes, s.joblibLoad, 'the same file, into a new numpy array'),
    throughputRow('fs.readFileSync, for reference', bytes, s.readFileSync, 'the same file read into a new Buffer, nothing parsed or copied'),
    latency("memjob loadJoblibSync(mmapMode 'r') → get(0)", s.mmapSync, "['features'] element 0; close() after the timer, no gc() between opens; steady state: 200 untimed mapped loads of a small file first (JIT)"),
    latency("memjob loadJoblib(mmapMode 'r') → get(0)", s.mmap, 'the same, async'),
    latency("joblib.load(mmap_mode='r') → ['features'][0]", s.joblibMmap, '`del m` between opens; timed inside python'),
    throughputRow(`memjob dumpJoblibSync(compress ${level})`, zlibBytes, s.zDumpSync, `${z}, the whole pickle in one deflateSync`),
    throughputRow(`memjob dumpJoblib(compress ${level}) (async)`, zlibBytes, s.zDump, `${z}, streamed through createDeflate`),
    throughputRow(`joblib.dump(compress=${level})`, zlibBytes, s.joblibZDump, z),
    throughputRow('memjob loadJoblibSync(), compressed', zlibBytes, s.zLoadSync, "joblib's compressed file: read, inflateSync, unpickle, copy"),
    throughputRow('memjob loadJoblib(), compressed (async)', zlibBytes, s.zLoad, 'the same, read and inflated off the main thread'),
    throughputRow('joblib.load, compressed', zlibBytes, s.joblibZLoad, 'the same file'),
  ];
  const load = [
    ratio('ratio loadJoblibSync() vs joblib.load', bytes, s.loadSync, s.joblibLoad, 'joblib.load'),
    ratio('ratio loadJoblib() vs joblib.load', bytes, s.load, s.joblibLoad, 'joblib.load'),
  ];
  const mapped = [
    ratio('ratio mapped loadJoblibSync() vs joblib', bytes, s.mmapSync, s.joblibMmap, "joblib.load(mmap_mode='r') median latency"),
    ratio('ratio mapped loadJoblib() vs joblib', bytes, s.mmap, s.joblibMmap, "joblib.load(mmap_mode='r') median latency"),
  ];
  const dump = [
    ratio('ratio dumpJoblibSync() vs joblib.dump', bytes, s.dumpSync, s.joblibDump, 'joblib.dump'),
    ratio('ratio dumpJoblib() vs joblib.dump', bytes, s.dump, s.joblibDump, 'joblib.dump'),
  ];
  const zlib = [
    ratio('ratio dumpJoblibSync(compress) vs joblib', zlibBytes, s.zDumpSync, s.joblibZDump, `joblib.dump(compress=${level})`),
    ratio('ratio dumpJoblib(compress) vs joblib', zlibBytes, s.zDump, s.joblibZDump, `joblib.dump(compress=${level})`),
    ratio('ratio loadJoblibSync(), compressed, vs joblib', zlibBytes, s.zLoadSync, s.joblibZLoad, 'joblib.load'),
    ratio('ratio loadJoblib(), compressed, vs joblib', zlibBytes, s.zLoad, s.joblibZLoad, 'joblib.load'),
  ];
  rows.push(...load, ...mapped, ...dump, ...zlib);

  const verdict = (ratios: BenchRow[]) => {
    const missed = ratios.filter((r) => r.value < 1);
    const figures = ratios.map((r) => `${r.measurement.replace(/^ratio /, '')} ${r.value.toFixed(2)}×`).join(', ');
    return `${missed.length === 0 ? 'met' : `MISSED (${missed.length} of ${ratios.length})`} — ${figures}`;
  };
  const goals = [
    `Goal (in-memory load at least as fast as joblib.load, medians of ${repeats}): ${verdict(load)}`,
    `Goal (mapped load → first element at most joblib.load(mmap_mode='r')'s time, ${(median(s.joblibMmap) * 1e3).toFixed(1)} µs here): ${verdict(mapped)}`,
    `Goal (dump at least as fast as joblib.dump, medians of ${repeats}): ${verdict(dump)}`,
    `Goal (zlib level ${level} dump and load at least as fast as joblib's, medians of ${repeats}): ${verdict(zlib)}`,
  ];
  return { rows, goals };
}
