/**
 * Issue 12, item 2: reaping must not delete live run folders of another PID
 * namespace sharing the same temp root (Kubernetes memory emptyDir, Docker
 * --ipc=host). A pid means nothing across namespaces; the flock each live
 * run holds on its folder's `.lock` does. Namespaces are made with
 * `unshare --pid --fork --mount-proc` (needs root, as here); a run inside
 * one gets a pid chosen to exist nowhere outside (ns_last_pid), so the old
 * pid rule would have reaped it.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tryFlock } from '../src/native.js';
import { createRunFolder } from '../src/transport/temp-folder.js';
import { reapStaleFolders, scanRunFolders } from '../src/transport/temp-reap.js';
import { age, killTracker, pidExists, runCommand, runFolderArgs, startJsonChild } from './fixtures/reap-helpers.js';
import { failure, scratchDir } from './helpers.js';

/** /dev/shm is the root the issue is about; elsewhere the repository's tmp/. */
const base = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/test-reap-namespaces-') : scratchDir('reap-namespaces').dir;
afterAll(() => rmSync(base, { recursive: true, force: true }));

let counter = 0;
function freshRoot(): string {
  counter += 1;
  const dir = join(base, `root-${counter}`);
  mkdirSync(dir);
  return dir;
}

const NEW_PID_NS = ['--pid', '--fork', '--mount-proc'];
const unshareWorks = spawnSync('unshare', [...NEW_PID_NS, 'true']).status === 0;
const cliEntry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** `memjob clean --json --temp-folder root [...extra]`, in a new PID namespace or here. */
async function clean(root: string, where: 'new namespace' | 'here', extra: string[] = []): Promise<unknown> {
  const argv = [process.execPath, '--import', 'tsx', cliEntry, 'clean', '--json', '--temp-folder', root, ...extra];
  const run = where === 'here' ? await runCommand(argv[0]!, argv.slice(1)) : await runCommand('unshare', [...NEW_PID_NS, ...argv]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
}

/** reapStaleFolders(root, 0) in a new PID namespace (minimum age 0: only the lock can keep a folder). */
async function reapInNewNamespace(root: string): Promise<unknown> {
  const run = await runCommand('unshare', [...NEW_PID_NS, process.execPath, ...runFolderArgs(root, 'reap', '0')]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
}

/** A pid no process has in this namespace. */
function freePid(): number {
  for (let pid = 30_011; pid > 1000; pid -= 97) if (!pidExists(pid)) return pid;
  throw new Error('no free pid found');
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** This process's descriptors open on `path` (Linux: /proc/self/fd). */
function fdsOn(path: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target === path || target === `${path} (deleted)`;
    } catch {
      return false;
    }
  });
}

describe.runIf(unshareWorks)('run folders across PID namespaces', () => {
  it('a live run in another namespace keeps its folder, whoever reaps; once it dies the folder goes', async () => {
    const root = freshRoot();
    const pid = freePid();
    // The namespace's init (sh) sets the next pid, then starts the run as its child.
    const script = 'echo "$1" > /proc/sys/kernel/ns_last_pid || exit 97; shift; "$@"; exit $?';
    const inner = await startJsonChild('unshare', [
      ...NEW_PID_NS, '--kill-child=SIGKILL', 'sh', '-c', script, 'sh', String(pid - 1), process.execPath, ...runFolderArgs(root, 'wait'),
    ]);
    const { path } = inner.info;
    try {
      // Its name says a pid that does not exist here: the old rule (kill(pid, 0) fails) called it dead.
      expect(inner.info.pid).toBe(pid);
      expect(pidExists(pid)).toBe(false);
      age(path); // past the minimum age: only the lock keeps it now
      expect(reapStaleFolders(root)).toEqual([]);
      expect(reapStaleFolders(root, 0)).toEqual([]);
      expect(scanRunFolders(root, 0)).toEqual({ root, stale: [], live: [path] });
      expect(await clean(root, 'here')).toEqual({ dryRun: false, roots: [root], removed: [], kept: [path] });
      // A second namespace (neither the run's nor ours) keeps it too.
      expect(await reapInNewNamespace(root)).toEqual({ removed: [] });
      expect(await clean(root, 'new namespace')).toEqual({ dryRun: false, roots: [root], removed: [], kept: [path] });
      expect(readdirSync(path).sort()).toEqual(['.lock', '1_data.bin']);
    } finally {
      inner.child.kill('SIGKILL'); // unshare; --kill-child takes the namespace's init, and so the whole namespace, with it
      await inner.done;
    }
    // The kernel drops a flock when its holder dies, SIGKILL included.
    await waitFor(() => scanRunFolders(root, 0).stale.includes(path), 10_000, 'the killed run to release its lock');
    expect(existsSync(path)).toBe(true);
    expect(await clean(root, 'new namespace', ['--dry-run'])).toEqual({ dryRun: true, roots: [root], removed: [path], kept: [] });
    expect(existsSync(path)).toBe(true);
    expect(await clean(root, 'new namespace')).toEqual({ dryRun: false, roots: [root], removed: [path], kept: [] });
    expect(existsSync(path)).toBe(false);
  });

  it("a reaper in another namespace keeps this namespace's live run folder (the issue's ENOENT), and reaps it once dead and old", async () => {
    const root = freshRoot();
    const run = await startJsonChild(process.execPath, runFolderArgs(root, 'wait'));
    const { path, pid } = run.info;
    try {
      // In a new namespace the run's pid does not exist.
      expect((await runCommand('unshare', [...NEW_PID_NS, 'sh', '-c', `kill -0 ${pid}`])).code).not.toBe(0);
      age(path);
      expect(await reapInNewNamespace(root)).toEqual({ removed: [] });
      expect(await clean(root, 'new namespace')).toEqual({ dryRun: false, roots: [root], removed: [], kept: [path] });
      expect(readdirSync(path).sort()).toEqual(['.lock', '1_data.bin']);
    } finally {
      await killTracker(run.info); // else it removes the folder itself
      run.child.kill('SIGKILL');
      await run.done;
    }
    // Dead, its lock free at once; but a folder changed just now is too young for the default minimum age.
    utimesSync(path, new Date(), new Date());
    expect(await clean(root, 'new namespace')).toEqual({ dryRun: false, roots: [root], removed: [], kept: [path] });
    expect(existsSync(path)).toBe(true);
    age(path);
    expect(await clean(root, 'new namespace')).toEqual({ dryRun: false, roots: [root], removed: [path], kept: [] });
    expect(existsSync(path)).toBe(false);
  });
});

