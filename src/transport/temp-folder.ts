/**
 * The run folder: one per run, `<root>/memjob_<pid>_<random hex>`, mode 0700,
 * created with mkdir (which fails if anything, a planted symlink included,
 * already has the name). Files inside are created with O_CREAT | O_EXCL |
 * O_NOFOLLOW, mode 0600. While the folder lives, its creator holds an
 * exclusive flock on `<folder>/.lock` (an fd kept open until remove()), which
 * is how every other process, in any PID namespace, knows it is alive. Live
 * folders are removed on process 'exit' (the fast path) and, when the process
 * dies any other way (a signal, SIGKILL, the OOM killer), by the resource
 * tracker (temp-tracker.ts); memjob installs no signal listeners, so signals
 * keep their default action. Dead folders are reaped first (temp-reap.ts).
 * Where the root is: temp-root.ts.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants as fsConstants, lstatSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { tryFlock } from '../native.js';
import { LOCK_FILE, reapStaleFolders } from './temp-reap.js';
import { trackFolder, untrackFolder } from './temp-tracker.js';

// process.ts imports the root choice from here, beside the run folder it makes there.
export { chooseTempRoot } from './temp-root.js';

/**
 * Creates a file exclusively and returns its fd (write-only, 0600,
 * close-on-exec: libuv adds O_CLOEXEC to every open). O_CREAT | O_EXCL fails
 * with EEXIST when anything has the name, a symlink included, so a planted
 * symlink is never followed; O_NOFOLLOW says the same where O_EXCL alone might
 * not. Errors are MemjobErrors with the OS code (EEXIST, ENOSPC, ...).
 */
export function createExclusive(path: string): number {
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | (fsConstants.O_NOFOLLOW ?? 0);
  try {
    return openSync(path, flags, 0o600);
  } catch (error) {
    throw systemError('createExclusive', error, path);
  }
}

/** Run folders this process created and has not removed yet. */
const live = new Set<RunFolder>();
let exitListenerInstalled = false;

export class RunFolder {
  /** `<root>/memjob_<pid>_<random hex>` */
  readonly path: string;
  readonly root: string;
  #removed = false;
  #counter = 0;
  /** The open `.lock` whose flock marks the folder alive; closed (dropping the lock) by remove(). */
  #lockFd: number;

  /** Creates the folder (0700) and its held lock and registers it for cleanup; createRunFolder also reaps dead folders first. */
  constructor(root: string) {
    this.root = resolve(root);
    this.path = makeFolder(this.root);
    this.#lockFd = holdLock(this.path);
    live.add(this);
    installExitListener();
    try {
      const stats = lstatSync(this.path, { bigint: true });
      trackFolder(this.path, stats.dev, stats.ino);
    } catch {
      // Not tracked: the 'exit' listener and the reapers still remove it.
    }
  }

  /** true after remove() */
  get removed(): boolean {
    return this.#removed;
  }

  /**
   * A fresh path inside the folder for `name`: `<counter>_<name>`, so names
   * never collide. Characters other than letters, digits, '.', '_' and '-' in
   * `name` become '_' (a name can never leave the folder).
   */
  file(name: string): string {
    if (this.#removed) {
      throw new MemjobError(ErrorCodes.INTERNAL, `RunFolder.file: expected a live run folder, received ${this.path}, which was already removed`);
    }
    const safe = String(name).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || 'file';
    this.#counter += 1;
    return join(this.path, `${this.#counter}_${safe}`);
  }

  /** Removes the folder and everything in it; idempotent; never throws (logs nothing). */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    live.delete(this);
    try {
      rmSync(this.path, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // Nothing useful to do: a folder that cannot be removed now is reaped by a later process.
    }
    untrackFolder(this.path);
    // Only now, with the folder gone, is the lock dropped: a reaper never sees a half-removed live folder as dead.
    try {
      closeSync(this.#lockFd);
    } catch {
      // Already closed by someone who closed fds they did not open: the lock is gone either way.
    }
    if (live.size === 0) uninstallExitListener();
  }
}

function makeFolder(root: string): string {
  for (let attempt = 0; ; attempt += 1) {
    const path = join(root, `memjob_${process.pid}_${randomBytes(8).toString('hex')}`);
    try {
      // mkdir fails with EEXIST if anything (a planted symlink too) has the name.
      mkdirSync(path, { mode: 0o700 });
    } catch (error) {
      if ((error as { code?: unknown }).code === 'EEXIST' && attempt < 8) continue;
      throw systemError('createRunFolder', error, root);
    }
    try {
      // A restrictive umask can only remove bits; make it exactly 0700 (the owner needs rwx).
      if ((lstatSync(path).mode & 0o777) !== 0o700) chmodSync(path, 0o700);
    } catch (error) {
      rmSync(path, { recursive: true, force: true });
      throw systemError('createRunFolder', error, path);
    }
    return path;
  }
}

/**
 * Creates `<folder>/.lock` (exclusive, 0600, no-follow) and takes an
 * exclusive flock on it; returns the fd, which stays open for the folder's
 * life (close-on-exec, so child processes never inherit the lock). On a
 * file system without flock (ENOLCK, EOPNOTSUPP, ENOSYS) the folder is still
 * usable: no reaper can lock it either, so it is kept as alive. On failure
 * the folder is removed.
 */
function holdLock(folder: string): number {
  const lockPath = join(folder, LOCK_FILE);
  let fd: number | undefined;
  try {
    fd = createExclusive(lockPath);
    if (!tryFlock(fd, 'exclusive', lockPath)) {
      throw new MemjobError(
        ErrorCodes.INTERNAL,
        `createRunFolder: expected to lock the new ${lockPath}, received a lock already held by another process`,
        { path: lockPath },
      );
    }
    return fd;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (fd !== undefined && (code === 'ENOLCK' || code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS')) return fd;
    if (fd !== undefined) closeSync(fd);
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Creates a run folder under `root` (after reaping dead folders there) and
 * registers it for cleanup on process 'exit' and with the resource tracker
 * (in the main thread only: a run folder made in a worker thread is its
 * owner's to remove, and reaped otherwise).
 */
export function createRunFolder(root: string): RunFolder {
  if (typeof root !== 'string' || root === '') throw invalidArg('createRunFolder', 'root', 'a non-empty path string', root);
  reapStaleFolders(root);
  return new RunFolder(root);
}

/** The synchronous fast path: a process that exits normally removes its folders itself; the tracker finds nothing left. */
function onExit(): void {
  for (const folder of [...live]) folder.remove();
}

function installExitListener(): void {
  if (exitListenerInstalled || !isMainThread) return;
  exitListenerInstalled = true;
  process.on('exit', onExit);
}

function uninstallExitListener(): void {
  if (!exitListenerInstalled) return;
  exitListenerInstalled = false;
  process.removeListener('exit', onExit);
}
