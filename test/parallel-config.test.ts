/**
 * parallelConfig (joblib's parallel_config): defaults for every Parallel
 * created inside the callback and its async work; explicit options win;
 * nested configurations merge; bad values are refused up front.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCodes, Parallel, delayed, parallelConfig } from '../src/index.js';
import { failure } from './helpers.js';

/** What a library would do: make a Parallel without options and report what it runs on. */
async function libraryCall(): Promise<{ backend: string; nJobs: number; pids: number[] }> {
  await using parallel = new Parallel();
  const pids = await parallel.run([1, 2].map(() => delayed(() => process.pid)()));
  return { backend: parallel.options.backend, nJobs: parallel.options.nJobs, pids };
}

describe('parallelConfig', () => {
  it('sets the backend and nJobs of a Parallel made inside it, also after awaits', async () => {
    const inside = await parallelConfig({ backend: 'processes', nJobs: 2 }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return libraryCall();
    });
    expect(inside.backend).toBe('processes');
    expect(inside.nJobs).toBe(2);
    expect(inside.pids.every((pid) => pid !== process.pid)).toBe(true); // really ran in child processes
    const outside = await libraryCall();
    expect(outside).toEqual({ backend: 'sequential', nJobs: 1, pids: [process.pid, process.pid] }); // joblib's default: nJobs 1
  });

  it('explicit options win; nested configurations merge, the inner one winning', () => {
    parallelConfig({ backend: 'processes', nJobs: 2, maxNbytes: '2M' }, () => {
      expect(new Parallel({ backend: 'threads' }).options).toMatchObject({ backend: 'threads', nJobs: 2, maxNbytes: 2 * 1024 * 1024 });
      expect(new Parallel({ backend: undefined }).options.backend).toBe('processes'); // undefined is not a choice
      parallelConfig({ maxNbytes: null, tempFolder: '/tmp' }, () => {
        expect(new Parallel().options).toMatchObject({ backend: 'processes', nJobs: 2, maxNbytes: null, tempFolder: '/tmp' });
      });
      expect(new Parallel().options.maxNbytes).toBe(2 * 1024 * 1024);
    });
  });

  it("returns the callback's value", async () => {
    expect(parallelConfig({ nJobs: 2 }, () => 42)).toBe(42);
    expect(await parallelConfig({ nJobs: 2 }, async () => 'later')).toBe('later');
  });

  it('refuses bad values and unknown keys with MEMJOB_ERR_INVALID_ARG before running the callback', () => {
    let ran = false;
    const run = () => void (ran = true);
    const badBackend = failure(() => parallelConfig({ backend: 'gpu' as never }, run));
    expect(badBackend.code).toBe(ErrorCodes.INVALID_ARG);
    expect(badBackend.message).toMatch(/^parallelConfig: expected "backend"/);
    const badBytes = failure(() => parallelConfig({ maxNbytes: '1X' }, run));
    expect(badBytes.message).toMatch(/^parallelConfig: expected "maxNbytes"/);
    const unknown = failure(() => parallelConfig({ timeout: 5 } as never, run));
    expect(unknown.message).toContain('found "timeout"');
    expect(failure(() => parallelConfig(null as never, run)).code).toBe(ErrorCodes.INVALID_ARG);
    expect(ran).toBe(false);
  });
});
