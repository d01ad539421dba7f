/**
 * Shared memory that threads and child processes both see: a small file in
 * memjob's temp folder (/dev/shm when it can), mapped MAP_SHARED by every
 * party. The creating process owns the file; it is removed by close() or
 * when that process exits (the temp folder's cleanup), and a worker that
 * receives a handle maps the same file by path.
 */
import { closeSync, constants as fsConstants, ftruncateSync, rmSync } from 'node:fs';
import { ErrorCodes, MemjobError, systemError } from '../errors.js';
import { FileMapping } from '../memmap/file-mapping.js';
import { openRegularFile } from '../system/regular-file.js';
import { createExclusive, createRunFolder, type RunFolder } from '../transport/temp-folder.js';
import { chooseTempRoot } from '../transport/temp-root.js';

let folder: RunFolder | undefined;

/** This process's folder for shared objects, created on first use and removed at exit. */
function sharedFolder(): RunFolder {
  if (folder === undefined || folder.removed) folder = createRunFolder(chooseTempRoot(process.env.MEMJOB_TEMP_FOLDER).root);
  return folder;
}

export class SharedFile {
  readonly path: string;
  readonly byteLength: number;
  /** The whole file, mapped shared: every party's writes are seen by all. */
  readonly buffer: ArrayBuffer;
  readonly #mapping: FileMapping;
  readonly #owner: boolean;

  private constructor(path: string, byteLength: number, owner: boolean) {
    this.path = path;
    this.byteLength = byteLength;
    this.#owner = owner;
    // A regular file at least as long as the object: a file truncated before it is mapped would be SIGBUS on first touch.
    const { fd, size } = openRegularFile(path, fsConstants.O_RDWR, 'shared memory');
    try {
      if (size < byteLength) {
        throw new MemjobError(ErrorCodes.OUT_OF_RANGE, `shared memory: expected a file of at least ${byteLength} bytes, received '${path}' of ${size} bytes`, { path });
      }
      this.#mapping = new FileMapping(fd, path, 0, byteLength, true);
    } finally {
      closeSync(fd);
    }
    this.buffer = this.#mapping.view(0, byteLength);
  }

  /** A new zero-filled shared file of `byteLength` bytes (exclusive create, 0600). */
  static create(kind: string, byteLength: number): SharedFile {
    const path = sharedFolder().file(`${kind}.shm`);
    const fd = createExclusive(path);
    try {
      ftruncateSync(fd, byteLength);
    } catch (error) {
      rmSync(path, { force: true });
      throw systemError('shared memory', error, path);
    } finally {
      closeSync(fd);
    }
    return new SharedFile(path, byteLength, true);
  }

  /** Maps a shared file another party created (a handle received as a task argument). */
  static open(path: string, byteLength: number): SharedFile {
    return new SharedFile(path, byteLength, false);
  }

  get closed(): boolean {
    return this.#mapping.closed;
  }

  /** Unmaps this party's view; the creator also removes the file (other parties keep their mappings). */
  close(): void {
    this.#mapping.close();
    if (this.#owner) rmSync(this.path, { force: true });
  }

  check(what: string): void {
    if (this.#mapping.closed) throw new MemjobError(ErrorCodes.CLOSED, `${what}: this shared object was closed`);
  }
}
