// Nested Parallels follow joblib's policy, seen through the public API: a
// Parallel made in a worker process runs on threads, one made in a worker
// thread or deeper runs sequentially (with a MEMJOB_NESTED_BACKEND warning
// when that is less than asked), and a task that runs a Parallel of itself
// fails with MEMJOB_ERR_NESTING instead of growing without end.
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, Parallel, closeSharedWorkers, delayed } from '../src/index.js';
import { childPids, rejection, t, waitFor } from './fixtures/parallel-helpers.js';

type Nested = { backend: string; warnings: string[] };
const nestedParallel = t<[object], Nested>('nestedParallel');
const nestedBackends = t<[number], string[]>('nestedBackends');
const recursiveParallel = t<[number, string], never>('recursiveParallel');
const nestedTreeSum = t<[number, number], number>('nestedTreeSum');

afterEach(async () => {
  await closeSharedWorkers();
  await waitFor(() => childPids().length === 0, 5000, 'worker processes to exit');
});

describe('the backend a nested Parallel gets', () => {
  it('in a worker process, processes become threads, with a MEMJOB_NESTED_BACKEND warning; threads stay threads', async () => {
    // reuse: false: a fresh worker, so the warning (once per worker) has not been given yet.
    await using p = new Parallel({ nJobs: 2, backend: 'processes', reuse: false, batchSize: 1 });
    const [asked, threads, one] = await p.run([
      delayed(nestedParallel)({ nJobs: 2, backend: 'processes' }),
      delayed(nestedParallel)({ nJobs: 2, backend: 'threads' }),
      delayed(nestedParallel)({ nJobs: 1, backend: 'processes' }),
    ]);
    expect(asked!.backend).toBe('threads');
    expect(threads).toEqual({ backend: 'threads', warnings: [] });
    expect(one).toEqual({ backend: 'sequential', warnings: [] }); // nJobs 1 is sequential anywhere, and silent
    // Only the first task asked for less than it gets: its worker warns.
    expect(asked!.warnings).toEqual(['MEMJOB_NESTED_BACKEND']);
  });

  it('in a worker thread, a nested Parallel is sequential, with the warning', async () => {
    await using p = new Parallel({ nJobs: 2, backend: 'threads', reuse: false });
    const [processes] = await p.run([delayed(nestedParallel)({ nJobs: 2, backend: 'processes' })]);
    expect(processes).toEqual({ backend: 'sequential', warnings: ['MEMJOB_NESTED_BACKEND'] });
    const [threads] = await p.run([delayed(nestedParallel)({ nJobs: 2, backend: 'threads' })]);
    expect(threads!.backend).toBe('sequential');
  });

  it('two levels down and below it is sequential, under a processes worker and under a threads worker', async () => {
    await using processes = new Parallel({ nJobs: 2, backend: 'processes' });
    expect(await processes.run([delayed(nestedBackends)(3)])).toEqual([['threads', 'sequential', 'sequential']]);
    await using threads = new Parallel({ nJobs: 2, backend: 'threads' });
    expect(await threads.run([delayed(nestedBackends)(3)])).toEqual([['sequential', 'sequential', 'sequential']]);
  });

  it('in the main program, the backend asked for is kept', async () => {
    expect(await nestedParallel({ nJobs: 2, backend: 'processes' })).toEqual({ backend: 'processes', warnings: [] });
  });
});

describe('runaway recursion', () => {
  function expectNestingError(error: Error & Record<string, unknown>): void {
    expect(error).toBeInstanceOf(MemjobError);
    expect(error.code).toBe(ErrorCodes.NESTING);
    expect(error.message).toMatch(/nested \d+ deep here, the limit is \d+/);
  }

  it('a task that runs a Parallel of itself on threads fails with MEMJOB_ERR_NESTING, rebuilt in the parent', async () => {
    await using p = new Parallel({ nJobs: 2, backend: 'threads' });
    expectNestingError(await rejection(p.run([delayed(recursiveParallel)(2, 'threads')])));
    // The workers are still of use afterwards.
    expect(await p.run([delayed((x: number) => x + 1)(1)])).toEqual([2]);
  });

  it('the same under processes (threads, then sequential below)', async () => {
    await using p = new Parallel({ nJobs: 2, backend: 'processes' });
    expectNestingError(await rejection(p.run([delayed(recursiveParallel)(2, 'processes')])));
  });

  it('sequential recursion (nJobs 1) in this thread fails the same way', async () => {
    await using p = new Parallel({ nJobs: 1 });
    expectNestingError(await rejection(p.run([delayed(recursiveParallel)(1, 'sequential')])));
    expect(await p.run([delayed((x: number) => x * 3)(2)])).toEqual([6]);
  });
});

it('a nested run three levels deep (processes, then threads, then sequential) gives the right results', async () => {
  await using p = new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1 });
  // f(3, n) = 8n + 12: each level sums two runs one level down.
  expect(await p.run([0, 1, 5].map((n) => delayed(nestedTreeSum)(3, n)))).toEqual([12, 20, 52]);
});
