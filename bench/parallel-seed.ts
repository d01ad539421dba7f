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
