/**
 * Bigger than RAM, for real: writes a float64 file larger than this
 * machine's memory (32 GiB by default, on disk under tmp/), then scans it
 * with Parallel over memmap chunks and checks the exact sum, beside
 * `cat FILE > /dev/null` of the same file in the same run. It reports wall
 * time, throughput, and the peak anonymous memory (RssAnon) of every process.
 *
 *   npm run build:dev && node build-dev/bench/bigger-than-ram.js         # 32 GiB in tmp/
 *   node build-dev/bench/bigger-than-ram.js --size 40G --path /data/big.f64 --backend processes
 *
 * Goals: throughput at least 0.8x cat's; RssAnon under 256 MiB in every process.
 * It refuses to start when the disk lacks room, and removes the file at the end
 * (also on Ctrl-C) unless --keep is given.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, statfsSync, writeSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Parallel, delayed, memmap, type Memmap } from 'memjob';
import { repoRoot } from './paths.js';

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}
function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(text);
  if (!match) throw new Error(`--size: expected a size such as 32G, received "${text}"`);
  return Math.floor(Number(match[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[match[2]!.toUpperCase() as 'G']);
}

const repo = repoRoot;
const path = resolve(flag('path', `${repo}/tmp/bigger-than-ram.f64`));
const backend = flag('backend', 'threads') as 'threads' | 'processes';
// Chunks of 8,000,000 values (64 MB): a multiple of the pattern's period, so every chunk is the same.
const CHUNK = 8_000_000;
const requested = parseSize(flag('size', '32G'));
const n = Math.floor(requested / 8 / CHUNK) * CHUNK;
const bytes = n * 8;
const keep = process.argv.includes('--keep');
const GiB = 1024 ** 3;

mkdirSync(dirname(path), { recursive: true });
const free = (() => {
  const s = statfsSync(dirname(path));
  return s.bavail * s.bsize + (existsSync(path) ? statSync(path).size : 0);
})();
if (bytes + GiB > free) {
  console.error(`bigger-than-ram: ${(bytes / GiB).toFixed(1)} GiB (+1 GiB margin) do not fit in ${dirname(path)}, which has ${(free / GiB).toFixed(1)} GiB free; use --size or --path`);
  process.exit(2);
}
const cleanup = () => {
  if (!keep) rmSync(path, { force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

// x[i] = (i mod 1000) / 4: each chunk sums to 8000 * 499500 / 4 exactly.
const chunkSum = (CHUNK / 1000) * (499500 / 4);
const expectedSum = (n / CHUNK) * chunkSum;

console.log(`bigger-than-ram: ${(bytes / GiB).toFixed(1)} GiB of float64 at ${path}; RAM ${(totalmem() / GiB).toFixed(1)} GiB; backend ${backend}`);
let t = performance.now();
if (!existsSync(path) || statSync(path).size !== bytes) {
  const pattern = Float64Array.from({ length: CHUNK }, (_, i) => (i % 1000) / 4);
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let k = 0; k < n / CHUNK; k++) writeSync(fd, pattern);
  } finally {
    closeSync(fd);
  }
  console.log(`  wrote the file in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

/** RssAnon of this process and of every descendant, sampled until stop(). */
function watchMemory(): { stop: () => Map<number, number> } {
  const peaks = new Map<number, number>();
  const rssAnon = (pid: number) => {
    try {
      const m = /RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  };
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const sample = () => {
    const all = [process.pid];
    for (let i = 0; i < all.length; i++) all.push(...children(all[i]!));
    for (const pid of all) peaks.set(pid, Math.max(peaks.get(pid) ?? 0, rssAnon(pid)));
  };
  const timer = setInterval(sample, 50);
  return { stop: () => (clearInterval(timer), sample(), peaks) };
}

function catSeconds(): number {
  const started = performance.now();
  const result = spawnSync('sh', ['-c', `cat "${path}" > /dev/null`], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('cat failed');
  return (performance.now() - started) / 1000;
}

/** Each task sums one chunk of the mapped file: self-contained, sent by source. */
function sumChunk(view: Memmap<'float64'>): number {
  view.advise('sequential');
  const data = view.data;
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i]!;
  view.advise('dontneed'); // done with these pages: let the kernel drop them first
  return s;
}

async function memjobSeconds(): Promise<{ seconds: number; sum: number; peaks: Map<number, number> }> {
  const watch = watchMemory();
  const started = performance.now();
  const file = memmap(path, { dtype: 'float64', mode: 'r' });
  await using parallel = new Parallel({ nJobs: -1, backend, progress: true });
  const tasks = [];
  for (let start = 0; start < n; start += CHUNK * 4) tasks.push(delayed(sumChunk)(file.slice(start, Math.min(n, start + CHUNK * 4))));
  const sums = await parallel.run(tasks);
  file.close();
  const seconds = (performance.now() - started) / 1000;
  return { seconds, sum: sums.reduce((a, b) => a + b, 0), peaks: watch.stop() };
}

t = performance.now();
const cat1 = catSeconds();
const run1 = await memjobSeconds();
const cat2 = catSeconds();
const run2 = await memjobSeconds();
const gbps = (s: number) => `${(bytes / 1e9 / s).toFixed(2)} GB/s`;
const catBest = Math.min(cat1, cat2);
const memjobBest = Math.min(run1.seconds, run2.seconds);
const exact = run1.sum === expectedSum && run2.sum === expectedSum;

console.log('');
console.log(`| pass | cat FILE > /dev/null | memjob Parallel scan | ratio (cat time / memjob time) |`);
console.log(`| --- | --- | --- | --- |`);
console.log(`| 1 | ${cat1.toFixed(1)} s, ${gbps(cat1)} | ${run1.seconds.toFixed(1)} s, ${gbps(run1.seconds)} | ${(cat1 / run1.seconds).toFixed(2)}x |`);
console.log(`| 2 | ${cat2.toFixed(1)} s, ${gbps(cat2)} | ${run2.seconds.toFixed(1)} s, ${gbps(run2.seconds)} | ${(cat2 / run2.seconds).toFixed(2)}x |`);
console.log('');
console.log(`sum ${run1.sum} / ${run2.sum}, expected ${expectedSum}: ${exact ? 'exact' : 'WRONG'}`);
const peaks = [...run1.peaks, ...run2.peaks];
const worst = Math.max(...peaks.map(([, v]) => v));
for (const [pid, peak] of run1.peaks) console.log(`  pid ${pid}${pid === process.pid ? ' (parent)' : ''}: peak RssAnon ${(peak / 1024 ** 2).toFixed(0)} MiB`);
console.log(`Goal (throughput at least 0.8x cat): ${memjobBest <= catBest / 0.8 ? 'met' : 'MISSED'} — best ${gbps(memjobBest)} vs cat ${gbps(catBest)} (${(catBest / memjobBest).toFixed(2)}x)`);
console.log(`Goal (RssAnon under 256 MiB in every process): ${worst < 256 * 1024 ** 2 ? 'met' : 'MISSED'} — worst ${(worst / 1024 ** 2).toFixed(0)} MiB over ${new Set(peaks.map(([p]) => p)).size} processes`);
console.log(`Machine: ${execFileSync('nproc').toString().trim()} cores, total run ${((performance.now() - t) / 1000).toFixed(0)} s; file ${keep ? 'kept' : 'removed'}`);
if (!exact) process.exitCode = 1;
