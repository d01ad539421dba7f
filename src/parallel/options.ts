/**
 * Parallel's options, with joblib's names in Node's spelling and joblib's
 * defaults, parsed once into a plain resolved form.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import type { LoadMmapMode } from '../format/load.js';
import { cpuCount, parseNJobs } from '../system/cpu-count.js';
import { parseMaxNbytes, parseTempFolder } from '../transport/options.js';
import type { BackendName } from './backends/backend.js';
import type { BullmqSettings } from './backends/bullmq-backend.js';
import { parseRemoteOptions, type RemoteOptions } from './remote-options.js';
import { isDelayedCall, type DelayedCall } from './delayed.js';
import { nestedBackend } from './nesting.js';
import type { ProgressCallback } from './progress.js';

export type ReturnAs = 'array' | 'generator' | 'unordered';
/** Where a Parallel's tasks run (src/parallel/backends/). */
export type Backend = BackendName;

export interface ParallelOptions<RA extends ReturnAs = ReturnAs> extends RemoteOptions {
  /** Workers: n, or negative counting from cpuCount() (-1 all cores, -2 all but one). Default 1 (in-process), as in joblib. */
  nJobs?: number;
  /** Default 'threads'. nJobs 1 always runs sequentially in-process (but on 'bullmq'). 'bullmq': `memjob worker`s on other machines (docs/distributed.md). */
  backend?: Backend;
  /** Tasks per batch, or 'auto' (joblib's adaptive batching; default). */
  batchSize?: 'auto' | number;
  /** Batches dispatched ahead of completion: '2*nJobs' (default), 'all', a number, or an expression in nJobs. */
  preDispatch?: 'all' | number | string;
  /** Milliseconds for the whole run; MEMJOB_ERR_TIMEOUT after. Default none. */
  timeout?: number | null;
  /** Milliseconds for each task (joblib's `timeout`); MEMJOB_ERR_TIMEOUT naming the task after, and its worker is stopped. Default none. */
  taskTimeout?: number | null;
  /** false: workers of its own, stopped by close(). Default true: warm workers shared with other Parallels of the same worker options (joblib's reusable executor). */
  reuse?: boolean;
  /** Aborting it rejects the run with an AbortError and stops its workers. */
  signal?: AbortSignal;
  /** Arrays larger than this go to workers as memory-mapped dumps: bytes, or '1M'-style (K, M, G; base 1024). null disables. Default '1M'. */
  maxNbytes?: number | string | null;
  /** How workers map dumped arrays: 'r' (default), 'r+', 'c', 'w+'. */
  mmapMode?: LoadMmapMode;
  /** Root folder for the run's temp folder; default MEMJOB_TEMP_FOLDER, then /dev/shm, then os.tmpdir(). */
  tempFolder?: string;
  /** joblib's verbosity: 0 silent, >0 progress messages on stderr, >10 every completion, >=50 on stdout. */
  verbose?: number;
  /** true: a progress bar on stderr when it is a terminal; or a callback (done, total). */
  progress?: boolean | ProgressCallback;
  /** 'array' (default) resolves to all results in order; 'generator' and 'unordered' give an AsyncIterable. */
  returnAs?: RA;
  /** Run once in each worker before its first task: a function, or delayed(fn)(...args). */
  initializer?: ((...args: never[]) => unknown) | DelayedCall;
  /** Worker threads: V8 heap limits; child processes: maxOldGenerationSizeMb becomes --max-old-space-size. */
  resourceLimits?: ResourceLimits;
}

export interface ResolvedOptions {
  nJobs: number;
  backend: Backend;
  batchSize: 'auto' | number;
  /** Batches in flight at most; Infinity for 'all'. */
  preDispatchBatches: number;
  timeout: number | null;
  taskTimeout: number | null;
  reuse: boolean;
  signal: AbortSignal | undefined;
  maxNbytes: number | null;
  mmapMode: LoadMmapMode;
  tempFolder: string | undefined;
  verbose: number;
  progress: boolean | ProgressCallback;
  returnAs: ReturnAs;
  initializer: DelayedCall | undefined;
  resourceLimits: ResourceLimits | undefined;
  /** backend 'bullmq': the broker, queue and secret; undefined for the local backends. */
  remote: BullmqSettings | undefined;
}

const where = 'Parallel';

function parsePreDispatch(value: unknown, nJobs: number): number {
  if (value === 'all') return Infinity;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  if (typeof value === 'string') {
    // joblib evaluates the expression with n_jobs bound; accept its usual forms only.
    const match = /^\s*(?:(\d+)\s*\*\s*)?n_?jobs\s*(?:\*\s*(\d+))?\s*$/i.exec(value);
    if (match) return Math.max(1, Number(match[1] ?? 1) * Number(match[2] ?? 1) * nJobs);
    if (/^\s*\d+\s*$/.test(value) && Number(value) > 0) return Number(value);
  }
  throw invalidArg(where, 'preDispatch', "'all', a positive integer, or an expression such as '2*nJobs'", value);
}

