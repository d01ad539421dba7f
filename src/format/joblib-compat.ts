/**
 * Files of joblib 0.8 and 0.9 (joblib/numpy_pickle_compat.py): a compressed pickle is a "Z-file"
 * ('ZF', the decompressed length in hex padded to 19 characters, then one zlib stream), and arrays
 * may live in side files next to the pickle: `<name>_01.npy` (NDArrayWrapper, a .npy file) or
 * `<name>_01.npy.z` (ZNDArrayWrapper, the raw bytes as a Z-file). The side file's name comes from the
 * untrusted pickle, so it must be a plain file name that resolves inside the pickle's own folder.
 */
import { constants as fsConstants, closeSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { ErrorCodes, MemjobError, describe, systemError } from '../errors.js';
import type { Memmap } from '../memmap/memmap.js';
import type { NDArray } from '../memmap/ndarray.js';
import { openRegularFile } from '../system/regular-file.js';
import { loadNpySync } from './npy.js';
import { decodeHeader, parsePrefix, PREFIX_MAX_BYTES } from './npy-header.js';
import { resolveNestedGlobal, type NdarrayDescription, type NdarrayFileDescription } from './pickle/joblib-globals.js';
import { bufferReader } from './pickle/file-reader.js';
import { unpickle } from './pickle/unpickler.js';

/** len(hex(2 ** 64)): the width of a Z-file's length field. */
const ZFILE_LENGTH_WIDTH = 19;
const ZFILE_HEADER = 2 + ZFILE_LENGTH_WIDTH;

/** Whether `bytes` start as joblib 0.8/0.9's Z-file: 'ZF' then '0x'. */
export function isZfile(bytes: Uint8Array): boolean {
  return bytes[0] === 0x5a && bytes[1] === 0x46 && bytes[2] === 0x30 && bytes[3] === 0x78;
}

/** A Z-file's content, at most `limit` bytes (refused from its length field before inflating). */
export function readZfile(bytes: Uint8Array, limit: number): Uint8Array {
  const field = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, ZFILE_HEADER)).toString('latin1').slice(2);
  const m = /^0x([0-9a-f]{1,16}) *$/.exec(field);
  if (bytes.length < ZFILE_HEADER || m === null) {
    throw new MemjobError(ErrorCodes.FORMAT, `expected a joblib Z-file length ('0x...' padded to ${ZFILE_LENGTH_WIDTH} characters), received ${describe(field)}`);
  }
  const length = Number.parseInt(m[1]!, 16);
  if (length > limit) {
    throw new MemjobError(ErrorCodes.FORMAT, `expected a Z-file that decompresses to at most ${limit} bytes (maxDecompressedBytes), received one of ${length} bytes`);
  }
  // joblib <= 0.8.4 on Python 2 wrote one more space; a zlib stream never starts with one.
  const start = bytes[ZFILE_HEADER] === 0x20 ? ZFILE_HEADER + 1 : ZFILE_HEADER;
  let data: Uint8Array;
  try {
    data = inflateSync(bytes.subarray(start), { maxOutputLength: Math.max(length, 1) });
  } catch (error) {
    throw new MemjobError(ErrorCodes.FORMAT, `expected a whole zlib stream of ${length} bytes in the Z-file, received a broken or longer one: ${(error as Error).message}`, { cause: error });
  }
  if (data.length !== length) throw new MemjobError(ErrorCodes.FORMAT, `expected ${length} bytes in the Z-file, received ${data.length}`);
  return data;
}

/**
 * The path of a side file named by the pickle: a plain file name (no folder, not '.' or '..')
 * whose real path, symlinks resolved, is in the pickle's own folder.
 */
export function sideFilePath(picklePath: string, filename: string, where: string): string {
  if (filename.length === 0 || filename.length > 255 || /[/\\\0]/.test(filename) || filename === '.' || filename === '..') {
    throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a side file name without folders in the pickle, received ${describe(filename)} ('${picklePath}')`, { path: picklePath });
  }
  const folder = dirname(picklePath);
  const path = join(folder, filename);
  let real: string;
  try {
    real = realpathSync(path);
  } catch (error) {
    throw systemError(where, error, path);
  }
  if (dirname(real) !== realpathSync(folder)) {
    throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected the side file '${filename}' in the pickle's folder, received a link to '${real}' ('${picklePath}')`, { path: picklePath });
  }
  return real;
}

function readSmallFile(path: string, limit: number, where: string): Uint8Array {
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    if (size > limit) throw new MemjobError(ErrorCodes.FORMAT, `${where}: expected a side file of at most ${limit} bytes (maxDecompressedBytes), received ${size} ('${path}')`, { path });
    const bytes = new Uint8Array(size);
    for (let done = 0; done < size; ) {
      const got = readSync(fd, bytes, done, size - done, done);
      if (got === 0) throw new MemjobError(ErrorCodes.FORMAT, `${where}: '${path}' shrank while being read`, { path });
      done += got;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

export interface SideFileOptions {
  mmapMode: 'r' | 'r+' | 'c' | null;
  limit: number;
  /** Turns an inline array description into an array (joblib.ts's, shared with the inline path). */
  toArray: (description: NdarrayDescription) => unknown;
}

/** The array a NDArrayWrapper or ZNDArrayWrapper stands for, read from its side file. */
export function readSideFile(d: NdarrayFileDescription, picklePath: string, options: SideFileOptions, where: string): NDArray | Memmap | unknown {
  const path = sideFilePath(picklePath, d.filename, where);
  try {
    if (d.compressed) {
      const { dtype, shape, order } = d.array!;
      const bytes = readZfile(readSmallFile(path, options.limit, where), options.limit);
      return options.toArray({ kind: 'ndarray', dtype: dtype.descr, shape, order, offset: null, nbytes: bytes.length, bytes });
    }
    if (!isObjectNpy(path, where)) return options.mmapMode === null ? loadNpySync(path) : loadNpySync(path, { mmapMode: options.mmapMode });
    // An object array: np.save wrote the array's own pickle after the header.
    const bytes = readSmallFile(path, options.limit, where);
    const prefix = parsePrefix(bytes.subarray(0, PREFIX_MAX_BYTES), bytes.length, { where, path });
    return unpickle(bufferReader(bytes.subarray(prefix.headerStart + prefix.headerBytes)), { resolve: resolveNestedGlobal });
  } catch (error) {
    if (error instanceof MemjobError && !error.message.includes(basename(path))) {
      throw new MemjobError(error.code, `${where}: side file '${path}': ${error.message}`, { path, cause: error.cause });
    }
    throw error;
  }
}

/** Whether a .npy file's header says dtype object ('|O'), whose data is a pickle, not raw bytes. */
function isObjectNpy(path: string, where: string): boolean {
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, where);
  try {
    const head = new Uint8Array(Math.min(size, PREFIX_MAX_BYTES));
    readSync(fd, head, 0, head.length, 0);
    const prefix = parsePrefix(head, size, { where, path });
    const text = new Uint8Array(prefix.headerBytes);
    readSync(fd, text, 0, text.length, prefix.headerStart);
    return /['"]descr['"]\s*:\s*['"][|<>=]?O/.test(decodeHeader(text, prefix.encoding, { where, path }));
  } finally {
    closeSync(fd);
  }
}
