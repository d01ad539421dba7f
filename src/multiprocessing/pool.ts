/**
 * Pool: multiprocessing.Pool on memjob's workers (the same worker pool,
 * worker code, function shipping and array references as Parallel). Calls
 * from map, imap, apply... share one FIFO queue of chunks; a failing task
 * rejects only its own call, and a crashed worker rejects the calls it was
 * running while the pool starts another and keeps serving.
 *
 *   await using pool = new Pool({ processes: 4 });
 *   const squares = await pool.map(square, [1, 2, 3]);
 */
import { ErrorCodes, MemjobError, invalidArg } from '../errors.js';
import type { ExitInfo, Slot } from '../parallel/backends/backend.js';
import type { Backend, EncodedBatch, Transport } from '../parallel/backends/backend.js';
import { BullmqBackend } from '../parallel/backends/bullmq-backend.js';
import { parseRemoteOptions, type RemoteOptions } from '../parallel/remote-options.js';
import { isDelayedCall, type DelayedCall } from '../parallel/delayed.js';
import { Dispatcher, type DispatchBatch, type DispatchOwner, type Failure } from '../parallel/dispatcher.js';
import { makeWorkerBackend } from '../parallel/executor.js';
import { warnManyWorkers } from '../parallel/options.js';
import { describeExit } from '../parallel/run-errors.js';
import type { BackendKind } from '../parallel/worker-handle.js';
import { describeFunction, type FunctionSpec } from '../transport/functions.js';
import { memjobExports } from '../transport/memjob-exports.js';
import { parseMaxNbytes, parseTempFolder } from '../transport/options.js';
import { refuseMainReentry } from '../transport/worker-context.js';
import { cpuCount } from '../system/cpu-count.js';
import { collectItems, collector, deferreds, inCompletionOrder, parseItems, streamResults, type Sink } from './pool-io.js';

type Fn<A extends unknown[], R> = (...args: A) => R;

export interface PoolOptions extends RemoteOptions {
  /** Workers; default cpuCount(). */
  processes?: number;
  /** Run once in each worker before its first task: a function, or delayed(fn)(...args). */
  initializer?: ((...args: never[]) => unknown) | DelayedCall;
  /** Arguments for a plain-function initializer (Python's initargs). */
  initargs?: readonly unknown[];
  /** 'threads' (default), 'processes', or 'bullmq': `memjob worker`s through a Redis broker (docs/distributed.md; `processes` is then the chunks in flight). */
  backend?: BackendKind | 'bullmq';
  /** Replace a worker after it has run this many tasks (Python's maxtasksperchild). Default: never. */
  maxTasksPerChild?: number;
  /** Arrays larger than this travel as memory-mapped dumps: bytes, or a string such as '1M'. Default 1 MiB; null: never. */
  maxNbytes?: number | string | null;
  /** Root for the pool's temp folder (default: as Parallel chooses). */
  tempFolder?: string;
}

export interface ChunkOptions {
  /** Tasks per chunk sent to a worker at once: a number, or 'auto' (Python's map heuristic). */
  chunksize?: number | 'auto';
}

/** One chunk of tasks of one call, waiting for or running on a worker. */
interface Chunk extends DispatchBatch {
  /** The function and this chunk's items, kept to queue the rest again after a failure. */
  fn: unknown;
  items: readonly unknown[];
  spread: boolean;
  sink: Sink;
  /** Index of this chunk's first call in its submission. */
  first: number;
}

/** What Pool needs of a transport besides encode(): its worker and bullmq transports both have it. */
interface PoolTransport extends Transport {
  check(fn: unknown): void;
  encodeMap(fn: unknown, items: readonly unknown[], spread: boolean): EncodedBatch;
}

/** As Python's Pool: a worker takes the next chunk only when it is free, so a slow task never holds others back. */
const PER_WORKER = 1;

export class Pool implements DispatchOwner<Chunk> {
  readonly where = 'Pool';
  readonly maxInFlight = Infinity;
  readonly processes: number;
  readonly #backend: Backend;
  readonly #transport: PoolTransport;
  readonly #dispatcher: Dispatcher<Chunk>;
  readonly #queue: Chunk[] = [];
  readonly #maxTasksPerChild: number | undefined;
  readonly #tasksDone = new Map<Slot, number>();
  #closed = false;
  #terminated = false;
  #idle: (() => void)[] = [];
  /** imap streams still reading an AsyncIterable: join() waits for them too. */
  #feeding = 0;
  /** Work was submitted since the pool was last idle. */
  #busy = false;

