/**
 * Which folder a run's temp folder goes under, like joblib: the `tempFolder`
 * option, then the environment variable MEMJOB_TEMP_FOLDER, then /dev/shm
 * when it exists, is writable and has room (at least 2 GiB free, and the
 * bytes the run needs), then os.tmpdir(). An explicit root (option or env)
 * that cannot be used is an error, never silently skipped. A root other
 * users can write to is unusable unless it has the sticky bit (unsafeBecause).
 */
import { accessSync, constants as fsConstants, statSync, statfsSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { formatBytes } from '../system/format-bytes.js';

/** The environment variable that names the temp root when no option does. */
export const TEMP_FOLDER_ENV = 'MEMJOB_TEMP_FOLDER';
/** The shared-memory filesystem tried before os.tmpdir(). */
export const SHM_ROOT = '/dev/shm';
/** The free space /dev/shm must have to be used at all (joblib asks for 2 GB). */
export const SHM_MIN_FREE_BYTES = 2 * 1024 ** 3;


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

const STICKY = 0o1000;

/**
 * Why a root is unsafe, or undefined. Anyone who can write to the root can
 * rename a live run folder away and put a symlink in its place, and every
 * later file of the run would go where they chose; the sticky bit (as on
 * /tmp and /dev/shm) forbids renaming what one does not own. So, like
 * systemd's refusal of "unsafe path transitions", a root without the sticky
 * bit must be writable by nobody but this user: no group or world write bit,
 * and owned by this user or root.
 */
function unsafeBecause(stats: Stats): string | undefined {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (uid === undefined || (stats.mode & STICKY) !== 0) return undefined;
  const mode = `mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')}`;
  if ((stats.mode & 0o002) !== 0) return `${mode}: any user can write to it, and it has no sticky bit`;
  if ((stats.mode & 0o020) !== 0) return `${mode}: its group can write to it, and it has no sticky bit`;
  if (stats.uid !== uid && stats.uid !== 0) return `${mode}, owned by uid ${stats.uid}: another user owns it`;
  return undefined;
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
  let stats: Stats;
  try {
    stats = statSync(root);
    if (!stats.isDirectory()) {
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
  const unsafe = unsafeBecause(stats);
  if (unsafe !== undefined) {
    const error = new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${WHERE}: expected ${name} to be a folder other users cannot write to, or one with the sticky bit (as /tmp), received ${unsafe}`,
      { path: root },
    );
    return unusable(`is not safe (${unsafe})`, error);
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

