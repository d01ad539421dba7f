/**
 * loadJoblibSync(): a file written by Python's `joblib.dump`, read without
 * running anything from it. The pickle goes through memjob's restricted
 * unpickler (pickle/unpickler.ts), which rebuilds only the numpy and joblib
 * globals joblib writes for arrays, dtypes and scalars (pickle/joblib-globals.ts)
 * and refuses every other global (MEMJOB_ERR_UNSAFE_PICKLE) before anything
 * is built. Arrays (joblib >= 0.12 writes their bytes inline after each
 * NumpyArrayWrapper) come back as NDArrays in memory.
 *
 * It reads uncompressed files and every compression joblib writes (the whole
 * pickle as one stream, decompressed within maxDecompressedBytes by
 * joblib-compression.ts), and joblib 0.8/0.9's Z-files and side files
 * (joblib-compat.ts). With mmapMode, an uncompressed file's arrays are mapped
 * where they lie in the pickle, as joblib.load(f, mmap_mode) maps them: zero
 * copy.
 */
import { closeSync, constants as fsConstants, read, readSync } from 'node:fs';
import { promisify } from 'node:util';

const readAsync = promisify(read);
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { dtypeInfo, type TypedArray } from '../memmap/dtype.js';
import { FileMapping } from '../memmap/file-mapping.js';
import { NDArray } from '../memmap/ndarray.js';
import { memmap } from '../memmap/open.js';
import { maxViewBytes } from '../native.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile } from '../system/regular-file.js';
import { compressionOf, decompressJoblib, decompressJoblibAsync, type JoblibCompression } from './joblib-compression.js';
import { dtypeOfDescr } from './npy-header.js';
import { isZfile, readSideFile, readZfile } from './joblib-compat.js';
import { resolveJoblibGlobal, type NdarrayDescription, type NdarrayFileDescription } from './pickle/joblib-globals.js';
import { BufferReader } from './pickle/reader.js';
import { unpickle } from './pickle/unpickler.js';

/** Largest file read whole, and largest decompressed pickle: the largest Buffer (4 GiB on Node 20). */
const MAX_FILE_BYTES = maxViewBytes;
/** maxDecompressedBytes' default: a bomb stops at 2 GiB unless the caller trusts the file further. */
const DEFAULT_DECOMPRESSED_BYTES = 2 ** 31 - 1;
/** fs.read takes at most 2^31 - 1 bytes a call. */
const READ_CHUNK = 2 ** 30;

export { compressionOf } from './joblib-compression.js';

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
  const bytes = pickleBytes(readWhole(path, where), limit, path, where);
  const make = (d: NdarrayDescription) => toNDArray(d, path, where);
  return toValues(parse(bytes, path, where), make, (d) => readSideFile(d, path, { mmapMode: null, limit, toArray: make }, where));
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
  else if (isZfile(bytes)) bytes = unZfile(bytes, limit, path, where);
  // Side files of joblib 0.9 (small: joblib 0.9 is long gone) are read synchronously.
  const make = (d: NdarrayDescription) => toNDArray(d, path, where);
  return toValues(parse(bytes, path, where), make, (d) => readSideFile(d, path, { mmapMode: null, limit, toArray: make }, where));
}

function parseArgs(filename: string | URL, options: LoadJoblibOptions, where: string): { path: string; limit: number; mmapMode: 'r' | 'r+' | 'c' | null } {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const path = parseFilename(filename, where);
  const limit = options.maxDecompressedBytes ?? DEFAULT_DECOMPRESSED_BYTES;
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
    if (d.offset !== null && !swap && d.offset % dtypeInfo(dtype).arrayType.BYTES_PER_ELEMENT === 0 && d.bytes.byteLength > 0) {
      return memmap(path, { mode, dtype, shape: d.shape, offset: d.offset, order: d.order });
    }
    copied++;
    return toNDArray(d, path, where);
  }, (d) => readSideFile(d, path, { mmapMode: mode, limit: DEFAULT_DECOMPRESSED_BYTES, toArray: (a) => toNDArray(a, path, where) }, where));
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
export function readJoblibMapped(
  path: string,
  where: string,
  make: (description: NdarrayDescription) => unknown,
  side?: (description: NdarrayFileDescription) => unknown,
): { value: unknown; protocol: number; size: number } | undefined {
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
    if (compressionOf(bytes) !== undefined || isZfile(bytes)) return undefined;
    return { value: toValues(parse(bytes, path, where), make, side), protocol: bytes[0] === 0x80 ? bytes[1]! : 0, size };
  } finally {
    mapping.close();
  }
}

