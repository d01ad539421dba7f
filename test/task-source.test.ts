/**
 * Self-contained task functions: memjob's exports used by name inside them,
 * stack frames that point at the user's file, and closure messages that
 * suggest only fixes that work.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, Parallel, delayed } from '../src/index.js';
import { failure, repoRoot } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/source-tasks.mjs', import.meta.url));
const throwLine = readFileSync(fixture, 'utf8').split('\n').findIndex((line) => line.includes('throw new RangeError')) + 1;

describe('source-shipped functions, run by plain node from the built package', () => {
  for (const backend of ['threads', 'processes']) {
    it(`${backend}: memjob's exports used by name and import() work in the worker; a thrown error's stack names the file and line`, () => {
      const out = execFileSync(process.execPath, [fixture, backend], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
      const { exportsResult, importResult, stack } = JSON.parse(out) as { exportsResult: unknown; importResult: unknown; stack: string };
      expect(exportsResult).toEqual([[true, 4.5]]); // loadSync mapped the dump, hasShareableMemory saw the mapping
      expect(importResult).toEqual(['function']); // import() works inside a shipped function
      expect(throwLine).toBeGreaterThan(0);
      expect(stack).toContain(`at throwsHere (${fixture}:${throwLine}:`);
      expect(stack).not.toContain('eval at');
    });
  }
});

function helper(x: number): number {
  return x + 1;
}
const scale = 2;

describe('closure messages', () => {
  it('a called outer function is not suggested as an argument (functions cannot travel); the inWorker rule is named', async () => {
    await using parallel = new Parallel({ nJobs: 2, backend: 'threads' });
    const error = await parallel.run([delayed((x: number) => helper(x) * scale)(1)]).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(error?.code).toBe(ErrorCodes.CLOSURE);
    expect(error?.message).toContain('uses "helper" and "scale" from an enclosing scope');
    expect(error?.message).toContain('pass "scale" as an argument');
    expect(error?.message).toContain('define "helper" inside it');
    expect(error?.message).not.toContain('pass "helper"');
    expect(error?.message).toContain('if (!inWorker())');
    expect(error?.message).toContain('tasks.ts');
  });

  it('Pool refuses the same closure synchronously with the same advice', async () => {
    const { Pool } = await import('../src/index.js');
    await using pool = new Pool({ processes: 1 });
    const error = failure(() => void pool.map((x: number) => helper(x), [1]));
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toContain('define "helper" inside it');
  });
});

describe('stack frames of source-shipped functions in-process (vitest)', () => {
  it('name the test file and the function instead of "eval at"', async () => {
    await using parallel = new Parallel({ nJobs: 2, backend: 'threads' });
    const thrower = function failingTask(x: number): number {
      if (x > 0) throw new TypeError('nope');
      return x;
    };
    const error = await parallel.run([delayed(thrower)(1)]).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error?.stack).toContain('at failingTask (');
    expect(error?.stack).toContain(fileURLToPath(import.meta.url));
    expect(error?.stack).not.toContain('eval at');
  });
});
