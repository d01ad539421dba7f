/**
 * saveNpy() and loadNpy(): numpy's .npy format, so arrays move between
 * memjob and Python without conversion. Saving is atomic (atomic-file.ts:
 * a temp file beside the target, fsynced, renamed over it) and streams from
 * the array's own memory, never copying it whole. Loading checks the header
 * against the file's size before it allocates anything, and can map the data
 * (mmapMode) instead of reading it. docs/npy.md describes what is supported.
 */
import { closeSync, constants as fsConstants, fsync, ftruncate, ftruncateSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile, readFully, readFullySync } from '../system/regular-file.js';
import { dtypeInfo, dtypeOfArray, type TypedArray } from '../memmap/dtype.js';
import { contiguity, type Order } from '../memmap/layout.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray, stringArray } from '../memmap/ndarray.js';
import { memmap } from '../memmap/open.js';
import { isUnwrittenFileRange } from '../memmap/file-mapping.js';
import { maxViewBytes } from '../native.js';
import { createTempBeside, writeAll, writeAllSync } from './atomic-file.js';
import {
  NUMPY_LOADABLE_DIMS,
  PREFIX_MAX_BYTES,
  decodeHeader,
  descrOf,
  formatError,
  formatHeader,
  parseHeader,
  parseMaxHeaderSize,
  parsePrefix,
  type NpyContext,
  type NpyHeader,
} from './npy-header.js';

export interface LoadNpyOptions {
  /**
   * Map the data with memmap() in this mode instead of reading it into
   * memory ('r', 'r+', 'c'). 'w+' acts as 'r+': loading never truncates or
   * zeroes a file. null or undefined (numpy's None) reads into memory.
   */
  mmapMode?: 'r' | 'r+' | 'c' | 'w+' | null;
  /**
   * The most characters the header may have, as numpy's `max_header_size`
   * (default 10,000, numpy's default). A larger header is refused with
   * MEMJOB_ERR_FORMAT; raise this only for a file you trust. Headers over
   * 16 MiB are refused whatever it says.
   */
  maxHeaderSize?: number;
}

const fsyncAsync = promisify(fsync);
const ftruncateAsync = promisify(ftruncate);

/**
 * Writes `array` to `filename` as a .npy file (format 1.0; 2.0 only for a
 * header over 64 KiB), atomically: see atomic-file.ts.
 */
export function saveNpySync(filename: string | URL, array: TypedArray | NDArray | Memmap | readonly string[]): void {
  const where = 'saveNpySync';
  const path = parseFilename(filename, where);
  const source = sourceOf(array, where);
  const temp = createTempBeside(path, where);
  try {
    let position = writeAllSync(temp.fd, source.header, 0);
    for (const block of source.blocks) {
      position = isZeroBlock(block) ? position + block.length : writeAllSync(temp.fd, block, position);
    }
    // Zero blocks skipped at the end are holes too: only the file's size makes them part of it.
    ftruncateSync(temp.fd, position);
    temp.commit();
  } catch (error) {
    temp.abort();
    throw asMemjobError(where, error, path);
  }
}

/** saveNpySync() with the writes and the fsync done in Node's thread pool. */
export async function saveNpy(filename: string | URL, array: TypedArray | NDArray | Memmap | readonly string[]): Promise<void> {
  const where = 'saveNpy';
  const path = parseFilename(filename, where);
  const source = sourceOf(array, where);
  const temp = createTempBeside(path, where);
  try {
    let position = await writeAll(temp.fd, source.header, 0);
    for (const block of source.blocks) {
      position = isZeroBlock(block) ? position + block.length : await writeAll(temp.fd, block, position);
    }
    await ftruncateAsync(temp.fd, position);
    // commit() fsyncs again, on the event loop; by then nothing is left to flush.
    await fsyncAsync(temp.fd);
    temp.commit();
  } catch (error) {
    temp.abort();
    throw asMemjobError(where, error, path);
  }
}

