/**
 * The one way memjob opens a file it reads or maps (memmap, load, loadNpy,
 * inspect): open, fstat, and refuse anything that is not a regular file
 * before a byte is read; and the one loop that reads a range in full.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCodes, MemjobError, systemError } from '../errors.js';

/** The most bytes one read system call is asked for. */
const MAX_READ_BYTES = 1024 ** 3;
const readAsync = promisify(read);

/**
 * Opens `path` with `flags` and returns its fd (the caller closes it) and
 * size. O_NONBLOCK is added: a FIFO must not make open() wait for a writer
 * forever (on regular files it has no effect); the fstat check then refuses
 * it. A folder gives EISDIR, a FIFO, device or socket
 * MEMJOB_ERR_INVALID_ARG; a failed open keeps Node's code (ENOENT, EACCES...).
 */
export function openRegularFile(path: string, flags: number, where: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, flags | fsConstants.O_NONBLOCK, 0o666);
  } catch (error) {
    throw systemError(where, error, path);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) {
      throw new MemjobError('EISDIR', `${where}: expected a regular file, received the directory '${path}' (EISDIR)`, { path, syscall: 'open' });
    }
    if (!stat.isFile()) {
      throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected a regular file, received '${path}', which is not one`, { path });
    }
    return { fd, size: stat.size };
  } catch (error) {
    closeSync(fd);
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  }
}

/**
 * Fills `target` from the file at `position`, at most 1 GiB per read. Returns
 * the bytes read: fewer than `target.length` only where the file ends first.
 */
export function readFullySync(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(MAX_READ_BYTES, target.length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** readFullySync() with the reads done in Node's thread pool. */
export async function readFully(fd: number, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await readAsync(fd, target, done, Math.min(MAX_READ_BYTES, target.length - done), position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
