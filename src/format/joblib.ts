/**
 * loadJoblibSync(): a file written by Python's `joblib.dump`, read without
 * running anything from it. The pickle goes through memjob's restricted
 * unpickler (pickle/unpickler.ts), which rebuilds only the numpy and joblib
 * globals joblib writes for arrays, dtypes and scalars (pickle/joblib-globals.ts)
 * and refuses every other global (MEMJOB_ERR_UNSAFE_PICKLE) before anything
 * is built. Arrays (joblib >= 0.12 writes their bytes inline after each
 * NumpyArrayWrapper) come back as NDArrays in memory.
 *
 * It reads uncompressed files and zlib- or gzip-compressed ones (joblib
 * compresses the whole pickle as one stream). With mmapMode, an uncompressed
 * file's arrays are mapped where they lie in the pickle, as joblib.load(f,
 * mmap_mode) maps them: zero copy. bz2, lzma, xz and lz4, joblib 0.9's side
 * files and dumpJoblib() are issue 14's next steps; until then they are
 * refused with a MemjobError that says so.
 */
import { closeSync, constants as fsConstants, read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { gunzip, gunzipSync, inflate, inflateSync } from 'node:zlib';

const readAsync = promisify(read);
const inflateAsync = promisify(inflate);
const gunzipAsync = promisify(gunzip);
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { dtypeInfo, type TypedArray } from '../memmap/dtype.js';
import { FileMapping } from '../memmap/file-mapping.js';
import { NDArray } from '../memmap/ndarray.js';
import { memmap } from '../memmap/open.js';
import { maxViewBytes } from '../native.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile } from '../system/regular-file.js';
import { dtypeOfDescr } from './npy-header.js';
import { resolveJoblibGlobal, type NdarrayDescription } from './pickle/joblib-globals.js';
import { BufferReader } from './pickle/reader.js';
import { unpickle } from './pickle/unpickler.js';

/** Largest file read whole (V8's largest Buffer); larger files will need the file-backed reader. */
const MAX_FILE_BYTES = 2 ** 31 - 1;

/** The first bytes of the compressed formats joblib writes (numpy_pickle_utils.py): refused for now. */
const COMPRESSED: [string, number[]][] = [
  ['zlib', [0x78]],
  ['gzip', [0x1f, 0x8b]],
  ['bz2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lzma', [0x5d, 0x00]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
];

/**
 * Reads a `joblib.dump` file. Python dicts come back as Maps (their keys may
 * be ints or tuples), lists and tuples as Arrays, bytes as Uint8Arrays, ints
 * as numbers (BigInt beyond 2^53), numpy arrays as NDArrays.
 */
export function loadJoblibSync(filename: string | URL, options: LoadJoblibOptions = {}): unknown {
  const { path, limit, mmapMode } = parseArgs(filename, options, 'loadJoblibSync');
  const where = 'loadJoblibSync';
  if (mmapMode !== null) {
    const mapped = loadMapped(path, mmapMode, where);
    if (mapped !== undefined) return mapped;
    warnCompressedMmap(path);
  }
  let bytes = readWhole(path, where);
  const compressed = compressionOf(bytes);
  if (compressed !== undefined) bytes = decompress(compressed, bytes, limit, path, where);
  return toValues(parse(bytes, path, where), (d) => toNDArray(d, path, where));
}

/**
 * loadJoblibSync, with the file read and decompressed off the main thread.
 * Parsing the pickle itself runs here (it is a walk over the opcodes; the
 * arrays' bytes are copied, not parsed). With mmapMode it maps as the sync
 * version does: only the pickle's opcodes are read.
 */
export async function loadJoblib(filename: string | URL, options: LoadJoblibOptions = {}): Promise<unknown> {
  const { path, limit, mmapMode } = parseArgs(filename, options, 'loadJoblib');
  const where = 'loadJoblib';
  if (mmapMode !== null) {
    const mapped = loadMapped(path, mmapMode, where);
    if (mapped !== undefined) return mapped;
    warnCompressedMmap(path);
  }
  let bytes = await readWholeAsync(path, where);
  const compressed = compressionOf(bytes);
  if (compressed !== undefined) bytes = await decompressAsync(compressed, bytes, limit, path, where);
  return toValues(parse(bytes, path, where), (d) => toNDArray(d, path, where));
}

function parseArgs(filename: string | URL, options: LoadJoblibOptions, where: string): { path: string; limit: number; mmapMode: 'r' | 'r+' | 'c' | null } {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const path = parseFilename(filename, where);
  const limit = options.maxDecompressedBytes ?? MAX_FILE_BYTES;
  if (!(Number.isSafeInteger(limit) && limit > 0 && limit <= MAX_FILE_BYTES)) throw invalidArg(where, 'maxDecompressedBytes', `a whole number of bytes from 1 to ${MAX_FILE_BYTES}`, limit);
  const mmapMode = options.mmapMode ?? null;
  if (mmapMode !== null && !(['r', 'r+', 'c'] as unknown[]).includes(mmapMode)) throw invalidArg(where, 'mmapMode', "'r', 'r+', 'c' or null", mmapMode);
  return { path, limit, mmapMode };
}

function warnCompressedMmap(path: string): void {
  process.emitWarning(`'${path}' is compressed, so its arrays cannot be memory-mapped; they were read into memory instead`, {
    code: 'MEMJOB_COMPRESSED_MMAP',
    detail: 'joblib.load(f, mmap_mode=...) does the same for a compressed file. Dump with compress=0 to load with mmapMode.',
  });
}

/** The compression of a joblib file by its first bytes, as joblib detects it; undefined for a plain pickle. */
export function compressionOf(bytes: Uint8Array): string | undefined {
  if (bytes[0] === 0x80) return undefined; // PROTO: a pickle of protocol 2 or later
  return COMPRESSED.find(([, magic]) => magic.every((byte, i) => bytes[i] === byte))?.[0];
}

function parse(bytes: Uint8Array, path: string, where: string): unknown {
  try {
    return unpickle(new BufferReader(bytes), { resolve: resolveJoblibGlobal });
  } catch (error) {
    if (error instanceof MemjobError) throw new MemjobError(error.code, `${where}: '${path}': ${error.message}`, { path });
    throw error;
  }
}

/**
 * An uncompressed file parsed through a read-only mapping of it (only the
 * pages of the pickle's opcodes are read), its arrays then mapped where they
 * lie. An array whose offset does not suit its element type (joblib < 1.2
 * did not align them), or whose bytes need swapping, is copied instead, with
 * the warning MEMJOB_JOBLIB_COPIED. Undefined for a compressed file.
 */
function loadMapped(path: string, mode: 'r' | 'r+' | 'c', where: string): unknown {
  let copied = 0;
  const mapped = readJoblibMapped(path, where, (d) => {
    const { dtype, swap } = dtypeOfDescr(d.dtype, { where, path });
    if (d.offset !== null && !swap && d.offset % dtypeInfo(dtype).itemsize === 0 && d.bytes.byteLength > 0) {
      return memmap(path, { mode, dtype, shape: d.shape, offset: d.offset, order: d.order });
    }
    copied++;
    return toNDArray(d, path, where);
  });
  if (copied > 0) {
    process.emitWarning(`'${path}': ${copied} array(s) could not be mapped (an offset not aligned for the element type, a byte order to swap, or no bytes) and were copied into memory`, {
      code: 'MEMJOB_JOBLIB_COPIED',
      detail: 'joblib 1.2 and later align every array; a file written by an older joblib maps only the arrays that happen to be aligned.',
    });
  }
  return mapped?.value;
}

/**
 * An uncompressed joblib file parsed through a read-only mapping (only the
 * pages of the pickle's opcodes are read), each array replaced by what
 * `make` returns for its description, called while the mapping is open (its
 * `bytes` are a view of it). Undefined for a compressed file. Also what
 * `memjob inspect` reads a joblib file with.
 */
export function readJoblibMapped(path: string, where: string, make: (description: NdarrayDescription) => unknown): { value: unknown; protocol: number; size: number } | undefined {
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  let mapping: FileMapping;
  try {
    if (size === 0) throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a joblib file, received an empty file ('${path}')`, { path });
    if (size > maxViewBytes) throw new MemjobError(ErrorCodes.VIEW_TOO_LARGE, `${where}: expected a joblib file of at most ${maxViewBytes} bytes, received ${size} ('${path}')`, { path });
    mapping = new FileMapping(fd, path, 0, size, false);
  } finally {
    closeSync(fd);
  }
  try {
    const bytes = new Uint8Array(mapping.view(0, size));
    if (compressionOf(bytes) !== undefined) return undefined;
    return { value: toValues(parse(bytes, path, where), make), protocol: bytes[0] === 0x80 ? bytes[1]! : 0, size };
  } finally {
    mapping.close();
  }
}

export interface LoadJoblibOptions {
  /** Map the arrays of an uncompressed file where they lie instead of reading them: 'r', 'r+' or 'c', as joblib.load's mmap_mode. Default null. */
  mmapMode?: 'r' | 'r+' | 'c' | null;
  /** A compressed file may decompress to at most this many bytes (a decompression bomb stops here). Default and most: 2^31 - 1. */
  maxDecompressedBytes?: number;
}

async function decompressAsync(method: string, bytes: Uint8Array, limit: number, path: string, where: string): Promise<Uint8Array> {
  refuseMethod(method, path, where);
  try {
    return await (method === 'zlib' ? inflateAsync : gunzipAsync)(bytes, { maxOutputLength: limit });
  } catch (error) {
    throw decompressError(method, error, limit, path, where);
  }
}

function decompress(method: string, bytes: Uint8Array, limit: number, path: string, where: string): Uint8Array {
  refuseMethod(method, path, where);
  try {
    return (method === 'zlib' ? inflateSync : gunzipSync)(bytes, { maxOutputLength: limit });
  } catch (error) {
    throw decompressError(method, error, limit, path, where);
  }
}

function refuseMethod(method: string, path: string, where: string): void {
  if (method !== 'zlib' && method !== 'gzip') {
    throw new MemjobError(
      ErrorCodes.FORMAT,
      `${where}: expected an uncompressed, zlib or gzip joblib file, received one compressed with ${method} ('${path}'); ` +
        'this version does not read it yet: in Python, joblib.dump(joblib.load(f), f2, compress=("zlib", 3)) rewrites it',
      { path },
    );
  }
}

function decompressError(method: string, error: unknown, limit: number, path: string, where: string): MemjobError {
  const tooLarge = (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError;
  return new MemjobError(
    ErrorCodes.FORMAT,
    tooLarge
      ? `${where}: expected a ${method} stream that decompresses to at most ${limit} bytes (maxDecompressedBytes), received more ('${path}')`
      : `${where}: expected a whole ${method} stream, received a broken one ('${path}'): ${(error as Error).message}`,
    { path, cause: error },
  );
}

/** A buffer for a whole file of `size` bytes, at most MAX_FILE_BYTES (larger files need mmapMode). */
function allocateFor(size: number, path: string, where: string): Uint8Array {
  if (size > MAX_FILE_BYTES) {
    throw new MemjobError(ErrorCodes.VIEW_TOO_LARGE, `${where}: expected a joblib file of at most ${MAX_FILE_BYTES} bytes, received ${size} ('${path}')`, { path });
  }
  return new Uint8Array(size);
}

function shrank(path: string, where: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `${where}: '${path}' shrank while being read`, { path });
}

async function readWholeAsync(path: string, where: string): Promise<Uint8Array> {
  // The descriptor checked as the sync path checks it (a regular file, not a FIFO), read without blocking.
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const bytes = allocateFor(size, path, where);
    for (let done = 0; done < size; ) {
      const { bytesRead } = await readAsync(fd, bytes, done, size - done, done);
      if (bytesRead === 0) throw shrank(path, where);
      done += bytesRead;
    }
    return bytes;
  } catch (error) {
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  } finally {
    closeSync(fd);
  }
}

function readWhole(path: string, where: string): Uint8Array {
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const bytes = allocateFor(size, path, where);
    for (let done = 0; done < size; ) {
      const got = readSync(fd, bytes, done, size - done, done);
      if (got === 0) throw shrank(path, where);
      done += got;
    }
    return bytes;
  } catch (error) {
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  } finally {
    closeSync(fd);
  }
}

function isNdarray(value: unknown): value is NdarrayDescription {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'ndarray' && (value as { bytes?: unknown }).bytes instanceof Uint8Array;
}

/** Replaces array descriptions with arrays, in place of the containers the unpickler made (it made every one of them). */
function toValues(root: unknown, make: (description: NdarrayDescription) => unknown): unknown {
  const convert = (value: unknown): unknown => (isNdarray(value) ? make(value) : value);
  const stack: unknown[] = [root];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null || seen.has(value) || ArrayBuffer.isView(value)) continue;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push((value[i] = convert(value[i])));
    } else if (value instanceof Map) {
      for (const [key, item] of value) {
        const converted = convert(item);
        if (converted !== item) value.set(key, converted);
        stack.push(converted);
      }
    } else if (value instanceof Set) {
      for (const item of value) stack.push(item);
    }
  }
  return convert(root);
}

function toNDArray(description: NdarrayDescription, path: string, where: string): NDArray {
  const { dtype, swap } = dtypeOfDescr(description.dtype, { where, path });
  const info = dtypeInfo(dtype);
  const count = description.shape.reduce((a, b) => a * b, 1);
  if (description.bytes.byteLength !== count * info.itemsize) {
    throw new MemjobError(
      ErrorCodes.FORMAT,
      `${where}: expected ${count * info.itemsize} bytes for an array of shape [${description.shape}] and dtype '${description.dtype}', received ${description.bytes.byteLength} ('${path}')`,
      { path },
    );
  }
  // A copy: aligned for the element type, and owned by the caller.
  const copy = new Uint8Array(description.bytes);
  if (swap) {
    const buffer = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
    if (info.itemsize === 2) buffer.swap16();
    else if (info.itemsize === 4) buffer.swap32();
    else if (info.itemsize === 8) buffer.swap64();
  }
  const data = new info.arrayType(copy.buffer, 0, count) as TypedArray;
  return new NDArray(data as never, { dtype, shape: description.shape, order: description.order });
}