/**
 * Reads a .npy file: into memory as an owned NDArray, or, with `mmapMode`,
 * as a Memmap over the file's data. An empty array cannot be mapped, so with
 * `mmapMode` it comes back as an empty in-memory NDArray.
 */
export function loadNpySync(filename: string | URL, options?: LoadNpyOptions & { mmapMode?: null }): NDArray;
export function loadNpySync(filename: string | URL, options: LoadNpyOptions): NDArray | Memmap;
export function loadNpySync(filename: string | URL, options: LoadNpyOptions = {}): NDArray | Memmap {
  const where = 'loadNpySync';
  const path = parseFilename(filename, where);
  const { mmapMode, maxHeaderSize } = parseLoadOptions(options, where);
  const ctx: NpyContext = { where, path };
  const { fd, size: fileSize } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const prefix = parsePrefix(readExactSync(fd, Math.min(fileSize, PREFIX_MAX_BYTES), 0, ctx), fileSize, ctx, maxHeaderSize);
    const text = decodeHeader(readExactSync(fd, prefix.headerBytes, prefix.headerStart, ctx), prefix.encoding, ctx);
    const header = parseHeader(text, prefix.headerStart + prefix.headerBytes, fileSize, ctx, { maxHeaderSize, version: prefix.version });
    // An empty array has no bytes to map (nor to swap): it is read into memory whatever its byte order.
    if (mmapMode !== undefined && header.size > 0) {
      checkMappable(header, ctx);
      return mapData(header, mmapMode, ctx);
    }
    const data = allocate(header, ctx);
    readIntoSync(fd, bytesOf(data), header.dataOffset, ctx);
    return toNDArray(data, header);
  } catch (error) {
    throw asMemjobError(where, error, path);
  } finally {
    closeSync(fd);
  }
}

/** loadNpySync() with asynchronous file I/O (mapping itself is always synchronous). */
export async function loadNpy(filename: string | URL, options?: LoadNpyOptions & { mmapMode?: null }): Promise<NDArray>;
export async function loadNpy(filename: string | URL, options: LoadNpyOptions): Promise<NDArray | Memmap>;
export async function loadNpy(filename: string | URL, options: LoadNpyOptions = {}): Promise<NDArray | Memmap> {
  const where = 'loadNpy';
  const path = parseFilename(filename, where);
  const { mmapMode, maxHeaderSize } = parseLoadOptions(options, where);
  const ctx: NpyContext = { where, path };
  // Opening and fstat are quick; the reads, which may be large, go to the thread pool.
  const { fd, size: fileSize } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const prefix = parsePrefix(await readExact(fd, Math.min(fileSize, PREFIX_MAX_BYTES), 0, ctx), fileSize, ctx, maxHeaderSize);
    const text = decodeHeader(await readExact(fd, prefix.headerBytes, prefix.headerStart, ctx), prefix.encoding, ctx);
    const header = parseHeader(text, prefix.headerStart + prefix.headerBytes, fileSize, ctx, { maxHeaderSize, version: prefix.version });
    if (mmapMode !== undefined && header.size > 0) {
      checkMappable(header, ctx);
      return mapData(header, mmapMode, ctx);
    }
    const data = allocate(header, ctx);
    await readInto(fd, bytesOf(data), header.dataOffset, ctx);
    return toNDArray(data, header);
  } catch (error) {
    throw asMemjobError(where, error, path);
  } finally {
    closeSync(fd);
  }
}

// ---- saving ----

export interface SaveSource {
  header: Uint8Array;
  /** The data bytes in file order, as views on the array's own memory. */
  blocks: Iterable<Uint8Array>;
}

