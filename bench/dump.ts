/**
 * dump benchmark: memjob's dump()/dumpSync()/load()/loadSync() against
 * fs.writeFileSync/readFileSync of the same bytes, and against joblib.dump /
 * joblib.load in Debian's python3, all in one run on one /dev/shm folder.
 *
 *   npm run bench -- dump                      # 1 GiB, 3 repeats
 *   BENCH_BYTES=64M node build-dev/bench/dump.js   # quick run (after npm run build:dev)
 *
 * Environment (sizes take K, M, G, T suffixes, base 1024):
 *   BENCH_BYTES    size of the Float64Array (default 1G, < 2G, multiple of 8)
 *   BENCH_REPEATS  rounds of every write and read (default 3)
 *   BENCH_OPENS    timed mapped loads per round, for the latency rows (default 20)
 *   BENCH_PYTHON   the python with joblib and numpy (default /usr/bin/python3)
 *
 * This is a script that prints a table, not a test: only an element read
 * back with the wrong value (or a joblib run that fails) makes it fail.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dump, dumpSync, load, loadSync } from 'memjob';
import { environmentLines, formatTable, optionsFromEnv, type BenchRow } from './memmap.js';
import { withScratch } from './scratch.js';
import { betweenSteps, latencyRow, median, quantile, throughputRow, timed } from './steps.js';
import { joblibVersions, runPython, stopPython } from './dump-joblib.js';

export interface DumpBenchOptions {
  /** Size of the array in bytes. */
  bytes: number;
  /** Rounds of each write and read; the table shows medians. */
  repeats: number;
  /** Timed mapped loads per round (after `warmupOpens` untimed ones). */
  opens: number;
  /** Interpreter that runs bench/joblib_dump.py. */
  python: string;
}

export interface DumpBenchResult {
  rows: BenchRow[];
  /** One line per goal: met or MISSED, with the figures. */
  goals: string[];
  /** joblib, numpy and python versions, or why joblib was skipped. */
  joblib: string;
}

/** Untimed mapped loads before each round's timed ones (JIT, inline caches, imports). */
const warmupOpens = 5;

// Defaults the issue asks for: memjob throughput at least 0.9× fs's, a
// mapped load under 1 ms, and memjob at least 2× faster than joblib.
const fsGoal = 0.9;
const latencyGoalMs = 1;
const joblibGoal = 2;

export function dumpOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DumpBenchOptions {
  // memmap's parser, so sizes, limits and messages are the same (BENCH_BYTES
  // stays under 2G for readFileSync here too); only the repeat default differs.
  const { bytes, repeats } = optionsFromEnv({ ...env, BENCH_REPEATS: env.BENCH_REPEATS ?? '3' });
  const opensText = (env.BENCH_OPENS ?? '20').trim();
  if (!/^\d+$/.test(opensText) || Number(opensText) < 1) {
    throw new Error(`BENCH_OPENS: expected a whole number of at least 1, received "${opensText}"`);
  }
  return { bytes, repeats, opens: Number(opensText), python: env.BENCH_PYTHON ?? '/usr/bin/python3' };
}

/** Every element is 1 + i * 0.5: exact in a double, and element 0 is not the 0 of a hole. */
const expected = (i: number) => 1 + i * 0.5;

function makeArray(n: number): Float64Array {
  const array = new Float64Array(n);
  for (let i = 0; i < n; i++) array[i] = expected(i);
  return array;
}

/** Checks the first, middle and last element against the formula; throws on any difference. */
function check(label: string, array: Float64Array, n: number): void {
  if (array.length !== n) throw new Error(`bench: ${label} returned ${array.length} elements, expected ${n}`);
  for (const i of [0, Math.floor(n / 2), n - 1]) {
    if (array[i] !== expected(i)) throw new Error(`bench: ${label} element ${i} is ${array[i]}, expected ${expected(i)}`);
  }
}

/** The x of a loaded { x }, checked. */
function pickX(label: string, value: unknown, n: number): Float64Array {
  const x = typeof value === 'object' && value !== null ? (value as { x?: unknown }).x : undefined;
  if (!(x instanceof Float64Array)) throw new Error(`bench: ${label} did not return { x: Float64Array }`);
  check(label, x, n);
  return x;
}

interface Samples {
  dump: number[];
  dumpSync: number[];
  load: number[];
  loadSync: number[];
  mmap: number[];
  /** Mapped loads after an idle 50 ms (views dropped, no gc()), and right after a load() of a quarter-size dump into memory. */
  mmapIdle: number[];
  mmapAfterAlloc: number[];
  writeFileSync: number[];
  readFileSync: number[];
  joblibDump: number[];
  joblibLoad: number[];
  joblibMmap: number[];
}

