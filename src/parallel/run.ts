/**
 * One run of a Parallel: pulls delayed calls lazily, batches them, hands the
 * batches to the Dispatcher, collects results, reports progress, and ends in
 * exactly one way (all results, the first error, a crash, a timeout, an
 * abort, a consumer that stopped early) with its busy workers stopped and
 * its temp files removed before the caller hears of the end.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import type { Backend, ExitInfo, Slot, Transport } from './backends/backend.js';
import { AutoBatcher, FixedBatcher, REMOTE_BATCH_GROWTH, REMOTE_MIN_BATCH_MS } from './batching.js';
import { isDelayedCall, type DelayedCall } from './delayed.js';
import { Dispatcher, type DispatchBatch, type DispatchOwner, type Failure } from './dispatcher.js';
import { notDelayed, type ResolvedOptions } from './options.js';
import { createProgress, type ProgressReporter } from './progress.js';
import { abortError, attributeToTask, describeExit, taskTimeoutError, timeoutError, unsendable } from './run-errors.js';

let runCounter = 0;
/** Calls pulled from the input between two turns of the event loop. */
const PULLS_PER_TURN = 4096;

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

/** Calls pulled from the input and encoded, waiting for a slot or running on one. */
interface RunBatch extends DispatchBatch {
  indices: number[];
  calls: DelayedCall[];
}

/**
 * Runs `tasks` on `backend`; `done` resolves once every result was put into
 * `sink`, or rejects with the run's failure. `fail` lets the owner end the
 * run early (a generator left by `break`, close()).
 */
export class Run implements DispatchOwner<RunBatch> {
  readonly id = ++runCounter;
  readonly where = 'Parallel';
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  /** Set the moment the run's outcome is decided, even if the error is still being rebuilt. */
  #finished = false;
  #completed = 0;
  #dispatched = 0;
  #exhausted = false;
  readonly #pull: Pull;
  readonly #closeInput: () => Promise<void>;
  readonly #batcher: AutoBatcher | FixedBatcher;
  readonly #progress: ProgressReporter;
  readonly #dispatcher: Dispatcher<RunBatch>;
  #timer: NodeJS.Timeout | undefined;
  #onAbort: (() => void) | undefined;

