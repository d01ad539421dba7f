/**
 * The sequential backend (nJobs 1) pulls its input as joblib's does: one call
 * at a time with batchSize 'auto' or 1, and batchSize calls before running
 * them otherwise (joblib's test_dispatch_one_job).
 */
import { describe, expect, it } from 'vitest';
import { Parallel, delayed } from '../src/index.js';

async function dispatchOrder(batchSize: number | 'auto'): Promise<string[]> {
  const log: string[] = [];
  // In this thread, so the task may write to the caller's log.
  const consume = (i: number) => void log.push(`Consumed ${i}`);
  function* produce() {
    for (let i = 0; i < 6; i++) {
      log.push(`Produced ${i}`);
      yield delayed(consume)(i);
    }
  }
  await using parallel = new Parallel({ nJobs: 1, batchSize });
  await parallel.run(produce());
  return log;
}

describe('nJobs 1: dispatch order as joblib', () => {
  it('batchSize 1 (and auto) alternates producing and consuming', async () => {
    const expected = [0, 1, 2, 3, 4, 5].flatMap((i) => [`Produced ${i}`, `Consumed ${i}`]);
    expect(await dispatchOrder(1)).toEqual(expected);
    expect(await dispatchOrder('auto')).toEqual(expected);
  });

  it('batchSize 4 produces four calls before consuming them, then the last two', async () => {
    expect(await dispatchOrder(4)).toEqual([
      'Produced 0', 'Produced 1', 'Produced 2', 'Produced 3',
      'Consumed 0', 'Consumed 1', 'Consumed 2', 'Consumed 3',
      'Produced 4', 'Produced 5', 'Consumed 4', 'Consumed 5',
    ]);
  });

  it('results and errors keep their task index with batches', async () => {
    await using parallel = new Parallel({ nJobs: 1, batchSize: 3 });
    expect(await parallel.run([1, 2, 3, 4, 5].map((x) => delayed((n: number) => n * 10)(x)))).toEqual([10, 20, 30, 40, 50]);
    const failing = (n: number) => {
      if (n === 4) throw new RangeError('four');
      return n;
    };
    const error = await parallel.run([1, 2, 3, 4, 5].map((x) => delayed(failing)(x))).then(
      () => undefined,
      (e: unknown) => e as RangeError & { taskIndex?: number },
    );
    expect(error).toBeInstanceOf(RangeError);
    expect(error?.taskIndex).toBe(3);
  });
});
