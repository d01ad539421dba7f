/**
 * The run's temp folder: where it goes, how it is made, and how it is removed
 * however the run (or the process) ends.
 *
 * Choice of root, like joblib: the `tempFolder` option, then the environment
 * variable MEMJOB_TEMP_FOLDER, then /dev/shm when it exists, is writable and
 * has room (at least 2 GiB free, and the bytes the run needs), then
 * os.tmpdir(). An explicit root (option or env) that cannot be used is an
 * error, never silently skipped.
 *
 * One folder per run, `<root>/memjob_<pid>_<random hex>`, mode 0700, created
 * with mkdir (which fails if anything, a planted symlink included, already has
 * the name). Files inside are created with O_CREAT | O_EXCL | O_NOFOLLOW, mode
 * 0600. Live folders are removed on process 'exit' and on SIGINT, SIGTERM and
 * SIGHUP; folders a SIGKILLed process left behind are removed by the next
 * memjob process that creates a run folder under the same root.
 */
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
} from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';

/** The environment variable that names the temp root when no option does. */
export const TEMP_FOLDER_ENV = 'MEMJOB_TEMP_FOLDER';
/** The shared-memory filesystem tried before os.tmpdir(). */
export const SHM_ROOT = '/dev/shm';
/** The free space /dev/shm must have to be used at all (joblib asks for 2 GB). */
export const SHM_MIN_FREE_BYTES = 2 * 1024 ** 3;

/** The name of a run folder: memjob_<pid>_<random hex>. */
const FOLDER_NAME = /^memjob_(\d+)_[0-9a-f]+$/;

export interface TempRootChoice {
  root: string;
  reason: string;
  /** Free bytes for an unprivileged user at the root (statfs bavail * bsize); -1 if unknown. */
  freeBytes: number;
}

export type TempRootSource = 'option' | 'env' | 'shm' | 'tmpdir';

export interface TempRootCandidate {
  root: string;
  source: TempRootSource;
  usable: boolean;
  reason: string;
  /** Free bytes there (statfs bavail * bsize); -1 if the folder could not be examined. */
  freeBytes: number;
}

interface Inspected extends TempRootCandidate {
  /** Why it is not usable, as the error chooseTempRoot throws for an explicit root. */
  error?: MemjobError;
}

const WHERE = 'memjob temp folder';

/**
 * The candidate roots in order, each with why it is or is not usable (for
 * `memjob info`). The root chooseTempRoot picks is the first usable one, unless
 * an explicit root (option, env) is unusable: then chooseTempRoot throws.
 * An empty MEMJOB_TEMP_FOLDER counts as unset.
 */
export function tempRootCandidates(option?: string, neededBytes = 0): TempRootCandidate[] {
  const needed = checkNeededBytes(neededBytes);
  return listSources(option).map(([source, root]) => {
    const { error: _error, ...candidate } = inspectRoot(source, root, needed);
    return candidate;
  });
}

/**
 * The first usable root; `neededBytes` (default 0) must fit there, and
 * /dev/shm must also keep its 2 GiB minimum free. An explicit option/env root
 * that does not exist, is not a folder, is not writable or has no room is an
 * error (MemjobError with the OS code: ENOENT, ENOTDIR, EACCES, ENOSPC),
 * never silently skipped; so is os.tmpdir() when it cannot be used.
 */
export function chooseTempRoot(option?: string, neededBytes = 0): TempRootChoice {
  const needed = checkNeededBytes(neededBytes);
  const skipped: string[] = [];
  for (const [source, root] of listSources(option)) {
    const candidate = inspectRoot(source, root, needed);
    if (candidate.usable) {
      const reason = skipped.length === 0 ? candidate.reason : `${candidate.reason} (${skipped.join('; ')})`;
      return { root: candidate.root, reason, freeBytes: candidate.freeBytes };
    }
    if (source !== 'shm') {
      const error = candidate.error ?? new MemjobError(ErrorCodes.INTERNAL, `${WHERE}: ${candidate.reason}`);
      if (skipped.length > 0) error.message = `${error.message}; ${skipped.join('; ')}`;
      throw error;
    }
    skipped.push(`skipped ${candidate.reason}`);
  }
  // listSources always ends with os.tmpdir(), which either returns or throws above.
  throw new MemjobError(ErrorCodes.INTERNAL, `${WHERE}: no candidate root was examined`);
}