/** One round of memjob: both writers, both readers, then the mapped loads. */
async function memjobRound(dir: string, source: Float64Array, round: number, opens: number, s: Samples): Promise<void> {
  const n = source.length;
  const file = join(dir, 'memjob.dump');
  const writers: [string, () => unknown, number[]][] = [
    ['dump()', () => dump({ x: source }, file), s.dump],
    ['dumpSync()', () => dumpSync({ x: source }, file), s.dumpSync],
  ];
  // Alternate which writer (and reader) goes first from round to round.
  if (round % 2 === 1) writers.reverse();
  for (const [label, write, samples] of writers) {
    rmSync(file, { force: true }); // so every write lands on fresh tmpfs pages, as fs's and joblib's do
    samples.push((await timed(write)).ms);
    pickX(`${label}'s file, mapped`, loadSync(file, { mmapMode: 'r' }), n);
  }
  const readers: [string, () => unknown, number[]][] = [
    ['load()', () => load(file), s.load],
    ['loadSync()', () => loadSync(file), s.loadSync],
  ];
  if (round % 2 === 1) readers.reverse();
  for (const [label, read, samples] of readers) {
    const { ms, value } = await timed(read);
    pickX(label, value, n);
    samples.push(ms);
  }
  // Each mapped load is timed after an untimed step: gc(), which releases the
  // previous open's mapping as python's `del m` does at once; an idle 50 ms
  // with the previous views simply dropped, as a program leaves them; or
  // load() of a quarter-size dump into a new ArrayBuffer (256 MiB at 1 GiB),
  // after which V8 is busy with that allocation's external memory.
  const quarter = join(dir, 'memjob-quarter.dump');
  dumpSync({ x: source.subarray(0, Math.floor(n / 4)) }, quarter);
  pickX('the quarter-size dump, mapped', loadSync(quarter, { mmapMode: 'r' }), Math.floor(n / 4));
  const cases: [() => Promise<unknown>, number[]][] = [
    [betweenSteps, s.mmap],
    [() => new Promise((resolve) => setTimeout(resolve, 50)), s.mmapIdle],
    [async () => (await betweenSteps(), await load(quarter)), s.mmapAfterAlloc],
  ];
  for (const [before, samples] of cases) {
    for (let k = 0; k < warmupOpens + opens; k++) {
      const kept = await before(); // the quarter-size array stays alive through the timed load
      const start = performance.now();
      const value = await load(file, { mmapMode: 'r' });
      const first = (value as { x: Float64Array }).x[0];
      const elapsed = performance.now() - start;
      if (first !== expected(0)) throw new Error(`bench: load(mmapMode 'r') element 0 is ${first}, expected ${expected(0)}`);
      if (k === 0) pickX("load(file, { mmapMode: 'r' })", value, n);
      if (k >= warmupOpens) samples.push(elapsed);
      void kept;
    }
  }
  await betweenSteps(); // unmaps the mapped loads' views before the files go
  rmSync(file, { force: true });
  rmSync(quarter, { force: true });
}

async function fsRound(dir: string, source: Float64Array, s: Samples): Promise<void> {
  const n = source.length;
  const file = join(dir, 'fs.f64');
  rmSync(file, { force: true });
  s.writeFileSync.push((await timed(() => writeFileSync(file, source, { mode: 0o600 }))).ms);
  const { ms, value } = await timed(() => {
    const buffer = readFileSync(file);
    if (buffer.byteOffset % 8 !== 0) throw new Error('bench: readFileSync returned a Buffer not aligned for Float64Array');
    return new Float64Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 8);
  });
  check('readFileSync', value as Float64Array, n);
  s.readFileSync.push(ms);
  await betweenSteps();
  rmSync(file, { force: true });
}

async function joblibRound(dir: string, n: number, opens: number, python: string, s: Samples): Promise<void> {
  await betweenSteps();
  const file = join(dir, 'joblib.pkl');
  const out = JSON.parse(await runPython(python, [file, String(n), String(opens), String(warmupOpens)])) as {
    dump_s: number;
    load_s: number;
    mmap_ms: number[];
  };
  rmSync(file, { force: true }); // the script removes it; this is for a run that stopped early
  s.joblibDump.push(out.dump_s * 1e3);
  s.joblibLoad.push(out.load_s * 1e3);
  s.joblibMmap.push(...out.mmap_ms);
}


