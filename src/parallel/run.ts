/**
 * One run of a Parallel: pulls delayed calls lazily, batches them, sends the
 * batches to the pool's workers, collects results, reports progress, and
 * ends in exactly one way (all results, the first error, a crash, a timeout,
 * an abort, a consumer that stopped early) with its busy workers stopped and
 * its temp folders removed before the caller hears of the end.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import { ArgumentPacker } from '../transport/array-refs.js';
import { rebuildError, type SerializedError } from '../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../transport/functions.js';
import { unpackResult } from '../transport/result-refs.js';
import { RunFolders } from '../transport/run-folders.js';
import { AutoBatcher, FixedBatcher } from './batching.js';
import { isDelayedCall, type DelayedCall } from './delayed.js';
import { notDelayed, type ResolvedOptions } from './options.js';
import type { PoolListener, PoolWorker, WorkerPool } from './pool.js';
import { createProgress, type ProgressReporter } from './progress.js';
import { compactCalls, isPlainValue, type CallMessage, type ToParent } from './protocol.js';
import { abortError, describeExit, timeoutError, unsendable, withTaskIndex } from './run-errors.js';
import type { ExitInfo } from './worker-handle.js';

/** Batches queued on one worker at a time: one running, one waiting, so no round trip leaves it idle. */
const PER_WORKER = 2;
let runCounter = 0;

export type TaskSource = Iterable<unknown> | AsyncIterable<unknown>;

type Pull = () => Promise<IteratorResult<unknown>>;

