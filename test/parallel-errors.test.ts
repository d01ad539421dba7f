// Failures: task errors rebuilt with their class, message, properties and
// stack; crashes (exit, signal, out of memory); timeout; abort; bad input.
// After each, the same Parallel runs again, and no worker or file is left.
import { mkdirSync, readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, Parallel, delayed } from '../src/index.js';
import { QuotaError } from './fixtures/parallel-tasks.js';
import { SharedParallels, childPids, entries, isAlive, rejection, t, workerBackends } from './fixtures/parallel-helpers.js';
import { scratchDir } from './helpers.js';

let scratch: ReturnType<typeof scratchDir>;
let root: string;
// Most tests share one warm Parallel per backend: each failure must leave it usable for the next test.
const shared = new SharedParallels();
const warm = (backend: 'threads' | 'processes' | 'sequential') => shared.get(backend, { batchSize: 1, tempFolder: root });
beforeAll(() => {
  scratch = scratchDir('parallel-errors');
  root = scratch.file('temp-root');
  mkdirSync(root);
});
afterAll(async () => {
  await shared.close();
  expect(childPids()).toEqual([]);
  scratch.remove();
});
afterEach(async () => {
  await shared.settle();
  expect(entries(root)).toEqual([]);
});

function failOnThree(x: number): number {
  if (x === 3) throw new TypeError(`three is not allowed (got ${x})`);
  return x * 2;
}

const big = new Float64Array(200_000); // dumped into the run folder, which must go whatever happens

/** Checks the Parallel still works: the failure left it usable. */
async function stillWorks(p: Parallel): Promise<void> {
  expect(await p.run([1, 2, 3, 4].map((i) => delayed(Math.abs)(-i)))).toEqual([1, 2, 3, 4]);
}

