/**
 * Content-addressed blobs in Redis, for moving a large array to each worker
 * machine once: the bytes of a file region stored in CHUNK_BYTES chunks under
 * `<prefix>:blob:<sha>:<i>`, named by their sha256. The hash is cryptographic
 * on purpose: Redis is shared, and a job signed with HMAC names the sha, so a
 * download that hashes to it carries exactly the bytes the signer meant.
 * Every chunk expires (PX ttl) and is written only while the run's alive key
 * exists, so a run that ended (or died) leaves nothing that outlives its TTL.
 * The per-machine cache of downloaded blobs: blob-cache.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, rmSync, write } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { ErrorCodes, MemjobError, clip, describe, invalidArg, systemError } from '../errors.js';
import { createExclusive } from '../transport/temp-folder.js';

export const CHUNK_BYTES = 4 * 1024 * 1024;
/** The largest blob downloadBlob accepts unless told otherwise: a bound on what a forged job can make a worker write. */
export const DEFAULT_MAX_BLOB_BYTES = 64 * 1024 ** 3;
/** Chunks sent per pipeline: a few, so the network stays busy while memory stays O(2 batches). */
const BATCH_CHUNKS = 4;

/**
 * `sha`: sha256 of the content, 64 lowercase hex digits; `size`: its length
 * in bytes; `key`: set when the chunks are stored under an upload id (32 hex
 * digits) instead of the sha (a private file uploaded in one pass).
 */
export interface BlobInfo {
  sha: string;
  size: number;
  key?: string;
}

/** Where an upload goes: the key prefix, the key whose existence means the run is alive, and the chunks' TTL. */
export interface UploadTarget {
  prefix: string;
  aliveKey: string;
  ttlMs: number;
}

export interface UploadSource {
  path: string;
  offset?: number;
  length?: number;
  /** The region's hash if already known (hashFileRegion); the upload checks it again as it reads. */
  info?: BlobInfo;
  /**
   * A file only this process writes (a dump in its own 0600 run folder, just
   * written): hashed once before the upload and not again while sending,
   * which saves a sha256 pass over the whole file (about 0.3 s per 256 MiB here).
   */
  privateFile?: boolean;
}

/** Key of chunk `index` of `sha` under `prefix`. */
export function chunkKey(prefix: string, sha: string, index: number): string {
  return `${prefix}:blob:${sha}:${index}`;
}

/** How many chunks a blob of `size` bytes has: at least one, so that even an empty blob exists as a key. */
export function chunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / CHUNK_BYTES));
}

function chunkLength(size: number, index: number): number {
  return Math.min(CHUNK_BYTES, size - index * CHUNK_BYTES);
}

const SHA_HEX = /^[0-9a-f]{64}$/;

/**
 * Checks a BlobInfo that may come from the wire: MemjobError FORMAT unless
 * `sha` is 64 lowercase hex digits and `size` a safe integer from 0 to maxBytes.
 */
export function checkBlobInfo(where: string, info: unknown, maxBytes = DEFAULT_MAX_BLOB_BYTES): BlobInfo {
  const { sha, size } = (typeof info === 'object' && info !== null ? info : {}) as { sha?: unknown; size?: unknown };
  if (typeof sha !== 'string' || !SHA_HEX.test(sha)) {
    throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a blob sha of 64 lowercase hex digits, received ${describe(sha)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > maxBytes) {
    throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected blob ${sha} to have a size from 0 to ${maxBytes} bytes, received ${describe(size)}`);
  }
  const { key } = info as { key?: unknown };
  if (key === undefined) return { sha, size };
  if (typeof key !== 'string' || !/^[0-9a-f]{32}$/.test(key)) throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a blob key of 32 lowercase hex digits, received ${describe(key)}`);
  return { sha, size, key };
}

/** `maxBytes` options: a safe integer >= 0. */
export function checkMaxBytes(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArg(where, 'maxBytes', 'a whole number of bytes >= 0', value);
  }
  return value;
}