export interface LoadJoblibOptions {
  /** Map the arrays of an uncompressed file where they lie instead of reading them: 'r', 'r+' or 'c', as joblib.load's mmap_mode. Default null. */
  mmapMode?: 'r' | 'r+' | 'c' | null;
  /** A compressed file may decompress to at most this many bytes (a decompression bomb stops here). Default 2^31 - 1; at most the largest Buffer (4 GiB on Node 20). */
  maxDecompressedBytes?: number;
}

async function decompressAsync(method: JoblibCompression, bytes: Uint8Array, limit: number, path: string, where: string): Promise<Uint8Array> {
  try {
    return await decompressJoblibAsync(method, bytes, limit);
  } catch (error) {
    throw located(error, path, where);
  }
}

function decompress(method: JoblibCompression, bytes: Uint8Array, limit: number, path: string, where: string): Uint8Array {
  try {
    return decompressJoblib(method, bytes, limit);
  } catch (error) {
    throw located(error, path, where);
  }
}

/** The pickle of a joblib file's bytes: decompressed as its first bytes say (at most `limit` bytes), or as it is. */
export function pickleBytes(bytes: Uint8Array, limit: number, path: string, where: string): Uint8Array {
  const compressed = compressionOf(bytes);
  if (compressed !== undefined) return decompress(compressed, bytes, limit, path, where);
  return isZfile(bytes) ? unZfile(bytes, limit, path, where) : bytes;
}

/** A joblib file read whole, its pickle decompressed (at most `limit` bytes); compression 'zfile' is joblib 0.8/0.9's. */
export function readPickleSync(path: string, limit: number, where: string): { bytes: Uint8Array; compression: JoblibCompression | 'zfile' | null; fileBytes: number } {
  const raw = readWhole(path, where);
  const compression = compressionOf(raw) ?? (isZfile(raw) ? 'zfile' : null);
  return { bytes: pickleBytes(raw, limit, path, where), compression, fileBytes: raw.length };
}

/**
 * A joblib pickle in memory, parsed, each array description replaced by what `make` returns, and
 * each side file of joblib 0.9 by what `side` returns. What `memjob inspect` reads a compressed file with.
 */
export function readJoblibBytes(
  bytes: Uint8Array,
  path: string,
  where: string,
  make: (description: NdarrayDescription) => unknown,
  side?: (description: NdarrayFileDescription) => unknown,
): unknown {
  return toValues(parse(bytes, path, where), make, side);
}

/** joblib 0.8/0.9's compressed pickle ('ZF' header, one zlib stream). */
function unZfile(bytes: Uint8Array, limit: number, path: string, where: string): Uint8Array {
  try {
    return readZfile(bytes, limit);
  } catch (error) {
    throw located(error, path, where);
  }
}

/** A MemjobError of the compression layer, with the caller's name and the file's path added. */
function located(error: unknown, path: string, where: string): unknown {
  if (!(error instanceof MemjobError)) return error;
  return new MemjobError(error.code, `${where}: ${error.message} ('${path}')`, { path, cause: error.cause });
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
      const { bytesRead } = await readAsync(fd, bytes, done, Math.min(size - done, READ_CHUNK), done);
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
      const got = readSync(fd, bytes, done, Math.min(size - done, READ_CHUNK), done);
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

function isSideFile(value: unknown): value is NdarrayFileDescription {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'ndarray-file';
}

/**
 * Replaces array descriptions with arrays, in place of the containers the unpickler made (it made
 * every one of them); side-file descriptions too when `side` is given.
 */
function toValues(root: unknown, make: (description: NdarrayDescription) => unknown, side?: (description: NdarrayFileDescription) => unknown): unknown {
  const convert = (value: unknown): unknown => (isNdarray(value) ? make(value) : side !== undefined && isSideFile(value) ? side(value) : value);
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
    // Per TypedArray slot: each float of a complex, each code point of a 'U' string.
    const slotBytes = info.arrayType.BYTES_PER_ELEMENT;
    if (slotBytes === 2) buffer.swap16();
    else if (slotBytes === 4) buffer.swap32();
    else if (slotBytes === 8) buffer.swap64();
  }
  const data = new info.arrayType(copy.buffer, 0, count * info.lanes) as TypedArray;
  return new NDArray(data as never, { dtype, shape: description.shape, order: description.order });
}
