// An endless input of tiny tasks: auto batches stop growing at MAX_AUTO_BATCH,
// and pulling a batch gives the event loop a turn now and then, so results,
// the run's timeout and a consumer's break are heard while the input is read
// (before, batch sizes doubled without end and the parent starved: about one
// run in twenty never saw its first results).
import { afterEach, describe, expect, it } from 'vitest';
import { AutoBatcher, MAX_AUTO_BATCH } from '../src/parallel/batching.js';
import { ErrorCodes, Parallel, closeSharedWorkers, delayed } from '../src/index.js';
import { rejection } from './fixtures/parallel-helpers.js';

afterEach(async () => {
  await closeSharedWorkers();
});

function* naturals() {
  for (let n = 0; ; n++) yield delayed(Math.sqrt)(n * n);
}

it('auto batches of microsecond tasks stop growing at MAX_AUTO_BATCH', () => {
  const batcher = new AutoBatcher();
  for (let i = 0; i < 60; i++) batcher.record(batcher.size, 0.01);
  expect(batcher.size).toBe(MAX_AUTO_BATCH);
});

describe.each(['threads', 'processes'] as const)('%s', (backend) => {
  it('a generator over an endless input stops at break, every time', async () => {
    await using p = new Parallel({ nJobs: 2, backend, returnAs: 'generator' });
    for (let round = 0; round < 5; round++) {
      const seen: number[] = [];
      for await (const n of p.run(naturals()) as AsyncIterable<number>) {
        seen.push(n);
        if (n === 1000) break;
      }
      expect(seen).toEqual(Array.from({ length: 1001 }, (_, i) => i));
    }
  });

  it("the run's timeout fires while an endless input is being read", async () => {
    await using p = new Parallel({ nJobs: 2, backend, timeout: 1500 });
    const started = performance.now();
    const error = await rejection(p.run(naturals()));
    expect(error.code).toBe(ErrorCodes.TIMEOUT);
    expect(performance.now() - started).toBeLessThan(15_000); // an upper bound against a hang, not a timing
  });
});