describe.each([...workerBackends, 'sequential'] as const)('task errors (%s)', (backend) => {
  it('a TypeError comes back as a TypeError with its message, the worker stack and taskIndex', async () => {
    const p = warm(backend);
    const error = await rejection(p.run([0, 1, 2, 3, 4, 5].map((i) => delayed(failOnThree)(i))));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe('three is not allowed (got 3)');
    expect(error.stack).toContain('failOnThree');
    expect(error.taskIndex).toBe(3);
    await stillWorks(p);
  });

  it("a task module's own error class is rebuilt, with its own properties", async () => {
    const p = warm(backend);
    const error = await rejection(p.run([delayed(t('sleepThen'))(1, 'ok'), delayed(t('throwQuota'))(7)]));
    expect(error).toBeInstanceOf(QuotaError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('QuotaError');
    expect(error.message).toBe('over the quota of 7');
    expect(error.code).toBe('E_QUOTA');
    expect(error.limit).toBe(7);
    expect(error.taskIndex).toBe(1);
    expect(error.stack).toContain('throwQuota');
    await stillWorks(p);
  });
});

describe.each(workerBackends)('%s', (backend) => {
  it('the first error cancels the remaining tasks; the Parallel stays usable', async () => {
    const p = warm(backend);
    await stillWorks(p);
    const started = performance.now();
    const calls = [delayed(t('throwQuota'))(1), ...Array.from({ length: 8 }, (_, i) => delayed(t('sleepThen'))(3000, i)), delayed(Math.abs)(big.length)];
    const error = await rejection(p.run(calls));
    expect(error).toBeInstanceOf(QuotaError);
    expect(performance.now() - started).toBeLessThan(2500); // nobody waited for the 3 s tasks
    await stillWorks(p);
  });

  it('process.exit(3) in a task gives MEMJOB_ERR_WORKER_CRASHED naming code 3 and the task; the worker is replaced', async () => {
    const p = warm(backend);
    const error = await rejection(p.run([delayed(t('sleepThen'))(1, 0), delayed(t('sleepThen'))(1, big.length), delayed(t('exitWith'))(3)]));
    expect(error).toBeInstanceOf(MemjobError);
    expect(error.code).toBe(ErrorCodes.WORKER_CRASHED);
    expect(error.message).toMatch(/exited with code 3/);
    expect(error.message).toMatch(/task 2\b/);
    expect(error.taskIndex).toBe(2);
    expect(error.exitCode).toBe(3);
    await stillWorks(p);
  });

  it('an initializer that kills its worker while starting gives WORKER_CRASHED (no respawn loop); the next run works', async () => {
    const marker = scratch.file(`exit-once-${backend}`);
    await using p = new Parallel({ backend, nJobs: 2, initializer: delayed(t('exitOnce'))(marker), tempFolder: root });
    // Tasks long enough that the other worker cannot finish the run before the death is seen.
    const error = await rejection(p.run([1, 2, 3, 4].map((i) => delayed(t('sleepThen'))(300, i))));
    expect(error.code).toBe(ErrorCodes.WORKER_CRASHED);
    expect(error.message).toMatch(/exited with code 5 while starting/);
    await stillWorks(p);
  });

  it('an initializer that throws gives MEMJOB_ERR_INITIALIZER with the cause', async () => {
    await using p = new Parallel({ backend, nJobs: 2, initializer: t('failingInit'), tempFolder: root });
    const error = await rejection(p.run([delayed(Math.abs)(1)]));
    expect(error.code).toBe(ErrorCodes.INITIALIZER);
    expect(error.message).toMatch(/the initializer refuses/);
    expect(error.cause).toBeInstanceOf(RangeError);
  });

  it('a timeout gives MEMJOB_ERR_TIMEOUT and stops the busy workers', async () => {
    const pidFolder = scratch.file(`timeout-${backend}`);
    mkdirSync(pidFolder);
    await using p = new Parallel({ backend, nJobs: 2, batchSize: 1, timeout: 2500, tempFolder: root });
    await stillWorks(p); // the timeout counts from the start of a run: start the workers first
    const started = performance.now();
    const error = await rejection(p.run([1, 2].map(() => delayed(t('reportPidThenSleep'))(pidFolder, 20_000))));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(error.code).toBe(ErrorCodes.TIMEOUT);
    expect(error.message).toMatch(/timeout of 2500 ms/);
    const ran = readdirSync(pidFolder);
    expect(ran.length).toBeGreaterThan(0);
    if (backend === 'processes') {
      for (const name of ran) expect(isAlive(Number(name.split('-')[0]))).toBe(false);
    }
    // A timeout is for the whole run: a run that fits in it succeeds.
    await stillWorks(p);
  });

  it("an aborted signal rejects with name 'AbortError' and stops the busy workers", async () => {
    const controller = new AbortController();
    const others = childPids();
    await using p = new Parallel({ backend, nJobs: 2, signal: controller.signal, tempFolder: root });
    await stillWorks(p);
    const workers = childPids().filter((pid) => !others.includes(pid));
    setTimeout(() => controller.abort(), 500); // the tasks are asleep by then, past mapping `big`
    const started = performance.now();
    const error = await rejection(p.run([1, 2].map(() => delayed(t('sleepThen'))(20_000, big))));
    expect(performance.now() - started).toBeLessThan(3000);
    expect(error.name).toBe('AbortError');
    for (const pid of workers) expect(isAlive(pid)).toBe(false);
    // The signal belongs to the Parallel: once aborted, every run is refused at once.
    expect((await rejection(p.run([delayed(Math.abs)(1)]))).name).toBe('AbortError');
  });

  it('an input iterator that throws passes its error to the caller', async () => {
    const p = warm(backend);
    const broken = new Error('the input broke');
    function* input() {
      yield delayed(Math.abs)(-1);
      yield delayed(t('sleepThen'))(10, 2);
      throw broken;
    }
    expect(await rejection(p.run(input()))).toBe(broken);
    async function* asyncInput() {
      yield delayed(Math.abs)(-1);
      throw broken;
    }
    expect(await rejection(p.run(asyncInput()))).toBe(broken);
    await stillWorks(p);
  });

  it('a non-delayed item gives MEMJOB_ERR_INVALID_ARG naming its index', async () => {
    const p = warm(backend);
    const error = await rejection(p.run([delayed(Math.abs)(1), 42 as never]));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toMatch(/expected delayed\(fn\)\(\.\.\.args\) at index 1, received 42/);
  });

  it('a closure is refused with MEMJOB_ERR_CLOSURE naming the variable, before any worker starts', async () => {
    const scale = 3;
    const scaled = (x: number) => x * scale;
    await using fresh = new Parallel({ backend, nJobs: 2 });
    const before = childPids();
    const error = await rejection(fresh.run([1, 2].map((i) => delayed(scaled)(i))));
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toMatch(/uses "scale" from an enclosing scope/);
    expect(error.message).toMatch(/pass "scale" as an argument/);
    expect(childPids()).toEqual(before); // no worker was started for it
    // The fix the message suggests.
    expect(await warm(backend).run([1, 2].map((i) => delayed((x: number, s: number) => x * s)(i, scale)))).toEqual([3, 6]);
  });

  it('arguments or results that cannot be copied give MEMJOB_ERR_UNSUPPORTED_VALUE naming the task', async () => {
    const p = warm(backend);
    const args = await rejection(p.run([delayed(Math.abs)(1), delayed((f: unknown) => typeof f)(() => 1)]));
    expect(args.code).toBe(ErrorCodes.UNSUPPORTED_VALUE);
    expect(args.message).toMatch(/arguments of task 1 cannot be sent to a worker/);
    const result = await rejection(p.run([delayed(Math.abs)(1), delayed(t('returnFunction'))()]));
    expect(result.code).toBe(ErrorCodes.UNSUPPORTED_VALUE);
    expect(result.message).toMatch(/result of the task cannot be sent back/);
    expect(result.taskIndex).toBe(1);
    await stillWorks(p);
  });
});

describe('crashes only a separate process or a thread can show', () => {
  it("process.kill(process.pid, 'SIGKILL') in a processes task names SIGKILL", async () => {
    const p = warm('processes');
    const error = await rejection(p.run([delayed(t('killSelf'))(), delayed(Math.abs)(big.length)]));
    expect(error.code).toBe(ErrorCodes.WORKER_CRASHED);
    expect(error.message).toMatch(/worker process \d+ was killed by SIGKILL while running task 0/);
    expect(error.signal).toBe('SIGKILL');
    await stillWorks(p);
  });

  it('V8 running out of memory under resourceLimits gives WORKER_CRASHED; the next run works', async () => {
    await using p = new Parallel({ backend: 'threads', nJobs: 2, resourceLimits: { maxOldGenerationSizeMb: 32 }, tempFolder: root });
    await stillWorks(p);
    const error = await rejection(p.run([delayed(t('exhaustHeap'))()]));
    expect(error.code).toBe(ErrorCodes.WORKER_CRASHED);
    expect(error.message).toMatch(/worker thread exited with code \d+ \(.*memory.*\) while running task 0/i);
    await stillWorks(p);
  });
});
