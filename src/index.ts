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
export { dump, dumpSync } from './format/dump.js';
export type { DumpOptions } from './format/dump.js';
export type { CompressMethod, CompressOption } from './format/compression.js';
export { load, loadSync } from './format/load.js';
export type { LoadMmapMode, LoadOptions } from './format/load.js';
export { hasShareableMemory } from './memmap/shareable.js';
export { maxViewBytes, pageSize } from './native.js';
export type { Advice } from './native.js';
export { saveNpy, saveNpySync, loadNpy, loadNpySync } from './format/npy.js';
export type { LoadNpyOptions } from './format/npy.js';
export { cpuCount } from './system/cpu-count.js';
export { chooseTempRoot as chooseTempFolder } from './transport/temp-folder.js';
export type { TempRootChoice as TempFolderChoice } from './transport/temp-folder.js';
export { task } from './transport/typed-task.js';
export type { TaskFunction } from './transport/functions.js';
export { inWorker } from './transport/worker-context.js';
export { Parallel } from './parallel/parallel.js';
export type { RunOutput } from './parallel/parallel.js';
export { delayed } from './parallel/delayed.js';
export type { DelayedCall } from './parallel/delayed.js';
export type { Backend, ParallelOptions, ReturnAs } from './parallel/options.js';
export type { ProgressCallback } from './parallel/progress.js';

export { Pool } from './multiprocessing/pool.js';
export type { ChunkOptions, PoolOptions } from './multiprocessing/pool.js';
export { Process } from './multiprocessing/process.js';
export type { ProcessOptions } from './multiprocessing/process.js';
export { Queue } from './multiprocessing/queue.js';
export type { QueueOptions, QueueWaitOptions } from './multiprocessing/queue.js';
export { SharedArray, Value } from './multiprocessing/values.js';
export { Lock } from './multiprocessing/lock.js';
export type { AcquireOptions } from './multiprocessing/lock.js';

// Lets the transport layer recognise memjob's own exports (sent to workers by name).
import * as memjob from './index.js';
import { registerMemjobExports } from './transport/memjob-exports.js';
registerMemjobExports(memjob as unknown as Readonly<Record<string, unknown>>);
