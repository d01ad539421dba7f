// Parallel's results: every backend and nJobs gives what a plain loop gives,
// in each returnAs form; inputs of every kind are consumed lazily; batching;
// one run at a time; warm workers; close().
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AutoBatcher } from '../src/parallel/batching.js';
import { ErrorCodes, Parallel, delayed, type Backend, type ReturnAs } from '../src/index.js';
import { SharedParallels, childPids, collect, isAlive, rejection, t, waitFor, workerBackends } from './fixtures/parallel-helpers.js';

// Warm Parallels with default options, shared by the tests that need nothing else.
const shared = new SharedParallels();
afterAll(async () => {
  await shared.close();
  expect(childPids()).toEqual([]);
});
afterEach(async () => {
  // Every test closes what it opens: no worker process outlives it (but the shared ones).
  await shared.settle();
});

function work(i: number): number {
  let s = 0;
  for (let k = 0; k < 1000; k++) s += (k * i) % 7;
  return s;
}

const items = Array.from({ length: 40 }, (_, i) => i);
const expected = items.map(work);

async function runAs(p: Parallel<ReturnAs>, calls: Iterable<ReturnType<ReturnType<typeof delayed>>> | AsyncIterable<ReturnType<ReturnType<typeof delayed>>>): Promise<unknown[]> {
  const out = p.run(calls) as unknown;
  return p.options.returnAs === 'array' ? await (out as Promise<unknown[]>) : await collect(out as AsyncIterable<unknown>);
}

describe('results equal a plain loop', () => {
  const backends: Backend[] = ['threads', 'processes', 'sequential'];
  for (const backend of backends) {
    for (const nJobs of [1, 2, -1]) {
      it(`backend ${backend}, nJobs ${nJobs}, every returnAs`, async () => {
        for (const returnAs of ['array', 'generator', 'unordered'] as const) {
          await using own = returnAs === 'array' && nJobs === 2 ? null : new Parallel<ReturnAs>({ backend, nJobs, returnAs });
          const p = own ?? shared.get(backend);
          const results = await runAs(p, items.map((i) => delayed(work)(i)));
          if (returnAs === 'unordered') expect([...results].sort((a, b) => (a as number) - (b as number))).toEqual([...expected].sort((a, b) => a - b));
          else expect(results).toEqual(expected);
          expect(results).toHaveLength(items.length);
        }
      });
    }
  }

  it('nJobs 1 runs in this thread whatever the backend', async () => {
    await using p = new Parallel({ nJobs: 1, backend: 'processes' });
    expect(p.nJobs).toBe(1);
    expect(p.options.backend).toBe('sequential');
    const [where] = await p.run([delayed(t('whereAmI'))()]);
    expect(where.pid).toBe(process.pid);
  });

  it('an empty task list gives no results on every backend', async () => {
    const before = childPids();
    for (const backend of ['threads', 'processes', 'sequential'] as const) {
      await using p = new Parallel({ backend, nJobs: 2 });
      expect(await p.run([])).toEqual([]);
      await using g = new Parallel({ backend, nJobs: 2, returnAs: 'generator' });
      expect(await collect(g.run([]))).toEqual([]);
    }
    expect(childPids()).toEqual(before); // nothing to run: no worker was started
  });
});

