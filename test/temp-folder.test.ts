import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { afterAll, afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { MemjobError } from '../src/errors.js';
import { createExclusive, createRunFolder } from '../src/transport/temp-folder.js';
import { SHM_MIN_FREE_BYTES, TEMP_FOLDER_ENV, chooseTempRoot, tempRootCandidates } from '../src/transport/temp-root.js';
import { waitFor } from './fixtures/parallel-helpers.js';
import { repoRoot, rootMaker, scratchDir, startJsonChild, type JsonChild } from './helpers.js';

const scratch = scratchDir('temp-folder');
/** pids whose memjob_<pid>_* folders must not be left in /dev/shm or os.tmpdir(). */
const pids = new Set<number>([process.pid]);

afterAll(() => {
  scratch.remove();
  for (const root of ['/dev/shm', tmpdir()]) {
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    const left = names.filter((name) => [...pids].some((pid) => name.startsWith(`memjob_${pid}_`)));
    expect(left, `left in ${root}`).toEqual([]);
  }
});

/** A fresh folder to use as a temp root. */
const freshRoot = rootMaker(scratch);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MemjobError);
    return (error as MemjobError).code;
  }
  return undefined;
}

function freeBytes(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

const childScript = fileURLToPath(new URL('./fixtures/run-folder-child.ts', import.meta.url));

type Started = JsonChild<{ path: string; pid: number; listeners: Record<string, number>; tracker: number | null }>;

/** Starts the run-folder child and resolves once it has printed its first JSON line. */
function startChild(root: string, mode: string): Promise<Started> {
  return startJsonChild(process.execPath, ['--import', 'tsx', childScript, root, mode], (child) => {
    if (child.pid !== undefined) pids.add(child.pid);
    // A check that fails before the test ends its child must not leave it running.
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  });
}

describe('chooseTempRoot', () => {
  let savedEnv: string | undefined;
  beforeEach(() => {
    savedEnv = process.env[TEMP_FOLDER_ENV];
    delete process.env[TEMP_FOLDER_ENV];
  });
  afterEach(() => {
    if (savedEnv === undefined) delete process.env[TEMP_FOLDER_ENV];
    else process.env[TEMP_FOLDER_ENV] = savedEnv;
  });

  it('uses the option first, even over MEMJOB_TEMP_FOLDER', () => {
    const option = freshRoot();
    process.env[TEMP_FOLDER_ENV] = freshRoot();
    const choice = chooseTempRoot(option);
    expect(choice.root).toBe(option);
    expect(choice.reason).toContain('tempFolder option');
    expect(choice.freeBytes).toBeGreaterThan(0);
  });

  it('uses MEMJOB_TEMP_FOLDER when there is no option', () => {
    const env = freshRoot();
    process.env[TEMP_FOLDER_ENV] = env;
    const choice = chooseTempRoot();
    expect(choice.root).toBe(env);
    expect(choice.reason).toContain(TEMP_FOLDER_ENV);
    expect(tempRootCandidates().map((c) => c.source)).toEqual(['env']);
  });

  it('takes a relative option as relative to the working folder', () => {
    const option = freshRoot();
    expect(chooseTempRoot(option.slice(process.cwd().length + 1)).root).toBe(resolve(option));
  });

  it('ignores an empty MEMJOB_TEMP_FOLDER', () => {
    process.env[TEMP_FOLDER_ENV] = '';
    expect(tempRootCandidates().map((c) => c.source)).not.toContain('env');
  });

  it.runIf(existsSync('/dev/shm'))('uses /dev/shm when it has room, and os.tmpdir() when it has not', () => {
    const shmFree = freeBytes('/dev/shm');
    const tmpFree = freeBytes(tmpdir());
    const choice = chooseTempRoot();
    if (shmFree >= SHM_MIN_FREE_BYTES) {
      expect(choice.root).toBe('/dev/shm');
      expect(choice.reason).toContain('shared memory');
      expect(Math.abs(choice.freeBytes - shmFree)).toBeLessThan(256 * 1024 ** 2);
    } else {
      expect(choice.root).toBe(resolve(tmpdir()));
      expect(choice.reason).toContain('minimum');
    }
    // More than /dev/shm has: os.tmpdir() if it has room, else a clear ENOSPC.
    const needed = shmFree + 1024 ** 2;
    if (tmpFree > needed + 1024 ** 3) {
      const fallback = chooseTempRoot(undefined, needed);
      expect(fallback.root).toBe(resolve(tmpdir()));
      expect(fallback.reason).toContain('skipped /dev/shm');
      expect(fallback.reason).toContain('needed');
    } else {
      expect(codeOf(() => chooseTempRoot(undefined, needed))).toBe('ENOSPC');
    }
    const candidates = tempRootCandidates(undefined, needed);
    expect(candidates.map((c) => c.source)).toEqual(['shm', 'tmpdir']);
    expect(candidates[0]!.usable).toBe(false);
    expect(candidates[0]!.reason).toMatch(/less than the .* needed/);
  });

  it('fails with ENOSPC, saying what it needed and what it found, when nothing has room', () => {
    let error: unknown;
    try {
      chooseTempRoot(undefined, 2 ** 60);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MemjobError);
    expect((error as MemjobError).code).toBe('ENOSPC');
    expect((error as MemjobError).message).toMatch(/expected .* to have room for 1024\.0 PiB/);
    expect((error as MemjobError).message).toMatch(/received .* free there/);
    // An explicit root that is too small is an error too, not a silent fallback.
    expect(codeOf(() => chooseTempRoot(freshRoot(), 2 ** 60))).toBe('ENOSPC');
  });

  it('refuses an option or MEMJOB_TEMP_FOLDER folder it cannot use instead of skipping it', () => {
    const missing = scratch.file('no-such-folder');
    expect(codeOf(() => chooseTempRoot(missing))).toBe('ENOENT');
    const file = scratch.file('a-file');
    writeFileSync(file, 'x');
    expect(codeOf(() => chooseTempRoot(file))).toBe('ENOTDIR');
    process.env[TEMP_FOLDER_ENV] = missing;
    expect(codeOf(() => chooseTempRoot())).toBe('ENOENT');
    const [candidate] = tempRootCandidates();
    expect(candidate).toMatchObject({ root: missing, source: 'env', usable: false, freeBytes: -1 });
    expect(candidate!.reason).toContain('does not exist');
  });

  it('refuses a folder it cannot write to (EACCES)', () => {
    if (process.getuid?.() !== 0) {
      const readOnly = freshRoot();
      spawnSync('chmod', ['0500', readOnly]);
      try {
        expect(codeOf(() => chooseTempRoot(readOnly))).toBe('EACCES');
      } finally {
        spawnSync('chmod', ['0700', readOnly]);
      }
      return;
    }
    // Root writes anywhere, and the check is access(2), which answers for the real uid (a seteuid()
    // in this process would not change it). So the built chooseTempRoot runs in a child process as
    // nobody, from a copy of its three modules in a world-readable folder (the repository may not be
    // readable by nobody), on a root-owned 0755 folder that nobody can enter but not write.
    const where = mkdtempSync(resolve(tmpdir(), 'memjob-test-eacces-'));
    try {
      chmodSync(where, 0o755);
      for (const file of ['transport/temp-root.js', 'errors.js', 'system/format-bytes.js']) {
        mkdirSync(dirname(resolve(where, 'dist', file)), { recursive: true });
        cpSync(resolve(repoRoot, 'dist', file), resolve(where, 'dist', file));
      }
      chmodSync(resolve(where, 'dist'), 0o755);
      chmodSync(resolve(where, 'dist', 'transport'), 0o755);
      chmodSync(resolve(where, 'dist', 'system'), 0o755);
      const readOnly = resolve(where, 'read-only');
      mkdirSync(readOnly, { mode: 0o755 });
      const probe = `import('${resolve(where, 'dist', 'transport', 'temp-root.js')}').then(({ chooseTempRoot }) => {
        try { chooseTempRoot(${JSON.stringify(readOnly)}); console.log('no error'); } catch (e) { console.log(e.code, e.constructor.name); }
      });`;
      const child = spawnSync(process.execPath, ['-e', probe], { uid: 65534, gid: 65534, cwd: where, encoding: 'utf8' });
      expect(child.stderr).toBe('');
      expect(child.stdout.trim()).toBe('EACCES MemjobError');
    } finally {
      rmSync(where, { recursive: true, force: true });
    }
  });

  it('checks its arguments', () => {
    expect(codeOf(() => chooseTempRoot(''))).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(codeOf(() => chooseTempRoot(42 as unknown as string))).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(codeOf(() => chooseTempRoot(undefined, -1))).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(codeOf(() => chooseTempRoot(undefined, Number.NaN))).toBe('MEMJOB_ERR_INVALID_ARG');
  });
});

describe('RunFolder', () => {
  it('is a 0700 folder memjob_<pid>_<hex> under the root', () => {
    const root = freshRoot();
    const folder = createRunFolder(root);
    try {
      expect(folder.root).toBe(root);
      expect(dirname(folder.path)).toBe(root);
      expect(basename(folder.path)).toMatch(new RegExp(`^memjob_${process.pid}_[0-9a-f]+$`));
      const stats = statSync(folder.path);
      expect(stats.isDirectory()).toBe(true);
      expect(stats.mode & 0o777).toBe(0o700);
      expect(folder.removed).toBe(false);
      const second = createRunFolder(root);
      expect(second.path).not.toBe(folder.path);
      second.remove();
    } finally {
      folder.remove();
    }
  });

  it('hands out file paths that never collide and never leave the folder', () => {
    const folder = createRunFolder(freshRoot());
    try {
      const paths = [folder.file('a.npy'), folder.file('a.npy'), folder.file('../../escape'), folder.file('x/y'), folder.file('')];
      expect(new Set(paths).size).toBe(paths.length);
      for (const path of paths) expect(dirname(path)).toBe(folder.path);
      expect(basename(paths[0]!)).toMatch(/a\.npy$/);
    } finally {
      folder.remove();
    }
  });

  it('creates files exclusively with mode 0600', () => {
    const folder = createRunFolder(freshRoot());
    try {
      const path = folder.file('data.bin');
      const fd = createExclusive(path);
      try {
        expect(fstatSync(fd).mode & 0o777).toBe(0o600);
        writeSync(fd, Buffer.from('abc'));
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(path, 'utf8')).toBe('abc');
      expect(codeOf(() => createExclusive(path))).toBe('EEXIST');
    } finally {
      folder.remove();
    }
  });

  it('never follows a symlink planted where a file will be created', () => {
    const folder = createRunFolder(freshRoot());
    try {
      const victim = scratch.file('victim.txt');
      writeFileSync(victim, 'precious');
      const planted = folder.file('planted.bin');
      symlinkSync(victim, planted);
      expect(codeOf(() => createExclusive(planted))).toBe('EEXIST');
      expect(readFileSync(victim, 'utf8')).toBe('precious');
      // A dangling symlink must not make the file appear at its target either.
      const target = scratch.file('would-be-created.txt');
      const dangling = folder.file('dangling.bin');
      symlinkSync(target, dangling);
      expect(codeOf(() => createExclusive(dangling))).toBe('EEXIST');
      expect(existsSync(target)).toBe(false);
    } finally {
      folder.remove();
    }
  });

  it('remove() removes everything, is idempotent and never throws', () => {
    const folder = createRunFolder(freshRoot());
    writeFileSync(folder.file('a'), 'a');
    mkdirSync(folder.file('sub'));
    folder.remove();
    expect(folder.removed).toBe(true);
    expect(existsSync(folder.path)).toBe(false);
    expect(() => folder.remove()).not.toThrow();
    expect(codeOf(() => folder.file('late'))).toBe('MEMJOB_ERR_INTERNAL');
    // Someone removed it from under us: still no throw.
    const other = createRunFolder(freshRoot());
    rmSync(other.path, { recursive: true });
    expect(() => other.remove()).not.toThrow();
  });

  it.runIf(isMainThread)('installs no signal listeners, and its exit listener only while run folders are live', () => {
    const signals = () => ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    const before = { signals: signals(), exit: process.listenerCount('exit') };
    const a = createRunFolder(freshRoot());
    const b = createRunFolder(freshRoot());
    expect(signals()).toEqual(before.signals);
    expect(process.listenerCount('exit')).toBe(before.exit + 1);
    a.remove();
    expect(process.listenerCount('exit')).toBe(before.exit + 1);
    b.remove();
    expect(process.listenerCount('exit')).toBe(before.exit);
    expect(signals()).toEqual(before.signals);
  });

  it.runIf(existsSync('/dev/shm'))('leaves nothing behind in the root it chooses', () => {
    const saved = process.env[TEMP_FOLDER_ENV];
    delete process.env[TEMP_FOLDER_ENV];
    try {
      const folder = createRunFolder(chooseTempRoot().root);
      const fd = createExclusive(folder.file('x'));
      closeSync(fd);
      folder.remove();
      expect(existsSync(folder.path)).toBe(false);
    } finally {
      if (saved !== undefined) process.env[TEMP_FOLDER_ENV] = saved;
    }
  });
});

describe('cleanup when the process ends', () => {
  it('on normal exit', async () => {
    const { info, done } = await startChild(freshRoot(), 'exit');
    expect(info.listeners).toMatchObject({ SIGINT: 0, SIGTERM: 0, SIGHUP: 0 });
    const result = await done;
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(existsSync(info.path)).toBe(false);
  });

  it('on an uncaught exception', async () => {
    const { info, done } = await startChild(freshRoot(), 'throw');
    const result = await done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the child fails on purpose');
    expect(existsSync(info.path)).toBe(false);
  });

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`on ${signal}: the process dies of ${signal} and the tracker removes the folder`, async () => {
      const { child, info, done } = await startChild(freshRoot(), 'wait');
      expect(existsSync(info.path)).toBe(true);
      child.kill(signal);
      const result = await done;
      expect(result.signal).toBe(signal);
      expect(result.code).toBeNull();
      await waitFor(() => !existsSync(info.path), 5000, 'the tracker to remove the folder');
    });
  }

  it("leaves the decision to the program's own SIGINT listener, and cleans up when it exits", async () => {
    const { child, info, done } = await startChild(freshRoot(), 'user-listener');
    expect(info.listeners.SIGINT).toBe(1);
    child.kill('SIGINT');
    const result = await done;
    expect(result).toMatchObject({ code: 7, signal: null });
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[1]).toEqual({ userHandler: true, folderStillThere: true });
    expect(existsSync(info.path)).toBe(false);
  });

  it('leaves no listener once no run folder is live', async () => {
    const { child, info, done } = await startChild(freshRoot(), 'removed-wait');
    expect(info.listeners).toMatchObject({ SIGINT: 0, SIGTERM: 0, SIGHUP: 0 });
    expect(existsSync(info.path)).toBe(false);
    child.kill('SIGTERM');
    expect((await done).signal).toBe('SIGTERM');
  });
});
