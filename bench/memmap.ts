/**
 * memmap benchmark: how long memmap() takes to hand back the first element,
 * and how fast a mapped file sums compared with fs.readFileSync, in one run.
 *
 *   npm run bench                                   # 1 GiB and 64 GiB
 *   BENCH_BYTES=64M BENCH_SPARSE_BYTES=4G npm run bench   # quick run
 *
 * Environment (sizes take K, M, G, T suffixes, base 1024):
 *   BENCH_BYTES         data file for throughput, and the small latency file (default 1G, < 2G)
 *   BENCH_SPARSE_BYTES  the large sparse latency file (default 64G)
 *   BENCH_REPEATS       timed opens per latency case (default 50)
 *
 * This is a script that prints a table, not a test: only a wrong sum or a
 * wrong first element makes it fail.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { memmap } from 'memjob';
import { repoRoot } from './paths.js';
import { withScratch } from './scratch.js';
import { collectGarbage, latencyRow } from './steps.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

// fs.readFileSync refuses files of 2 GiB or more (Node's kIoMaxLength), and
// the comparison needs it, so the data file stays below that.
const readFileSyncLimit = 2 ** 31 - 1;

// The data file holds float64 values i % 2^20. Every partial sum is then an
// integer below 2^53, so the sum is exact in a double and can be checked
// against a formula; with plain i, files over 1 GiB would round.
const period = 2 ** 20;

// A known value at element 0 of each latency file, checked on every open so
// the timed read cannot be skipped or read the wrong bytes.
const marker = 42.5;

export interface BenchRow {
  measurement: string;
  /** File size in bytes. */
  bytes: number;
  /** Headline figure in `unit`: the median for latencies. */
  value: number;
  unit: 'ms' | 'GB/s' | 'x';
  /** 90th percentile, for latencies. */
  p90?: number;
  note: string;
}

export interface BenchOptions {
  bytes: number;
  sparseBytes: number;
  repeats: number;
}

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const options = {
    bytes: parseSize(env.BENCH_BYTES ?? '1G', 'BENCH_BYTES'),
    sparseBytes: parseSize(env.BENCH_SPARSE_BYTES ?? '64G', 'BENCH_SPARSE_BYTES'),
    repeats: parseSize(env.BENCH_REPEATS ?? '50', 'BENCH_REPEATS'),
  };
  for (const [name, value] of [['BENCH_BYTES', options.bytes], ['BENCH_SPARSE_BYTES', options.sparseBytes]] as const) {
    if (value < 8 || value % 8 !== 0) throw new Error(`${name}: expected a multiple of 8 bytes, received ${value}`);
  }
  if (options.bytes > readFileSyncLimit) {
    throw new Error(`BENCH_BYTES: fs.readFileSync cannot read ${options.bytes} bytes; use less than 2G`);
  }
  if (options.repeats < 1) throw new Error('BENCH_REPEATS: expected at least 1');
  return options;
}

function parseSize(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(text.trim());
  if (!match) throw new Error(`${name}: expected a size such as 1073741824, 512M or 64G, received "${text}"`);
  const scale = { '': 1, K: KiB, M: MiB, G: GiB, T: 1024 * GiB }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(match[1]) * scale);
}

/** Runs every measurement and returns the rows (for main(), or a later report writer). */
export async function runMemmapBench(options: BenchOptions = optionsFromEnv()): Promise<BenchRow[]> {
  return withScratch(async (folder) => {
    const shm = folder('/dev/shm/memjob-bench-');
    // The large sparse file lives on disk: /dev/shm is a RAM-sized tmpfs.
    const disk = folder(join(repoRoot, 'tmp', 'memjob-bench-'));

    const rows: BenchRow[] = [];
    // The small size twice, once in /dev/shm (where the data lives) and once
    // beside the large file, so the size comparison is on one filesystem.
    const latencyCases = [
      { dir: shm, bytes: options.bytes, where: '/dev/shm' },
      { dir: disk, bytes: options.bytes, where: 'tmp/' },
      { dir: disk, bytes: options.sparseBytes, where: 'tmp/' },
    ];
    for (const [i, c] of latencyCases.entries()) {
      const path = join(c.dir, `latency-${i}.f64`);
      makeSparseFile(path, c.bytes);
      rows.push(await openLatency(path, c.bytes, c.where, options.repeats));
    }
    rows.push(...(await readThroughput(join(shm, 'values.f64'), options.bytes)));
    return rows;
  });
}

