// A huge nJobs (or Pool processes) with few tasks: memjob starts no more workers than the tasks an
// array input holds, and warns once per process that the count is far above the CPUs.
import { expect, it } from 'vitest';
import { runTsChild } from './helpers.js';

it('nJobs 1000 with 4 tasks starts at most 4 workers on either backend, and warns once per process', async () => {
  // In a child process of its own: the warning is once per process, and a regression would start 1000 workers.
  const child = await runTsChild('many-workers.ts');
  expect(child.code, child.stderr).toBe(0);
  const report = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { runs: { what: string; started: number; results: number[] }[]; warnings: string[] };
  expect(report.runs.map((r) => r.what)).toEqual(['Parallel threads', 'Pool threads', 'Parallel processes', 'Pool processes']);
  for (const run of report.runs) {
    expect(run.results, run.what).toEqual([0, 1, 2, 3]);
    expect(run.started, run.what).toBeGreaterThanOrEqual(1);
    expect(run.started, run.what).toBeLessThanOrEqual(4);
  }
  // Four pools asked for 1000 workers: one warning, naming the option and the CPU count.
  expect(report.warnings).toHaveLength(1);
  expect(report.warnings[0]).toMatch(/^Parallel: nJobs 1000 is more than 4 workers per CPU \(cpuCount\(\) is \d+\)$/);
  // What the user sees on stderr: Node prints it once, with its code.
  expect(child.stderr.match(/\[MEMJOB_MANY_WORKERS\]/g)).toHaveLength(1);
});
