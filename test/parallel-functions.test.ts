// Functions on their way to workers: task() modules (TypeScript here), global
// built-ins, memjob's exports, async functions; the initializer runs once in
// each worker.
import { afterAll, describe, expect, it } from 'vitest';
import { Parallel, delayed, hasShareableMemory, task, type Backend } from '../src/index.js';
import { SharedParallels, childPids, t } from './fixtures/parallel-helpers.js';

const shared = new SharedParallels();
afterAll(async () => {
  await shared.close();
  expect(childPids()).toEqual([]);
});

const backends: Backend[] = ['threads', 'processes', 'sequential'];

describe.each(backends)('%s', (backend) => {
  it("task(new URL('./fixtures/tasks.ts', import.meta.url), 'square') runs the TypeScript module's export", async () => {
    const square = task<[number], number>(new URL('./fixtures/tasks.ts', import.meta.url), 'square');
    const scaled = task<[number], number>(new URL('./fixtures/tasks.ts', import.meta.url), 'scaled'); // uses a module constant
    const p = shared.get(backend);
    expect(await p.run([1, 2, 3, 4].map((i) => delayed(square)(i)))).toEqual([1, 4, 9, 16]);
    expect(await p.run([1, 2].map((i) => delayed(scaled)(i)))).toEqual([3, 6]);
    // The module's main code is guarded by inWorker(): a worker importing it does not run it.
    const [where] = await p.run([delayed(t('whereAmI'))()]);
    expect(where.inWorker).toBe(backend !== 'sequential');
  });

  it("sends global built-ins and memjob's exports by name, and awaits async functions", async () => {
    const p = shared.get(backend);
    expect(await p.run([delayed(Math.sqrt)(16), delayed(parseInt)('ff', 16), delayed(JSON.stringify)({ a: 1 })])).toEqual([4, 255, '{"a":1}']);
    expect(await p.run([delayed(hasShareableMemory)(new Float64Array(4))])).toEqual([false]);
    const later = async (x: number) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return { x, twice: x * 2 };
    };
    expect(await p.run([1, 2].map((i) => delayed(later)(i)))).toEqual([{ x: 1, twice: 2 }, { x: 2, twice: 4 }]);
  });
});

describe('initializer', () => {
  for (const backend of ['threads', 'processes'] as const) {
    it(`${backend}: runs once in each worker, before its first task, with its arguments`, async () => {
      await using p = new Parallel({ backend, nJobs: 2, batchSize: 1, initializer: delayed(t('countInit'))('model', 1) });
      const states = [
        ...(await p.run(Array.from({ length: 6 }, () => delayed(t('sleepThen'))(20, 0)))),
        ...(await p.run(Array.from({ length: 6 }, () => delayed(t('initState'))()))),
        ...(await p.run(Array.from({ length: 6 }, () => delayed(t('initState'))()))),
      ].filter((s) => s !== 0);
      for (const state of states) expect(state).toMatchObject({ calls: 1, args: ['model', 1] });
      expect(new Set(states.map((s) => `${s.pid}/${s.threadId}`)).size).toBeLessThanOrEqual(2);
    });
  }

  it('a self-contained function works as an initializer too (each thread has its own globals)', async () => {
    await using p = new Parallel({
      backend: 'threads',
      nJobs: 2,
      batchSize: 1,
      initializer: () => {
        (globalThis as Record<string, unknown>).memjobTestInits = (((globalThis as Record<string, unknown>).memjobTestInits as number) ?? 0) + 1;
      },
    });
    const counts = await p.run(Array.from({ length: 8 }, () => delayed(() => (globalThis as Record<string, unknown>).memjobTestInits)()));
    expect(counts).toEqual(Array(8).fill(1));
    expect((globalThis as Record<string, unknown>).memjobTestInits).toBeUndefined(); // not in the parent
  });

  it('sequential: runs once, in this thread, for the life of the Parallel', async () => {
    let inits = 0;
    await using p = new Parallel({ backend: 'sequential', initializer: () => void inits++ });
    await p.run([delayed(Math.abs)(1)]);
    await p.run([delayed(Math.abs)(2)]);
    expect(inits).toBe(1);
  });
});
