/** memjob's public API. Nothing outside this file is part of it. */
// The data API (memmap, dump/load, .npy, shared objects...): also what a worker hands a shipped function by name.
export * from './worker-exports.js';
export type { MemjobErrorCode, MemjobErrorDetails } from './errors.js';
export type { Complex, DateTimeDType, DateTimeUnit, DType, DTypeArrays, DTypeScalar, StringDType, TimeDeltaDType, TypedArray } from './memmap/dtype.js';
export type { Order } from './memmap/layout.js';
export type { ChunksOptions, MemmapMode } from './memmap/memmap.js';
export type { NDArrayOptions, StringArrayOptions } from './memmap/ndarray.js';
export type { MemmapOptions } from './memmap/open.js';
export type { DumpOptions } from './format/dump.js';
export type { CompressMethod, CompressOption } from './format/compression.js';
export type { LoadMmapMode, LoadOptions } from './format/load.js';
export type { Advice } from './native.js';
export type { LoadNpyOptions } from './format/npy.js';
export type { LoadNpzOptions } from './format/npz.js';
export type { NpzArrays, SaveNpzOptions } from './format/npz-save.js';
export type { LoadJoblibOptions } from './format/joblib.js';
export type { DumpJoblibOptions, JoblibCompressMethod, JoblibCompressOption } from './format/joblib-dump.js';
export { chooseTempRoot as chooseTempFolder } from './transport/temp-root.js';
export type { TempRootChoice as TempFolderChoice } from './transport/temp-root.js';
export { task } from './transport/typed-task.js';
export type { TaskFunction } from './transport/functions.js';
export { Parallel } from './parallel/parallel.js';
export { closeSharedWorkers } from './parallel/executor.js';
export type { RunOutput } from './parallel/parallel.js';
export { delayed } from './parallel/delayed.js';
export { parallelConfig } from './parallel/config.js';
export type { ParallelConfig } from './parallel/config.js';
export type { DelayedCall } from './parallel/delayed.js';
export type { Backend, ParallelOptions, ReturnAs } from './parallel/options.js';
export type { RemoteOptions } from './parallel/remote-options.js';
export type { BrokerOption } from './remote/broker.js';
export type { ProgressCallback } from './parallel/progress.js';

export { Memory } from './memory/memory.js';
export { hash } from './memory/hash.js';
export type { HashOptions } from './memory/hash.js';
export { MemorizedResult, expiresAfter } from './memory/types.js';
export type { CacheEntryMetadata, CacheOptions, CachedFunction, Duration, MemoryOptions } from './memory/types.js';
export type { CacheEntry, ReduceSizeLimits } from './memory/limits.js';
export { Pool } from './multiprocessing/pool.js';
export type { ChunkOptions, PoolOptions } from './multiprocessing/pool.js';
export { Process } from './multiprocessing/process.js';
export type { ProcessOptions } from './multiprocessing/process.js';
export type { QueueOptions, QueueWaitOptions } from './multiprocessing/queue.js';
export type { AcquireOptions } from './multiprocessing/lock.js';

// Lets the transport layer recognise memjob's own exports (sent to workers by name).
import * as memjob from './index.js';
import { registerMemjobExports } from './transport/memjob-exports.js';
registerMemjobExports(memjob as unknown as Readonly<Record<string, unknown>>);
