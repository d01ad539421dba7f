/**
 * memmap(): opens a file as a Memmap, with numpy.memmap's modes and
 * defaults. All validation happens here, before any file is opened or
 * truncated, so a bad option never damages a file.
 */
import { closeSync, constants as fsConstants, existsSync, ftruncateSync, statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCodes, MemjobError, describe, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { openRegularFile } from '../system/regular-file.js';
import { dtypeInfo, parseDType, type DType } from './dtype.js';
import { FileMapping } from './file-mapping.js';
import { contiguousStrides, extent, parseOrder, parseShape, sizeOf, type Order } from './layout.js';
import { Memmap, type MemmapMode } from './memmap.js';

export interface MemmapOptions<D extends DType = DType> {
  /** Element type; default 'uint8' as in numpy. */
  dtype?: D;
  /** 'r' read-only, 'r+' read-write (default), 'w+' create or overwrite, 'c' copy-on-write. */
  mode?: MemmapMode | 'readonly' | 'readwrite' | 'write' | 'copyonwrite';
  /** Required for 'w+'; otherwise defaults to a 1-d array over the rest of the file. */
  shape?: number | readonly number[];
  /** Byte offset in the file where the array starts; any value, page-aligned or not. Default 0. */
  offset?: number;
  /** Storage order of a multi-dimensional array: 'C' row-major (default) or 'F' column-major. */
  order?: Order;
}

const modeAliases: Record<string, MemmapMode> = {
  r: 'r', 'r+': 'r+', 'w+': 'w+', c: 'c',
  readonly: 'r', readwrite: 'r+', write: 'w+', copyonwrite: 'c',
};

// How each mode opens the file: 'r' and 'c' never need write access.
const { O_RDONLY, O_RDWR, O_CREAT, O_TRUNC } = fsConstants;
const openFlags: Record<MemmapMode, number> = {
  r: O_RDONLY,
  c: O_RDONLY,
  'r+': O_RDWR,
  'w+': O_RDWR | O_CREAT | O_TRUNC,
};

export function memmap<D extends DType = 'uint8'>(filename: string | URL, options: MemmapOptions<D> = {}): Memmap<D> {
  const where = 'memmap';
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const path = parseFilename(filename, where);
  const mode = parseMode(options.mode ?? 'r+', where);
  const dtype = parseDType(options.dtype ?? 'uint8', where) as D;
  const order = parseOrder(options.order ?? 'C', where);
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new MemjobError(
      ErrorCodes.OUT_OF_RANGE,
      `${where}: expected "offset" to be a non-negative integer, received ${describe(offset)}`,
    );
  }
  let shape = options.shape === undefined ? undefined : parseShape(options.shape, where);
  if (mode === 'w+' && shape === undefined) {
    throw new MemjobError(ErrorCodes.SHAPE, `${where}: mode 'w+' creates the file, so "shape" is required`);
  }
  const { itemsize } = dtypeInfo(dtype);
  if (mode === 'w+') {
    if (sizeOf(shape!) === 0) throw emptyArray(shape!, path, where);
    checkRoomFor(path, offset + sizeOf(shape!) * itemsize, where);
  }

  const { fd, size } = openRegularFile(path, openFlags[mode], where);
  try {
    if (mode === 'w+') {
      ftruncateSync(fd, offset + sizeOf(shape!) * itemsize);
    } else {
      if (offset > size) {
        throw new MemjobError(
          ErrorCodes.OUT_OF_RANGE,
          `${where}: "offset" ${offset} is past the end of '${path}', which holds ${size} bytes`,
          { path },
        );
      }
      if (shape === undefined) {
        const available = size - offset;
        if (available % itemsize !== 0) {
          throw new MemjobError(
            ErrorCodes.SHAPE,
            `${where}: the ${available} bytes of '${path}' after offset ${offset} are not a whole number of ` +
              `${dtype} items (${itemsize} bytes each); give "shape" explicitly`,
            { path },
          );
        }
        shape = [available / itemsize];
      } else if (offset + sizeOf(shape) * itemsize > size) {
        throw new MemjobError(
          ErrorCodes.SHAPE,
          `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${sizeOf(shape) * itemsize} bytes from offset ` +
            `${offset}, but '${path}' holds ${size} bytes`,
          { path },
        );
      }
    }
    const nbytes = sizeOf(shape!) * itemsize;
    if (nbytes === 0) throw emptyArray(shape!, path, where);
    const mapping = new FileMapping(fd, path, offset, nbytes, mode === 'r+' || mode === 'w+');
    return Memmap.create({ mapping, mode, dtype, shape: shape!, strides: contiguousStrides(shape!, itemsize, order), offset, order });
  } catch (error) {
    if (error instanceof MemjobError) throw error;
    throw systemError(where, error, path);
  } finally {
    closeSync(fd);
  }
}

