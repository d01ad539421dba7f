/**
 * load(filename, { mmapMode }): reads a dump back. With mmapMode every array
 * is a view on the file itself (zero copy); without it every array is read
 * into memory the caller owns. Nothing in the file is trusted: the header,
 * the structure and every array descriptor are checked before anything is
 * mapped or allocated, and no code from the file ever runs.
 */
import { closeSync, constants as fsConstants, readFileSync, readSync } from 'node:fs';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile } from '../system/regular-file.js';
import { dtypeInfo } from '../memmap/dtype.js';
import { FileMapping } from '../memmap/file-mapping.js';
import { contiguousStrides } from '../memmap/layout.js';
import { Memmap, type MemmapMode } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { maxViewBytes } from '../native.js';
import { detectMethod, type CompressMethod } from './compression.js';
import {
  asFormatError,
  decompressOrFail,
  openCompressedDump,
  parseBytes,
  readExactly,
  readExactlySync,
  readHeadSync,
  readLayoutSync,
  readPiecesOrFail,
  refuseUnviewable,
  skipTo,
  truncated,
  undecompressable,
  type Parsed,
} from './dump-reader.js';
import { hasMagic } from './header.js';
import { joblibLookalike } from './joblib-compression.js';
import type { StreamReader } from './stream-reader.js';
import { decodeValue, elementCount, type ArrayDescriptor } from './structure.js';

export type LoadMmapMode = 'r' | 'r+' | 'c' | 'w+';

export interface LoadOptions {
  /** Map arrays instead of reading them: 'r' read-only, 'r+' read-write, 'c' copy-on-write, 'w+' as 'r+'. */
  mmapMode?: LoadMmapMode | null;
}

const modes: readonly string[] = ['r', 'r+', 'c', 'w+'];
/** Larger arrays from a compressed stream are gathered in pieces first, so a lying header cannot make load allocate them up front. */
const PREALLOCATE_LIMIT = 64 * 1024 * 1024;

function parseArgs(filename: unknown, options: unknown, where: string): { path: string; mmapMode: LoadMmapMode | null } {
  const path = parseFilename(filename, where);
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const mmapMode = (options as LoadOptions).mmapMode ?? null;
  if (mmapMode !== null && !modes.includes(mmapMode)) throw invalidArg(where, 'mmapMode', "one of 'r', 'r+', 'c', 'w+' or null", mmapMode);
  return { path, mmapMode };
}

/** The value a descriptor stands for, over `buffer` (which holds exactly its bytes). */
function arrayOver(d: ArrayDescriptor, buffer: ArrayBuffer): unknown {
  // TypedArray slots: a complex element takes two, an 'S<n>'/'U<n>' one n.
  const length = elementCount(d) * dtypeInfo(d.dtype).lanes;
  switch (d.kind) {
    case 'ArrayBuffer':
      return buffer;
    case 'DataView':
      return new DataView(buffer);
    case 'Buffer':
      return Buffer.from(buffer, 0, d.byteLength);
    case 'Uint8ClampedArray':
      return new Uint8ClampedArray(buffer, 0, length);
    case 'NDArray':
    case 'Memmap': // a Memmap read into memory comes back as an NDArray, as a numpy memmap loads as an ndarray
      return new NDArray(new (dtypeInfo(d.dtype).arrayType)(buffer, 0, length), { shape: d.shape, order: d.order, dtype: d.dtype });
    default:
      return new (dtypeInfo(d.dtype).arrayType)(buffer, 0, length);
  }
}

/** Memory for one array read into memory; a dumped Memmap may be too large for that. */
function allocate(d: ArrayDescriptor, path: string): ArrayBuffer {
  if (d.byteLength > maxViewBytes) {
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `load: '${path}' holds an array of ${d.byteLength} bytes, more than one ArrayBuffer can hold in this Node; load it with { mmapMode: 'r' }`,
      { path },
    );
  }
  return new ArrayBuffer(d.byteLength);
}

function build(parsed: Parsed, arrays: Map<number, unknown>, path: string): unknown {
  try {
    return decodeValue(parsed.tree, parsed.segments, (d) => arrays.get(d.segment));
  } catch (error) {
    throw asFormatError(error, path);
  }
}

/**
 * Where the bytes of one array come from: a buffer the source filled, or
 * (mapped) a view on the file or a Memmap. `offset` is where the array's
 * bytes start in the (decompressed) dump.
 */
type ArraySource = (d: ArrayDescriptor, offset: number) => ArrayBuffer | Memmap;
type AsyncArraySource = (d: ArrayDescriptor, offset: number) => Promise<ArrayBuffer>;

/**
 * Every array of `parsed`, by segment, from `source`: the one loop behind
 * every way load reads a dump (mapped, read from a file, copied out of
 * decompressed bytes, streamed). Arrays are read in file order, which a
 * stream needs (it only goes forward) and a disk prefers; an async source is
 * awaited one array at a time.
 */
