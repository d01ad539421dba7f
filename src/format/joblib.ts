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
 * (joblib-compat.ts). An uncompressed file of any size is parsed through a
 * small window (pickle/file-reader.ts) and its arrays read straight into their
 * own buffers, or, with mmapMode, mapped where they lie in the file, as
 * joblib.load(f, mmap_mode) maps them: zero copy.
 */
import { closeSync, constants as fsConstants } from 'node:fs';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { mapOpenFile } from '../memmap/open.js';
import { maxViewBytes } from '../native.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile } from '../system/regular-file.js';
import { compressionOf, decompressJoblib, decompressJoblibAsync, type JoblibCompression } from './joblib-compression.js';
import { isZfile, readSideFile, readZfile } from './joblib-compat.js';
import { readFully, readFullySync, readPending, toNDArray, toValues, type ArraySource } from './joblib-values.js';
import { dtypeOfDescr } from './npy-header.js';
import { FIRST_READ, FileReader, bufferReader } from './pickle/file-reader.js';
import { resolveJoblibGlobal, type NdarrayDescription, type NdarrayFileDescription } from './pickle/joblib-globals.js';
import type { PickleReader } from './pickle/reader.js';
import { unpickle } from './pickle/unpickler.js';

/** Largest compressed file read whole, and largest decompressed pickle: the largest Buffer (4 GiB on Node 20). */
const MAX_FILE_BYTES = maxViewBytes;
/** maxDecompressedBytes' default: a bomb stops at 2 GiB unless the caller trusts the file further. */
const DEFAULT_DECOMPRESSED_BYTES = 2 ** 31 - 1;

export { compressionOf } from './joblib-compression.js';

/**
 * Reads a `joblib.dump` file. Python dicts come back as Maps (their keys may
 * be ints or tuples), lists and tuples as Arrays, bytes as Uint8Arrays, ints
 * as numbers (BigInt beyond 2^53), numpy arrays as NDArrays.
 */
export function loadJoblibSync(filename: string | URL, options: LoadJoblibOptions = {}): unknown {
  const { path, limit, mmapMode } = parseArgs(filename, options, 'loadJoblibSync');
  const where = 'loadJoblibSync';
  const plain = openPlain(path, where, mmapMode === 'r+');
  if (plain !== undefined) {
    try {
      const source: ArraySource = { fd: plain.fd };
      const make = mmapMode === null ? (d: NdarrayDescription) => toNDArray(d, path, where, source) : mapper(plain, path, mmapMode, where, source);
      return parsePlain(plain, path, where, make, (d) => readSideFile(d, path, { mmapMode, limit, toArray: make }, where));
    } finally {
      closeSync(plain.fd);
    }
  }
  if (mmapMode !== null) warnCompressedMmap(path);
  return valuesOfPickle(pickleBytes(readWhole(path, where), limit, path, where), path, where, limit);
}

/**
 * loadJoblibSync, with the arrays read and a compressed file decompressed
 * without blocking. An uncompressed file's opcodes are parsed here (a walk
 * over a few pages); each array is then read straight into its own buffer.
 */
