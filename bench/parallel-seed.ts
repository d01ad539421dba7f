/**
 * Seed 000's workload for bench/parallel.ts, in a module of its own so that
 * the function keeps the seed's name without hiding Node's `process` global
 * from any benchmark code.
 */

/** Seed 000's function, unchanged: self-contained, so memjob sends it by source. */
export function process(n: number): number {
  let s = 0;
  for (let i = 0; i < 100000; i++) s += i * n;
  return s;
}

/** process(n) by formula: n × (0 + 1 + … + 99,999). Exact: every partial sum is an integer below 2^53. */
export const seedExpected = (n: number) => n * 4999950000;

/** Throws unless results[i] is process(i) for every i < n. */
export function checkSeed(label: string, results: readonly unknown[], n: number): void {
  if (results.length !== n) throw new Error(`bench: ${label} returned ${results.length} results, expected ${n}`);
  for (let i = 0; i < n; i++) {
    if (results[i] !== seedExpected(i)) throw new Error(`bench: ${label} result ${i} is ${String(results[i])}, expected ${seedExpected(i)}`);
  }
}

/**
 * The machine's own ceiling for a 2-worker speedup, in the same run: two bare
 * worker threads (started and warmed before the timer) each run process(i)
 * over half of the inputs, with no pool, batching or transport. On this VM
 * two busy vCPUs can each run about 30% slower than one alone, so this,
 * not 2.0×, is what any 2-worker pool can reach at that moment.
 */
export async function bareHalves(n: number): Promise<number> {
  const { Worker } = await import('node:worker_threads');
  const source = `const { parentPort } = require('node:worker_threads');
${process.toString()}
parentPort.on('message', ([start, end]) => {
  const out = new Float64Array(end - start);
  for (let i = start; i < end; i++) out[i - start] = process(i);
  parentPort.postMessage(out, [out.buffer]);
});`;
  const workers = [new Worker(source, { eval: true }), new Worker(source, { eval: true })];
  const run = (ranges: [number, number][]) =>
    Promise.all(workers.map((w, k) => new Promise<Float64Array>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.postMessage(ranges[k]);
    })));
  try {
    await run([[0, 200], [200, 400]]); // starts both and compiles process() in each, untimed
    const half = Math.floor(n / 2);
    const start = performance.now();
    const parts = await run([[0, half], [half, n]]);
    const ms = performance.now() - start;
    checkSeed('bare worker_threads, two halves', [...parts[0]!, ...parts[1]!], n);
    return ms;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
