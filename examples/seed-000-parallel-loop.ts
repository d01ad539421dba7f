/**
 * Seed 000: rewrite one loop and use every core.
 *
 *   Python:  Parallel(n_jobs=-1)(delayed(process)(i) for i in range(10000))
 *   memjob:  await new Parallel({ nJobs: -1 }).run(items.map((i) => delayed(process)(i)))
 *
 * Run: npm run build:dev && node build-dev/examples/seed-000-parallel-loop.js
 */
import { Parallel, cpuCount, delayed } from 'memjob';

// Self-contained (it uses only its argument), so memjob sends it to the workers by source.
function process(n: number): number {
  let s = 0;
  for (let i = 0; i < 100000; i++) s += i * n;
  return s;
}

const items = Array.from({ length: 10000 }, (_, i) => i);

let started = performance.now();
const sequential = items.map((i) => process(i));
const sequentialSeconds = (performance.now() - started) / 1000;

started = performance.now();
await using parallel = new Parallel({ nJobs: -1, verbose: 5 });
const results = await parallel.run(items.map((i) => delayed(process)(i)));
const parallelSeconds = (performance.now() - started) / 1000;

const same = results.every((r, i) => r === sequential[i]);
console.log(`sequential: ${sequentialSeconds.toFixed(2)} s`);
console.log(`Parallel(nJobs=-1) on ${cpuCount()} cores: ${parallelSeconds.toFixed(2)} s (speed-up ${(sequentialSeconds / parallelSeconds).toFixed(2)}x, worker start included)`);
console.log(`same results as the loop: ${same}`);
if (!same) globalThis.process.exitCode = 1;