function checkNeededBytes(neededBytes: unknown): number {
  if (typeof neededBytes !== 'number' || !Number.isFinite(neededBytes) || neededBytes < 0) {
    throw invalidArg(WHERE, 'neededBytes', 'a finite number of bytes >= 0', neededBytes);
  }
  return neededBytes;
}

function listSources(option: unknown): [TempRootSource, string][] {
  const sources: [TempRootSource, string][] = [];
  if (option !== undefined) {
    if (typeof option !== 'string' || option === '') throw invalidArg(WHERE, 'tempFolder', 'a non-empty path string', option);
    sources.push(['option', resolve(option)]);
    return sources; // an explicit option is the answer or an error: nothing after it is considered
  }
  const env = process.env[TEMP_FOLDER_ENV];
  if (env !== undefined && env !== '') {
    sources.push(['env', resolve(env)]);
    return sources;
  }
  if (process.platform !== 'win32') sources.push(['shm', SHM_ROOT]);
  sources.push(['tmpdir', resolve(tmpdir())]);
  return sources;
}

function label(source: TempRootSource, root: string): string {
  switch (source) {
    case 'option':
      return `${root} (the tempFolder option)`;
    case 'env':
      return `${root} (from ${TEMP_FOLDER_ENV})`;
    case 'shm':
      return `${root} (shared memory)`;
    case 'tmpdir':
      return `${root} (os.tmpdir())`;
  }
}

function inspectRoot(source: TempRootSource, root: string, needed: number): Inspected {
  const name = label(source, root);
  const unusable = (reason: string, error: MemjobError, freeBytes = -1): Inspected => ({
    root,
    source,
    usable: false,
    reason: `${name}: ${reason}`,
    freeBytes,
    error,
  });
  try {
    if (!statSync(root).isDirectory()) {
      const error = new MemjobError('ENOTDIR', `${WHERE}: expected ${name} to be a folder, received something that is not one (ENOTDIR)`, {
        syscall: 'stat',
        path: root,
      });
      return unusable('is not a folder', error);
    }
  } catch (error) {
    const wrapped = systemError(WHERE, error, root);
    return unusable(wrapped.code === 'ENOENT' ? 'does not exist' : `cannot be examined (${wrapped.code})`, wrapped);
  }
  try {
    accessSync(root, fsConstants.W_OK | fsConstants.X_OK);
  } catch (error) {
    const wrapped = systemError(WHERE, error, root);
    return unusable(`is not writable (${wrapped.code})`, wrapped);
  }
  let freeBytes = -1;
  try {
    const stats = statfsSync(root);
    freeBytes = stats.bavail * stats.bsize;
  } catch {
    // Free space unknown: usable, unless it is /dev/shm, which must show its room.
  }
  const free = freeBytes < 0 ? 'unknown free space' : `${formatBytes(freeBytes)} free`;
  const noSpace = (reason: string): Inspected =>
    unusable(
      reason,
      new MemjobError(ErrorCodes.NO_SPACE, `${WHERE}: expected ${name} to have room for ${formatBytes(needed)}, received ${free} there (ENOSPC)`, {
        path: root,
      }),
      freeBytes,
    );
  if (source === 'shm') {
    if (freeBytes < SHM_MIN_FREE_BYTES) return noSpace(`has ${free}, less than the ${formatBytes(SHM_MIN_FREE_BYTES)} minimum`);
  }
  if (needed > 0 && freeBytes >= 0 && freeBytes < needed) {
    return noSpace(`has ${free}, less than the ${formatBytes(needed)} needed`);
  }
  return { root, source, usable: true, reason: `${name}: writable, ${free}`, freeBytes };
}

