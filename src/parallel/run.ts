/**
 * One run of a Parallel: pulls delayed calls lazily, batches them, sends the
 * batches to the pool's workers, collects results in input order, reports
 * progress, and ends in exactly one way (all results, the first error, a
 * crash, a timeout, an abort) with its workers and temp folder cleaned up.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import { ArgumentPacker } from '../transport/array-refs.js';
import { rebuildError } from '../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../transport/functions.js';
import { unpackResult } from '../transport/result-refs.js';
import { chooseTempRoot, createRunFolder, type RunFolder } from '../transport/temp-folder.js';
import { AutoBatcher, FixedBatcher } from './batching.js';
import { isDelayedCall, type DelayedCall } from './delayed.js';
import { notDelayed, type ResolvedOptions } from './options.js';
import type { PoolListener, PoolWorker, WorkerPool } from './pool.js';
import { createProgress, type ProgressReporter } from './progress.js';
import type { CallMessage, ToParent } from './protocol.js';
import type { ExitInfo } from './worker-handle.js';

/** Batches queued on one worker at a time: one running, one waiting, so no round trip leaves it idle. */
const PER_WORKER = 2;
let runCounter = 0;

export type TaskSource = Iterable<unknown> | AsyncIterable<unknown>;

type Pull = () => Promise<IteratorResult<unknown>>;