/** ftruncate makes the file sparse (no disk or RAM used); only element 0 is written. */
function makeSparseFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w+', 0o600);
  try {
    ftruncateSync(fd, bytes);
    writeSync(fd, new Float64Array([marker]), 0, 8, 0);
  } finally {
    closeSync(fd);
  }
}

// Lets a pending Ctrl-C run its handler: signals are only delivered to
// JavaScript between event-loop turns, never inside a synchronous loop.
const yieldToSignals = () => new Promise<void>((resolve) => setImmediate(resolve));

async function openLatency(path: string, bytes: number, where: string, repeats: number): Promise<BenchRow> {
  // Untimed opens first: early ones pay for JIT compilation and inline caches,
  // not for mapping (without them the first case measured ~2× slower).
  const warmup = 50;
  const samples: number[] = [];
  for (let i = 0; i < warmup + repeats; i++) {
    await yieldToSignals();
    const start = performance.now();
    const mm = memmap(path, { dtype: 'float64', mode: 'r' });
    // A one-element slice: .data on a file larger than one ArrayBuffer throws by design.
    const first = mm.slice(0, 1).data[0];
    const elapsed = performance.now() - start;
    mm.close();
    if (first !== marker) throw new Error(`bench: ${path} element 0 read ${first}, expected ${marker}`);
    if (i >= warmup) samples.push(elapsed);
  }
  return latencyRow('memmap() open → first element', bytes, samples, `sparse file in ${where}; ${repeats} opens after ${warmup} warm-up`);
}

// The one loop every pass uses, so mapped and read bytes meet identical code.
function sum(values: Float64Array): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i]!;
  return total;
}

/** Sum of i % period for i < n, by formula. */
function expectedSum(n: number): number {
  const whole = Math.floor(n / period);
  const rest = n % period;
  return (whole * period * (period - 1)) / 2 + (rest * (rest - 1)) / 2;
}

function checkSum(label: string, actual: number, n: number): void {
  const expected = expectedSum(n);
  if (actual !== expected) throw new Error(`bench: ${label} summed to ${actual}, expected ${expected}; the data or the loop is wrong`);
}

// fs.readFileSync's Buffers are freed only when V8 collects them: collectGarbage() between
// passes, so one pass's garbage is never collected inside another's timing.

async function readThroughput(path: string, bytes: number): Promise<BenchRow[]> {
  const n = bytes / 8;
  await writeDataFile(path, n);

  // Compile sum() before any timing, so no pass pays for the JIT.
  const warm = new Float64Array(period).map((_, i) => i);
  for (let i = 0; i < 20; i++) checkSum('warm-up', sum(warm), period);

  // Mapped, first pass: includes memmap() itself and a page-table fault per
  // page (/dev/shm pages are already in RAM, so no disk read happens).
  await betweenPasses();
  let start = performance.now();
  const mm = memmap(path, { dtype: 'float64', mode: 'r' });
  const mapped = mm.data;
  const mappedFirst = sum(mapped);
  const mappedFirstMs = performance.now() - start;
  // Mapped, second pass: pages already mapped, so only memory and the loop.
  await betweenPasses();
  start = performance.now();
  const mappedSecond = sum(mapped);
  const mappedSecondMs = performance.now() - start;
  mm.close();
  checkSum('mapped sum, first pass', mappedFirst, n);
  checkSum('mapped sum, second pass', mappedSecond, n);

  // readFileSync twice too: the first call's Buffer lands on memory the
  // process has not touched yet, the second (after gc) may reuse it.
  await betweenPasses();
  const readFirst = timeReadFileSync(path, n);
  await betweenPasses();
  const readSecond = timeReadFileSync(path, n);

  const gbps = (ms: number) => bytes / 1e9 / (ms / 1e3);
  const row = (measurement: string, ms: number, note: string): BenchRow => ({
    measurement,
    bytes,
    value: gbps(ms),
    unit: 'GB/s',
    note: `${ms.toFixed(0)} ms; ${note}`,
  });
  const ratio = (measurement: string, value: number): BenchRow => ({
    measurement,
    bytes,
    value,
    unit: 'x',
    note: 'time of readFileSync + sum ÷ mapped sum; above 1: mapping wins',
  });
  return [
    row('mapped sum, first pass', mappedFirstMs, 'memmap() + .data + sum, faults pages in'),
    row('mapped sum, second pass', mappedSecondMs, 'sum over the same mapping'),
    row('readFileSync alone, first call', readFirst.readMs, 'allocate a Buffer + copy the file in'),
    row('readFileSync + sum, first call', readFirst.totalMs, 'the same sum over that Buffer'),
    row('readFileSync alone, second call', readSecond.readMs, 'after gc() freed the first Buffer'),
    row('readFileSync + sum, second call', readSecond.totalMs, 'the same sum over that Buffer'),
    ratio('ratio mapped / readFileSync + sum, first', readFirst.totalMs / mappedFirstMs),
    ratio('ratio mapped / readFileSync + sum, second', readSecond.totalMs / mappedSecondMs),
  ];
}