/** 1536 → "1.5 KiB"; under 1 KiB in bytes ("512 B"); negative (unknown) → "unknown". */
export function formatBytes(bytes: number): string {
  if (bytes < 0) return 'unknown';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

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

// ---------------------------------------------------------------------------
// Run folders and their cleanup

/** Run folders this process created and has not removed yet. */
const live = new Set<RunFolder>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let handlersInstalled = false;

export class RunFolder {
  /** `<root>/memjob_<pid>_<random hex>` */
  readonly path: string;
  readonly root: string;
  #removed = false;
  #counter = 0;

  /** Creates the folder (0700) and registers it for cleanup; createRunFolder also reaps stale folders first. */
  constructor(root: string) {
    this.root = resolve(root);
    this.path = makeFolder(this.root);
    live.add(this);
    installHandlers();
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
    if (live.size === 0) uninstallHandlers();
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
 * Creates a run folder under `root` (after reaping stale folders there) and
 * registers it for cleanup on process exit, SIGINT, SIGTERM and SIGHUP (in the
 * main thread only: signal handlers are process-wide, so a run folder made in
 * a worker thread is its owner's to remove).
 */
export function createRunFolder(root: string): RunFolder {
  if (typeof root !== 'string' || root === '') throw invalidArg('createRunFolder', 'root', 'a non-empty path string', root);
  reapStaleFolders(root);
  return new RunFolder(root);
}

function removeAllLive(): void {
  for (const folder of [...live]) folder.remove();
}

function onExit(): void {
  removeAllLive();
}

/**
 * Adding a signal listener turns off Node's default action (terminate), so:
 * when memjob's listener is the only one, remove the folders, take the
 * listeners away (Node then restores the default action) and send the signal
 * again, so the process dies of it exactly as it would have without memjob.
 * When the program has listeners of its own, it decides: memjob does nothing
 * here (the folders stay for a run that may still be finishing) and removes
 * them on 'exit' or when the run ends.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  removeAllLive(); // uninstalls the handlers once the last folder is gone
  uninstallHandlers();
  if (process.listenerCount(signal) > 0) return; // someone added one meanwhile: theirs to decide
  try {
    process.kill(process.pid, signal);
  } catch {
    // A platform that cannot send this signal to itself: exit with the status a shell reports for it.
    process.exit(128 + (osConstants.signals[signal] ?? 0));
  }
}

function installHandlers(): void {
  if (handlersInstalled || !isMainThread) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.removeListener('exit', onExit);
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
}

/**
 * Removes `memjob_<pid>_<hex>` folders in `root` that this user owns and whose
 * process no longer exists (process.kill(pid, 0) fails with ESRCH). Never
 * touches this process's folders, live processes' folders (EPERM means alive),
 * symlinks, non-folders, other users' folders or other names. Returns the
 * removed paths; never throws.
 */
export interface RootScan {
  root: string;
  /** Run folders of processes that no longer exist. */
  stale: string[];
  /** Run folders of processes that are alive (this one included): never removed. */
  live: string[];
}

/**
 * The run folders in `root` this user owns, sorted into stale and live.
 * Symlinks, files, foreign names and other users' folders are left out.
 */
export function scanRunFolders(root: string): RootScan {
  const scan: RootScan = { root, stale: [], live: [] };
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return scan;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  for (const name of names.sort()) {
    const match = FOLDER_NAME.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0x7fffffff) continue;
    const path = join(root, name);
    try {
      const stats = lstatSync(path);
      if (!stats.isDirectory()) continue; // symlinks and files are never followed nor removed
      if (uid !== undefined && stats.uid !== uid) continue;
    } catch {
      continue;
    }
    if (pid === process.pid || processExists(pid)) scan.live.push(path);
    else scan.stale.push(path);
  }
  return scan;
}

export function reapStaleFolders(root: string): string[] {
  const removed: string[] = [];
  for (const path of scanRunFolders(root).stale) {
    try {
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Removed by another reaper at the same time, or not removable: leave it.
    }
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // ESRCH: no such process. EPERM: it exists but belongs to someone else. Anything else: assume alive.
    return (error as { code?: unknown }).code !== 'ESRCH';
  }
}