function emptyArray(shape: readonly number[], path: string, where: string): MemjobError {
  return new MemjobError(ErrorCodes.SHAPE, `${where}: cannot map an empty array (shape [${shape.join(', ')}]) of '${path}'`, {
    path,
  });
}

/**
 * A 'w+' file is created sparse, as numpy does, so the disk space is only
 * taken when pages are first written. If the filesystem then fills up, the
 * kernel answers a write to the mapping with SIGBUS, which kills the process.
 * Refusing up front a file larger than the free space turns the common case
 * of that crash into an ENOSPC error.
 */
function checkRoomFor(path: string, bytes: number, where: string): void {
  if (!Number.isSafeInteger(bytes)) {
    throw new MemjobError(
      ErrorCodes.SHAPE,
      `${where}: the requested file of ${bytes} bytes is larger than the largest supported size ` +
        `(${Number.MAX_SAFE_INTEGER} bytes)`,
      { path },
    );
  }
  let free: number;
  try {
    const stats = statfsSync(dirname(path));
    free = stats.bavail * stats.bsize;
    // Overwriting a file frees the blocks it holds now.
    if (existsSync(path)) free += statSync(path).blocks * 512;
  } catch (error) {
    throw systemError(where, error, dirname(path));
  }
  if (bytes > free) {
    throw new MemjobError(
      ErrorCodes.NO_SPACE,
      `${where}: mode 'w+' needs ${bytes} bytes for '${path}', but its filesystem has only ${free} bytes free (ENOSPC)`,
      { path, syscall: 'statfs' },
    );
  }
}

function parseMode(value: unknown, where: string): MemmapMode {
  if (typeof value === 'string' && Object.hasOwn(modeAliases, value)) return modeAliases[value]!;
  throw invalidArg(where, 'mode', "one of 'r', 'r+', 'w+', 'c'", value);
}

/**
 * @internal For readers of a file format that hold the file open already (a
 * joblib file mapped where its arrays lie): maps `nbytes` of dtype items at
 * `offset` of the open `fd` (of `size` bytes), without opening it again. The
 * caller has checked dtype, shape and order; the range is checked here.
 * `fd` stays the caller's to close, and must be open for writing in 'r+'.
 */
export function mapOpenFile<D extends DType>(
  fd: number,
  size: number,
  path: string,
  layout: { mode: 'r' | 'r+' | 'c'; dtype: D; shape: readonly number[]; offset: number; order: Order },
): Memmap<D> {
  const { mode, dtype, shape, offset, order } = layout;
  const { itemsize } = dtypeInfo(dtype);
  const nbytes = sizeOf(shape) * itemsize;
  if (!Number.isSafeInteger(offset) || offset < 0 || nbytes <= 0 || offset + nbytes > size) {
    throw new MemjobError(
      ErrorCodes.SHAPE,
      `memmap: shape [${shape.join(', ')}] of ${dtype} at offset ${offset} needs ${nbytes} bytes, but '${path}' holds ${size}`,
      { path },
    );
  }
  const mapping = new FileMapping(fd, path, offset, nbytes, mode === 'r+');
  return Memmap.create({ mapping, mode, dtype, shape, strides: contiguousStrides(shape, itemsize, order), offset, order });
}

/** Where a Memmap's elements are in its file: what a worker needs to map the same view. */
export interface MemmapLayoutRef {
  path: string;
  mode: MemmapMode;
  dtype: DType;
  shape: readonly number[];
  strides: readonly number[];
  /** File offset of element [0, ..., 0]. */
  offset: number;
  order: Order;
}

/**
 * @internal For workers: maps exactly the bytes a (possibly strided) view
 * spans and rebuilds the view on them, so a worker sees the caller's slice,
 * not the whole file.
 */
export function openMemmapView(ref: MemmapLayoutRef): Memmap {
  const where = 'memmap';
  const dtype = parseDType(ref.dtype, where);
  const { itemsize } = dtypeInfo(dtype);
  const { low, high } = extent(ref.shape, ref.strides, itemsize);
  // Reopening never creates or truncates: 'w+' means "read-write" here.
  const mode: MemmapMode = ref.mode === 'w+' ? 'r+' : ref.mode;
  const { fd, size } = openRegularFile(ref.path, openFlags[mode], where);
  try {
    if (ref.offset + high > size || ref.offset + low < 0) {
      throw new MemjobError(ErrorCodes.OUT_OF_RANGE, `${where}: the view reaches past the end of '${ref.path}' (${size} bytes); was the file truncated?`, {
        path: ref.path,
      });
    }
    const mapping = new FileMapping(fd, ref.path, ref.offset + low, Math.max(high - low, 1), mode === 'r+');
    return Memmap.create({ mapping, mode, dtype, shape: ref.shape, strides: ref.strides, offset: ref.offset, order: ref.order });
  } finally {
    closeSync(fd);
  }
}