function parseTimeout(value: unknown, name: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && value > 0 && value <= 2 ** 31 - 1) return value;
  throw invalidArg(where, name, `a positive number of milliseconds up to ${2 ** 31 - 1}, or null`, value);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalidArg(where, name, allowed.map((a) => `'${a}'`).join(', '), value);
}

export function resolveOptions(options: ParallelOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const nJobs = parseNJobs(options.nJobs, where, 1);
  let backend = oneOf(options.backend, ['threads', 'processes', 'sequential', 'bullmq'] as const, 'backend', 'threads');
  // On a cluster, one batch at a time still runs elsewhere: only the local backends become sequential.
  if (nJobs === 1 && backend !== 'bullmq') backend = 'sequential';
  backend = nestedBackend(backend, where); // inside a worker, as joblib nests
  const batchSize = options.batchSize ?? 'auto';
  if (batchSize !== 'auto' && !(Number.isInteger(batchSize) && batchSize > 0)) {
    throw invalidArg(where, 'batchSize', "'auto' or a positive integer", batchSize);
  }
  const timeout = parseTimeout(options.timeout, 'timeout');
  const taskTimeout = parseTimeout(options.taskTimeout, 'taskTimeout');
  const reuse = options.reuse ?? true;
  if (typeof reuse !== 'boolean') throw invalidArg(where, 'reuse', 'true or false', reuse);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalidArg(where, 'signal', 'an AbortSignal', options.signal);
  const verbose = options.verbose ?? 0;
  if (typeof verbose !== 'number' || !(verbose >= 0)) throw invalidArg(where, 'verbose', 'a number from 0 to 100', verbose);
  const progress = options.progress ?? false;
  if (typeof progress !== 'boolean' && typeof progress !== 'function') throw invalidArg(where, 'progress', 'a boolean or a callback (done, total)', progress);
  let initializer: DelayedCall | undefined;
  if (options.initializer !== undefined) {
    if (isDelayedCall(options.initializer)) initializer = options.initializer;
    else if (typeof options.initializer === 'function') initializer = { fn: options.initializer, args: [] } as unknown as DelayedCall;
    else throw invalidArg(where, 'initializer', 'a function or delayed(fn)(...args)', options.initializer);
  }
  if (backend !== 'sequential' && backend !== 'bullmq') warnManyWorkers(where, 'nJobs', nJobs); // on bullmq nJobs starts no local worker
  return {
    nJobs,
    backend,
    batchSize,
    preDispatchBatches: parsePreDispatch(options.preDispatch ?? '2*nJobs', nJobs),
    timeout,
    taskTimeout,
    reuse,
    signal: options.signal,
    maxNbytes: parseMaxNbytes(where, options.maxNbytes),
    mmapMode: oneOf(options.mmapMode, ['r', 'r+', 'c', 'w+'] as const, 'mmapMode', 'r'),
    tempFolder: parseTempFolder(where, options.tempFolder),
    verbose,
    progress,
    returnAs: oneOf(options.returnAs, ['array', 'generator', 'unordered'] as const, 'returnAs', 'array'),
    initializer,
    resourceLimits: options.resourceLimits,
    remote: parseRemoteOptions(where, backend, options),
  };
}

export function notDelayed(index: number, value: unknown): MemjobError {
  return new MemjobError(ErrorCodes.INVALID_ARG, `${where}.run: expected delayed(fn)(...args) at index ${index}, received ${describe(value)}`);
}

/** Workers per CPU above which a pool is almost surely a mistake (nJobs: 1000 for a handful of tasks). */
const MANY_WORKERS_PER_CPU = 4;
let warnedManyWorkers = false;

/**
 * Warns once per process when a pool is asked for more than 4 workers per
 * CPU: each worker is a thread with its own V8 heap or a whole process, and
 * 1000 of them took 3.9 GB and 26 s to start on 2 cores. Pools never start
 * more workers than the tasks they know of, so this is a warning, not an error.
 */
export function warnManyWorkers(where: string, option: string, workers: number): void {
  if (warnedManyWorkers || workers <= MANY_WORKERS_PER_CPU) return; // cpuCount() reads cgroup files: only when it can matter
  const cpus = cpuCount();
  if (workers <= MANY_WORKERS_PER_CPU * cpus) return;
  warnedManyWorkers = true;
  process.emitWarning(`${where}: ${option} ${workers} is more than ${MANY_WORKERS_PER_CPU} workers per CPU (cpuCount() is ${cpus})`, {
    code: 'MEMJOB_MANY_WORKERS',
    detail:
      'Each worker is a thread with its own V8 heap, or a process; memjob starts no more of them than there are tasks in an array input, ' +
      `but a long or unbounded input starts all ${workers}. One per CPU is Parallel's nJobs: -1, and Pool's default.`,
  });
}
