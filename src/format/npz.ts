/**
 * loadNpz() and loadNpzSync(): numpy's .npz, a zip archive of .npy members
 * named `<key>.npy`. Members stored uncompressed (np.savez) can be mapped
 * where they lie inside the archive, zero-copy (numpy itself reads them);
 * deflated members (np.savez_compressed) are inflated into memory within a
 * budget (maxDecompressedBytes). Archives are untrusted: zip-read.ts checks
 * the directory, this file checks each member's .npy header against the
 * member's size before anything is mapped or allocated. Saving is in
 * npz-save.ts.
 *
 * Each operation is one generator that yields its I/O requests; a sync and
 * an async driver (runSync, runAsync) answer them, so the sync and async
 * forms share every check.
 */
import { closeSync, constants as fsConstants } from 'node:fs';
import { promisify } from 'node:util';
import { crc32, inflateRaw, inflateRawSync } from 'node:zlib';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile, readFully, readFullySync } from '../system/regular-file.js';
import { Memmap } from '../memmap/memmap.js';
import type { NDArray } from '../memmap/ndarray.js';
import { memmap } from '../memmap/open.js';
import { maxViewBytes } from '../native.js';
import { PREFIX_MAX_BYTES, decodeHeader, parseHeader, parseMaxHeaderSize, parsePrefix, type NpyContext } from './npy-header.js';
import { allocate, toNDArray } from './npy.js';
import { listZipMembers, listZipMembersSync, zipError, type ZipContext, type ZipMember } from './zip-read.js';

export interface LoadNpzOptions {
  /**
   * Map each stored (np.savez) member in this mode instead of reading it:
   * 'r' read-only or 'c' copy-on-write ('r+' is refused: a write would break
   * the member's CRC). Deflated members, empty arrays and members in the
   * other byte order are read into memory. null or undefined reads all.
   */
  mmapMode?: 'r' | 'c' | null;
  /** The longest .npy header accepted in a member, in characters, as numpy's max_header_size. Default 10,000. */
  maxHeaderSize?: number;
  /** Deflated members may inflate to at most this many bytes in total (a zip bomb stops here). Default 2^31 - 1. */
  maxDecompressedBytes?: number;
}

const DEFAULT_MAX_DECOMPRESSED = 2 ** 31 - 1;
/** zlib's output pieces while inflating: its 16 KiB default made inflating 256 MiB ~20% slower here. */
const INFLATE_CHUNK = 1024 ** 2;
/** Read at the start of each stored member: numpy's headers take 128 bytes of it. */
const HEAD_BYTES = 4096;

/** A read of the archive (into `into` when given, else into a new array), or an inflate of a member's bytes. */
type LoadRequest = { read: [length: number, position: number]; into?: Uint8Array } | { inflate: Uint8Array; max: number };

const inflateAsync = promisify(inflateRaw);

/**
 * Reads a .npz file into a record (a plain object with a null prototype, in
 * archive order) from key (the member name without '.npy') to array. A name
 * that appears twice keeps its last member, as numpy.
 */
export function loadNpzSync(filename: string | URL, options?: LoadNpzOptions & { mmapMode?: null }): Record<string, NDArray>;
export function loadNpzSync(filename: string | URL, options: LoadNpzOptions): Record<string, NDArray | Memmap>;
export function loadNpzSync(filename: string | URL, options: LoadNpzOptions = {}): Record<string, NDArray | Memmap> {
  const where = 'loadNpzSync';
  const args = parseLoadArgs(filename, options, where);
  const { fd, size } = openRegularFile(args.path, fsConstants.O_RDONLY, where);
  try {
    const members = listZipMembersSync(fd, size, args);
    return runSync(loadMembers(members, args), (request) =>
      'read' in request ? readExactSync(fd, request, args) : inflateChecked(() => inflateRawSync(request.inflate, { maxOutputLength: request.max, chunkSize: INFLATE_CHUNK }), args),
    );
  } catch (error) {
    throw error instanceof MemjobError ? error : systemError(where, error, args.path);
  } finally {
    closeSync(fd);
  }
}

/** loadNpzSync() with the reads and the inflating done in Node's thread pool (mapping itself is synchronous). */
export async function loadNpz(filename: string | URL, options?: LoadNpzOptions & { mmapMode?: null }): Promise<Record<string, NDArray>>;
export async function loadNpz(filename: string | URL, options: LoadNpzOptions): Promise<Record<string, NDArray | Memmap>>;
export async function loadNpz(filename: string | URL, options: LoadNpzOptions = {}): Promise<Record<string, NDArray | Memmap>> {
  const where = 'loadNpz';
  const args = parseLoadArgs(filename, options, where);
  const { fd, size } = openRegularFile(args.path, fsConstants.O_RDONLY, where);
  try {
    const members = await listZipMembers(fd, size, args);
    return await runAsync(loadMembers(members, args), async (request) =>
      'read' in request ? readExact(fd, request, args) : inflateChecked(await settle(inflateAsync(request.inflate, { maxOutputLength: request.max, chunkSize: INFLATE_CHUNK })), args),
    );
  } catch (error) {
    throw error instanceof MemjobError ? error : systemError(where, error, args.path);
  } finally {
    closeSync(fd);
  }
}

