/**
 * Seed 001: joblib's first two lessons.
 *
 * 1. delayed(Math.sqrt): built-ins are sent to workers by reference.
 * 2. dump a large array once, reopen it memory-mapped, and let workers work
 *    on slices of it: they receive file references, never copies.
 *
 * Run: npm run build:dev && node build-dev/examples/seed-001-sqrt-and-memmap.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Parallel, delayed, dump, hasShareableMemory, load } from 'memjob';

await using parallel = new Parallel({ nJobs: 2 });

// 1. Parallel(n_jobs=2)(delayed(sqrt)(i ** 2) for i in range(10))
const roots = await parallel.run(Array.from({ length: 10 }, (_, i) => delayed(Math.sqrt)(i ** 2)));
console.log('square roots:', roots.join(', '));

// 2. The dump / memmap / slice walk-through.
const folder = mkdtempSync(join(tmpdir(), 'memjob-seed-001-'));
try {
  const large = Float64Array.from({ length: 10_000_000 }, (_, i) => i % 100);
  const file = join(folder, 'large.mjdump');
  await dump({ large }, file); // joblib.dump(large_array, filename)
  const { large: mapped } = (await load(file, { mmapMode: 'r' })) as { large: Float64Array }; // joblib.load(filename, mmap_mode='r')
  console.log('the loaded array is memory-mapped:', hasShareableMemory(mapped));

  // A mapped array is passed by reference to its file: each task sums one slice of it.
  function sliceSum(values: Float64Array, start: number, end: number): number {
    let s = 0;
    for (let i = start; i < end; i++) s += values[i]!;
    return s;
  }
  const step = 2_500_000;
  const sums = await parallel.run([0, 1, 2, 3].map((k) => delayed(sliceSum)(mapped, k * step, (k + 1) * step)));
  console.log('slice sums:', sums.join(', '), '(each 123750000)');

  // In a worker, the mapped array arrives mapped too (no copy made):
  const [shared] = await parallel.run([delayed(hasShareableMemory)(mapped)]);
  console.log('the worker saw a memory-mapped array:', shared);
} finally {
  rmSync(folder, { recursive: true, force: true });
}
