/**
 * Writes that are all or nothing: the bytes go to a temp file created
 * exclusively (0600) beside the target, are fsynced, and only then renamed
 * over the target. A crash mid-write leaves the target as it was; the temp
 * file is removed on every error this process sees.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
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

export interface TempFileOptions {
  /** fsync the data and the folder (default true). Scratch files for workers skip it: they never outlive the process. */
  durable?: boolean;
  /** Keep the temp file's 0600 mode instead of giving the final file the usual 0666-minus-umask. */
  private?: boolean;
}

export function createTempBeside(target: string, where: string, options: TempFileOptions = {}): TempFile {
  const durable = options.durable ?? true;
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
        if (durable) fsyncSync(fd);
        if (options.private !== true) fchmodSync(fd, defaultFileMode());
        close();
        renameSync(path, target);
      } catch (error) {
        throw systemError(where, error, target);
      }
      if (durable) syncFolder(dirname(target));
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

/** The most bytes one write system call is asked for. */
const MAX_IO_BYTES = 1024 ** 3;
const writeAsync = promisify(write);

/** Writes all of `bytes` at `position` (in calls of at most 1 GiB); returns the position after them. */
export function writeAllSync(fd: number, bytes: Uint8Array, position: number): number {
  for (let done = 0; done < bytes.length; ) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, MAX_IO_BYTES), position + done);
  }
  return position + bytes.length;
}

/** writeAllSync without blocking. */
export async function writeAll(fd: number, bytes: Uint8Array, position: number): Promise<number> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await writeAsync(fd, bytes, done, Math.min(bytes.length - done, MAX_IO_BYTES), position + done);
    done += bytesWritten;
  }
  return position + bytes.length;
}
