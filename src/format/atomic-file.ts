/**
 * Writes that are all or nothing: the bytes go to a temp file created
 * exclusively (0600) beside the target, are fsynced, and only then renamed
 * over the target. A crash mid-write leaves the target as it was; the temp
 * file is removed on every error this process sees.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { systemError } from '../errors.js';

export interface TempFile {
  readonly path: string;
  readonly fd: number;
  /** fsync, rename over the target, fsync the folder (so the rename itself is durable). */
  commit(): void;
  /** Close and remove the temp file; safe to call after a failed commit. */
  abort(): void;
}

/** The mode a new file would get from open(2) with 0666 and this process's umask. */
function defaultFileMode(): number {
  try {
    return 0o666 & ~process.umask();
  } catch {
    return 0o644; // process.umask() is not available in every worker configuration
  }
}

export function createTempBeside(target: string, where: string): TempFile {
  const path = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.memjob-tmp`);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    throw systemError(where, error, target);
  }
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      closeSync(fd);
    }
  };
  return {
    path,
    fd,
    commit() {
      try {
        fsyncSync(fd);
        fchmodSync(fd, defaultFileMode());
        close();
        renameSync(path, target);
      } catch (error) {
        throw systemError(where, error, target);
      }
      syncFolder(dirname(target));
    },
    abort() {
      try {
        close();
      } catch {
        // already closed or never usable: the unlink below is what matters
      }
      try {
        unlinkSync(path);
      } catch {
        // renamed already, or removed by someone else
      }
    },
  };
}

function syncFolder(folder: string): void {
  try {
    const fd = openSync(folder, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data itself is synced.
  }
}
