/**
 * Timing helpers the benchmarks share: nearest-rank quantiles, gc() between
 * timed steps, and the table rows for a throughput and a latency.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { BenchRow } from './memmap.js';

/** Nearest-rank quantile. */
export function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
export const median = (samples: readonly number[]) => quantile(samples, 0.5);

// Large ArrayBuffers are freed only when V8 collects them. gc() before each
// timed step releases the previous step's gigabyte (and mappings), so no step
// pays for another's garbage. The flag is set at run time, on first use, so
// `npm run bench` needs no node options.
let gc: (() => void) | undefined;
export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

/** gc(), then one event-loop turn: signals reach JavaScript only between turns. */
export async function betweenSteps(): Promise<void> {
  collectGarbage();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** One timed step, after betweenSteps(). */
export async function timed(step: () => unknown): Promise<{ ms: number; value: unknown }> {
  await betweenSteps();
  const start = performance.now();
  const value = await step();
  return { ms: performance.now() - start, value };
}

/** GB/s of `bytes` from millisecond samples; the note starts with the median and every sample. */
export function throughputRow(measurement: string, bytes: number, samples: number[], note: string): BenchRow {
  return {
    measurement,
    bytes,
    value: bytes / 1e9 / (median(samples) / 1e3),
    unit: 'GB/s',
    note: `${median(samples).toFixed(0)} ms median of ${samples.map((ms) => ms.toFixed(0)).join(' / ')}; ${note}`,
  };
}

/** Median and p90 of millisecond samples. */
export function latencyRow(measurement: string, bytes: number, samples: number[], note: string): BenchRow {
  return { measurement, bytes, value: median(samples), unit: 'ms', p90: quantile(samples, 0.9), note };
}