  constructor(
    tasks: TaskSource,
    readonly options: ResolvedOptions,
    readonly backend: Backend,
    readonly transport: Transport,
    readonly sink: ResultSink,
    readonly knownTotal: number | undefined,
    /** A batcher that outlives the run (bullmq: a Parallel's next run starts at the size this one found, as joblib's backend keeps its batch size). */
    kept?: AutoBatcher,
  ) {
    ({ pull: this.#pull, close: this.#closeInput } = puller(tasks));
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.done.catch(() => undefined); // observed by the caller; never an unhandled rejection here
    // In this thread, 'auto' runs one call at a time, as joblib's sequential backend does.
    const auto = kept ?? (backend.name === 'sequential' ? new FixedBatcher(1) : new AutoBatcher(backend.name === 'bullmq' ? REMOTE_BATCH_GROWTH : 2));
    this.#batcher = options.batchSize === 'auto' ? auto : new FixedBatcher(options.batchSize);
    this.#dispatcher = new Dispatcher(backend, transport, this, options.taskTimeout);
    const backendLine =
      backend.name === 'sequential' ? 'Using backend sequential (in-process).' : `Using backend ${backend.name} with ${options.nJobs} concurrent workers.`;
    this.#progress = createProgress({ verbose: options.verbose, progress: options.progress, label: `Parallel(nJobs=${options.nJobs})`, backendLine });
  }

  get maxInFlight(): number {
    return this.options.preDispatchBatches;
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
    this.#dispatcher.attach();
    void this.#dispatcher.pump();
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
   * starting workers are stopped before the files go: a child process
   * still writing a result file must not recreate what cleanup removed.
   */
  #stop(reason: Promise<unknown>): void {
    if (this.#finished) return;
    this.#finished = true;
    const stopped = this.#dispatcher.stop(); // at once: the remaining tasks are cancelled, not awaited
    void (async () => {
      const error = await reason.catch((rebuildFailure: unknown) => rebuildFailure);
      await stopped;
      this.#cleanup(true);
      this.#reject(error);
    })();
  }

  #succeed(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#cleanup(false);
    try {
      this.#progress.finish(this.#completed);
    } catch (error) {
      this.#reject(error);
      return;
    }
    this.#resolve();
  }

  #cleanup(failed: boolean): void {
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.options.signal?.removeEventListener('abort', this.#onAbort);
    this.#dispatcher.detach();
    this.transport.endRun(failed);
    this.backend.endRun(this.transport.id, this.transport.keptDumps());
    // Not awaited: an async input may be stuck in next(), and return() waits behind it.
    this.#closeInput().catch(() => undefined);
  }

  #taskCompleted(index: number, value: unknown): void {
    this.#completed++;
    this.sink.put(index, value);
    this.#progress.update(this.#completed, this.#exhausted ? this.#dispatched : this.knownTotal, this.#dispatched);
  }

  /** Pulls the next call, checking it is one; undefined once the input is exhausted. */
  async #nextCall(): Promise<DelayedCall | undefined> {
    const item = await this.#pull();
    if (item.done === true) {
      this.#exhausted = true;
      return undefined;
    }
    if (!isDelayedCall(item.value)) throw notDelayed(this.#dispatched, item.value);
    return item.value;
  }

  waiting(): boolean {
    return !this.#exhausted && !this.#finished;
  }

  wantedSlots(): number {
    return this.knownTotal ?? Infinity; // an array input: no more workers than tasks
  }

  /** Pulls and encodes the next batch; undefined when the input has no more calls. */
  async next(): Promise<RunBatch | undefined> {
    let size = this.#batcher.size;
    if (this.knownTotal !== undefined && this.backend.name !== 'sequential') {
      // Near the end, smaller batches keep every worker busy to the last task.
      const remaining = this.knownTotal - this.#dispatched;
      size = Math.max(1, Math.min(size, Math.ceil(remaining / (2 * this.options.nJobs))));
      // Through a broker each batch costs a round trip of milliseconds: the last ones do not shrink below a few of those.
      if (this.backend.name === 'bullmq' && this.#batcher instanceof AutoBatcher) size = Math.max(size, Math.min(this.#batcher.sizeLasting(REMOTE_MIN_BATCH_MS), remaining));
    }
    const calls: DelayedCall[] = [];
    const indices: number[] = [];
    while (calls.length < size) {
      // A synchronous input resolves every pull at once: without a turn of the event loop now and then,
      // results, timeouts and aborts would wait until the whole batch is pulled.
      if (calls.length > 0 && calls.length % PULLS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      const call = await this.#nextCall();
      if (call === undefined || this.#finished) break;
      calls.push(call);
      indices.push(this.#dispatched++);
    }
    if (calls.length === 0 || this.#finished) return undefined;
    return { batch: this.transport.encode(calls), indices, calls };
  }

  changed(): void {
    if (!this.#finished && this.#exhausted && this.#dispatcher.idle) this.#succeed();
  }

  pullFailed(error: unknown): void {
    this.fail(error);
  }

  sendFailed(batch: RunBatch, error: unknown): void {
    this.fail(unsendable(batch.calls, batch.indices, error));
  }

  batchDone(batch: RunBatch, results: unknown[], failure: Failure | undefined): void {
    if (this.#finished) return;
    results.forEach((value, i) => this.#taskCompleted(batch.indices[i]!, value));
    if (failure !== undefined) {
      const index = batch.indices[failure.index]!;
      this.#stop(failure.error.then((error) => attributeToTask(error, index), (error: unknown) => attributeToTask(error, index)));
      return;
    }
    this.#batcher.record(batch.indices.length, performance.now() - batch.sentAt!);
  }

  batchesLost(lost: RunBatch[], slot: Slot, info: ExitInfo): void {
    const tasks = lost.flatMap((batch) => batch.indices);
    const more = tasks.length > 1 ? ` (or one of the ${tasks.length - 1} after it in its queue)` : '';
    const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Parallel: a ${slot.describe()} ${describeExit(info)} while running task ${tasks[0]}${more}`);
    Object.assign(error, { taskIndex: tasks[0], exitCode: info.code, signal: info.signal });
    this.fail(error);
  }

  setupFailed(error: Promise<Error>): void {
    this.#stop(error);
  }

  taskTimedOut(batch: RunBatch, index: number): void {
    this.fail(taskTimeoutError(this.options.taskTimeout!, batch.indices[index]!, this.backend.name === 'sequential'));
  }
}