describe('returnAs', () => {
  for (const backend of workerBackends) {
    it(`${backend}: 'unordered' yields fast results before a slow one, 'generator' keeps input order`, async () => {
      const calls = () => [delayed(t('sleepThen'))(700, 'slow'), ...[1, 2, 3, 4, 5].map((i) => delayed(t('sleepThen'))(10, `fast${i}`))];
      await using u = new Parallel({ backend, nJobs: 2, batchSize: 1, returnAs: 'unordered' });
      await collect(u.run([1, 2, 3, 4].map((i) => delayed(t('sleepThen'))(50, i)))); // both workers started
      const arrivals: { value: unknown; at: number }[] = [];
      const t0 = performance.now();
      for await (const value of u.run(calls())) arrivals.push({ value, at: performance.now() - t0 });
      const slow = arrivals.findIndex((a) => a.value === 'slow');
      // The other worker runs the fast tasks meanwhile (one fast task may wait queued behind the slow one).
      expect(slow).toBeGreaterThanOrEqual(arrivals.length - 2);
      expect(arrivals[0]!.value).not.toBe('slow');
      expect(arrivals[slow]!.at - arrivals[0]!.at).toBeGreaterThan(200);
      expect(arrivals.map((a) => a.value).sort()).toEqual(['fast1', 'fast2', 'fast3', 'fast4', 'fast5', 'slow']);

      await using g = new Parallel({ backend, nJobs: 2, batchSize: 1, returnAs: 'generator' });
      expect(await collect(g.run(calls()))).toEqual(['slow', 'fast1', 'fast2', 'fast3', 'fast4', 'fast5']);
    });
  }

  it('leaving a generator early stops the run, and the Parallel runs again', async () => {
    await using p = new Parallel({ backend: 'threads', nJobs: 2, batchSize: 1, returnAs: 'generator' });
    let brokeAt = 0;
    const got: unknown[] = [];
    for await (const value of p.run([0, 1, 2, 3, 4, 5, 6, 7].map((i) => delayed(t('sleepThen'))(i < 2 ? 10 : 3000, i)))) {
      got.push(value);
      if (got.length === 2) {
        brokeAt = performance.now();
        break;
      }
    }
    expect(got).toEqual([0, 1]);
    // The 3 s tasks running at the break were abandoned, not awaited. Timed from the break, not from
    // the start, so that a slow start of the workers on a loaded machine does not count.
    expect(performance.now() - brokeAt).toBeLessThan(2000);
    expect(await collect(p.run([delayed(work)(3)]))).toEqual([work(3)]);
  });
});

describe('inputs are consumed lazily', () => {
  for (const backend of ['threads', 'processes', 'sequential'] as const) {
    it(`${backend}: a generator function is pulled only as workers take work (preDispatch)`, async () => {
      const log: string[] = [];
      let pulled = 0;
      let completed = 0;
      let maxAhead = 0;
      function* source() {
        for (let i = 0; i < 16; i++) {
          pulled++;
          maxAhead = Math.max(maxAhead, pulled - completed);
          log.push(`pull ${i}`);
          yield delayed(t('sleepThen'))(30, i);
        }
      }
      await using p = new Parallel({ backend, nJobs: 2, batchSize: 1, preDispatch: 2, progress: (done) => ((completed = done), log.push(`done ${done}`)) });
      expect(await p.run(source())).toEqual(items.slice(0, 16));
      expect(pulled).toBe(16);
      // At most preDispatch batches in flight, plus one batch waiting for a worker.
      expect(maxAhead).toBeLessThanOrEqual(backend === 'sequential' ? 1 : 3);
      // Pulls and completions interleave: the last item is pulled after most tasks are done.
      expect(log.indexOf('pull 15')).toBeGreaterThan(log.indexOf('done 10'));
    });
  }

  it('accepts any Iterable and any AsyncIterable', async () => {
    const p = shared.get('threads');
    const set = new Set(items.slice(0, 10).map((i) => delayed(work)(i)));
    expect(await p.run(set)).toEqual(expected.slice(0, 10));
    async function* slowly() {
      for (let i = 0; i < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield delayed(work)(i);
      }
    }
    expect(await p.run(slowly())).toEqual(expected.slice(0, 10));
    const custom = { [Symbol.asyncIterator]: () => slowly() };
    expect(await p.run(custom)).toEqual(expected.slice(0, 10));
  });
});