/** Tiny untimed round of every Node call, so the first timed one does not pay for JIT or loading the addon. */
async function warmUp(dir: string): Promise<void> {
  const n = 1 << 17; // 1 MiB
  const source = makeArray(n);
  const file = join(dir, 'warmup.dump');
  for (let i = 0; i < 3; i++) {
    await dump({ x: source }, file);
    dumpSync({ x: source }, file);
    pickX('warm-up load()', await load(file), n);
    pickX('warm-up loadSync()', loadSync(file), n);
    pickX('warm-up mapped load()', await load(file, { mmapMode: 'r' }), n);
    writeFileSync(`${file}.f64`, source);
    readFileSync(`${file}.f64`);
  }
  await betweenSteps();
  rmSync(file, { force: true });
  rmSync(`${file}.f64`, { force: true });
}

/** Runs every round and returns the rows and goal lines (for main(), or a later report writer). */
export async function runDumpBench(options: DumpBenchOptions = dumpOptionsFromEnv()): Promise<DumpBenchResult> {
  // A signal also stops a running python first.
  return withScratch(async (folder) => {
    const dir = folder('/dev/shm/memjob-bench-');
    const n = options.bytes / 8;
    const versions = await joblibVersions(options.python);
    await warmUp(dir);
    const source = makeArray(n);

    const s: Samples = {
      dump: [], dumpSync: [], load: [], loadSync: [], mmap: [], mmapIdle: [], mmapAfterAlloc: [],
      writeFileSync: [], readFileSync: [], joblibDump: [], joblibLoad: [], joblibMmap: [],
    };
    const tools = versions.ok ? (['memjob', 'fs', 'joblib'] as const) : (['memjob', 'fs'] as const);
    for (let round = 0; round < options.repeats; round++) {
      // Rotate the order, so no tool is always first on fresh memory.
      const order = tools.map((_, i) => tools[(i + round) % tools.length]!);
      process.stderr.write(`bench dump: round ${round + 1}/${options.repeats}: ${order.join(', ')}\n`);
      for (const tool of order) {
        if (tool === 'memjob') await memjobRound(dir, source, round, options.opens, s);
        else if (tool === 'fs') await fsRound(dir, source, s);
        else await joblibRound(dir, n, options.opens, options.python, s);
      }
    }
    return { ...summarize(s, options, versions.ok), joblib: versions.text };
  }, stopPython);
}