function puller(tasks: TaskSource): { pull: Pull; close: () => Promise<void> } {
  if (typeof (tasks as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function') {
    const it = (tasks as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    return { pull: () => it.next(), close: async () => void (await it.return?.()) };
  }
  if (typeof (tasks as Iterable<unknown>)?.[Symbol.iterator] === 'function') {
    const it = (tasks as Iterable<unknown>)[Symbol.iterator]();
    return { pull: async () => it.next(), close: async () => void it.return?.() };
  }
  throw new MemjobError(ErrorCodes.INVALID_ARG, 'Parallel.run: expected an Iterable or AsyncIterable of delayed calls');
}

/** What a run tells whoever consumes its results. */
export interface ResultSink {
  /** A task's result (indices arrive in completion order). */
  put(index: number, value: unknown): void;
}

/** Calls pulled from the input, packed, waiting for a worker or running on one. */
interface Batch {
  id: number;
  indices: number[];
  fns: FunctionSpec[];
  calls: CallMessage[];
  started: number;
}

/**
 * Runs `tasks` on `pool` (or in this thread when pool is null); `done`
 * resolves once every result was put into `sink`, or rejects with the run's
 * failure. `fail` lets the owner end the run early (a generator left by
 * `break`, close()).
 */
export class Run implements PoolListener {
  readonly id = ++runCounter;
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  /** Set the moment the run's outcome is decided, even if the error is still being rebuilt. */
  #finished = false;
  #completed = 0;
  #dispatched = 0;
  #exhausted = false;
  #pumping = false;
  #batchCounter = 0;
  /** A batch pulled from the input that no worker could take yet. */
  #pending: Batch | undefined;
  readonly #inFlight = new Map<number, Batch>();
  readonly #pull: Pull;
  readonly #closeInput: () => Promise<void>;
  readonly #batcher: AutoBatcher | FixedBatcher;
  readonly #packer: ArgumentPacker;
  readonly #progress: ProgressReporter;
  readonly #folders: RunFolders;
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
    this.#folders = new RunFolders(options.tempFolder);
    this.#packer = new ArgumentPacker({ maxNbytes: options.maxNbytes, mmapMode: options.mmapMode, folders: this.#folders });
    const backendLine =
      options.backend === 'sequential' ? 'Using backend sequential (in-process).' : `Using backend ${options.backend} with ${options.nJobs} concurrent workers.`;
    this.#progress = createProgress({ verbose: options.verbose, progress: options.progress, label: `Parallel(nJobs=${options.nJobs})`, backendLine });
  }

  start(): Promise<void> {
    const { signal, timeout } = this.options;
    this.#progress.start(this.knownTotal);
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
      this.pool.setActive(true);
      void this.#pump();
    }
    return this.done;
  }

  /** Ends the run with `error` (the first failure wins). */
  fail(error: unknown): void {
    this.#stop(Promise.resolve(error));
  }

  /**
   * Ends the run with the error `reason` resolves to. The run counts as
   * finished at once, so nothing that happens while the error is rebuilt
   * (another batch completing, say) can end it some other way. Busy and
   * starting workers are stopped before the folders go: a child process
   * still writing a result file must not recreate what cleanup removed.
   */
  #stop(reason: Promise<unknown>): void {
    if (this.#finished) return;
    this.#finished = true;
    const stopped = this.pool?.stopBusy(); // at once: the remaining tasks are cancelled, not awaited
    void (async () => {
      const error = await reason.catch((rebuildFailure: unknown) => rebuildFailure);
      await stopped;
      this.#cleanup();
      this.#reject(error);
    })();
  }

  #succeed(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#cleanup();
    try {
      this.#progress.finish(this.#completed);
    } catch (error) {
      this.#reject(error);
      return;
    }
    this.#resolve();
  }

  #cleanup(): void {
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.options.signal?.removeEventListener('abort', this.#onAbort);
    if (this.pool !== null) {
      if (this.pool.listener === this) this.pool.listener = null;
      this.pool.broadcast({ type: 'run-end', runId: this.id });
      this.pool.setActive(false);
    }
    this.#folders.remove();
    // Not awaited: an async input may be stuck in next(), and return() waits behind it.
    this.#closeInput().catch(() => undefined);
  }

  #taskCompleted(index: number, value: unknown): void {
    this.#completed++;
    this.sink.put(index, value);
    this.#progress.update(this.#completed, this.#exhausted ? this.#dispatched : this.knownTotal, this.#dispatched);
  }

  /** Pulls the next call, checking it is one; undefined once the input is exhausted. */
  async #next(): Promise<DelayedCall | undefined> {
    const item = await this.#pull();
    if (item.done === true) {
      this.#exhausted = true;
      return undefined;
    }
    if (!isDelayedCall(item.value)) throw notDelayed(this.#dispatched, item.value);
    return item.value;
  }

  /** In this thread. A fixed batchSize pulls that many calls before running them, as joblib's sequential backend does ('auto': one). */
  async #runSequential(): Promise<void> {
    const size = this.options.batchSize === 'auto' ? 1 : this.options.batchSize;
    try {
      while (!this.#exhausted) {
        const batch: [number, DelayedCall][] = [];
        while (batch.length < size) {
          const call = await this.#next();
          if (this.#finished) return;
          if (call === undefined) break;
          batch.push([this.#dispatched++, call]);
        }
        for (const [index, call] of batch) {
          let value: unknown;
          try {
            value = await (call.fn as (...args: unknown[]) => unknown)(...call.args);
          } catch (error) {
            if (error instanceof Error && !Object.hasOwn(error, 'taskIndex')) withTaskIndex(error, index);
            throw error;
          }
          if (this.#finished) return;
          this.#taskCompleted(index, value);
        }
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

  /**
   * Sends batches while workers have room and the input has calls. Only one
   * pump runs at a time; a completion, a worker becoming ready or dying
   * calls it again. A batch is pulled before the pool is filled, so a bad
   * first call (a closure, a non-delayed item) fails before any worker starts.
   */
  async #pump(): Promise<void> {
    if (this.#pumping || this.#finished) return;
    this.#pumping = true;
    try {
      const pool = this.pool!;
      while (!this.#finished && this.#inFlight.size < this.options.preDispatchBatches) {
        if (this.#pending === undefined) {
          // Pull only what a worker can take now or once it has started (preDispatch keeps the input lazy).
          if (this.#exhausted || !pool.hasRoom(PER_WORKER)) break;
          this.#pending = await this.#collect();
          if (this.#pending === undefined || this.#finished) break;
        }
        pool.fill(this.knownTotal); // an array input: no more workers than tasks
        const worker = pool.pick(PER_WORKER);
        if (worker === undefined) {
          // Workers still starting will take work when ready: wait for that, not in a loop.
          if (pool.starting()) {
            await pool.nextReadyChange();
            continue;
          }
          break; // every worker has its queue full: a completion calls pump again
        }
        const batch = this.#pending;
        this.#pending = undefined;
        this.#send(batch, worker);
      }
      if (!this.#finished && this.#exhausted && this.#pending === undefined && this.#inFlight.size === 0) this.#succeed();
    } catch (error) {
      this.fail(error);
    } finally {
      this.#pumping = false;
    }
  }

  /** Pulls and packs the next batch; undefined when the input has no more calls. */
  async #collect(): Promise<Batch | undefined> {
    let size = this.#batcher.size;
    if (this.knownTotal !== undefined) {
      // Near the end, smaller batches keep every worker busy to the last task.
      const remaining = this.knownTotal - this.#dispatched;
      size = Math.max(1, Math.min(size, Math.ceil(remaining / (2 * this.options.nJobs))));
    }
    const batch: Batch = { id: 0, indices: [], fns: [], calls: [], started: 0 };
    const fnIndex = new Map<FunctionSpec, number>();
    while (batch.calls.length < size) {
      const call = await this.#next();
      if (call === undefined || this.#finished) break;
      const spec = this.#spec(call.fn);
      let fn = fnIndex.get(spec);
      if (fn === undefined) {
        fnIndex.set(spec, (fn = batch.fns.length));
        batch.fns.push(spec);
      }
      // Plain arguments (numbers, strings...) need no walk: a seed-size run makes 10,000 of these calls.
      const args = (call.args.every(isPlainValue) ? call.args : this.#packer.pack(call.args)) as unknown[];
      batch.calls.push({ fn, args });
      batch.indices.push(this.#dispatched++);
    }
    return batch.calls.length === 0 || this.#finished ? undefined : batch;
  }

  #send(batch: Batch, worker: PoolWorker): void {
    batch.id = ++this.#batchCounter;
    batch.started = performance.now();
    // A child process returns large results through files in the run's folder; a thread transfers them.
    const resultFolder = worker.handle.kind === 'processes' ? this.#folders.current().path : undefined;
    try {
      worker.post({
        type: 'batch',
        batchId: batch.id,
        runId: this.id,
        maxNbytes: this.options.maxNbytes,
        ...(resultFolder === undefined ? {} : { resultFolder }),
        fns: batch.fns,
        calls: compactCalls(batch.calls),
      });
    } catch (error) {
      throw unsendable(batch.calls, batch.indices, error);
    }
    this.#inFlight.set(batch.id, batch);
    worker.inFlight.add(batch.id);
  }

  onBatchDone(_worker: PoolWorker, message: Extract<ToParent, { type: 'batch-done' }>): void {
    const batch = this.#inFlight.get(message.batchId);
    if (batch === undefined || this.#finished) return;
    this.#inFlight.delete(message.batchId);
    try {
      const owns = (path: string) => this.#folders.owns(path);
      // Plain results (numbers, strings...) need no unpacking: skip the walk for tiny tasks.
      message.results.forEach((value, i) => this.#taskCompleted(batch.indices[i]!, typeof value === 'object' && value !== null ? unpackResult(value, owns) : value));
    } catch (error) {
      this.fail(error);
      return;
    }
    if (message.error !== undefined) {
      this.#failTask(batch.indices[message.error.index]!, message.error.error);
      return;
    }
    this.#batcher.record(batch.indices.length, performance.now() - batch.started);
    void this.#pump();
  }

  #failTask(index: number, serialized: SerializedError): void {
    this.#stop(rebuildError(serialized).then((error) => withTaskIndex(error, index)));
  }

  onWorkerExit(worker: PoolWorker, info: ExitInfo): void {
    if (!worker.ready) {
      // Dying before the first task is not bad luck but a broken setup: do not respawn forever.
      this.fail(new MemjobError(ErrorCodes.WORKER_CRASHED, `Parallel: a ${worker.describe()} ${describeExit(info)} while starting`));
      return;
    }
    const lost = [...this.#inFlight.values()].filter((batch) => worker.inFlight.has(batch.id));
    if (lost.length === 0) {
      void this.#pump(); // an idle worker died: the pool starts another
      return;
    }
    const tasks = lost.flatMap((batch) => batch.indices);
    const more = tasks.length > 1 ? ` (or one of the ${tasks.length - 1} after it in its queue)` : '';
    const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Parallel: a ${worker.describe()} ${describeExit(info)} while running task ${tasks[0]}${more}`);
    Object.assign(error, { taskIndex: tasks[0], exitCode: info.code, signal: info.signal });
    this.fail(error);
  }

  onMainReentry(_worker: PoolWorker, serialized: SerializedError): void {
    this.#stop(rebuildError(serialized));
  }

  onInitError(worker: PoolWorker, serialized: SerializedError): void {
    this.#stop(
      rebuildError(serialized).then(
        (error) => new MemjobError(ErrorCodes.INITIALIZER, `Parallel: the initializer failed in a ${worker.describe()}: ${error.message}`, { cause: error }),
      ),
    );
  }
}