describe('the run folder lock', () => {
  it('a folder whose lock this very process holds is never reaped, even at minimum age 0; remove() drops the lock', () => {
    const root = freshRoot();
    const folder = createRunFolder(root);
    const lockPath = join(folder.path, '.lock');
    try {
      const stats = lstatSync(lockPath);
      expect(stats.isFile()).toBe(true);
      expect(stats.mode & 0o777).toBe(0o600);
      age(folder.path);
      expect(reapStaleFolders(root, 0)).toEqual([]);
      expect(scanRunFolders(root, 0)).toEqual({ root, stale: [], live: [folder.path] });
      // util-linux flock(1), another process, cannot take it either (75: its "conflict" exit code).
      if (spawnSync('flock', ['--version']).status === 0) {
        expect(spawnSync('flock', ['--nonblock', '--conflict-exit-code', '75', lockPath, 'true']).status).toBe(75);
      }
      expect(fdsOn(lockPath)).toHaveLength(1);
    } finally {
      folder.remove();
    }
    expect(existsSync(folder.path)).toBe(false);
    expect(fdsOn(lockPath)).toEqual([]);
  });

  it('memjob_012566_ab is not a run folder (a pid has no leading zeros); memjob_12566_ab is', () => {
    const root = freshRoot();
    const padded = join(root, 'memjob_012566_ab');
    const plain = join(root, 'memjob_12566_ab');
    mkdirSync(padded);
    mkdirSync(plain);
    age(padded, plain); // old, and no .lock: a dead run's folder, if the name is one
    expect(scanRunFolders(root, 0)).toEqual({ root, stale: [plain], live: [] });
    expect(reapStaleFolders(root)).toEqual([plain]);
    expect(existsSync(padded)).toBe(true);
    expect(existsSync(plain)).toBe(false);
  });

  it('tryFlock never blocks: two descriptors of one process conflict, and errors carry the OS code', () => {
    const file = join(freshRoot(), 'lock-me');
    writeFileSync(file, '');
    const a = openSync(file, 'r');
    const b = openSync(file, 'r');
    try {
      expect(tryFlock(a, 'exclusive', file)).toBe(true);
      expect(tryFlock(b, 'exclusive', file)).toBe(false);
      expect(tryFlock(b, 'shared', file)).toBe(false);
      expect(tryFlock(a, 'unlock', file)).toBe(true);
      expect(tryFlock(b, 'shared', file)).toBe(true);
      expect(tryFlock(a, 'shared', file)).toBe(true);
      expect(tryFlock(a, 'exclusive', file)).toBe(false);
    } finally {
      closeSync(a);
      closeSync(b);
    }
    const error = failure(() => tryFlock(2 ** 30, 'exclusive', file));
    expect(error.code).toBe('EBADF');
    expect(error.syscall).toBe('flock');
  });
});