  constructor(options: PoolOptions = {}) {
    const where = 'Pool';
    refuseMainReentry('new Pool()');
    if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
    const processes = options.processes ?? cpuCount();
    if (!Number.isSafeInteger(processes) || processes < 1) throw invalidArg(where, 'processes', 'a positive integer', processes);
    warnManyWorkers(where, 'processes', processes);
    const backend = options.backend ?? 'threads';
    if (backend !== 'threads' && backend !== 'processes' && backend !== 'bullmq') throw invalidArg(where, 'backend', "'threads', 'processes' or 'bullmq'", backend);
    const maxTasks = options.maxTasksPerChild;
    if (maxTasks !== undefined && !(Number.isSafeInteger(maxTasks) && maxTasks > 0)) throw invalidArg(where, 'maxTasksPerChild', 'a positive integer', maxTasks);
    this.processes = processes;
    this.#maxTasksPerChild = maxTasks;
    const maxNbytes = parseMaxNbytes(where, options.maxNbytes);
    const tempFolder = parseTempFolder(where, options.tempFolder);
    let initializer: { fn: FunctionSpec; args: unknown[] } | undefined;
    if (options.initializer !== undefined) {
      const call = isDelayedCall(options.initializer) ? options.initializer : { fn: options.initializer, args: options.initargs ?? [] };
      if (typeof call.fn !== 'function') throw invalidArg(where, 'initializer', 'a function or delayed(fn)(...args)', options.initializer);
      initializer = { fn: describeFunction(call.fn, memjobExports()), args: [...call.args] };
    }
    if (backend === 'bullmq') {
      // The workers serve every run on the queue: they are not this pool's to initialize or replace.
      if (initializer !== undefined) throw invalidArg(where, 'initializer', "none with backend 'bullmq'", options.initializer);
      if (maxTasks !== undefined) throw invalidArg(where, 'maxTasksPerChild', "none with backend 'bullmq'", maxTasks);
      this.#backend = new BullmqBackend(processes, parseRemoteOptions(where, backend, options)!, where);
    } else {
      this.#backend = makeWorkerBackend({ backend, nJobs: processes, initializer, resourceLimits: undefined }, PER_WORKER);
    }
    // The dump cache: an array given to call after call is dumped once while it does not change (docs/api.md).
    this.#transport = this.#backend.transport({ maxNbytes, mmapMode: 'r', tempFolder, cacheDumps: true }) as PoolTransport;
    this.#dispatcher = new Dispatcher(this.#backend, this.#transport, this);
    this.#backend.listener = this.#dispatcher;
  }

  /** Python's map: results in input order. `chunksize` defaults to Python's heuristic. */
  map<A, R>(fn: Fn<[A], R>, items: Iterable<A> | AsyncIterable<A>, options: ChunkOptions = {}): Promise<Awaited<R>[]> {
    const list = parseItems(items, 'Pool.map');
    // An AsyncIterable is read to its end first: 'auto' chunks need the count.
    if (!Array.isArray(list)) return collectItems(list).then((all) => this.map(fn, all as A[], options));
    const { sink, all } = collector(list.length);
    this.#submit(fn, list, false, this.#chunksize(options, list.length, 'map'), sink);
    return all as Promise<Awaited<R>[]>;
  }

  /** map() with each item spread as the arguments: starmap(add, [[1, 2], [3, 4]]). */
  starmap<A extends unknown[], R>(fn: Fn<A, R>, items: Iterable<A> | AsyncIterable<A>, options: ChunkOptions = {}): Promise<Awaited<R>[]> {
    const list = parseItems(items, 'Pool.starmap');
    if (!Array.isArray(list)) return collectItems(list).then((all) => this.starmap(fn, all as A[], options));
    const { sink, all } = collector(list.length);
    this.#submit(fn, list, true, this.#chunksize(options, list.length, 'starmap'), sink);
    return all as Promise<Awaited<R>[]>;
  }

  /** Python's map_async: the same as map(), which is already asynchronous. */
  mapAsync<A, R>(fn: Fn<[A], R>, items: Iterable<A> | AsyncIterable<A>, options: ChunkOptions = {}): Promise<Awaited<R>[]> {
    return this.map(fn, items, options);
  }

  /**
   * Results in input order, each as soon as it and those before it are done. Default chunksize 1, as Python.
   * An AsyncIterable's items are submitted as they arrive.
   */
  async *imap<A, R>(fn: Fn<[A], R>, items: Iterable<A> | AsyncIterable<A>, options: ChunkOptions = {}): AsyncIterableIterator<Awaited<R>> {
    const list = parseItems(items, 'Pool.imap');
    if (!Array.isArray(list)) return yield* this.#stream(fn, list, options, true) as AsyncGenerator<Awaited<R>>;
    const { sink, promises } = deferreds(list.length);
    this.#submit(fn, list, false, this.#chunksize(options, list.length, 'imap'), sink);
    for (const promise of promises) yield (await promise) as Awaited<R>;
  }