/** Collects the last pass's garbage and lets a pending Ctrl-C run, outside any timing. */
async function betweenPasses(): Promise<void> {
  collectGarbage();
  await yieldToSignals();
}

function timeReadFileSync(path: string, n: number): { readMs: number; totalMs: number } {
  const start = performance.now();
  const buffer = readFileSync(path);
  const readMs = performance.now() - start;
  if (buffer.byteOffset % 8 !== 0) throw new Error('bench: readFileSync returned a Buffer not aligned for Float64Array');
  const total = sum(new Float64Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 8));
  const totalMs = performance.now() - start;
  checkSum('readFileSync + sum', total, n);
  return { readMs, totalMs };
}

/** Fills the file with float64 values i % period: real pages in /dev/shm, not a hole. */
async function writeDataFile(path: string, n: number): Promise<void> {
  // One period is exactly one 8 MiB chunk, so the same block is written over and over.
  const block = new Float64Array(period).map((_, i) => i);
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let written = 0; written < n; written += period) {
      writeSync(fd, block, 0, Math.min(period, n - written) * 8);
      await yieldToSignals();
    }
  } finally {
    closeSync(fd);
  }
}

function formatBytes(bytes: number): string {
  for (const [unit, size] of [['TiB', 1024 * GiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size) return `${+(bytes / size).toFixed(2)} ${unit}`;
  }
  return `${bytes} B`;
}

function formatValue(value: number, unit: BenchRow['unit']): string {
  if (unit === 'ms') return value < 1 ? `${(value * 1000).toFixed(1)} µs` : `${value.toFixed(2)} ms`;
  return unit === 'x' ? `${value.toFixed(2)}×` : `${value.toFixed(2)} GB/s`;
}

/** An aligned markdown table of the rows. */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['Measurement', 'Size', 'Median / value', 'p90', 'Note'];
  const body = rows.map((r) => [
    r.measurement,
    formatBytes(r.bytes),
    formatValue(r.value, r.unit),
    r.p90 === undefined ? '' : formatValue(r.p90, r.unit),
    r.note,
  ]);
  // Pad by code points so µ, → and × do not skew the columns.
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(width(h), ...body.map((cells) => width(cells[i]!))));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c + ' '.repeat(widths[i]! - width(c))).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Date, Node version and machine, for the lines above the table. */
export function environmentLines(): string[] {
  const cpuList = cpus();
  return [
    `Date: ${new Date().toISOString()}`,
    `Node: ${process.version}`,
    `Machine: ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown CPU'}), ` +
      `${formatBytes(totalmem())} RAM, ${process.platform}-${process.arch}`,
  ];
}

// Goal for open latency: under 1 ms, and flat in size, taken as the large
// file's median being at most twice the small one's (same filesystem).
function latencyGoal(rows: readonly BenchRow[], options: BenchOptions): string {
  const latencies = rows.filter((r) => r.unit === 'ms');
  const onDisk = latencies.filter((r) => r.note.includes('tmp/'));
  const small = onDisk.find((r) => r.bytes === options.bytes);
  const large = onDisk.find((r) => r.bytes === options.sparseBytes);
  const fast = latencies.every((r) => r.value < 1);
  const growth = small && large ? large.value / small.value : Number.NaN;
  const met = fast && growth <= 2 ? 'met' : 'MISSED';
  return (
    `Goal (open → first element under 1 ms, not growing with size): ${met} — ` +
    `${formatBytes(options.sparseBytes)} median is ${growth.toFixed(2)}× the ${formatBytes(options.bytes)} median`
  );
}

/** Prints the table and goal line; returns the rows for bench/run.ts's report. */
export async function main(): Promise<BenchRow[]> {
  const options = optionsFromEnv();
  console.log('## memmap\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  console.log('');
  const rows = await runMemmapBench(options);
  console.log(formatTable(rows));
  console.log('');
  console.log(latencyGoal(rows, options));
  return rows;
}

// Also runnable on its own: node build-dev/bench/memmap.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