function readArrays(parsed: Parsed, source: ArraySource): Map<number, unknown>;
function readArrays(parsed: Parsed, source: AsyncArraySource): Promise<Map<number, unknown>>;
function readArrays(parsed: Parsed, source: ArraySource | AsyncArraySource): Map<number, unknown> | Promise<Map<number, unknown>> {
  const { header, segments } = parsed;
  const inOrder = [...parsed.descriptors].sort((a, b) => segments[a.segment]!.offset - segments[b.segment]!.offset);
  const arrays = new Map<number, unknown>();
  const keep = (d: ArrayDescriptor, got: ArrayBuffer | Memmap) => arrays.set(d.segment, got instanceof Memmap ? got : arrayOver(d, got));
  const from = (i: number): Map<number, unknown> | Promise<Map<number, unknown>> => {
    for (; i < inOrder.length; i++) {
      const d = inOrder[i]!;
      const got = source(d, header.dataOffset + segments[d.segment]!.offset);
      if (got instanceof Promise) {
        return got.then((bytes) => {
          keep(d, bytes);
          return from(i + 1);
        });
      }
      keep(d, got);
    }
    return arrays;
  };
  return from(0);
}

/** Arrays read into memory the caller owns: `fill` copies each one's bytes into the buffer allocated for it. */
function copied(path: string, fill: (target: Uint8Array, offset: number) => void): ArraySource {
  return (d, offset) => {
    const buffer = allocate(d, path);
    fill(new Uint8Array(buffer), offset);
    return buffer;
  };
}

/** Arrays read into memory with the reads done in Node's thread pool. */
function copiedAsync(fd: number, path: string): AsyncArraySource {
  return async (d, offset) => {
    const buffer = allocate(d, path);
    await readExactly(fd, new Uint8Array(buffer), offset, path);
    return buffer;
  };
}

/**
 * Arrays as views on the file. Plain arrays share one mapping of the data
 * region (they have no close()); each Memmap gets its own, so closing one
 * never detaches the others. Every mapping made is pushed to `mappings`.
 */
function mapped(fd: number, path: string, parsed: Parsed, mode: LoadMmapMode, mappings: FileMapping[] = []): ArraySource {
  const memmapMode: MemmapMode = mode === 'w+' ? 'r+' : mode;
  const shared = memmapMode === 'r+';
  let common: FileMapping | undefined;
  return (d, offset) => {
    if (d.byteLength === 0) return new ArrayBuffer(0);
    if (d.kind === 'Memmap') {
      const mapping = new FileMapping(fd, path, offset, d.byteLength, shared);
      mappings.push(mapping);
      const strides = contiguousStrides(d.shape, dtypeInfo(d.dtype).itemsize, d.order);
      return Memmap.create({ mapping, mode: memmapMode, dtype: d.dtype, shape: d.shape, strides, offset, order: d.order });
    }
    if (common === undefined) {
      common = new FileMapping(fd, path, parsed.header.dataOffset, parsed.header.dataLength, shared);
      mappings.push(common);
    }
    return common.view(offset, d.byteLength);
  };
}

/** Arrays from a decompressing stream, which the caller has left before the first array. */
function streamed(reader: StreamReader, path: string): AsyncArraySource {
  return async (d, offset) => {
    await skipTo(reader, offset, path);
    if (d.byteLength <= PREALLOCATE_LIMIT) {
      const buffer = allocate(d, path);
      if (!(await reader.readInto(new Uint8Array(buffer)))) throw truncated(path, reader.position);
      return buffer;
    }
    const pieces = await readPiecesOrFail(reader, d.byteLength, path);
    const buffer = allocate(d, path);
    const target = new Uint8Array(buffer);
    let at = 0;
    for (const piece of pieces) {
      target.set(piece, at);
      at += piece.length;
    }
    return buffer;
  };
}

/**
 * A file that is no dump but looks like a joblib.dump file (a pickle of protocol 2 to 5, or one of
 * joblib's compressions of one) gets its error with a pointer to loadJoblibSync. load() never reads
 * pickles itself: they come from outside and need the restricted unpickler's allowlist.
 */
function withPickleHint(error: unknown, fd: number): unknown {
  if (!(error instanceof MemjobError) || error.code !== ErrorCodes.FORMAT) return error;
  // A compressed pickle's first bytes show only once inflated, and a deflate block's header takes
  // more than a dump header's bytes: the file's first 4 KiB are read again, on this error path only.
  const start = new Uint8Array(4096);
  let lookalike: string | undefined;
  try {
    lookalike = joblibLookalike(start.subarray(0, readSync(fd, start, 0, start.length, 0)));
  } catch {
    return error;
  }
  if (lookalike === undefined) return error;
  return new MemjobError(error.code, `${error.message}; it starts like ${lookalike}: read it with loadJoblibSync()`, {
    ...(error.path === undefined ? {} : { path: error.path }),
    cause: error,
  });
}

