// Reuse across runs, as joblib reuses loky's executor and a managed
// Parallel's dumps: Parallels with the same worker options share warm
// workers (idle ones never keep the program alive), and a Parallel keeps the
// dump of an array for its next run until the array changes, a run fails,
// or close().
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Parallel, closeSharedWorkers, delayed } from '../src/index.js';
import { childPids, entries, isAlive, rejection, t, waitFor, workerBackends } from './fixtures/parallel-helpers.js';
import { repoRoot, scratchDir } from './helpers.js';

const sleepThenWhere = t<[number], { pid: number; threadId: number }>('sleepThenWhere');
const sum = t<[ArrayLike<number>], number>('sum');

let scratch: ReturnType<typeof scratchDir>;
beforeAll(() => {
  scratch = scratchDir('parallel-reuse');
});
afterAll(() => scratch.remove());
afterEach(async () => {
  await closeSharedWorkers();
  await waitFor(() => childPids().length === 0, 5000, 'worker processes to exit');
});

/** Four tasks of 100 ms, one per batch: both workers of nJobs 2 take some. */
async function workersOf(p: Parallel): Promise<{ pids: number[]; threads: number[] }> {
  const where = await p.run([1, 2, 3, 4].map(() => delayed(sleepThenWhere)(100)));
  return { pids: [...new Set(where.map((w) => w.pid))].sort(), threads: [...new Set(where.map((w) => w.threadId))].sort() };
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);

describe('shared workers', () => {
  it('processes: a second Parallel with the same options runs on the first one\'s workers and starts no process', async () => {
    const first = new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1 });
    await workersOf(first);
    const workers = sorted(childPids());
    expect(workers).toHaveLength(2);
    await first.close();
    expect(sorted(childPids())).toEqual(workers); // idle, warm
    await using second = new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1 });
    const { pids } = await workersOf(second);
    expect(sorted(childPids())).toEqual(workers);
    for (const pid of pids) expect(workers).toContain(pid);
  });

  it('threads: a second Parallel with the same options runs on the same threads', async () => {
    const first = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1 });
    const { threads } = await workersOf(first);
    await first.close();
    await using second = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1 });
    const again = await workersOf(second);
    expect(again.pids).toEqual([process.pid]);
    // A new thread would have a new threadId (they are never reused).
    for (const id of again.threads) expect(threads).toContain(id);
  });

  it('other nJobs, backend or initializer get other workers; the idle ones wait for a match', async () => {
    const base = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1 });
    const idle = (await workersOf(base)).threads;
    await base.close();
    const others: Parallel[] = [
      new Parallel({ nJobs: 3, backend: 'threads', batchSize: 1 }),
      new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1, initializer: t('countInit') }),
      new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1 }),
    ];
    for (const other of others) {
      const { pids, threads } = await workersOf(other);
      if (other.options.backend === 'processes') expect(pids).not.toContain(process.pid);
      else for (const id of threads) expect(idle).not.toContain(id);
    }
    const [, withInit] = others;
    expect((await withInit!.run([delayed(t('initState'))()]))[0]).toMatchObject({ calls: 1 });
    await Promise.all(others.map((other) => other.close()));
    // The first Parallel's threads were never taken by the others: a match gets them now.
    await using same = new Parallel({ nJobs: 2, backend: 'threads', batchSize: 1 });
    for (const id of (await workersOf(same)).threads) expect(idle).toContain(id);
  });

  it('reuse: false gets workers of its own, which close() stops; closeSharedWorkers() stops the idle shared ones', async () => {
    const shared = new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1 });
    await workersOf(shared);
    await shared.close();
    const idle = sorted(childPids());
    expect(idle).toHaveLength(2);
    const own = new Parallel({ nJobs: 2, backend: 'processes', batchSize: 1, reuse: false });
    const { pids } = await workersOf(own);
    const ownWorkers = childPids().filter((pid) => !idle.includes(pid));
    expect(ownWorkers).toHaveLength(2);
    for (const pid of pids) expect(ownWorkers).toContain(pid);
    await own.close();
    for (const pid of ownWorkers) expect(isAlive(pid)).toBe(false);
    expect(sorted(childPids())).toEqual(idle);
    await closeSharedWorkers();
    for (const pid of idle) expect(isAlive(pid)).toBe(false);
  });

  it('idle shared workers do not keep a program alive: it exits by itself without closeSharedWorkers()', async () => {
    const child = await runWithDeadline('parallel-close-no-shutdown.ts', 30_000);
    expect(child.killedAtDeadline).toBe(false);
    expect(child.stderr).toBe('');
    expect(child.code).toBe(0);
    const { workerPids } = JSON.parse(child.stdout) as { workerPids: number[] };
    expect(workerPids.length).toBeGreaterThan(0);
    await waitFor(() => workerPids.every((pid) => !isAlive(pid)), 5000, 'the child\'s workers to exit');
  });
});

