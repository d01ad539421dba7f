/**
 * A child worker process knows it is one (inWorker() is true in its tasks),
 * but programs its tasks spawn do not inherit the mark: they are not memjob
 * workers, and must not run their own Parallel sequentially for that reason.
 */
import { describe, expect, it } from 'vitest';
import { Parallel, delayed, task } from '../src/index.js';
import { repoRoot } from './helpers.js';

const whatChildrenSee = task<[string], { inWorker: boolean; env: string; childInWorker: string }>(
  new URL('./fixtures/grandchild-tasks.ts', import.meta.url),
  'whatChildrenSee',
);

describe('the worker mark', () => {
  for (const backend of ['threads', 'processes'] as const) {
    it(`${backend}: true in the task, absent from the environment and false in programs the task starts`, async () => {
      await using parallel = new Parallel({ nJobs: 2, backend });
      const [seen] = await parallel.run([delayed(whatChildrenSee)(repoRoot)]);
      expect(seen).toEqual({ inWorker: true, env: 'unset', childInWorker: 'false' });
    });
  }
});
