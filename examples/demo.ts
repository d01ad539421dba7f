/**
 * memjob's main demo (`npm start`): the whole idea end to end.
 *
 * 1. Generate a float64 dataset (2 GiB by default) straight into a memmap,
 *    in the temp folder Parallel would use (/dev/shm when it has room).
 * 2. dump() it, and reopen the dump with load(..., { mmapMode: 'r' }).
 * 3. Compute exact per-chunk statistics with Parallel({ nJobs: -1 }) over
 *    memmap slices: workers receive file references, never copies.
 * 4. Print the result, the time, the throughput, and the memory the process
 *    used next to the dataset's size; remove everything, also on Ctrl-C.
 *
 *   npm start                  # 2 GiB
 *   npm start -- --size 512M   # another size (K, M, G suffixes, base 1024)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Memmap, Parallel, chooseTempFolder, cpuCount, delayed, dump, load, memmap } from 'memjob';

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(text);
  if (!match) throw new Error(`--size: expected a size such as 512M or 2G, received "${text}"`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.floor(Number(match[1]) * scale);
}

const sizeFlag = process.argv.indexOf('--size');
const bytes = parseSize(sizeFlag >= 0 ? (process.argv[sizeFlag + 1] ?? '') : '2G');
const n = Math.floor(bytes / 8);
const CHUNK_BYTES = 64 * 1024 * 1024;
const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;

// The dataset: x[i] = (i mod 1000) / 4, whose chunk statistics have exact formulas.
const valueAt = (i: number) => (i % 1000) / 4;
function expectedStats(start: number, end: number) {
  const prefix = (k: number) => Math.floor(k / 1000) * 499500 + ((k % 1000) * ((k % 1000) - 1)) / 2;
  const spansWrap = end - start >= 1000 || Math.floor(start / 1000) !== Math.floor((end - 1) / 1000);
  return {
    count: end - start,
    sum: (prefix(end) - prefix(start)) / 4,
    min: spansWrap ? 0 : valueAt(start),
    max: spansWrap ? 999 / 4 : valueAt(end - 1),
  };
}

/** The task every worker runs: self-contained, so memjob sends it by source. */
function chunkStats(view: Memmap<'float64'>) {
  const data = view.data;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { count: data.length, sum, min, max };
}

// Memory of this process (worker threads included), sampled while the demo runs.
const memory = { peakAnon: 0, peakRss: 0 };
function sampleMemory(): void {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  memory.peakAnon = Math.max(memory.peakAnon, kib('RssAnon'));
  memory.peakRss = Math.max(memory.peakRss, kib('VmRSS'));
}
const sampler = setInterval(sampleMemory, 20);

const { root, reason } = chooseTempFolder(undefined, 2 * bytes);
const folder = mkdtempSync(join(root, 'memjob-demo-'));
const cleanup = () => rmSync(folder, { recursive: true, force: true });
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

console.log(`memjob demo: ${n.toLocaleString()} float64 values (${mib(n * 8)}) in ${root} (${reason}), ${cpuCount()} cores`);
const t0 = performance.now();

// 1. Generate, window by window, straight into the file.
const rawPath = join(folder, 'raw.f64');
const raw = memmap(rawPath, { dtype: 'float64', mode: 'w+', shape: [n] });
for (const window of raw.chunks({ maxBytes: CHUNK_BYTES })) {
  const first = window.offset / 8;
  const data = window.data;
  for (let i = 0; i < data.length; i++) data[i] = valueAt(first + i);
}
const t1 = performance.now();

// 2. dump() streams the memmap into one file; the raw file can go.
const dumpPath = join(folder, 'dataset.mjdump');
await dump({ x: raw, description: 'x[i] = (i mod 1000) / 4' }, dumpPath);
raw.close();
rmSync(rawPath);
const { x } = (await load(dumpPath, { mmapMode: 'r' })) as { x: Memmap<'float64'> };
const t2 = performance.now();

// 3. Per-chunk statistics in parallel over slices of the mapped dump.
const rowsPerChunk = CHUNK_BYTES / 8;
const chunks: [number, number][] = [];
for (let start = 0; start < n; start += rowsPerChunk) chunks.push([start, Math.min(n, start + rowsPerChunk)]);
await using parallel = new Parallel({ nJobs: -1, progress: true });
const stats = await parallel.run(chunks.map(([start, end]) => delayed(chunkStats)(x.slice(start, end))));
const t3 = performance.now();
sampleMemory();
clearInterval(sampler);

// 4. Check every chunk exactly and combine.
let wrong = 0;
stats.forEach((s, i) => {
  const [start, end] = chunks[i]!;
  const want = expectedStats(start, end);
  if (s.count !== want.count || s.sum !== want.sum || s.min !== want.min || s.max !== want.max) wrong++;
});
const total = stats.reduce((acc, s) => ({ count: acc.count + s.count, sum: acc.sum + s.sum, min: Math.min(acc.min, s.min), max: Math.max(acc.max, s.max) }), { count: 0, sum: 0, min: Infinity, max: -Infinity });
const seconds = (t3 - t2) / 1000;

console.log(`  generate through a w+ memmap : ${((t1 - t0) / 1000).toFixed(2)} s`);
console.log(`  dump + load(mmapMode 'r')    : ${((t2 - t1) / 1000).toFixed(2)} s`);
console.log(`  ${chunks.length} chunk statistics, nJobs ${parallel.nJobs}: ${seconds.toFixed(2)} s, ${((n * 8) / 1e9 / seconds).toFixed(2)} GB/s`);
console.log(`  count ${total.count.toLocaleString()}, sum ${total.sum}, min ${total.min}, max ${total.max}, mean ${(total.sum / total.count).toFixed(6)}`);
console.log(`  every chunk exact: ${wrong === 0 ? 'yes' : `NO, ${wrong} wrong`}`);
console.log(`  memory: peak anonymous ${mib(memory.peakAnon)}, peak resident ${mib(memory.peakRss)} (mapped file pages included) for a ${mib(n * 8)} dataset`);
x.close();
if (wrong > 0) process.exitCode = 1;