function puller(tasks: TaskSource): { pull: Pull; close: () => Promise<void> } {
  if (typeof (tasks as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    const it = (tasks as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    return { pull: () => it.next(), close: async () => void (await it.return?.()) };
  }
  if (typeof (tasks as Iterable<unknown>)?.[Symbol.iterator] === 'function') {
    const it = (tasks as Iterable<unknown>)[Symbol.iterator]();
    return { pull: async () => it.next(), close: async () => void it.return?.() };
  }
  throw new MemjobError(ErrorCodes.INVALID_ARG, 'Parallel.run: expected an Iterable or AsyncIterable of delayed calls');
}

export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}

function timeoutError(ms: number, done: number): MemjobError {
  return new MemjobError(
    ErrorCodes.TIMEOUT,
    `Parallel: the run did not finish within its timeout of ${ms} ms (${done} tasks done); its busy workers were stopped`,
  );
}

function label(options: ResolvedOptions): string {
  return `Parallel(nJobs=${options.nJobs})`;
}

/** What a run tells whoever consumes its results. */
export interface ResultSink {
  /** A task's result (indices arrive in completion order). */
  put(index: number, value: unknown): void;
}

interface Batch {
  id: number;
  indices: number[];
  started: number;
}

/**
 * Runs `tasks` on `pool` (or in this thread when pool is null) and resolves
 * when every result was put into `sink`, or rejects with the run's failure.
 * `stop` lets a consumer end the run early (a generator left by `break`).
 */
export class Run implements PoolListener {
  readonly id = ++runCounter;
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  #finished = false;
  #completed = 0;
  #dispatched = 0;
  #exhausted = false;
  #pumping = false;
  #batchCounter = 0;
  readonly #inFlight = new Map<number, Batch>();
  readonly #pull: Pull;
  readonly #closeInput: () => Promise<void>;
  readonly #batcher: AutoBatcher | FixedBatcher;
  readonly #packer: ArgumentPacker;
  readonly #progress: ProgressReporter;
  #folder: RunFolder | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onAbort: (() => void) | undefined;
  readonly #specs = new Map<unknown, FunctionSpec>();

  constructor(
    tasks: TaskSource,
    readonly options: ResolvedOptions,
    readonly pool: WorkerPool | null,
    readonly sink: ResultSink,
    readonly memjobExports: Readonly<Record<string, unknown>>,
    readonly knownTotal: number | undefined,
  ) {
    ({ pull: this.#pull, close: this.#closeInput } = puller(tasks));
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.done.catch(() => undefined); // observed by the caller; never an unhandled rejection here
    this.#batcher = options.batchSize === 'auto' ? new AutoBatcher() : new FixedBatcher(options.batchSize);
    this.#packer = new ArgumentPacker({ maxNbytes: options.maxNbytes, mmapMode: options.mmapMode, folder: () => this.folder() });
    const backendLine =
      options.backend === 'sequential' ? 'Using backend sequential (in-process).' : `Using backend ${options.backend} with ${options.nJobs} concurrent workers.`;
    this.#progress = createProgress({ verbose: options.verbose, progress: options.progress, label: label(options), backendLine });
  }

  /** The run's temp folder, created on first use (joblib creates it on the first large array too). */
  folder(neededBytes = 0): RunFolder {
    this.#folder ??= createRunFolder(chooseTempRoot(this.options.tempFolder, neededBytes).root);
    return this.#folder;
  }

  start(): Promise<void> {
    const { signal, timeout } = this.options;
    this.#progress.start();
    if (signal?.aborted) {
      this.fail(abortError(signal));
      return this.done;
    }
    if (signal !== undefined) {
      this.#onAbort = () => this.fail(abortError(signal));
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    if (timeout !== null) this.#timer = setTimeout(() => this.fail(timeoutError(timeout, this.#completed)), timeout);
    if (this.pool === null) void this.#runSequential();
    else {
      this.pool.listener = this;
      this.pool.fill();
      void this.#pump();
    }
    return this.done;
  }

  /** Ends the run with `error` (the first failure wins) and stops the workers still busy with it. */
  fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.pool !== null) {
      for (const worker of [...this.pool.workers]) if (worker.inFlight.size > 0) void this.pool.retire(worker, false);
    }
    void this.#cleanup().finally(() => this.#reject(error));
  }

  #succeed(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#progress.finish(this.#completed);
    void this.#cleanup().then(() => this.#resolve(), (error: unknown) => this.#reject(error));
  }

  async #cleanup(): Promise<void> {
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.options.signal?.removeEventListener('abort', this.#onAbort);
    if (this.pool !== null) {
      if (this.pool.listener === this) this.pool.listener = null;
      this.pool.broadcast({ type: 'run-end', runId: this.id });
    }
    this.#folder?.remove();
    try {
      await this.#closeInput();
    } catch {
      // an input iterator that fails to close does not change how the run ended
    }
  }

  #taskCompleted(index: number, value: unknown): void {
    this.#completed++;
    this.sink.put(index, value);
    this.#progress.update(this.#completed, this.#exhausted ? this.#dispatched : this.knownTotal, this.#dispatched);
  }

  /** Pulls the next call, checking it is one. */
  async #next(): Promise<DelayedCall | undefined> {
    const item = await this.#pull();
    if (item.done === true) {
      this.#exhausted = true;
      return undefined;
    }
    if (!isDelayedCall(item.value)) throw notDelayed(this.#dispatched, item.value);
    return item.value;
  }

  async #runSequential(): Promise<void> {
    try {
      for (;;) {
        const call = await this.#next();
        if (this.#finished) return;
        if (call === undefined) break;
        const index = this.#dispatched++;
        let value: unknown;
        try {
          value = await (call.fn as (...args: unknown[]) => unknown)(...call.args);
        } catch (error) {
          if (error instanceof Error && !Object.hasOwn(error, 'taskIndex')) {
            Object.defineProperty(error, 'taskIndex', { value: index, configurable: true, writable: true });
          }
          throw error;
        }
        if (this.#finished) return;
        this.#taskCompleted(index, value);
      }
      this.#succeed();
    } catch (error) {
      this.fail(error);
    }
  }

  #spec(fn: unknown): FunctionSpec {
    let spec = this.#specs.get(fn);
    if (spec === undefined) this.#specs.set(fn, (spec = describeFunction(fn, this.memjobExports)));
    return spec;
  }

  /** Sends batches while workers have room and the input has calls. Only one pump runs at a time. */
  async #pump(): Promise<void> {
    if (this.#pumping || this.#finished) return;
    this.#pumping = true;
    try {
      const pool = this.pool!;
      while (!this.#finished && !this.#exhausted && this.#inFlight.size < this.options.preDispatchBatches) {
        pool.fill();
        const worker = pool.pick(PER_WORKER);
        if (worker === undefined) {
          // Workers still starting will take work when ready: wait for that, not in a loop.
          if (pool.workers.some((w) => !w.ready && w.inFlight.size === 0)) {
            await pool.nextReadyChange();
            continue;
          }
          break; // every worker has its queue full: a completion calls pump again
        }
        await this.#dispatch(worker);
      }
      if (!this.#finished && this.#exhausted && this.#inFlight.size === 0) this.#succeed();
    } catch (error) {
      this.fail(error);
    } finally {
      this.#pumping = false;
    }
  }

  async #dispatch(worker: PoolWorker): Promise<void> {
    let size = this.#batcher.size;
    if (this.knownTotal !== undefined) {
      // Near the end, smaller batches keep every worker busy to the last task.
      const remaining = this.knownTotal - this.#dispatched;
      size = Math.max(1, Math.min(size, Math.ceil(remaining / (2 * this.options.nJobs))));
    }
    const fns: FunctionSpec[] = [];
    const fnIndex = new Map<FunctionSpec, number>();
    const calls: CallMessage[] = [];
    const indices: number[] = [];
    while (calls.length < size) {
      const call = await this.#next();
      if (call === undefined || this.#finished) break;
      const spec = this.#spec(call.fn);
      let fn = fnIndex.get(spec);
      if (fn === undefined) {
        fnIndex.set(spec, (fn = fns.length));
        fns.push(spec);
      }
      calls.push({ fn, args: this.#packer.pack(call.args) as unknown[] });
      indices.push(this.#dispatched++);
    }
    if (calls.length === 0 || this.#finished) return;
    const batch: Batch = { id: ++this.#batchCounter, indices, started: performance.now() };
    this.#inFlight.set(batch.id, batch);
    worker.inFlight.add(batch.id);
    const resultFolder = worker.handle.kind === 'processes' ? this.folder().path : undefined;
    worker.post({
      type: 'batch',
      batchId: batch.id,
      runId: this.id,
      maxNbytes: this.options.maxNbytes,
      ...(resultFolder === undefined ? {} : { resultFolder }),
      fns,
      calls,
    });
  }

  onBatchDone(_worker: PoolWorker, message: Extract<ToParent, { type: 'batch-done' }>): void {
    const batch = this.#inFlight.get(message.batchId);
    if (batch === undefined || this.#finished) return;
    this.#inFlight.delete(message.batchId);
    const folder = this.#folder?.path;
    try {
      message.results.forEach((value, i) => this.#taskCompleted(batch.indices[i]!, unpackResult(value, folder)));
    } catch (error) {
      this.fail(error);
      return;
    }
    if (message.error !== undefined) {
      const index = batch.indices[message.error.index]!;
      void rebuildError(message.error.error).then((error) => {
        Object.defineProperty(error, 'taskIndex', { value: index, configurable: true, writable: true, enumerable: false });
        this.fail(error);
      });
      return;
    }
    this.#batcher.record(batch.indices.length, performance.now() - batch.started);
    void this.#pump();
  }

  onWorkerExit(worker: PoolWorker, info: ExitInfo): void {
    const lost = [...this.#inFlight.values()].filter((batch) => worker.inFlight.has(batch.id));
    if (!worker.ready) {
      // Dying before the first task is not bad luck but a broken setup: do not respawn forever.
      const how = info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
      this.fail(new MemjobError(ErrorCodes.WORKER_CRASHED, `Parallel: a ${worker.describe()} ${how} while starting${info.error ? ` (${info.error.message})` : ''}`));
      return;
    }
    if (lost.length === 0) {
      void this.#pump(); // an idle worker died: the pool starts another
      return;
    }
    const how = info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
    const tasks = lost.flatMap((batch) => batch.indices);
    const reason = info.error !== undefined ? ` (${info.error.message})` : '';
    const error = new MemjobError(
      ErrorCodes.WORKER_CRASHED,
      `Parallel: a ${worker.describe()} ${how}${reason} while running task ${tasks[0]}${tasks.length > 1 ? ` (and ${tasks.length - 1} more in its queue)` : ''}`,
    );
    Object.assign(error, { taskIndex: tasks[0], exitCode: info.code, signal: info.signal });
    this.fail(error);
  }

  onInitError(worker: PoolWorker, serialized: Parameters<PoolListener['onInitError']>[1]): void {
    void this.pool?.retire(worker, false);
    void rebuildError(serialized).then((error) => {
      const wrapped = new MemjobError(ErrorCodes.INITIALIZER, `Parallel: the initializer failed in a ${worker.describe()}: ${error.message}`, { cause: error });
      this.fail(wrapped);
    });
  }
}