/** Answers each request of `steps` in turn; a failed answer is thrown into the generator, so its finally blocks run. */
export function runSync<Q, A, R>(steps: Generator<Q, R, A>, answer: (request: Q) => A): R {
  let step = steps.next();
  while (step.done !== true) {
    let reply: A;
    try {
      reply = answer(step.value);
    } catch (error) {
      step = steps.throw(error);
      continue;
    }
    step = steps.next(reply);
  }
  return step.value;
}

export async function runAsync<Q, A, R>(steps: Generator<Q, R, A>, answer: (request: Q) => Promise<A>): Promise<R> {
  let step = steps.next();
  while (step.done !== true) {
    let reply: A;
    try {
      reply = await answer(step.value);
    } catch (error) {
      step = steps.throw(error);
      continue;
    }
    step = steps.next(reply);
  }
  return step.value;
}

// ---- loading ----

interface LoadArgs extends ZipContext {
  mmapMode: 'r' | 'c' | undefined;
  maxHeaderSize: number;
  maxDecompressedBytes: number;
}

function parseLoadArgs(filename: string | URL, options: unknown, where: string): LoadArgs {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const path = parseFilename(filename, where);
  const { mmapMode, maxDecompressedBytes = DEFAULT_MAX_DECOMPRESSED } = options as LoadNpzOptions;
  const maxHeaderSize = parseMaxHeaderSize((options as LoadNpzOptions).maxHeaderSize, where);
  const mode = mmapMode ?? undefined;
  if (mode !== undefined && mode !== 'r' && mode !== 'c') {
    const why = mode === 'r+' || mode === 'w+' ? " (writing into a member would leave its CRC wrong; extract it with saveNpy to write it)" : '';
    throw invalidArg(where, 'mmapMode', `'r', 'c', null or undefined${why}`, mode);
  }
  if (!(Number.isSafeInteger(maxDecompressedBytes) && maxDecompressedBytes > 0)) {
    throw invalidArg(where, 'maxDecompressedBytes', 'a positive whole number of bytes', maxDecompressedBytes);
  }
  return { where, path, mmapMode: mode, maxHeaderSize, maxDecompressedBytes };
}

