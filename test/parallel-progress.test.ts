// Progress: the callback hears every completion on every backend; verbose
// prints joblib's messages; a bar only where stderr is a terminal.
import { describe, expect, it } from 'vitest';
import { Parallel, delayed, type Backend } from '../src/index.js';
import { t } from './fixtures/parallel-helpers.js';
import { runTsChild } from './helpers.js';

describe('the progress callback', () => {
  for (const backend of ['threads', 'processes', 'sequential'] as Backend[]) {
    it(`${backend}: is called once per completed task, done counting 1..n, total known for an array`, async () => {
      const calls: [number, number | undefined][] = [];
      await using p = new Parallel({ backend, nJobs: 2, progress: (done, total) => calls.push([done, total]) });
      await p.run(Array.from({ length: 12 }, (_, i) => delayed(Math.sqrt)(i)));
      expect(calls).toEqual(Array.from({ length: 12 }, (_, i) => [i + 1, 12]));

      // An input of unknown length: no total until the input is exhausted (a
      // sequential run, which pulls nothing ahead, learns it only after the last task).
      calls.length = 0;
      function* input() {
        for (let i = 0; i < 6; i++) yield delayed(t('sleepThen'))(5, i);
      }
      await p.run(input());
      expect(calls.map(([done]) => done)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(calls[0]![1]).toBeUndefined();
      expect([6, backend === 'sequential' ? undefined : 6]).toContain(calls.at(-1)![1]);
    });
  }
});

describe('verbose and the progress bar (as a program sees them)', () => {
  it("prints joblib's messages on stderr, fixed widths, ending with the 'finished' line", async () => {
    const { code, stdout, stderr } = await runTsChild('parallel-verbose.ts', ['stderr']);
    expect(code).toBe(0);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines[0]).toBe('[Parallel(nJobs=2)]: Using backend threads with 2 concurrent workers.');
    // joblib's short_format_time: ' %5.1fs' after 'elapsed: '.
    expect(lines.at(-1)).toMatch(/^\[Parallel\(nJobs=2\)\]: Done  10 out of  10 \| elapsed:  [ \d]{2}\d\.\ds finished$/);
    for (const line of lines.slice(1, -1)) {
      expect(line).toMatch(/^\[Parallel\(nJobs=2\)\]: Done [ \d]{2}\d out of  10 \| elapsed:  [ \d]{2}\d\.\ds remaining:  [ \d]{2}\d\.\ds$/);
    }
  });

  it('prints on stdout from verbose 50, and draws no bar when stderr is not a terminal', async () => {
    const out = await runTsChild('parallel-verbose.ts', ['stdout']);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('');
    expect(out.stdout).toMatch(/^\[Parallel\(nJobs=1\)\]: Using backend sequential \(in-process\)\.$/m);
    expect(out.stdout).toMatch(/^\[Parallel\(nJobs=1\)\]: Done  10 out of  10 \| elapsed: +\d+\.\ds finished$/m);

    const bar = await runTsChild('parallel-verbose.ts', ['bar']);
    expect(bar.code).toBe(0);
    expect(bar.stderr).toBe('');
    expect(JSON.parse(bar.stdout)).toEqual([0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
  });
});
