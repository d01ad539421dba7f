/**
 * Reaping: run folders a SIGKILLed process left behind are removed by the
 * next memjob process that creates a run folder under the same root (and by
 * `memjob clean`). Only this user's `memjob_<pid>_<hex>` folders that are
 * provably dead are touched.
 *
 * Dead is decided by a lock, not by the pid in the name: every live run
 * folder holds an exclusive flock(2) on its `.lock` file for its whole life
 * (temp-folder.ts), and the kernel drops it when the holder dies in any way,
 * SIGKILL and the OOM killer included. A pid means nothing in another PID
 * namespace sharing the same /dev/shm (Kubernetes memory emptyDir, Docker
 * --ipc=host), where a live run's pid may not exist or may be someone else;
 * a flock is visible to every process of the kernel. So a folder is reaped
 * only when this process can take that lock itself, and only once the folder
 * is older than a minimum age (by its mtime), so that a folder whose creator
 * is between mkdir and taking the lock is never judged: systemd-tmpfiles
 * skips flock'ed entries the same way. The pid stays in the name as a hint
 * for people.
 */
import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readdirSync, rmSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { tryFlock } from '../native.js';

/** The name of a run folder: memjob_<pid>_<random hex>; a pid has no leading zeros (memjob_012566_ab is not one). */
const FOLDER_NAME = /^memjob_([1-9][0-9]*)_[0-9a-f]+$/;

/** The file inside each run folder whose flock says the run is alive. */
export const LOCK_FILE = '.lock';

/**
 * A folder younger than this (by mtime) is never reaped, whatever its lock
 * says: its creator may not have taken the lock yet. Every file a run adds or
 * removes renews the folder's mtime.
 */
export const REAP_MIN_AGE_MS = 60_000;

export interface RootScan {
  root: string;
  /** Run folders nobody holds (lock free, or no lock file) and older than the minimum age. */
  stale: string[];
  /** Run folders that are held by a live run (this process's included) or too new to judge: never removed. */
  live: string[];
}

/**
 * The run folders in `root` this user owns, sorted into stale and live.
 * Symlinks, files, foreign names and other users' folders are left out.
 * `minAgeMs` is for tests only (the default is REAP_MIN_AGE_MS).
 */
export function scanRunFolders(root: string, minAgeMs = REAP_MIN_AGE_MS): RootScan {
  const scan: RootScan = { root, stale: [], live: [] };
  const now = Date.now();
  for (const { path, stats } of runFolders(root)) {
    const claim = claimIfDead(path, stats, minAgeMs, now);
    if (claim === undefined) {
      scan.live.push(path);
    } else {
      claim.release();
      scan.stale.push(path);
    }
  }
  return scan;
}

/**
 * Removes the `memjob_<pid>_<hex>` folders in `root` that this user owns,
 * that are older than `minAgeMs` and whose `.lock` this process could lock
 * (or that have none). The lock is held while the folder is removed, so no
 * two reapers judge it at once. Never touches a folder whose lock is held
 * (by any process, in any PID namespace, this one included), symlinks,
 * non-folders, other users' folders or other names. Returns the removed
 * paths; never throws. `minAgeMs` is for tests only.
 */
export function reapStaleFolders(root: string, minAgeMs = REAP_MIN_AGE_MS): string[] {
  const removed: string[] = [];
  const now = Date.now();
  for (const { path, stats } of runFolders(root)) {
    const claim = claimIfDead(path, stats, minAgeMs, now);
    if (claim === undefined) continue;
    try {
      // Another reaper may have removed it between our lstat and our lock (we then locked an unlinked file).
      if (lstatSync(path).ino !== stats.ino) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Removed by another reaper at the same time, or not removable: leave it.
    } finally {
      claim.release();
    }
  }
  return removed;
}

/** This user's real folders in `root` named like run folders, sorted by name. */
function runFolders(root: string): { path: string; stats: Stats }[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const found: { path: string; stats: Stats }[] = [];
  for (const name of names.sort()) {
    const match = FOLDER_NAME.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (!Number.isSafeInteger(pid) || pid > 0x7fffffff) continue;
    const path = join(root, name);
    try {
      const stats = lstatSync(path);
      if (!stats.isDirectory()) continue; // symlinks and files are never followed nor removed
      if (uid !== undefined && stats.uid !== uid) continue;
      found.push({ path, stats });
    } catch {
      continue;
    }
  }
  return found;
}

/**
 * undefined when the folder may be alive; else a claim on it (its lock,
 * held until release()). Anything this cannot prove dead is alive: a young
 * folder, a held lock, a `.lock` that is not a regular file, a file system
 * without flock.
 */
function claimIfDead(path: string, stats: Stats, minAgeMs: number, now: number): { release(): void } | undefined {
  if (now - stats.mtimeMs < minAgeMs) return undefined;
  const lockPath = join(path, LOCK_FILE);
  let fd: number;
  try {
    // O_NOFOLLOW: never a planted symlink; O_NONBLOCK: a FIFO must not block the open.
    fd = openSync(lockPath, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | fsConstants.O_NONBLOCK);
  } catch (error) {
    // No lock file in a folder past the minimum age: its creator died before taking the lock (or predates it).
    return (error as { code?: unknown }).code === 'ENOENT' ? { release: () => {} } : undefined;
  }
  let locked = false;
  try {
    locked = fstatSync(fd).isFile() && tryFlock(fd, 'exclusive', lockPath);
  } catch {
    locked = false;
  }
  if (!locked) {
    closeSync(fd);
    return undefined;
  }
  // Closing the only descriptor of this open file description drops the lock.
  return { release: () => closeSync(fd) };
}