function summarize(s: Samples, options: DumpBenchOptions, withJoblib: boolean): Omit<DumpBenchResult, 'joblib'> {
  const { bytes, repeats, opens } = options;
  const throughput = (measurement: string, samples: number[], note: string): BenchRow => throughputRow(measurement, bytes, samples, note);
  const latency = (measurement: string, samples: number[], note: string): BenchRow =>
    latencyRow(measurement, bytes, samples, `${samples.length} opens (${opens} per round after ${warmupOpens} warm-up); ${note}`);
  // Throughput ratios: the other tool's median time ÷ memjob's. Above 1, memjob is faster.
  const ratio = (measurement: string, memjob: number[], other: number[], note: string): BenchRow => ({
    measurement,
    bytes,
    value: median(other) / median(memjob),
    unit: 'x',
    note,
  });

  const rows: BenchRow[] = [
    throughput('memjob dump() (async)', s.dump, 'temp file, write stream, fsync, rename'),
    throughput('memjob dumpSync()', s.dumpSync, 'temp file, writeSync, fsync, rename'),
    throughput('fs.writeFileSync', s.writeFileSync, 'the same bytes, no header'),
  ];
  if (withJoblib) rows.push(throughput('joblib.dump', s.joblibDump, 'numpy float64 array, pickle + raw data'));
  rows.push(
    throughput('memjob load() (async)', s.load, 'into a new ArrayBuffer'),
    throughput('memjob loadSync()', s.loadSync, 'into a new ArrayBuffer'),
    throughput('fs.readFileSync', s.readFileSync, 'new Buffer, viewed as Float64Array'),
  );
  if (withJoblib) rows.push(throughput('joblib.load', s.joblibLoad, 'into a new numpy array'));
  rows.push(latency("memjob load(mmapMode 'r') → x[0]", s.mmap, 'gc() between opens; open, header, structure, mmap, read element 0'));
  rows.push(latency('memjob the same, idle', s.mmapIdle, 'each after 50 ms idle; the previous views dropped, no gc()'));
  rows.push(latency('memjob the same, after a load()', s.mmapAfterAlloc, `each right after load() of a ${(bytes / 4 / 2 ** 20).toFixed(0)} MiB dump into memory`));
  if (withJoblib) rows.push(latency("joblib.load(mmap_mode='r') → [0]", s.joblibMmap, '`del m` between opens; timed inside python'));

  const vsFs = [
    ratio('ratio dump() vs writeFileSync', s.dump, s.writeFileSync, `writeFileSync time ÷ dump() time; goal ≥ ${fsGoal}`),
    ratio('ratio dumpSync() vs writeFileSync', s.dumpSync, s.writeFileSync, `writeFileSync time ÷ dumpSync() time; goal ≥ ${fsGoal}`),
    ratio('ratio load() vs readFileSync', s.load, s.readFileSync, `readFileSync time ÷ load() time; goal ≥ ${fsGoal}`),
    ratio('ratio loadSync() vs readFileSync', s.loadSync, s.readFileSync, `readFileSync time ÷ loadSync() time; goal ≥ ${fsGoal}`),
  ];
  rows.push(...vsFs);
  const vsJoblib = withJoblib
    ? [
        ratio('ratio dump() vs joblib.dump', s.dump, s.joblibDump, `joblib.dump time ÷ dump() time; goal ≥ ${joblibGoal}`),
        ratio('ratio dumpSync() vs joblib.dump', s.dumpSync, s.joblibDump, `joblib.dump time ÷ dumpSync() time; goal ≥ ${joblibGoal}`),
        ratio('ratio load() vs joblib.load', s.load, s.joblibLoad, `joblib.load time ÷ load() time; goal ≥ ${joblibGoal}`),
        ratio('ratio loadSync() vs joblib.load', s.loadSync, s.joblibLoad, `joblib.load time ÷ loadSync() time; goal ≥ ${joblibGoal}`),
      ]
    : [];
  rows.push(...vsJoblib);
  if (withJoblib) rows.push(ratio('ratio mapped load vs joblib', s.mmap, s.joblibMmap, 'joblib median latency ÷ memjob median latency; no goal'));

  const verdict = (ratios: BenchRow[], goal: number) => {
    const missed = ratios.filter((r) => r.value < goal);
    const figures = ratios.map((r) => `${r.measurement.replace(/^ratio /, '')} ${r.value.toFixed(2)}×`).join(', ');
    return `${missed.length === 0 ? 'met' : `MISSED (${missed.length} of ${ratios.length})`} — ${figures}`;
  };
  const mmapMedian = median(s.mmap);
  const goals = [
    `Goal (memjob at least ${fsGoal}× fs throughput, medians of ${repeats}): ${verdict(vsFs, fsGoal)}`,
    `Goal (load(file, { mmapMode: 'r' }) → first element under ${latencyGoalMs} ms): ` +
      `${mmapMedian < latencyGoalMs ? 'met' : 'MISSED'} — median ${(mmapMedian * 1e3).toFixed(1)} µs, p90 ${(quantile(s.mmap, 0.9) * 1e3).toFixed(1)} µs`,
    withJoblib ? mappedVsJoblib(s) : "Goal (mapped load faster than joblib's load(mmap_mode='r')): not measured, joblib was skipped",
    withJoblib
      ? `Goal (memjob dump and load at least ${joblibGoal}× faster than joblib): ${verdict(vsJoblib, joblibGoal)}`
      : 'Goal (memjob dump and load at least 2× faster than joblib): not measured, joblib was skipped',
  ];
  return { rows, goals };
}

/** The mapped load against joblib's, in both cases: after gc() and right after a load() into memory. */
function mappedVsJoblib(s: Samples): string {
  const joblib = median(s.joblibMmap);
  const cases: [string, number][] = [['after gc()', median(s.mmap)], ['idle', median(s.mmapIdle)], ['right after a load()', median(s.mmapAfterAlloc)]];
  const figures = cases.map(([label, ms]) => `${label} ${(ms * 1e3).toFixed(1)} µs`).join(', ');
  const met = cases.every(([, ms]) => ms < joblib);
  return `Goal (load(file, { mmapMode: 'r' }) → first element faster than joblib's load(mmap_mode='r'), ${(joblib * 1e3).toFixed(1)} µs here): ${met ? 'met' : 'MISSED'} — ${figures}`;
}

/** Prints the table and goal lines; returns the result for bench/run.ts's report. */
export async function main(): Promise<DumpBenchResult> {
  const options = dumpOptionsFromEnv();
  console.log('## dump\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  const result = await runDumpBench(options);
  console.log(`joblib: ${result.joblib}  `);
  console.log(`Rounds: ${options.repeats}, order rotated each round; /dev/shm files removed before every write`);
  console.log('');
  console.log(formatTable(result.rows));
  console.log('');
  for (const goal of result.goals) console.log(goal);
  return result;
}

// Also runnable on its own: node build-dev/bench/dump.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
