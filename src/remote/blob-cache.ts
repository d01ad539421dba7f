/**
 * The blobs one machine downloaded (blob-store.ts), kept so that many jobs of
 * a run read one local copy: one file per sha, `<sha>.mjdump`, in a run
 * folder of this process (0700, flock'd, removed on exit and reaped by
 * `memjob clean` or the next run once this process is gone).
 */
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { ErrorCodes, MemjobError } from '../errors.js';
import { chooseTempRoot, createRunFolder, type RunFolder } from '../transport/temp-folder.js';
import { checkBlobInfo, checkMaxBytes, downloadBlob, type BlobInfo } from './blob-store.js';

/** What the cache keeps on disk unless told otherwise. */
export const DEFAULT_CACHE_BYTES = 4 * 1024 ** 3;

interface Entry {
  sha: string;
  path: string;
  size: number;
  /** Users of the file (pin/unpin): a pinned file is never removed. */
  pins: number;
  /** Tick of the last get(): the smallest is the least recently used. */
  used: number;
}

export interface BlobCacheOptions {
  /** The root the cache folder goes under (the tempFolder option; default MEMJOB_TEMP_FOLDER, /dev/shm, os.tmpdir()). */
  tempFolder?: string;
  /** Bytes of files kept; least recently used unpinned files go beyond it (default 4 GiB). */
  maxBytes?: number;
}

export class BlobCache {
  readonly #tempFolder: string | undefined;
  readonly #maxBytes: number;
  #folder: RunFolder | undefined;
  #closed = false;
  /** Complete, verified files by sha. */
  readonly #entries = new Map<string, Entry>();
  readonly #byPath = new Map<string, Entry>();
  /** Downloads under way by sha: concurrent get() calls share one. */
  readonly #inFlight = new Map<string, Promise<Entry>>();
  #held = 0;
  #tick = 0;
  #parts = 0;
  #downloads = 0;
  #downloadedBytes = 0;

  constructor(options: BlobCacheOptions = {}) {
    this.#tempFolder = options.tempFolder;
    this.#maxBytes = checkMaxBytes('BlobCache', options.maxBytes ?? DEFAULT_CACHE_BYTES);
  }

  /** The cache's run folder, created on first use. */
  get folder(): string {
    this.#checkOpen('folder');
    this.#folder ??= createRunFolder(chooseTempRoot(this.#tempFolder).root);
    return this.#folder.path;
  }

  /**
   * The path of a complete, verified local copy of `info`, downloaded unless
   * already here. With `pin: true` the file is pinned before the promise
   * resolves (the caller then owes one unpin()); without it, pin the path in
   * the same tick, before another download can make room by removing it.
   */
  async get(redis: Redis, prefix: string, info: BlobInfo, options: { pin?: boolean } = {}): Promise<string> {
    this.#checkOpen('get');
    const checked = checkBlobInfo('BlobCache.get', info);
    const { sha, size } = checked;
    let entry = this.#entries.get(sha);
    if (entry === undefined) {
      let download = this.#inFlight.get(sha);
      if (download === undefined) {
        download = this.#download(redis, prefix, checked).finally(() => this.#inFlight.delete(sha));
        this.#inFlight.set(sha, download);
      }
      entry = await download;
    }
    if (entry.size !== size) {
      // A sha fixes the size of its content: an info naming it with another size is malformed.
      throw new MemjobError(ErrorCodes.FORMAT, `BlobCache.get: expected blob ${sha} to be ${entry.size} bytes as its content is, received a size of ${size}`);
    }
    entry.used = ++this.#tick;
    if (options.pin === true) entry.pins += 1;
    return entry.path;
  }

  /** One more user of the file at `path` (from get()): it stays until as many unpin() calls. */
  pin(path: string): void {
    const entry = this.#byPath.get(path);
    if (entry === undefined) {
      throw new MemjobError(ErrorCodes.INTERNAL, `BlobCache.pin: expected a file this cache holds, received '${path}'`);
    }
    entry.pins += 1;
  }

  /** One user fewer; a file no one uses may then be removed to keep within maxBytes. Unknown paths are ignored (the cache may be closed). */
  unpin(path: string): void {
    const entry = this.#byPath.get(path);
    if (entry === undefined || entry.pins === 0) return;
    entry.pins -= 1;
    if (entry.pins === 0) this.#evict(undefined);
  }

  /** Downloads made so far and their bytes. */
  stats(): { count: number; bytes: number } {
    return { count: this.#downloads, bytes: this.#downloadedBytes };
  }

  /** Removes the folder and every file; idempotent. Downloads under way then fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#folder?.remove();
    this.#entries.clear();
    this.#byPath.clear();
    this.#held = 0;
  }

  async #download(redis: Redis, prefix: string, info: BlobInfo): Promise<Entry> {
    const folder = this.folder;
    // Readers only ever see the final name, given by rename once the file is complete and verified.
    const part = join(folder, `${info.sha}.part-${++this.#parts}`);
    await downloadBlob(redis, prefix, info, part);
    if (this.#closed) {
      rmSync(part, { force: true });
      this.#checkOpen('get');
    }
    const path = join(folder, `${info.sha}.mjdump`);
    renameSync(part, path);
    const entry: Entry = { sha: info.sha, path, size: info.size, pins: 0, used: ++this.#tick };
    this.#entries.set(info.sha, entry);
    this.#byPath.set(path, entry);
    this.#held += info.size;
    this.#downloads += 1;
    this.#downloadedBytes += info.size;
    this.#evict(entry);
    return entry;
  }

  /** Removes least recently used unpinned files (never `keep`, the one just downloaded) while over maxBytes. */
  #evict(keep: Entry | undefined): void {
    if (this.#held <= this.#maxBytes) return;
    const candidates = [...this.#entries.values()].filter((entry) => entry.pins === 0 && entry !== keep).sort((a, b) => a.used - b.used);
    for (const entry of candidates) {
      if (this.#held <= this.#maxBytes) break;
      rmSync(entry.path, { force: true });
      this.#entries.delete(entry.sha);
      this.#byPath.delete(entry.path);
      this.#held -= entry.size;
    }
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new MemjobError(ErrorCodes.CLOSED, `BlobCache.${what}: expected an open cache, received one already closed`);
  }
}
