import { isMappedBuffer } from './file-mapping.js';
import { Memmap } from './memmap.js';
import { NDArray } from './ndarray.js';

/**
 * True exactly when `value` is backed by a file mapping: a Memmap that is
 * still open, an NDArray whose data is mapped, or a TypedArray, DataView or ArrayBuffer viewing one (joblib's
 * has_shareable_memory). Ordinary arrays and TypedArrays give false.
 */
export function hasShareableMemory(value: unknown): boolean {
  if (value instanceof Memmap) return !value.closed;
  if (value instanceof NDArray) return isMappedBuffer(value.data.buffer);
  if (ArrayBuffer.isView(value)) return isMappedBuffer(value.buffer);
  if (value instanceof ArrayBuffer) return isMappedBuffer(value);
  return false;
}
