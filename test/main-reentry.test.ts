/**
 * MEMJOB_ERR_MAIN_REENTRY: an entry file that is also its own task module,
 * without the inWorker() guard, must fail fast with both fixes in the
 * message, never hang (issue: it used to hang for minutes with no output).
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Parallel, delayed, task } from '../src/index.js';
import { repoRoot } from './helpers.js';

const fixture = new URL('./fixtures/reentry-main.ts', import.meta.url).pathname;
/** Far above the ~1-2 s the failure takes here: only there to turn a hang into a failed test. */
const HANG_MS = 30_000;

function runFixture(mode: string, backend: string): Promise<{ code: number | null; killed: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REENTRY_MODE: mode, REENTRY_BACKEND: backend },
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, HANG_MS);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, killed, stdout, stderr });
    });
  });
}

describe('a task module that starts workers when imported', () => {
  for (const backend of ['threads', 'processes']) {
    for (const mode of ['parallel', 'async-main', 'pool', 'process']) {
      it(`${backend}, ${mode}: the parent fails with MEMJOB_ERR_MAIN_REENTRY naming both fixes, no hang`, async () => {
        const result = await runFixture(mode, backend);
        expect(result.killed).toBe(false);
        expect(result.code).not.toBe(0);
        expect(result.stdout).toBe(''); // no task ran to completion
        expect(result.stderr).toContain('MEMJOB_ERR_MAIN_REENTRY');
        expect(result.stderr).toContain('reentry-main.ts');
        expect(result.stderr).toContain('if (!inWorker())');
        expect(result.stderr).toContain('a module of their own');
        expect(result.stderr).not.toMatch(/EPIPE|Unhandled 'error' event/);
      });
    }
  }

  it('a task that starts a Parallel when called (nested parallelism) is not refused', async () => {
    const nested = task<[number], number>(new URL('./fixtures/nested-task.ts', import.meta.url), 'nestedSum');
    await using parallel = new Parallel({ nJobs: 2, backend: 'threads' });
    expect(await parallel.run([1, 10].map((n) => delayed(nested)(n)))).toEqual([6, 60]);
  });
});
