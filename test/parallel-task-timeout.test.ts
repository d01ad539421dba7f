// taskTimeout, joblib's per-task `timeout`: a task that runs longer fails the
// run with MEMJOB_ERR_TIMEOUT naming it, and its worker is stopped; batches
// time each task on its own; the run-wide `timeout` still works beside it.
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, Parallel, closeSharedWorkers, delayed, task } from '../src/index.js';
import { failure } from './helpers.js';
import { childPids, isAlive, rejection, waitFor, workerBackends } from './fixtures/parallel-helpers.js';

// Self-contained functions (sent as source): these tests time the calls themselves. (Importing a
// task() module is start-up and does not count: the last test.)
const sleepThen = (ms: number, value: unknown) => new Promise((resolve) => setTimeout(() => resolve(value), ms));
/** Sleeps, then returns a mark that tells the workers apart (each thread and process has its own globalThis). */
const sleepThenWho = async (ms: number) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  const scope = globalThis as { contractMark?: number };
  return (scope.contractMark ??= Math.random());
};

afterEach(async () => {
  await closeSharedWorkers();
  await waitFor(() => childPids().length === 0, 5000, 'worker processes to exit');
});

function expectTaskTimeout(error: Error & Record<string, unknown>, index: number, ms: number): void {
  expect(error).toBeInstanceOf(MemjobError);
  expect(error.code).toBe(ErrorCodes.TIMEOUT);
  expect(error.taskIndex).toBe(index);
  expect(error.message).toContain(`task ${index} did not finish within its taskTimeout of ${ms} ms`);
}

describe.each(workerBackends)('%s', (backend) => {
  it('a task slower than taskTimeout fails the run with MEMJOB_ERR_TIMEOUT naming it, and its worker is stopped', async () => {
    await using p = new Parallel({ nJobs: 2, backend, batchSize: 1, taskTimeout: 600 });
    const calls = [0, 1, 2].map((i) => delayed(sleepThen)(10, i));
    const settled = rejection(p.run([...calls, delayed(sleepThen)(30_000, 'never'), delayed(sleepThen)(10, 4)]));
    let workers: number[] = [];
    if (backend === 'processes') await waitFor(() => (workers = childPids()).length === 2, 10_000, 'both worker processes');
    expectTaskTimeout(await settled, 3, 600);
    if (backend === 'processes') {
      // The busy worker is gone by the time the run rejects; the idle one stays warm for the next run.
      // (A worker thread's pid is this process's: only a child process can be checked this way.)
      expect(workers.filter((pid) => !isAlive(pid))).toHaveLength(1);
      expect(childPids()).toHaveLength(1);
    }
  });

  it('tasks under the limit pass; in a batch each task has the whole limit (4 x 300 ms in one batch, taskTimeout 1000)', async () => {
    await using p = new Parallel({ nJobs: 2, backend, batchSize: 4, taskTimeout: 1000 });
    // A generator: its length is unknown, so the batch is not shrunk near the end of the input.
    function* tasks() {
      for (let i = 0; i < 4; i++) yield delayed(sleepThenWho)(300);
    }
    const marks = await p.run(tasks());
    expect(marks).toHaveLength(4);
    // One batch: every task ran on the same worker, one after another (1200 ms in all, over the 1000 ms limit).
    expect(new Set(marks).size).toBe(1);
  });
});

it('the run-wide timeout still applies beside taskTimeout', async () => {
  await using p = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1, timeout: 700, taskTimeout: 5000 });
  const error = await rejection(p.run([1, 2, 3, 4, 5, 6].map((i) => delayed(sleepThen)(400, i))));
  expect(error.code).toBe(ErrorCodes.TIMEOUT);
  expect(error.message).toMatch(/the run did not finish within its timeout of 700 ms/);
  expect(error.taskIndex).toBeUndefined();
  // And the shorter of the two wins: here the task's.
  await using q = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1, timeout: 10_000, taskTimeout: 300 });
  expectTaskTimeout(await rejection(q.run([delayed(sleepThen)(10, 0), delayed(sleepThen)(5000, 1)])), 1, 300);
});

describe('sequential backend (this thread)', () => {
  it('an async task that sleeps past taskTimeout fails the run with MEMJOB_ERR_TIMEOUT; faster ones pass', async () => {
    await using p = new Parallel({ nJobs: 1, taskTimeout: 300 });
    expect(p.options.backend).toBe('sequential');
    expect(await p.run([delayed(sleepThen)(20, 'a'), delayed(sleepThen)(20, 'b')])).toEqual(['a', 'b']);
    expectTaskTimeout(await rejection(p.run([delayed(sleepThen)(10, 'ok'), delayed(sleepThen)(1500, 'late')])), 1, 300);
    // The next run is not disturbed by the call that was abandoned (it still ends in the background).
    expect(await p.run([delayed((x: number) => x + 1)(1)])).toEqual([2]);
  });
});

it('invalid taskTimeout values are MEMJOB_ERR_INVALID_ARG naming the option', () => {
  for (const value of [0, -1, 'x', 2 ** 31, Number.NaN, Infinity]) {
    const error = failure(() => new Parallel({ nJobs: 2, taskTimeout: value as number }));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toMatch(/taskTimeout/);
    expect(error.message).toMatch(/expected .* received/i);
  }
  expect(new Parallel({ taskTimeout: null }).options.taskTimeout).toBeNull();
  expect(new Parallel({ taskTimeout: 2 ** 31 - 1 }).options.taskTimeout).toBe(2 ** 31 - 1);
});

it('importing a task module is start-up, not task time: an 800 ms import with taskTimeout 500 passes', async () => {
  const quick = task<[], string>(new URL('./fixtures/slow-import-tasks.ts', import.meta.url), 'quick');
  for (const backend of ['threads', 'processes'] as const) {
    await using p = new Parallel({ nJobs: 2, backend, taskTimeout: 500, reuse: false });
    expect(await p.run([delayed(quick)()])).toEqual(['done']);
  }
});
