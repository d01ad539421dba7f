import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cpuCount as exported } from '../src/index.js';
import { MemjobError } from '../src/errors.js';
import { cgroupCpuLimit, cpuCount, parseNJobs } from '../src/system/cpu-count.js';
import { repoRoot, scratchDir } from './helpers.js';

const scratch = scratchDir('cpu-count');
afterAll(() => scratch.remove());

const fixture = fileURLToPath(new URL('./fixtures/print-cpu-count.ts', import.meta.url));

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Runs print-cpu-count.ts behind `prefix` (taskset, a shell) and returns what it printed. */
function childCounts(prefix: string[]): { cpuCount: number; cgroup: number | null; parallelism: number } {
  const [command, ...args] = [...prefix, process.execPath, '--import', 'tsx', fixture];
  const result = spawnSync(command!, args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

describe('cpuCount', () => {
  it('is an integer between 1 and os.availableParallelism(), exported from the package', () => {
    const n = cpuCount();
    expect(Number.isInteger(n)).toBe(true);
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(availableParallelism());
    expect(exported).toBe(cpuCount);
  });

  it.runIf(hasCommand('nproc'))('agrees with nproc (affinity) and the cgroup quota', () => {
    const env = { ...process.env };
    delete env.OMP_NUM_THREADS; // nproc honours these; cpuCount does not
    delete env.OMP_THREAD_LIMIT;
    const nproc = Number(execFileSync('nproc', { env, encoding: 'utf8' }).trim());
    expect(cpuCount()).toBe(Math.max(1, Math.min(nproc, cgroupCpuLimit() ?? nproc)));
  });

  it.runIf(process.platform === 'linux' && hasCommand('taskset'))('honours CPU affinity (taskset -c 0 gives 1)', () => {
    expect(childCounts(['taskset', '-c', '0']).cpuCount).toBe(1);
    if (availableParallelism() >= 2) {
      const two = childCounts(['taskset', '-c', '0,1']);
      expect(two.cpuCount).toBe(Math.min(2, two.cgroup ?? 2));
    }
  });

  // A real cgroup v1 quota, when this process may create one (root in a
  // container with a writable cpu hierarchy); removed afterwards.
  const cgroupDir = `/sys/fs/cgroup/cpu/memjob-test-${process.pid}`;
  const canMakeCgroup = (() => {
    if (process.platform !== 'linux' || !existsSync('/sys/fs/cgroup/cpu/cgroup.procs')) return false;
    try {
      mkdirSync(cgroupDir);
      return true;
    } catch {
      return false;
    }
  })();
  afterAll(() => {
    if (canMakeCgroup) rmdirSync(cgroupDir);
  });

  it.runIf(canMakeCgroup)('honours a real cgroup v1 CPU quota (1 CPU)', () => {
    writeFileSync(join(cgroupDir, 'cpu.cfs_period_us'), '100000');
    writeFileSync(join(cgroupDir, 'cpu.cfs_quota_us'), '100000');
    const counts = childCounts(['sh', '-c', `echo $$ > ${cgroupDir}/cgroup.procs && exec "$0" "$@"`]);
    expect(counts).toMatchObject({ cpuCount: 1, cgroup: 1 });
    writeFileSync(join(cgroupDir, 'cpu.cfs_quota_us'), '-1');
    const unlimited = childCounts(['sh', '-c', `echo $$ > ${cgroupDir}/cgroup.procs && exec "$0" "$@"`]);
    expect(unlimited.cpuCount).toBe(Math.min(unlimited.parallelism, unlimited.cgroup ?? Number.POSITIVE_INFINITY));
  });
});

describe('cgroupCpuLimit (on folders laid out like /sys/fs/cgroup)', () => {
  let count = 0;
  /** Writes `files` (relative path → content) under a fresh folder and returns it. */
  function tree(files: Record<string, string>): string {
    count += 1;
    const root = scratch.file(`tree-${count}`);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return root;
  }

  it('reads cgroup v2 cpu.max in the own cgroup and its ancestors, taking the smallest', () => {
    const root = tree({
      'sys/cpu.max': 'max 100000\n',
      'sys/a/cpu.max': '300000 100000\n',
      'sys/a/b/cpu.max': '150000 100000\n',
      'sys/other/cpu.max': '100000 100000\n',
      self: '0::/a/b\n',
    });
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBe(2);
    writeFileSync(join(root, 'sys/a/b/cpu.max'), 'max 100000\n');
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBe(3);
    writeFileSync(join(root, 'sys/a/cpu.max'), 'max 100000\n');
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBeNull();
  });

  it('reads the mount root when the own cgroup is not visible there (a container without a cgroup namespace)', () => {
    const root = tree({ 'sys/cpu.max': '200000 100000', self: '0::/docker/0123abcd\n' });
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBe(2);
    const escaping = tree({ 'sys/cpu.max': '50000 100000', self: '0::/../../elsewhere\n' });
    expect(cgroupCpuLimit({ root: join(escaping, 'sys'), selfCgroup: join(escaping, 'self') })).toBe(1);
    expect(cgroupCpuLimit({ root: join(escaping, 'sys'), selfCgroup: join(escaping, 'no-such-file') })).toBe(1);
  });

  it('reads cgroup v1 cfs quota and period (-1 means no limit)', () => {
    const root = tree({
      'sys/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      'sys/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      'sys/cpu,cpuacct/docker/x/cpu.cfs_quota_us': '250000\n',
      'sys/cpu,cpuacct/docker/x/cpu.cfs_period_us': '100000\n',
      self: '12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/\n',
    });
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBe(3);
    writeFileSync(join(root, 'sys/cpu,cpuacct/docker/x/cpu.cfs_quota_us'), '-1\n');
    expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') })).toBeNull();
  });

  it('finds no limit in missing, malformed or zero values', () => {
    const empty = tree({ self: '0::/\n' });
    expect(cgroupCpuLimit({ root: join(empty, 'sys'), selfCgroup: join(empty, 'self') })).toBeNull();
    for (const content of ['garbage', '', '0 100000', '100000 0', '-5 100000', 'NaN 100000']) {
      const root = tree({ 'sys/cpu.max': content, self: '0::/\n' });
      expect(cgroupCpuLimit({ root: join(root, 'sys'), selfCgroup: join(root, 'self') }), content).toBeNull();
    }
    const small = tree({ 'sys/cpu.max': '1000 100000', self: '0::/\n' });
    expect(cgroupCpuLimit({ root: join(small, 'sys'), selfCgroup: join(small, 'self') })).toBe(1);
  });
});

describe('parseNJobs', () => {
  const n = cpuCount();
  it('follows joblib: n, or counted back from cpuCount() when negative, at least 1', () => {
    expect(parseNJobs(3, 'test')).toBe(3);
    expect(parseNJobs(1, 'test')).toBe(1);
    expect(parseNJobs(-1, 'test')).toBe(n);
    expect(parseNJobs(-2, 'test')).toBe(Math.max(1, n - 1));
    expect(parseNJobs(-1000, 'test')).toBe(1);
  });

  it('uses the default for undefined and null', () => {
    expect(parseNJobs(undefined, 'test')).toBe(1);
    expect(parseNJobs(null, 'test')).toBe(1);
    expect(parseNJobs(undefined, 'test', -1)).toBe(n);
    expect(parseNJobs(undefined, 'test', 4)).toBe(4);
  });

  it('rejects 0, fractions, NaN, infinities and strings, saying what it expected and received', () => {
    for (const bad of [0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -0.5, '2', true, {}]) {
      let error: unknown;
      try {
        parseNJobs(bad, 'Parallel');
      } catch (e) {
        error = e;
      }
      expect(error, String(bad)).toBeInstanceOf(MemjobError);
      expect((error as MemjobError).code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect((error as MemjobError).message).toContain('Parallel: expected "nJobs" to be a non-zero integer: n workers, or -1 for all cores, -2 for all but one');
    }
    expect(() => parseNJobs(0, 'Parallel')).toThrow(/received 0 \(number\)/);
    expect(() => parseNJobs('2', 'Parallel')).toThrow(/received "2" \(string\)/);
  });
});