export function sourceOf(array: unknown, where: string): SaveSource {
  const ndim = array instanceof Memmap || array instanceof NDArray ? array.shape.length : 1;
  if (ndim > NUMPY_LOADABLE_DIMS) {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${where}: expected "array" to have at most ${NUMPY_LOADABLE_DIMS} dimensions, the most numpy 1.x can load, ` +
        `received an array of ${ndim}`,
    );
  }
  if (array instanceof Memmap) {
    if (array.closed) {
      throw new MemjobError(ErrorCodes.CLOSED, `${where}: the Memmap of '${array.filename}' was closed; open it again with memmap()`, {
        path: array.filename,
      });
    }
    const layout = contiguity(array.shape, array.strides, array.itemsize);
    // Views only slice axis 0, and an F-order array's rows are spread over
    // the whole file, so the only window on its bytes in file order is `data`.
    if (layout === 'F' && array.nbytes > maxViewBytes) {
      throw new MemjobError(
        ErrorCodes.VIEW_TOO_LARGE,
        `${where}: cannot save an F-order Memmap of ${array.nbytes} bytes: its rows are not contiguous (views ` +
          `slice only axis 0), and one view holds at most ${maxViewBytes} bytes`,
        { path: array.filename },
      );
    }
    return { header: formatHeader(descrOf(array.dtype), layout === 'F', array.shape), blocks: memmapBlocks(array, layout) };
  }
  if (array instanceof NDArray) {
    // As numpy: fortran_order True only when the layout is not also C order
    // (a 1-d array, or one with at most one axis longer than 1, is both).
    const fortran = contiguity(array.shape, array.strides, array.itemsize) === 'F';
    return { header: formatHeader(descrOf(array.dtype), fortran, array.shape), blocks: [bytesOf(array.data)] };
  }
  // A list of strings is saved as numpy saves one: dtype '<U<n>', n its longest string.
  if (Array.isArray(array) && array.every((item) => typeof item === 'string')) return sourceOf(stringArray(array), where);
  const dtype = ArrayBuffer.isView(array) ? dtypeOfArray(array as TypedArray) : undefined;
  if (dtype === undefined) throw invalidArg(where, 'array', 'a TypedArray, an NDArray, a Memmap or an array of strings', array);
  const data = array as TypedArray;
  return { header: formatHeader(descrOf(dtype), false, [data.length]), blocks: [bytesOf(data)] };
}

/**
 * A Memmap's bytes in file order. Contiguous C views stream as row blocks
 * straight from the mapping; a strided view is copied to C order one block
 * (at most chunks()' 64 MiB) at a time, never as a whole.
 */
function* memmapBlocks(array: Memmap, layout: Order | null): Generator<Uint8Array, void, undefined> {
  if (array.size === 0) return;
  if (layout === 'F') {
    yield bytesOf(array.data);
    return;
  }
  for (const block of array.chunks()) yield bytesOf(layout === 'C' ? block.data : block.toArray());
}

/**
 * A block of zeros is not written but left as a hole (as cp --sparse=auto):
 * the temp file is new, so a hole reads back as zeros. A sparse 'w+' or 'r+'
 * Memmap's holes are found from its file (SEEK_DATA) without reading their
 * pages: 4 GiB of holes saved in 0.2 s instead of 6 s here.
 */
const ZERO_RUN = new Uint8Array(1024 ** 2);

/** A block of zeros; one over a hole of a sparse memmap's file is known without reading (faulting in) its pages. */
function isZeroBlock(bytes: Uint8Array): boolean {
  return isUnwrittenFileRange(bytes) || isAllZero(bytes);
}

function isAllZero(bytes: Uint8Array): boolean {
  // Buffer.compare is memcmp: measured ~6x faster on 4 and 64 MiB blocks than a
  // BigUint64Array word loop, and it needs no 8-byte alignment.
  for (let at = 0; at < bytes.length; at += ZERO_RUN.length) {
    const piece = bytes.subarray(at, at + ZERO_RUN.length);
    if (Buffer.compare(piece, ZERO_RUN.subarray(0, piece.length)) !== 0) return false;
  }
  return true;
}

// ---- loading ----

type NpyMmapMode = NonNullable<LoadNpyOptions['mmapMode']>;

function parseLoadOptions(options: unknown, where: string): { mmapMode: NpyMmapMode | undefined; maxHeaderSize: number } {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const mode = (options as LoadNpyOptions).mmapMode ?? undefined;
  if (mode !== undefined && mode !== 'r' && mode !== 'r+' && mode !== 'c' && mode !== 'w+') {
    throw invalidArg(where, 'mmapMode', "one of 'r', 'r+', 'c', 'w+', null or undefined", mode);
  }
  return { mmapMode: mode, maxHeaderSize: parseMaxHeaderSize((options as LoadNpyOptions).maxHeaderSize, where) };
}

function checkMappable(header: NpyHeader, ctx: NpyContext): void {
  if (!header.swap) return;
  const order = header.descr.startsWith('>') ? 'big-endian' : 'little-endian';
  throw new MemjobError(
    ErrorCodes.BYTE_ORDER,
    `${ctx.where}: '${ctx.path}' stores '${header.descr}', which is ${order}; mapped, its elements would read as ` +
      "wrong numbers on this machine. Load it without mmapMode, which converts it to this machine's byte order in memory",
    { path: ctx.path },
  );
}

function mapData(header: NpyHeader, mode: NpyMmapMode, ctx: NpyContext): Memmap {
  return memmap(ctx.path, {
    dtype: header.dtype,
    shape: header.shape,
    order: header.fortranOrder ? 'F' : 'C',
    offset: header.dataOffset,
    mode: mode === 'w+' ? 'r+' : mode,
  });
}

/** The TypedArray for the data; parseHeader has already checked that the file holds that many bytes. */
export function allocate(header: NpyHeader, ctx: NpyContext): TypedArray {
  if (header.dataBytes > maxViewBytes) {
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `${ctx.where}: the array in '${ctx.path}' is ${header.dataBytes} bytes, more than the ${maxViewBytes} one ` +
        "ArrayBuffer can hold; map it instead with { mmapMode: 'r' }",
      { path: ctx.path },
    );
  }
  try {
    const { arrayType, lanes } = dtypeInfo(header.dtype);
    return new arrayType(header.size * lanes);
  } catch (cause) {
    throw new MemjobError(
      'ENOMEM',
      `${ctx.where}: could not allocate ${header.dataBytes} bytes for the array in '${ctx.path}'; map it instead with { mmapMode: 'r' }`,
      { path: ctx.path, cause },
    );
  }
}

export function toNDArray(data: TypedArray, header: NpyHeader): NDArray {
  // Per slot: each float of a complex, each code point of a 'U' string.
  if (header.swap) swapBytes(bytesOf(data), data.BYTES_PER_ELEMENT);
  return new NDArray(data as never, { dtype: header.dtype, shape: header.shape, order: header.fortranOrder ? 'F' : 'C' });
}

/** Reverses the bytes of each element in place (Buffer's swap16/32/64 work on the same memory). */
function swapBytes(bytes: Uint8Array, itemsize: number): void {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (itemsize === 2) buffer.swap16();
  else if (itemsize === 4) buffer.swap32();
  else if (itemsize === 8) buffer.swap64();
}

function readExactSync(fd: number, length: number, position: number, ctx: NpyContext): Uint8Array {
  const bytes = new Uint8Array(length);
  readIntoSync(fd, bytes, position, ctx);
  return bytes;
}

async function readExact(fd: number, length: number, position: number, ctx: NpyContext): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  await readInto(fd, bytes, position, ctx);
  return bytes;
}

function readIntoSync(fd: number, bytes: Uint8Array, position: number, ctx: NpyContext): void {
  const read = readFullySync(fd, bytes, position);
  if (read < bytes.length) throw shrunk(position + read, ctx);
}

async function readInto(fd: number, bytes: Uint8Array, position: number, ctx: NpyContext): Promise<void> {
  const read = await readFully(fd, bytes, position);
  if (read < bytes.length) throw shrunk(position + read, ctx);
}

// Sizes were checked against fstat, so running out of bytes means the file shrank while being read.
function shrunk(at: number, ctx: NpyContext): MemjobError {
  return formatError(ctx, `the file ended at byte ${at} while being read (was it truncated meanwhile?)`);
}

// ---- shared ----

function bytesOf(array: TypedArray): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function asMemjobError(where: string, error: unknown, path: string): MemjobError {
  return error instanceof MemjobError ? error : systemError(where, error, path);
}