function warnCompressedMmap(path: string): void {
  process.emitWarning(`'${path}' is compressed, so its arrays cannot be memory-mapped; they were read into memory instead`, {
    code: 'MEMJOB_COMPRESSED_MMAP',
    detail: 'Dump without "compress" to load with mmapMode.',
  });
}

function asMemjobError(error: unknown, where: string, path: string): MemjobError {
  return error instanceof MemjobError ? error : systemError(where, error, path);
}

/** Opens for reading, or for writing too when the arrays will be mapped shared ('r+', 'w+'). */
function openDump(path: string, mmapMode: LoadMmapMode | null, where: string): { fd: number; size: number } {
  return openRegularFile(path, mmapMode === 'r+' || mmapMode === 'w+' ? fsConstants.O_RDWR : fsConstants.O_RDONLY, where);
}

/** Parses a whole (decompressed) file held in memory and copies its arrays out. */
function loadFromBytes(bytes: Buffer, path: string): unknown {
  const parsed = parseBytes(bytes, path);
  return build(parsed, readArrays(parsed, copied(path, (target, offset) => target.set(bytes.subarray(offset, offset + target.length)))), path);
}

/**
 * Synchronous load(). A compressed file is decompressed whole in memory (the async load streams it).
 * `loadSync<T>()` is a cast, not a check, as load<T>().
 */
export function loadSync<T = unknown>(filename: string | URL, options?: LoadOptions): T;
export function loadSync(filename: string | URL, options: LoadOptions = {}): unknown {
  const where = 'loadSync';
  const { path, mmapMode } = parseArgs(filename, options, where);
  const { fd, size } = openDump(path, mmapMode, where);
  try {
    const head = readHeadSync(fd, size, path);
    if (!hasMagic(head)) {
      let value: unknown;
      try {
        value = loadFromBytes(decompressOrFail(readFileSync(fd), detectMethod(head), path), path);
      } catch (error) {
        throw withPickleHint(error, fd);
      }
      // Only now: a file that is not a dump at all (it has no magic, and no compression decodes it) gets its error, not this warning.
      if (mmapMode !== null) warnCompressedMmap(path);
      return value;
    }
    const parsed = readLayoutSync(fd, size, head, path);
    const source = mmapMode !== null ? mapped(fd, path, parsed, mmapMode) : copied(path, (target, offset) => readExactlySync(fd, target, offset, path));
    return build(parsed, readArrays(parsed, source), path);
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * @internal For workers: maps an uncompressed dump and also returns the
 * mappings made, so the owner can unmap them all (close()) when a run ends
 * instead of waiting for the garbage collector.
 */
export function loadMappedSync(path: string, mode: LoadMmapMode): { value: unknown; mappings: FileMapping[] } {
  const where = 'load';
  const { fd, size } = openDump(path, mode, where);
  try {
    const parsed = readLayoutSync(fd, size, readHeadSync(fd, size, path), path);
    const mappings: FileMapping[] = [];
    return { value: build(parsed, readArrays(parsed, mapped(fd, path, parsed, mode, mappings)), path), mappings };
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a dump back. Without `mmapMode`, every array is read into memory the
 * caller owns; with it, every array is a view on the file (zero copy), and a
 * dumped Memmap comes back as a Memmap. `load<T>()` types the result as the
 * caller expects it: a cast, not a check (the file is what it is).
 */
export async function load<T = unknown>(filename: string | URL, options?: LoadOptions): Promise<T>;
export async function load(filename: string | URL, options: LoadOptions = {}): Promise<unknown> {
  const where = 'load';
  const { path, mmapMode } = parseArgs(filename, options, where);
  const { fd, size } = openDump(path, mmapMode, where);
  try {
    const head = readHeadSync(fd, size, path);
    if (!hasMagic(head)) {
      const value = await loadCompressedStream(path, size, detectMethod(head)).catch((error: unknown) => {
        throw withPickleHint(error, fd);
      });
      if (mmapMode !== null) warnCompressedMmap(path); // after it proved to be a compressed dump
      return value;
    }
    const parsed = readLayoutSync(fd, size, head, path);
    if (mmapMode !== null) return build(parsed, readArrays(parsed, mapped(fd, path, parsed, mmapMode)), path);
    return build(parsed, await readArrays(parsed, copiedAsync(fd, path)), path);
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
  }
}

async function loadCompressedStream(path: string, size: number, method: CompressMethod): Promise<unknown> {
  const { reader, parsed, close } = await openCompressedDump(path, size, method);
  try {
    refuseUnviewable(parsed, path, method, 'load');
    return build(parsed, await readArrays(parsed, streamed(reader, path)), path);
  } catch (error) {
    throw undecompressable(error, path, method);
  } finally {
    await close();
  }
}
