/** memjob's public API. Nothing outside this file is part of it. */
export { ErrorCodes, MemjobError } from './errors.js';
export type { MemjobErrorCode, MemjobErrorDetails } from './errors.js';
export { dtypeNames } from './memmap/dtype.js';
export type { DType, DTypeArrays, DTypeScalar, TypedArray } from './memmap/dtype.js';
export type { Order } from './memmap/layout.js';
export { Memmap } from './memmap/memmap.js';
export type { ChunksOptions, MemmapMode } from './memmap/memmap.js';
export { NDArray, ndarray } from './memmap/ndarray.js';
export type { NDArrayOptions } from './memmap/ndarray.js';
export { memmap } from './memmap/open.js';
export type { MemmapOptions } from './memmap/open.js';
export { hasShareableMemory } from './memmap/shareable.js';
export { maxViewBytes, pageSize } from './native.js';
export type { Advice } from './native.js';
