/**
 * Reaping: run folders a SIGKILLed process left behind are removed by the
 * next memjob process that creates a run folder under the same root (and by
 * `memjob clean`). Only this user's `memjob_<pid>_<hex>` folders whose
 * process no longer exists are touched.
 */
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The name of a run folder: memjob_<pid>_<random hex>. */
const FOLDER_NAME = /^memjob_(\d+)_[0-9a-f]+$/;

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

/**
 * Removes `memjob_<pid>_<hex>` folders in `root` that this user owns and whose
 * process no longer exists (process.kill(pid, 0) fails with ESRCH). Never
 * touches this process's folders, live processes' folders (EPERM means alive),
 * symlinks, non-folders, other users' folders or other names. Returns the
 * removed paths; never throws.
 */
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