describe('batching', () => {
  for (const backend of workerBackends) {
    it(`${backend}: batchSize n sends n consecutive tasks to one worker`, async () => {
      await using p = new Parallel({ backend, nJobs: 2, batchSize: 5 });
      const where = await p.run(Array.from({ length: 100 }, () => delayed(t('whereAmI'))()));
      const id = (w: { pid: number; threadId: number }) => `${w.pid}/${w.threadId}`;
      // Batch sizes shrink near the end so that both workers stay busy; the first 80 tasks go in batches of 5.
      for (let start = 0; start < 80; start += 5) {
        expect(new Set(where.slice(start, start + 5).map(id)).size).toBe(1);
      }
    });
  }

  it("'auto' runs many tiny tasks correctly, growing batches as joblib does", async () => {
    const p = shared.get('threads'); // batchSize 'auto' is the default
    const n = 3000;
    const results = await p.run(Array.from({ length: n }, (_, i) => delayed(Math.sqrt)(i)));
    expect(results).toEqual(Array.from({ length: n }, (_, i) => Math.sqrt(i)));

    const batcher = new AutoBatcher();
    expect(batcher.size).toBe(1);
    batcher.record(1, 1); // 1 ms for one task: far below the 200 ms target
    expect(batcher.size).toBe(2);
    batcher.record(2, 3000); // a batch that runs long halves the size
    expect(batcher.size).toBe(1);
  });
});

describe('one run at a time, warm workers, close()', () => {
  for (const backend of workerBackends) {
    it(`${backend}: a second concurrent run() is refused with MEMJOB_ERR_BUSY; the first finishes`, async () => {
      const p = shared.get(backend);
      const first = p.run([1, 2, 3].map((i) => delayed(t('sleepThen'))(100, i)));
      const second = await rejection(p.run([delayed(work)(1)]));
      expect(second.code).toBe(ErrorCodes.BUSY);
      expect(second.message).toMatch(/another run of this Parallel is still in progress/);
      expect(await first).toEqual([1, 2, 3]);
      expect(await p.run([delayed(work)(1)])).toEqual([work(1)]);

      await using g = new Parallel({ backend, nJobs: 2, returnAs: 'generator' });
      const a = g.run([1, 2].map((i) => delayed(t('sleepThen'))(100, i)));
      const firstValue = a.next();
      const b = await rejection(collect(g.run([delayed(work)(1)])));
      expect(b.code).toBe(ErrorCodes.BUSY);
      expect((await firstValue).value).toBe(1);
      expect(await collect(a)).toEqual([2]);
    });

    it(`${backend}: workers stay warm between runs (no new worker for the second run)`, async () => {
      await using p = new Parallel({ backend, nJobs: 2, batchSize: 1 });
      const id = (w: { pid: number; threadId: number }) => `${w.pid}/${w.threadId}`;
      const calls = () => Array.from({ length: 8 }, () => delayed(t('whereAmI'))());
      const first = await p.run(calls());
      const second = await p.run(calls());
      expect(new Set([...first, ...second].map(id)).size).toBeLessThanOrEqual(2);
      for (const w of [...first, ...second]) {
        expect(w.inWorker).toBe(true);
        if (backend === 'processes') expect(childPids()).toContain(w.pid);
        else expect(w.pid).toBe(process.pid);
      }
    });
  }

  it('`await using` closes the workers of a Parallel with reuse: false; a closed Parallel refuses to run', async () => {
    let pids: number[] = [];
    let closed: Parallel | undefined;
    const others = childPids();
    {
      await using p = new Parallel({ backend: 'processes', nJobs: 2, reuse: false });
      closed = p;
      await p.run([delayed(work)(1), delayed(work)(2)]); // two tasks: both workers start
      // One worker may have run both tasks while the other was still starting (forked, not yet running worker.js).
      await waitFor(() => childPids().filter((pid) => !others.includes(pid)).length === 2, 10_000, 'both workers');
      pids = childPids().filter((pid) => !others.includes(pid));
      expect(pids.length).toBe(2);
    }
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    const error = await rejection(closed!.run([delayed(work)(1)]));
    expect(error.code).toBe(ErrorCodes.BUSY);
    expect(error.message).toMatch(/closed/);
  });

  it('close() during a run ends it with MEMJOB_ERR_CANCELLED and stops the workers', async () => {
    const others = childPids();
    const p = new Parallel({ backend: 'processes', nJobs: 2 });
    const running = p.run([1, 2].map((i) => delayed(t('sleepThen'))(5000, i)));
    await waitFor(() => childPids().length === others.length + 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const failed = rejection(running);
    const started = performance.now();
    await p.close();
    const error = await failed;
    expect(error.code).toBe(ErrorCodes.CANCELLED);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(childPids()).toEqual(others);
  });
});
