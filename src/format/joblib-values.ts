/**
 * The values of a parsed joblib pickle: array descriptions (pickle/joblib-globals.ts)
 * turned into NDArrays or Memmaps in place of the containers the unpickler
 * made. An array whose bytes were left in the file (a file-backed reader)
 * is read straight into its own buffer: one read, no copy of the file.
 */
import { read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCodes, MemjobError } from '../errors.js';
import { dtypeInfo, type TypedArray } from '../memmap/dtype.js';
import { NDArray } from '../memmap/ndarray.js';
import { allocateLarge, maxViewBytes } from '../native.js';
import { dtypeOfDescr } from './npy-header.js';
import type { NdarrayDescription, NdarrayFileDescription } from './pickle/joblib-globals.js';

const readAsync = promisify(read);
/** fs.read takes at most 2^31 - 1 bytes a call. */
export const READ_CHUNK = 2 ** 30;
/** Arrays from this size are read into huge-page-backed memory (native allocateLarge). */
const LARGE_ARRAY_BYTES = 4 * 1024 * 1024;

function isNdarray(value: unknown): value is NdarrayDescription {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'ndarray' && typeof (value as { nbytes?: unknown }).nbytes === 'number';
}

function isSideFile(value: unknown): value is NdarrayFileDescription {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'ndarray-file';
}

/**
 * Replaces array descriptions with arrays, in place of the containers the unpickler made (it made
 * every one of them); side-file descriptions too when `side` is given.
 */
export function toValues(root: unknown, make: (description: NdarrayDescription) => unknown, side?: (description: NdarrayFileDescription) => unknown): unknown {
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

/** A file read from, for arrays left in it; `pending` collects the reads an async load does later. */
export interface ArraySource {
  fd: number;
  /** Reads an async load does later; `swapSlot`: the slot size to byte-swap once read. */
  pending?: { bytes: Uint8Array; offset: number; swapSlot?: number }[];
}

/**
 * An NDArray in memory for `description`: copied from its bytes, or read
 * from `source` at its offset (synchronously, or queued in source.pending).
 * Bytes in the other byte order are swapped once they are in.
 */
export function toNDArray(description: NdarrayDescription, path: string, where: string, source?: ArraySource, shareBytes = false): NDArray {
  const { dtype, swap } = dtypeOfDescr(description.dtype, { where, path });
  const info = dtypeInfo(dtype);
  const count = description.shape.reduce((a, b) => a * b, 1);
  const nbytes = count * info.itemsize;
  if (description.nbytes !== nbytes || (description.bytes !== null && description.bytes.byteLength !== nbytes)) {
    throw new MemjobError(
      ErrorCodes.FORMAT,
      `${where}: expected ${nbytes} bytes for an array of shape [${description.shape}] and dtype '${description.dtype}', received ${description.bytes?.byteLength ?? description.nbytes} ('${path}')`,
      { path },
    );
  }
  if (nbytes > maxViewBytes) {
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `${where}: the array of shape [${description.shape}] in '${path}' is ${nbytes} bytes, more than one ArrayBuffer holds (${maxViewBytes}); load it with { mmapMode: 'r' }`,
      { path },
    );
  }
  // `shareBytes`: the bytes sit in a buffer this load made and owns (a decompressed pickle): a large
  // array aligned for its type is viewed there instead of copied (it keeps that buffer alive).
  const slotBytes = info.arrayType.BYTES_PER_ELEMENT;
  if (shareBytes && description.bytes !== null && !swap && nbytes >= LARGE_ARRAY_BYTES && description.bytes.byteOffset % slotBytes === 0) {
    const shared = new info.arrayType(description.bytes.buffer, description.bytes.byteOffset, count * info.lanes) as TypedArray;
    return new NDArray(shared as never, { dtype, shape: description.shape, order: description.order });
  }
  // A large array read from the file goes into huge-page-backed memory, as numpy's np.empty: half the page faults.
  const buffer = description.bytes === null && nbytes >= LARGE_ARRAY_BYTES ? allocateLarge(nbytes) : new ArrayBuffer(nbytes);
  const data = new info.arrayType(buffer, 0, count * info.lanes) as TypedArray;
  const bytes = new Uint8Array(buffer, 0, nbytes);
  const array = new NDArray(data as never, { dtype, shape: description.shape, order: description.order });
  if (description.bytes !== null) bytes.set(description.bytes);
  else if (source === undefined || description.offset === null) throw new Error('memjob: an array left in the file needs the file to read it from');
  else if (source.pending !== undefined) {
    // Read (and swapped) later by readPending.
    source.pending.push({ bytes, offset: description.offset, swapSlot: swap ? slotBytes : undefined });
    return array;
  } else readFullySync(source.fd, bytes, description.offset, path, where);
  if (swap) swapSlots(bytes, slotBytes);
  return array;
}

/** Per TypedArray slot: each float of a complex, each code point of a 'U' string. */
function swapSlots(bytes: Uint8Array, slotBytes: number): void {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (slotBytes === 2) buffer.swap16();
  else if (slotBytes === 4) buffer.swap32();
  else if (slotBytes === 8) buffer.swap64();
}

function shrank(path: string, where: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `${where}: '${path}' shrank while being read`, { path });
}

export function readFullySync(fd: number, bytes: Uint8Array, position: number, path: string, where: string): void {
  for (let done = 0; done < bytes.length; ) {
    const got = readSync(fd, bytes, done, Math.min(bytes.length - done, READ_CHUNK), position + done);
    if (got === 0) throw shrank(path, where);
    done += got;
  }
}

export async function readFully(fd: number, bytes: Uint8Array, position: number, path: string, where: string): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesRead } = await readAsync(fd, bytes, done, Math.min(bytes.length - done, READ_CHUNK), position + done);
    if (bytesRead === 0) throw shrank(path, where);
    done += bytesRead;
  }
}

/** Performs the reads toNDArray queued, in file order, then the swaps they need. */
export async function readPending(source: ArraySource, path: string, where: string): Promise<void> {
  const reads = (source.pending ?? []).sort((a, b) => a.offset - b.offset);
  for (const { bytes, offset, swapSlot } of reads) {
    await readFully(source.fd, bytes, offset, path, where);
    if (swapSlot !== undefined) swapSlots(bytes, swapSlot);
  }
}
