/**
 * The part of memjob's public API a task uses inside a worker: arrays,
 * memmaps, dump/load, .npy, shared objects, errors. A shipped function that
 * names one of these gets it from here, so a worker never loads the source
 * parser or the scheduler for it; src/index.ts re-exports all of it.
 */
export { ErrorCodes, MemjobError } from './errors.js';
export { dtypeNames } from './memmap/dtype.js';
export { Memmap } from './memmap/memmap.js';
export { NDArray, ndarray, stringArray } from './memmap/ndarray.js';
export { float16ToNumber, numberToFloat16 } from './memmap/float16.js';
export { memmap } from './memmap/open.js';
export { dump, dumpSync } from './format/dump.js';
export { load, loadSync } from './format/load.js';
export { hasShareableMemory } from './memmap/shareable.js';
export { maxViewBytes, pageSize } from './native.js';
export { saveNpy, saveNpySync, loadNpy, loadNpySync } from './format/npy.js';
export { loadNpz, loadNpzSync } from './format/npz.js';
export { saveNpz, saveNpzSync } from './format/npz-save.js';
export { loadJoblib, loadJoblibSync } from './format/joblib.js';
export { dumpJoblib, dumpJoblibSync } from './format/joblib-dump.js';
export { cpuCount } from './system/cpu-count.js';
export { inWorker } from './transport/worker-context.js';
export { Queue } from './multiprocessing/queue.js';
export { SharedArray, Value } from './multiprocessing/values.js';
export { Lock } from './multiprocessing/lock.js';
