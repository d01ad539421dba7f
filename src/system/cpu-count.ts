/**
 * How many CPUs this process may really use, like loky's cpu_count(): the
 * CPUs in its affinity mask (os.availableParallelism() uses
 * sched_getaffinity on Linux, so taskset and cpusets count) and, on Linux,
 * the cgroup CPU bandwidth quota (a container given 1.5 CPUs gets 2); at
 * least 1.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { invalidArg } from '../errors.js';

/** Where cgroupCpuLimit looks; the defaults are the real ones (tests point them at a folder of files). */
export interface CgroupSources {
  /** The cgroup filesystem mount, default /sys/fs/cgroup. */
  root?: string;
  /** This process's cgroup membership, default /proc/self/cgroup. */
  selfCgroup?: string;
}

/** The CPUs this process may use: min(affinity, cgroup quota), at least 1. */
export function cpuCount(): number {
  const affinity = typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
  const quota = process.platform === 'linux' ? cgroupCpuLimit() : null;
  return Math.max(1, Math.min(affinity, quota ?? Number.POSITIVE_INFINITY));
}

/**
 * The cgroup CPU bandwidth limit in whole CPUs (quota / period, rounded up),
 * or null when there is none. Reads cgroup v2 `cpu.max` ("max 100000" means
 * none) and cgroup v1 `cpu/cpu.cfs_quota_us` + `cpu.cfs_period_us` (-1 means
 * none), in this process's own cgroup (from /proc/self/cgroup) and every
 * ancestor up to the mount, and returns the smallest limit found.
 */
export function cgroupCpuLimit(sources: CgroupSources = {}): number | null {
  const root = sources.root ?? '/sys/fs/cgroup';
  const membership = parseSelfCgroup(readText(sources.selfCgroup ?? '/proc/self/cgroup') ?? '');
  let limit: number | null = null;
  const take = (value: number | null) => {
    if (value !== null && (limit === null || value < limit)) limit = value;
  };
  // cgroup v2 (unified): cpu.max in the process's cgroup and its ancestors.
  for (const dir of ancestors(root, membership.v2 ?? '/')) take(parseCpuMax(readText(join(dir, 'cpu.max'))));
  // cgroup v1: the cpu controller's hierarchy (mounted as cpu, often a symlink to cpu,cpuacct).
  for (const name of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    const mount = join(root, name);
    if (!existsSync(mount)) continue;
    for (const dir of ancestors(mount, membership.v1 ?? '/')) {
      take(parseCfs(readText(join(dir, 'cpu.cfs_quota_us')), readText(join(dir, 'cpu.cfs_period_us'))));
    }
    break;
  }
  return limit;
}

/** Lines `id:controllers:path`: `0::/path` is v2; a v1 line whose controllers include `cpu`. */
function parseSelfCgroup(text: string): { v2?: string; v1?: string } {
  const result: { v2?: string; v1?: string } = {};
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trim();
    if (!path.startsWith('/')) continue;
    if (id === '0' && controllers === '') result.v2 = path;
    else if (controllers.split(',').includes('cpu')) result.v1 = path;
  }
  return result;
}

/**
 * `mount/path` and each parent folder up to and including `mount`. A path
 * that leaves the mount (`/../..` outside a cgroup namespace) starts at the
 * mount itself; folders that are not there (a container that mounts its own
 * cgroup as the root) simply have no files to read.
 */
function ancestors(mount: string, path: string): string[] {
  let dir = join(mount, path);
  const rel = relative(mount, dir);
  if (rel.startsWith('..') || isAbsolute(rel)) dir = mount;
  const dirs: string[] = [];
  for (;;) {
    dirs.push(dir);
    if (dir === mount || dirs.length > 64) break;
    dir = dirname(dir);
  }
  return dirs;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** cgroup v2 cpu.max: "<quota|max> <period>". */
function parseCpuMax(text: string | null): number | null {
  if (text === null) return null;
  const [quota, period = '100000'] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return null;
  return cpusFrom(Number(quota), Number(period));
}

/** cgroup v1: cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us. */
function parseCfs(quota: string | null, period: string | null): number | null {
  if (quota === null || period === null) return null;
  return cpusFrom(Number(quota.trim()), Number(period.trim()));
}

function cpusFrom(quota: number, period: number): number | null {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return null;
  return Math.max(1, Math.ceil(quota / period));
}

/**
 * joblib's n_jobs: a positive integer n is n workers; a negative one counts
 * from the CPUs this process may use, cpuCount() + 1 + nJobs (-1: all, -2: all
 * but one), at least 1. `undefined` or `null` means `defaultValue` (1 unless
 * the caller says otherwise; it is read by the same rules, so -1 works).
 * Anything else (0, 1.5, NaN, '2') is MEMJOB_ERR_INVALID_ARG.
 */
export function parseNJobs(nJobs: unknown, where: string, defaultValue: number = 1): number {
  const value = nJobs === undefined || nJobs === null ? defaultValue : nJobs;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value === 0) {
    throw invalidArg(where, 'nJobs', 'a non-zero integer: n workers, or -1 for all cores, -2 for all but one', value);
  }
  return value > 0 ? value : Math.max(1, cpuCount() + 1 + value);
}