  /** Results in completion order. An AsyncIterable's items are submitted as they arrive. */
  async *imapUnordered<A, R>(fn: Fn<[A], R>, items: Iterable<A> | AsyncIterable<A>, options: ChunkOptions = {}): AsyncIterableIterator<Awaited<R>> {
    const list = parseItems(items, 'Pool.imapUnordered');
    if (!Array.isArray(list)) return yield* this.#stream(fn, list, options, false) as AsyncGenerator<Awaited<R>>;
    const { sink, results } = inCompletionOrder(list.length);
    this.#submit(fn, list, false, this.#chunksize(options, list.length, 'imap'), sink);
    yield* results() as AsyncGenerator<Awaited<R>>;
  }

  /** Runs fn(...args) on a worker and resolves to its result (Python's apply, which blocks, is this awaited). */
  apply<A extends unknown[], R>(fn: Fn<A, R>, args: A = [] as unknown as A): Promise<Awaited<R>> {
    const { sink, promises } = deferreds(1);
    this.#submit(fn, [args], true, 1, sink);
    return promises[0]! as Promise<Awaited<R>>;
  }

  /** Python's apply_async: a Promise of fn(...args). */
  applyAsync<A extends unknown[], R>(fn: Fn<A, R>, args: A = [] as unknown as A): Promise<Awaited<R>> {
    return this.apply(fn, args);
  }

  /** No more tasks may be submitted; those already submitted still run. */
  close(): void {
    this.#closed = true;
  }