function* loadMembers(members: readonly ZipMember[], args: LoadArgs): Generator<LoadRequest, Record<string, NDArray | Memmap>, Uint8Array> {
  const record = Object.create(null) as Record<string, NDArray | Memmap>;
  let budget = args.maxDecompressedBytes;
  let copied = 0;
  let complete = false;
  try {
    for (const member of members) {
      const key = member.name.endsWith('.npy') ? member.name.slice(0, -4) : member.name;
      // A repeated name: the last member wins, and the mapping of an earlier one is released now.
      const earlier = record[key];
      if (earlier instanceof Memmap) earlier.close();
      // formatError() quotes ctx.path: this makes its messages read "'a.npz' member 'x.npy' is not a valid .npy file".
      const ctx: NpyContext = { where: args.where, path: `${args.path}' member '${member.name}` };
      const size = member.uncompressedSize;
      let bytes: Uint8Array | undefined; // the whole member, when inflated
      let read: (length: number, at: number, into?: Uint8Array) => Generator<LoadRequest, Uint8Array, Uint8Array>;
      if (member.method === 8) {
        if (size > budget) throw zipError(args, `member '${member.name}' declares ${size} bytes once inflated, more than the ${budget} left of maxDecompressedBytes (${args.maxDecompressedBytes})`);
        // Deflate never grows data by more than a few bytes per 16 KiB block: a longer stream is not an honest one.
        if (member.compressedSize > size + Math.floor(size / 256) + 4096) throw zipError(args, `member '${member.name}' has ${member.compressedSize} compressed bytes for ${size} inflated ones`);
        budget -= size;
        const inflated = yield { inflate: yield { read: [member.compressedSize, member.dataStart] }, max: Math.max(1, size) };
        if (inflated.length !== size) throw zipError(args, `member '${member.name}' inflates to ${inflated.length} bytes; expected ${size} (its declared size)`);
        if (crc32(inflated) !== member.crc32) throw zipError(args, `member '${member.name}' fails its CRC-32 check (corrupt data)`);
        const whole = (bytes = inflated);
        read = function* (length, at) {
          return whole.subarray(at, at + length);
        };
      } else {
        // One read for the prefix, the header and, in a small member, the data: one system call per member, not three.
        const head = yield { read: [Math.min(size, HEAD_BYTES), member.dataStart] };
        read = function* (length, at, into) {
          if (at + length <= head.length) return head.subarray(at, at + length);
          return yield { read: [length, member.dataStart + at], into };
        };
      }
      const first = yield* read(Math.min(size, PREFIX_MAX_BYTES), 0);
      const parsed = guard(args, () => parsePrefix(first, size, ctx, args.maxHeaderSize));
      const headerBytes = yield* read(parsed.headerBytes, parsed.headerStart);
      const rules = { maxHeaderSize: args.maxHeaderSize, version: parsed.version };
      const header = guard(args, () => parseHeader(decodeHeader(headerBytes, parsed.encoding, ctx), parsed.headerStart + parsed.headerBytes, size, ctx, rules));
      if (args.mmapMode !== undefined && bytes === undefined && header.size > 0 && !header.swap) {
        record[key] = memmap(args.path, {
          mode: args.mmapMode,
          dtype: header.dtype,
          shape: header.shape,
          order: header.fortranOrder ? 'F' : 'C',
          offset: member.dataStart + header.dataOffset,
        });
        continue;
      }
      if (args.mmapMode !== undefined && bytes === undefined && header.size > 0) copied++;
      const data = guard(args, () => allocate(header, ctx));
      const target = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const got = yield* read(header.dataBytes, header.dataOffset, target);
      if (got !== target) target.set(got);
      // As zipfile, the CRC is checked where the reader reaches the member's end: here when the data fills it.
      if (bytes === undefined && header.dataOffset + header.dataBytes === size) {
        const crc = crcOf(target, crcOf(headerBytes, crcOf(first.subarray(0, parsed.headerStart), 0)));
        if (crc !== member.crc32) throw zipError(args, `member '${member.name}' fails its CRC-32 check (corrupt data)`);
      }
      record[key] = toNDArray(data, header);
    }
    complete = true;
  } finally {
    // On any failure (a bad member, a failed read), the members mapped so far are unmapped at once.
    if (!complete) for (const value of Object.values(record)) if (value instanceof Memmap) value.close();
  }
  if (copied > 0) {
    process.emitWarning(`'${args.path}': ${copied} member(s) in the other byte order could not be mapped and were read into memory`, {
      code: 'MEMJOB_NPZ_COPIED',
      detail: 'Mapped, their elements would read as wrong numbers on this machine.',
    });
  }
  return record;
}

/** zlib.crc32 continued from `previous`; Node 20 returns 0 for an empty array over an empty ArrayBuffer, whatever `previous` is. */
function crcOf(bytes: Uint8Array, previous: number): number {
  return bytes.length === 0 ? previous : crc32(bytes, previous);
}

/** Runs a .npy header check for a member; its errors keep their message but name the archive as their path. */
function guard<T>(args: LoadArgs, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof MemjobError && error.path !== args.path) throw new MemjobError(error.code, error.message, { path: args.path, cause: error });
    throw error;
  }
}

function inflateChecked(inflate: () => Uint8Array, ctx: ZipContext): Uint8Array {
  try {
    return inflate();
  } catch (error) {
    const tooLarge = (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError;
    throw zipError(ctx, tooLarge ? 'a member inflates to more bytes than it declares (a zip bomb?)' : `a member's deflate stream is broken: ${(error as Error).message}`);
  }
}

/** A promise's outcome as a function that returns or throws it, for inflateChecked. */
async function settle<T>(promise: Promise<T>): Promise<() => T> {
  try {
    const value = await promise;
    return () => value;
  } catch (error) {
    return () => {
      throw error;
    };
  }
}

function readExactSync(fd: number, { read: [length, position], into }: { read: [number, number]; into?: Uint8Array }, ctx: ZipContext): Uint8Array {
  const bytes = into ?? allocateRead(length, ctx);
  if (readFullySync(fd, bytes, position) < length) throw shrunk(ctx);
  return bytes;
}

async function readExact(fd: number, { read: [length, position], into }: { read: [number, number]; into?: Uint8Array }, ctx: ZipContext): Promise<Uint8Array> {
  const bytes = into ?? allocateRead(length, ctx);
  if ((await readFully(fd, bytes, position)) < length) throw shrunk(ctx);
  return bytes;
}

function allocateRead(length: number, ctx: ZipContext): Uint8Array {
  if (length > maxViewBytes) throw new MemjobError(ErrorCodes.VIEW_TOO_LARGE, `${ctx.where}: expected a member of at most ${maxViewBytes} bytes to read, received ${length} ('${ctx.path}')`, { path: ctx.path });
  return new Uint8Array(length);
}

// Sizes were checked against fstat, so running out of bytes means the file shrank while being read.
function shrunk(ctx: ZipContext): MemjobError {
  return zipError(ctx, 'the file ended early while being read (was it truncated meanwhile?)');
}