/** Runs a fixture under tsx; kills it at `ms` (then killedAtDeadline is true). */
function runWithDeadline(fixture: string, ms: number): Promise<{ code: number | null; stdout: string; stderr: string; killedAtDeadline: boolean }> {
  const script = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killedAtDeadline = false;
    const timer = setTimeout(() => {
      killedAtDeadline = true;
      child.kill('SIGKILL');
    }, ms);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killedAtDeadline });
    });
  });
}

describe('the dump cache', () => {
  let rootCounter = 0;
  function freshRoot(): string {
    const root = scratch.file(`root-${rootCounter++}`);
    mkdirSync(root);
    return root;
  }

  /** The argument dumps under `root`, as folder/file, with their inode (a rewrite makes a new one). */
  function dumps(root: string): { name: string; ino: number }[] {
    const out: { name: string; ino: number }[] = [];
    for (const folder of entries(root)) {
      for (const file of entries(join(root, folder))) {
        if (/arg-\d+\.mjdump$/.test(file)) out.push({ name: `${folder}/${file}`, ino: statSync(join(root, folder, file)).ino });
      }
    }
    return out;
  }

  const n = 300_000; // 2.4 MB: above the default maxNbytes of 1 MiB
  const filled = (value: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => value(i));
  const total = (array: Float64Array) => array.reduce((a, b) => a + b, 0);

  it.each(workerBackends)('%s: the same array is not dumped again by the next run; an array changed in between is, and workers see the change', async (backend) => {
    const root = freshRoot();
    await using p = new Parallel({ nJobs: 2, backend, tempFolder: root });
    const big = filled((i) => i % 1000);
    expect(await p.run([delayed(sum)(big), delayed(sum)(big)])).toEqual([total(big), total(big)]);
    const first = dumps(root);
    expect(first).toHaveLength(1);
    expect(await p.run([delayed(sum)(big)])).toEqual([total(big)]);
    expect(dumps(root)).toEqual(first); // same file, never rewritten
    big.fill(3);
    expect(await p.run([delayed(sum)(big)])).toEqual([3 * n]);
    const second = dumps(root);
    expect(second).toHaveLength(1); // the stale dump was removed
    expect(second[0]!.name).not.toBe(first[0]!.name);
  });

  it("mmapMode 'r+' never reuses a dump: each run sees the caller's array, not what a worker wrote", async () => {
    const root = freshRoot();
    await using p = new Parallel({ nJobs: 2, backend: 'threads', mmapMode: 'r+', tempFolder: root });
    const big = filled(() => 1);
    await p.run([delayed(t('writeAt'))(big, [0, n - 1], 99)]); // writes into the worker's mapping of the dump
    expect(big[0]).toBe(1);
    expect(dumps(root)).toEqual([]);
    expect(await p.run([delayed(t('describeArg'))(big)])).toEqual([expect.objectContaining({ first: 1, last: 1 })]);
    expect(await p.run([delayed(sum)(big)])).toEqual([n]);
  });

  it('a failed run drops the cache (its folder is removed); the next run dumps again', async () => {
    const root = freshRoot();
    await using p = new Parallel({ nJobs: 2, backend: 'threads', tempFolder: root });
    const big = filled((i) => i % 7);
    await p.run([delayed(sum)(big)]);
    expect(dumps(root)).toHaveLength(1);
    const error = await rejection(p.run([delayed(sum)(big), delayed(t('throwQuota'))(1)]));
    expect(error.code).toBe('E_QUOTA');
    expect(readdirSync(root)).toEqual([]);
    expect(await p.run([delayed(sum)(big)])).toEqual([total(big)]);
    expect(dumps(root)).toHaveLength(1);
  });

  it('close() removes the cache folder', async () => {
    const root = freshRoot();
    const p = new Parallel({ nJobs: 2, backend: 'threads', tempFolder: root });
    await p.run([delayed(sum)(filled(() => 2))]);
    expect(readdirSync(root)).toHaveLength(1);
    await p.close();
    expect(readdirSync(root)).toEqual([]);
  });
});
