import { isMappedBuffer } from './file-mapping.js';
import { Memmap } from './memmap.js';

/**
 * True exactly when `value` is backed by a file mapping: a Memmap that is
 * still open, or a TypedArray, DataView or ArrayBuffer viewing one (joblib's
 * has_shareable_memory). Ordinary arrays and TypedArrays give false.
 */
export function hasShareableMemory(value: unknown): boolean {
  if (value instanceof Memmap) return !value.closed;
  if (ArrayBuffer.isView(value)) return isMappedBuffer(value.buffer);
  if (value instanceof ArrayBuffer) return isMappedBuffer(value);
  return false;
}