  /** Waits for every submitted task, then stops the workers. Call close() first, as in Python. */
  async join(): Promise<void> {
    if (!this.#closed && !this.#terminated) throw new MemjobError(ErrorCodes.INVALID_ARG, 'Pool.join: call close() (or terminate()) first, as in Python');
    while (this.#queue.length > 0 || !this.#dispatcher.idle || this.#feeding > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#shutdown();
  }

  /** Stops the workers now; tasks not finished are rejected with MEMJOB_ERR_CANCELLED. */
  async terminate(): Promise<void> {
    this.#closed = true;
    this.#terminated = true;
    const cancelled = new MemjobError(ErrorCodes.CANCELLED, 'Pool.terminate: the pool was terminated before this task finished');
    const pending = this.#dispatcher.takePending();
    const running = [...this.#dispatcher.inFlight.values()];
    this.#dispatcher.inFlight.clear();
    for (const chunk of [...(pending === undefined ? [] : [pending]), ...this.#queue.splice(0), ...running]) rejectChunk(chunk, cancelled);
    await this.#shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  async #shutdown(): Promise<void> {
    await this.#backend.close();
    this.#transport.close();
    this.#wakeIdle();
  }

  #chunksize(options: ChunkOptions, length: number, call: 'map' | 'starmap' | 'imap'): number {
    const chunksize = options.chunksize ?? (call === 'imap' ? 1 : 'auto');
    if (chunksize === 'auto') {
      // Python's Pool.map: about four chunks per worker.
      const [quotient, remainder] = [Math.floor(length / (this.processes * 4)), length % (this.processes * 4)];
      return Math.max(1, quotient + (remainder > 0 ? 1 : 0));
    }
    if (!Number.isSafeInteger(chunksize) || chunksize < 1) throw invalidArg(`Pool.${call}`, 'chunksize', "a positive integer or 'auto'", chunksize);
    return chunksize;
  }

  /** Checks that this pool takes work now and that `fn` can be shipped. */
  #accept(fn: unknown, streamed: boolean): void {
    // A stream begun before close() goes on feeding, as Python's imap has taken its whole input; terminate() ends it.
    if (streamed && this.#terminated) throw new MemjobError(ErrorCodes.CANCELLED, 'Pool.terminate: the pool was terminated before these items were submitted');
    if (this.#closed && !streamed) throw new MemjobError(ErrorCodes.BUSY, 'Pool: the pool was closed; no more tasks can be submitted');
    if (typeof fn !== 'function') throw invalidArg('Pool', 'fn', 'a function', fn);
    this.#transport.check(fn);
  }

  /** imap over an AsyncIterable: checks now, as for an array, then submits chunks as items arrive. */
  #stream(fn: unknown, source: AsyncIterable<unknown>, options: ChunkOptions, ordered: boolean): AsyncGenerator<unknown, void, undefined> {
    const chunksize = this.#chunksize(options, 1, 'imap');
    this.#accept(fn, false);
    return streamResults(source, chunksize, ordered, {
      submit: (items, sink) => this.#submit(fn, items, false, chunksize, sink, true),
      feeding: (delta) => {
        this.#feeding += delta;
        if (delta < 0) this.changed();
      },
    });
  }

  /**
   * Queues one call per item, in chunks; `sink` hears how each ended. With
   * `spread` each item is an argument list (starmap, apply), otherwise the
   * single argument (map, imap).
   */
  #submit(fn: unknown, items: readonly unknown[], spread: boolean, chunksize: number, sink: Sink, streamed = false): void {
    this.#accept(fn, streamed);
    // A new dump scope per call: an array is dumped once for all the tasks of this call, and again in a later call (it may have changed).
    this.#transport.newDumpScope();
    for (let start = 0; start < items.length; start += chunksize) this.#enqueue({ fn, items: items.slice(start, start + chunksize), spread, sink, first: start }, false);
    this.#busy = true;
    this.#backend.setActive(true);
    void this.#dispatcher.pump();
  }

  #enqueue(chunk: Omit<Chunk, 'batch'>, front: boolean): void {
    const queued = { ...chunk, batch: this.#transport.encodeMap(chunk.fn, chunk.items, chunk.spread) };
    if (front) this.#queue.unshift(queued);
    else this.#queue.push(queued);
  }

  waiting(): boolean {
    return this.#queue.length > 0 && !this.#terminated;
  }

  next(): Chunk | undefined {
    return this.#queue.shift();
  }

  /** One chunk per worker at a time: no more workers than chunks queued or running (4 items start 4, whatever `processes`). */
  wantedSlots(): number {
    return this.#queue.length + this.#dispatcher.inFlight.size + 1;
  }

  batchDone(chunk: Chunk, results: unknown[], failure: Failure | undefined): void {
    results.forEach((value, i) => chunk.sink.resolve(chunk.first + i, value));
    if (failure !== undefined) {
      const failedAt = chunk.first + failure.index;
      const reject = (error: unknown) => chunk.sink.reject(failedAt, error);
      void failure.error.then(reject, reject);
      // The worker stops a chunk at its first error: the calls after it go back to the front of the queue.
      const rest = failure.index + 1;
      if (rest < chunk.items.length) this.#enqueue({ ...chunk, items: chunk.items.slice(rest), first: chunk.first + rest }, true);
    }
    this.#countTasks(chunk.slot!, results.length + (failure === undefined ? 0 : 1));
  }

  batchesLost(chunks: Chunk[], slot: Slot, info: ExitInfo): void {
    for (const chunk of chunks) {
      const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Pool: a ${slot.describe()} ${describeExit(info)} while running this task`);
      Object.assign(error, { exitCode: info.code, signal: info.signal });
      rejectChunk(chunk, error);
    }
  }

  /** Every worker starts the same way: a failure will repeat, so the calls waiting fail with it. */
  setupFailed(error: Promise<Error>): void {
    void error.then((failure) => {
      const pending = this.#dispatcher.takePending();
      for (const chunk of [...(pending === undefined ? [] : [pending]), ...this.#queue.splice(0)]) rejectChunk(chunk, failure);
      this.changed();
    });
  }

  pullFailed(error: unknown): void {
    for (const chunk of this.#queue.splice(0)) rejectChunk(chunk, error);
  }

  sendFailed(chunk: Chunk, error: unknown): void {
    rejectChunk(chunk, error);
  }

  taskTimedOut(): void {}

  /** maxTasksPerChild: a worker that has run its share is retired once it has nothing in flight. */
  #countTasks(slot: Slot, ran: number): void {
    if (this.#maxTasksPerChild === undefined) return;
    const done = (this.#tasksDone.get(slot) ?? 0) + ran;
    this.#tasksDone.set(slot, done);
    if (done >= this.#maxTasksPerChild && slot.inFlight.size === 0) {
      this.#tasksDone.delete(slot);
      void this.#backend.retire(slot, false).then(() => void this.#dispatcher.pump());
    }
  }

  changed(): void {
    if (this.#queue.length === 0 && this.#dispatcher.idle) {
      if (this.#busy) {
        // Idle: what the calls since the last idle moment dumped and mapped is released, but the dumps they
        // share with the next call (the dump cache keeps them): a long-lived Pool holds one period's arrays, not all.
        this.#busy = false;
        this.#transport.endRun(false);
        this.#backend.endRun(this.#transport.id, this.#transport.keptDumps());
      }
      this.#backend.setActive(false);
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    for (const wake of this.#idle.splice(0)) wake();
  }
}

function rejectChunk(chunk: Chunk, error: unknown): void {
  for (let i = 0; i < chunk.items.length; i++) chunk.sink.reject(chunk.first + i, error);
}