export async function loadJoblib(filename: string | URL, options: LoadJoblibOptions = {}): Promise<unknown> {
  const { path, limit, mmapMode } = parseArgs(filename, options, 'loadJoblib');
  const where = 'loadJoblib';
  const plain = openPlain(path, where, mmapMode === 'r+');
  if (plain !== undefined) {
    try {
      const source: ArraySource = { fd: plain.fd, pending: [] };
      const make = mmapMode === null ? (d: NdarrayDescription) => toNDArray(d, path, where, source) : mapper(plain, path, mmapMode, where, source);
      const value = parsePlain(plain, path, where, make, (d) => readSideFile(d, path, { mmapMode, limit, toArray: make }, where));
      await readPending(source, path, where);
      return value;
    } finally {
      closeSync(plain.fd);
    }
  }
  if (mmapMode !== null) warnCompressedMmap(path);
  let bytes = await readWholeAsync(path, where);
  const compressed = compressionOf(bytes);
  if (compressed !== undefined) bytes = await decompressAsync(compressed, bytes, limit, path, where);
  else if (isZfile(bytes)) bytes = unZfile(bytes, limit, path, where);
  return valuesOfPickle(bytes, path, where, limit);
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

/**
 * The values of a decompressed pickle. It is this load's own buffer, so large arrays are viewed in
 * it rather than copied out. Side files of joblib 0.9 (small: joblib 0.9 is long gone) are read
 * synchronously, by the async load too.
 */
function valuesOfPickle(bytes: Uint8Array, path: string, where: string, limit: number): unknown {
  const make = (d: NdarrayDescription) => toNDArray(d, path, where, undefined, true);
  return toValues(parse(bufferReader(bytes), path, where), make, (d) => readSideFile(d, path, { mmapMode: null, limit, toArray: make }, where));
}

function parse(reader: PickleReader, path: string, where: string): unknown {
  try {
    return unpickle(reader, { resolve: resolveJoblibGlobal });
  } catch (error) {
    if (error instanceof MemjobError) throw new MemjobError(error.code, `${where}: '${path}': ${error.message}`, { path });
    throw error;
  }
}

/** An uncompressed joblib file, open: undefined (and closed) when its first bytes show a compression or a Z-file. */
interface PlainFile {
  fd: number;
  size: number;
  protocol: number;
  /** The file's first bytes (enough to tell every compression, and most pickles' opcodes), for the FileReader. */
  head: Uint8Array;
}

/** `writable`: opened read-write, for arrays mapped with mmapMode 'r+'. */
function openPlain(path: string, where: string, writable = false): PlainFile | undefined {
  const { fd, size } = openRegularFile(path, writable ? fsConstants.O_RDWR : fsConstants.O_RDONLY, where);
  try {
    if (size === 0) throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a joblib file, received an empty file ('${path}')`, { path });
    const head = new Uint8Array(Math.min(FIRST_READ, size));
    readFullySync(fd, head, 0, path, where);
    if (compressionOf(head) === undefined && !isZfile(head)) return { fd, size, protocol: head[0] === 0x80 ? head[1]! : 0, head };
  } catch (error) {
    closeSync(fd);
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  }
  closeSync(fd);
  return undefined;
}

/** The file's pickle parsed through a small window (pickle/file-reader.ts), arrays left in the file for `make`. */
function parsePlain(file: PlainFile, path: string, where: string, make: (d: NdarrayDescription) => unknown, side?: (d: NdarrayFileDescription) => unknown): unknown {
  return toValues(parse(new FileReader(file.fd, file.size, file.head), path, where), make, side);
}

/**
 * With mmapMode: each array mapped where it lies in the file, as
 * joblib.load(f, mmap_mode) maps it, zero copy (at any offset: joblib before
 * 1.2 did not align arrays, and a mapping need not be). An array in the other
 * byte order is read into memory and swapped instead, with the warning
 * MEMJOB_JOBLIB_COPIED; an empty one is made in memory.
 */
function mapper(file: PlainFile, path: string, mode: 'r' | 'r+' | 'c', where: string, source: ArraySource): (d: NdarrayDescription) => unknown {
  return (d) => {
    const { dtype, swap } = dtypeOfDescr(d.dtype, { where, path });
    if (d.offset !== null && d.bytes === null && !swap && d.nbytes > 0) {
      // Mapped from the descriptor the pickle was read through: the file is opened once.
      return mapOpenFile(file.fd, file.size, path, { mode, dtype, shape: d.shape, offset: d.offset, order: d.order });
    }
    if (swap) {
      process.emitWarning(`'${path}': an array of dtype '${d.dtype}' is in the other byte order, so it was read into memory and swapped instead of mapped`, {
        code: 'MEMJOB_JOBLIB_COPIED',
      });
    }
    return toNDArray(d, path, where, source);
  };
}

/**
 * An uncompressed joblib file parsed through a small window, each array
 * description (its bytes left in the file) replaced by what `make` returns.
 * Undefined for a compressed file. What `memjob inspect` reads a joblib file with.
 */
export function readJoblibFile(
  path: string,
  where: string,
  make: (description: NdarrayDescription) => unknown,
  side?: (description: NdarrayFileDescription) => unknown,
): { value: unknown; protocol: number; size: number } | undefined {
  const plain = openPlain(path, where);
  if (plain === undefined) return undefined;
  try {
    return { value: parsePlain(plain, path, where, make, side), protocol: plain.protocol, size: plain.size };
  } finally {
    closeSync(plain.fd);
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
  return toValues(parse(bufferReader(bytes), path, where), make, side);
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

async function readWholeAsync(path: string, where: string): Promise<Uint8Array> {
  // The descriptor checked as the sync path checks it (a regular file, not a FIFO), read without blocking.
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const bytes = allocateFor(size, path, where);
    await readFully(fd, bytes, 0, path, where);
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
    readFullySync(fd, bytes, 0, path, where);
    return bytes;
  } catch (error) {
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  } finally {
    closeSync(fd);
  }
}