/** A Redis command failed: the broker is gone or refused it (BACKEND_UNAVAILABLE, the cause kept). */
function brokerError(where: string, error: unknown): MemjobError {
  if (error instanceof MemjobError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new MemjobError(ErrorCodes.BACKEND_UNAVAILABLE, `${where}: the Redis broker failed: ${clip(message)}`, { cause: error });
}

/** A region of a file open for reading, checked against the file's size. */
async function openRegion(where: string, path: string, offset = 0, length?: number): Promise<{ file: FileHandle; offset: number; length: number }> {
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArg(where, 'offset', 'a whole number >= 0', offset);
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw invalidArg(where, 'length', 'a whole number >= 0', length);
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (error) {
    throw systemError(where, error, path);
  }
  try {
    const size = (await file.stat()).size;
    const region = length ?? Math.max(0, size - offset);
    if (offset + region > size) {
      throw new MemjobError(
        ErrorCodes.OUT_OF_RANGE,
        `${where}: expected ${region} bytes from offset ${offset} within '${path}', received a file of ${size} bytes`,
        { path },
      );
    }
    return { file, offset, length: region };
  } catch (error) {
    await file.close();
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  }
}

/** Reads exactly `length` bytes at `position` into a fresh buffer (fresh: pipelined commands keep a reference until sent). */
async function readExactly(where: string, file: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await file.read(buffer, done, length - done, position + done));
    } catch (error) {
      throw systemError(where, error, path);
    }
    if (bytesRead === 0) {
      throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected ${length} bytes at offset ${position} of '${path}', received ${done}: the file shrank`, { path });
    }
    done += bytesRead;
  }
  return buffer;
}

/** sha256 of `length` bytes of the file at `path` from `offset` (default: 0 and the rest of the file), in constant memory. */
export async function hashFileRegion(path: string, offset?: number, length?: number): Promise<BlobInfo> {
  const where = 'hashFileRegion';
  const region = await openRegion(where, path, offset, length);
  try {
    const hash = createHash('sha256');
    for (let done = 0; done < region.length; done += CHUNK_BYTES) {
      hash.update(await readExactly(where, region.file, path, region.offset + done, Math.min(CHUNK_BYTES, region.length - done)));
    }
    return { sha: hash.digest('hex'), size: region.length };
  } finally {
    await region.file.close();
  }
}

// Both scripts act only while the run's alive key exists: an upload racing the end of its run creates nothing.
const SET_IF_ALIVE = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1`;
/** 1 (TTLs refreshed) when every chunk exists with its length, 0 when one does not, -1 when the run is gone. */
const TOUCH_IF_ALIVE = `if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i = 2, #KEYS do
  local want = tonumber(ARGV[2])
  if i == #KEYS then want = tonumber(ARGV[3]) end
  if redis.call('EXISTS', KEYS[i]) == 0 or redis.call('STRLEN', KEYS[i]) ~= want then return 0 end
end
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return 1`;

/**
 * Uploads a file region as chunks (each SET with PX ttlMs, only while
 * target.aliveKey exists). Resolves to the info and the keys, or null when
 * the alive key was gone (any chunk already written is deleted). Chunks
 * already there from an earlier upload of the same sha get their TTL renewed
 * instead. The bytes are hashed again as they are read: a file changed since
 * `source.info` was computed fails here, not on every worker.
 */
export async function uploadBlob(redis: Redis, target: UploadTarget, source: UploadSource): Promise<{ info: BlobInfo; keys: string[] } | null> {
  const where = 'uploadBlob';
  if (!Number.isSafeInteger(target.ttlMs) || target.ttlMs <= 0) throw invalidArg(where, 'ttlMs', 'a whole number of ms > 0', target.ttlMs);
  // A private file with no known hash goes in one pass under a fresh upload id, hashed as it is sent
  // (hashing first, to name the chunks by their sha, would read and hash it twice).
  const onePass = source.info === undefined && source.privateFile === true;
  let info: BlobInfo;
  if (onePass) {
    const probe = await openRegion(where, source.path, source.offset, source.length);
    await probe.file.close();
    info = { sha: '', size: probe.length, key: randomBytes(16).toString('hex') };
  } else {
    info = source.info === undefined ? await hashFileRegion(source.path, source.offset, source.length) : checkBlobInfo(where, source.info, Number.MAX_SAFE_INTEGER);
  }
  if (source.length !== undefined && source.length !== info.size) {
    throw invalidArg(where, 'length', `${info.size}, the size in source.info`, source.length);
  }
  const count = chunkCount(info.size);
  const keys = Array.from({ length: count }, (_, i) => chunkKey(target.prefix, info.key ?? info.sha, i));
  const ttl = String(target.ttlMs);
  if (!onePass) {
    let touched: unknown;
    try {
      touched = await redis.eval(TOUCH_IF_ALIVE, 1 + count, target.aliveKey, ...keys, ttl, CHUNK_BYTES, chunkLength(info.size, count - 1));
    } catch (error) {
      throw brokerError(where, error);
    }
    if (touched === -1) return null;
    if (touched === 1) return { info, keys };
  }

  const region = await openRegion(where, source.path, source.offset, info.size);
  const written: string[] = [];
  let gone = false;
  let complete = false;
  let failure: unknown;
  const send = async (first: number, buffers: Buffer[]): Promise<void> => {
    const pipeline = redis.pipeline();
    buffers.forEach((buffer, i) => pipeline.eval(SET_IF_ALIVE, 2, target.aliveKey, keys[first + i]!, buffer, ttl));
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([error, result], i) => {
      if (error !== null) failure ??= error;
      else if (result === 1) written.push(keys[first + i]!);
      else gone = true;
    });
  };
  try {
    // A private file whose hash is known is not hashed again (nobody else can have changed it).
    const hash = source.privateFile === true && !onePass ? undefined : createHash('sha256');
    // One batch is sent while the next is read: disk and network overlap, memory stays at two batches.
    let inFlight: Promise<void> = Promise.resolve();
    for (let first = 0; first < count && !gone && failure === undefined; first += BATCH_CHUNKS) {
      const buffers: Buffer[] = [];
      for (let i = first; i < Math.min(count, first + BATCH_CHUNKS); i += 1) {
        const buffer = await readExactly(where, region.file, source.path, region.offset + i * CHUNK_BYTES, chunkLength(info.size, i));
        hash?.update(buffer);
        buffers.push(buffer);
      }
      await inFlight;
      if (gone || failure !== undefined) break;
      // Caught here, so a failure while the next batch is read is never an unhandled rejection.
      inFlight = send(first, buffers).catch((error: unknown) => {
        failure ??= error;
      });
    }
    await inFlight;
    if (failure !== undefined) throw brokerError(where, failure);
    if (gone) return null;
    const sha = hash?.digest('hex') ?? info.sha;
    if (onePass) info = { ...info, sha };
    else if (sha !== info.sha) {
      throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected '${source.path}' to hash to ${info.sha} as source.info says, received ${sha}: the file changed`, {
        path: source.path,
      });
    }
    complete = true;
    return { info, keys };
  } finally {
    await region.file.close();
    // Whatever a failed or too-late upload wrote goes now (best effort: it expires anyway).
    if (!complete && written.length > 0) await redis.unlink(...written).catch(() => undefined);
  }
}

const writeAsync = promisify(write);

async function writeAll(fd: number, buffer: Buffer, path: string): Promise<void> {
  for (let done = 0; done < buffer.length; ) {
    try {
      done += (await writeAsync(fd, buffer, done, buffer.length - done, null)).bytesWritten;
    } catch (error) {
      throw systemError('downloadBlob', error, path);
    }
  }
}

/**
 * Downloads `info` into `destPath`, created exclusively (0600), chunk by
 * chunk, checking each chunk's length and the whole's sha256. On failure the
 * partial file is removed: MemjobError FORMAT for a missing, wrong-length or
 * wrong-hash chunk, BACKEND_UNAVAILABLE when the broker failed.
 */
export async function downloadBlob(redis: Redis, prefix: string, info: BlobInfo, destPath: string, options: { maxBytes?: number } = {}): Promise<void> {
  const where = 'downloadBlob';
  const maxBytes = checkMaxBytes(where, options.maxBytes ?? DEFAULT_MAX_BLOB_BYTES);
  const { sha, size, key } = checkBlobInfo(where, info, maxBytes);
  const fd = createExclusive(destPath);
  let closed = false;
  try {
    const count = chunkCount(size);
    // The next chunk is asked for while this one is written; its failure is kept as a value, never left unhandled.
    const fetchChunk = (i: number): Promise<{ buffer: Buffer | null } | { error: unknown }> =>
      redis.getBuffer(chunkKey(prefix, key ?? sha, i)).then(
        (buffer) => ({ buffer }),
        (error: unknown) => ({ error }),
      );
    const hash = createHash('sha256');
    let next = fetchChunk(0);
    for (let i = 0; i < count; i += 1) {
      const got = await next;
      if (i + 1 < count) next = fetchChunk(i + 1);
      if ('error' in got) throw brokerError(where, got.error);
      const expected = chunkLength(size, i);
      if (got.buffer === null) {
        throw new MemjobError(ErrorCodes.FORMAT, `blob ${sha}: expected chunk ${i} of ${count} (${expected} bytes), received nothing: it expired or was never uploaded`);
      }
      if (got.buffer.length !== expected) {
        throw new MemjobError(ErrorCodes.FORMAT, `blob ${sha}: expected chunk ${i} of ${count} to be ${expected} bytes, received ${got.buffer.length}`);
      }
      hash.update(got.buffer);
      await writeAll(fd, got.buffer, destPath);
    }
    const actual = hash.digest('hex');
    if (actual !== sha) throw new MemjobError(ErrorCodes.FORMAT, `blob ${sha}: expected content hashing to ${sha}, received content hashing to ${actual}`);
    closed = true;
    closeSync(fd);
  } catch (error) {
    if (!closed) closeSync(fd);
    rmSync(destPath, { force: true });
    throw error;
  }
}
