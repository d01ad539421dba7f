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
import { isDelayedCall, type DelayedCall } from '../parallel/delayed.js';
import { warnManyWorkers } from '../parallel/options.js';
import { WorkerPool, type PoolListener, type PoolWorker } from '../parallel/pool.js';
import { callAt, callCount, compactCalls, isPlainValue, type CallMessage, type FlatCalls, type ToParent } from '../parallel/protocol.js';
import type { BackendKind, ExitInfo } from '../parallel/worker-handle.js';
import { ArgumentPacker } from '../transport/array-refs.js';
import { rebuildError, type SerializedError } from '../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../transport/functions.js';
import { memjobExports } from '../transport/memjob-exports.js';
import { unpackResult } from '../transport/result-refs.js';
import { parseMaxNbytes, parseTempFolder } from '../transport/options.js';
import { RunFolders } from '../transport/run-folders.js';
import { refuseMainReentry } from '../transport/worker-context.js';
import { cpuCount } from '../system/cpu-count.js';
import { collectItems, collector, deferreds, parseItems, streamResults, type Sink } from './pool-io.js';

type Fn<A extends unknown[], R> = (...args: A) => R;

export interface PoolOptions {
  /** Workers; default cpuCount(). */
  processes?: number;
  /** Run once in each worker before its first task: a function, or delayed(fn)(...args). */
  initializer?: ((...args: never[]) => unknown) | DelayedCall;
  /** Arguments for a plain-function initializer (Python's initargs). */
  initargs?: readonly unknown[];
  /** 'threads' (default) or 'processes'. */
  backend?: BackendKind;
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
interface Chunk {
  fns: FunctionSpec[];
  calls: CallMessage[] | FlatCalls;
  sink: Sink;
  /** Index of this chunk's first call in its submission. */
  first: number;
  worker?: PoolWorker;
}

/** As Python's Pool: a worker takes the next chunk only when it is free, so a slow task never holds others back. */
const PER_WORKER = 1;
let batchCounter = 0;

export class Pool implements PoolListener {
  readonly processes: number;
  readonly #workers: WorkerPool;
  readonly #queue: Chunk[] = [];
  readonly #running = new Map<number, Chunk>();
  readonly #folders: RunFolders;
  readonly #maxNbytes: number | null;
  readonly #maxTasksPerChild: number | undefined;
  readonly #tasksDone = new Map<PoolWorker, number>();
  readonly #runId = ++batchCounter;
  #closed = false;
  #terminated = false;
  #idle: (() => void)[] = [];
  /** imap streams still reading an AsyncIterable: join() waits for them too. */
  #feeding = 0;
  #pumping = false;

  constructor(options: PoolOptions = {}) {
    const where = 'Pool';
    refuseMainReentry('new Pool()');
    if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
    const processes = options.processes ?? cpuCount();
    if (!Number.isSafeInteger(processes) || processes < 1) throw invalidArg(where, 'processes', 'a positive integer', processes);
    warnManyWorkers(where, 'processes', processes);
    const backend = options.backend ?? 'threads';
    if (backend !== 'threads' && backend !== 'processes') throw invalidArg(where, 'backend', "'threads' or 'processes'", backend);
    const maxTasks = options.maxTasksPerChild;
    if (maxTasks !== undefined && !(Number.isSafeInteger(maxTasks) && maxTasks > 0)) throw invalidArg(where, 'maxTasksPerChild', 'a positive integer', maxTasks);
    this.processes = processes;
    this.#maxTasksPerChild = maxTasks;
    this.#maxNbytes = parseMaxNbytes(where, options.maxNbytes);
    let initializer: { fn: FunctionSpec; args: unknown[] } | undefined;
    if (options.initializer !== undefined) {
      const call = isDelayedCall(options.initializer) ? options.initializer : { fn: options.initializer, args: options.initargs ?? [] };
      if (typeof call.fn !== 'function') throw invalidArg(where, 'initializer', 'a function or delayed(fn)(...args)', options.initializer);
      initializer = { fn: describeFunction(call.fn, memjobExports()), args: [...call.args] };
    }
    this.#folders = new RunFolders(parseTempFolder(where, options.tempFolder));
    this.#workers = new WorkerPool(backend, processes, initializer, {});
    this.#workers.listener = this;
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
    const { sink, promises } = deferreds(list.length);
    this.#submit(fn, list, false, this.#chunksize(options, list.length, 'imap'), sink);
    const pending = new Map(promises.map((promise, i) => [i, promise.then((value) => ({ i, value }))]));
    while (pending.size > 0) {
      const { i, value } = await Promise.race(pending.values());
      pending.delete(i);
      yield value as Awaited<R>;
    }
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
    while (this.#queue.length > 0 || this.#running.size > 0 || this.#feeding > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#shutdown();
  }

  /** Stops the workers now; tasks not finished are rejected with MEMJOB_ERR_CANCELLED. */
  async terminate(): Promise<void> {
    this.#closed = true;
    this.#terminated = true;
    const cancelled = new MemjobError(ErrorCodes.CANCELLED, 'Pool.terminate: the pool was terminated before this task finished');
    for (const chunk of [...this.#queue.splice(0), ...this.#running.values()]) rejectChunk(chunk, cancelled);
    this.#running.clear();
    await this.#shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  async #shutdown(): Promise<void> {
    await this.#workers.close();
    this.#folders.remove();
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

  /** The function's reference, if this pool takes work now. */
  #accept(fn: unknown, streamed: boolean): FunctionSpec {
    // A stream begun before close() goes on feeding, as Python's imap has taken its whole input; terminate() ends it.
    if (streamed && this.#terminated) throw new MemjobError(ErrorCodes.CANCELLED, 'Pool.terminate: the pool was terminated before these items were submitted');
    if (this.#closed && !streamed) throw new MemjobError(ErrorCodes.BUSY, 'Pool: the pool was closed; no more tasks can be submitted');
    if (typeof fn !== 'function') throw invalidArg('Pool', 'fn', 'a function', fn);
    return describeFunction(fn, memjobExports());
  }

  /** imap over an AsyncIterable: checks now, as for an array, then submits chunks as items arrive. */
  #stream(fn: unknown, source: AsyncIterable<unknown>, options: ChunkOptions, ordered: boolean): AsyncGenerator<unknown, void, undefined> {
    const chunksize = this.#chunksize(options, 1, 'imap');
    this.#accept(fn, false);
    return streamResults(source, chunksize, ordered, {
      submit: (items, sink) => this.#submit(fn, items, false, chunksize, sink, true),
      feeding: (delta) => {
        this.#feeding += delta;
        if (delta < 0) this.#afterChange();
      },
    });
  }

  /**
   * Queues one call per item, in chunks; `sink` hears how each ended. With
   * `spread` each item is an argument list (starmap, apply), otherwise the
   * single argument (map, imap).
   */
  #submit(fn: unknown, items: readonly unknown[], spread: boolean, chunksize: number, sink: Sink, streamed = false): void {
    const spec = this.#accept(fn, streamed);
    // One packer per call: an array is dumped once for all the tasks of this call, and again in a later call (it may have changed).
    const packer = new ArgumentPacker({ maxNbytes: this.#maxNbytes, mmapMode: 'r', folders: this.#folders });
    for (let start = 0; start < items.length; start += chunksize) {
      const slice = items.slice(start, start + chunksize);
      let calls: CallMessage[] | FlatCalls;
      if (!spread && slice.every(isPlainValue)) {
        // The common tiny task: plain single arguments travel as one flat array (see protocol.ts).
        calls = { flat: true, fn: 0, arity: 1, values: slice };
      } else {
        calls = slice.map((item) => {
          const args = spread ? [...(item as readonly unknown[])] : [item];
          return { fn: 0, args: args.every(isPlainValue) ? args : (packer.pack(args) as unknown[]) };
        });
      }
      this.#queue.push({ fns: [spec], calls, sink, first: start });
    }
    this.#workers.setActive(true);
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#terminated) {
        // One chunk per worker at a time: no more workers than chunks queued or running (4 items start 4, whatever `processes`).
        this.#workers.fill(this.#queue.length + this.#running.size);
        const worker = this.#workers.pick(PER_WORKER);
        if (worker === undefined) {
          if (this.#workers.starting()) {
            await this.#workers.nextReadyChange();
            continue;
          }
          break; // every worker is full: a completion pumps again
        }
        this.#send(this.#queue.shift()!, worker);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #send(chunk: Chunk, worker: PoolWorker): void {
    const batchId = ++batchCounter;
    chunk.worker = worker;
    this.#running.set(batchId, chunk);
    worker.inFlight.add(batchId);
    const resultFolder = worker.handle.kind === 'processes' ? this.#folders.current().path : undefined;
    worker.post({
      type: 'batch',
      batchId,
      runId: this.#runId,
      maxNbytes: this.#maxNbytes,
      ...(resultFolder === undefined ? {} : { resultFolder }),
      fns: chunk.fns,
      calls: Array.isArray(chunk.calls) ? compactCalls(chunk.calls) : chunk.calls,
    });
  }

  onBatchDone(worker: PoolWorker, message: Extract<ToParent, { type: 'batch-done' }>): void {
    const chunk = this.#running.get(message.batchId);
    if (chunk === undefined) return;
    this.#running.delete(message.batchId);
    const owns = (path: string) => this.#folders.owns(path);
    const { results } = message;
    for (let i = 0; i < results.length; i++) {
      const value = results[i];
      chunk.sink.resolve(chunk.first + i, typeof value === 'object' && value !== null ? unpackResult(value, owns) : value);
    }
    const ran = results.length + (message.error === undefined ? 0 : 1);
    if (message.error !== undefined) {
      const failedAt = chunk.first + message.error.index;
      const reject = (error: unknown) => chunk.sink.reject(failedAt, error);
      void rebuildError(message.error.error).then(reject, reject);
      // The worker stops a chunk at its first error: the calls after it go back to the front of the queue.
      const rest = message.error.index + 1;
      const count = callCount(chunk.calls);
      if (rest < count) {
        const calls = Array.from({ length: count - rest }, (_, i) => callAt(chunk.calls, rest + i));
        this.#queue.unshift({ fns: chunk.fns, calls, sink: chunk.sink, first: chunk.first + rest });
      }
    }
    this.#countTasks(worker, ran);
    this.#afterChange();
  }

  onWorkerExit(worker: PoolWorker, info: ExitInfo): void {
    const how = info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
    if (!worker.ready) {
      // Dying while starting (a broken initializer) would repeat in every replacement: fail what waits instead.
      const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Pool: a ${worker.describe()} ${how} while starting${info.error ? ` (${info.error.message})` : ''}`);
      for (const chunk of this.#queue.splice(0)) rejectChunk(chunk, error);
      this.#afterChange();
      return;
    }
    for (const [batchId, chunk] of [...this.#running]) {
      if (chunk.worker !== worker) continue;
      this.#running.delete(batchId);
      const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Pool: a ${worker.describe()} ${how}${info.error ? ` (${info.error.message})` : ''} while running this task`);
      Object.assign(error, { exitCode: info.code, signal: info.signal });
      rejectChunk(chunk, error);
    }
    this.#afterChange();
  }

  onMainReentry(_worker: PoolWorker, serialized: SerializedError): void {
    // Every worker imports the same module and would do the same: whatever waits or runs fails with it.
    void rebuildError(serialized).then((error) => {
      for (const chunk of this.#queue.splice(0)) rejectChunk(chunk, error);
      for (const [batchId, chunk] of [...this.#running]) {
        this.#running.delete(batchId);
        rejectChunk(chunk, error);
      }
      this.#afterChange();
    });
  }

  onInitError(worker: PoolWorker, serialized: SerializedError): void {
    // Every worker runs the same initializer: a failure will repeat, so the queued calls fail with it.
    void rebuildError(serialized).then((cause) => {
      const error = new MemjobError(ErrorCodes.INITIALIZER, `Pool: the initializer failed in a ${worker.describe()}: ${cause.message}`, { cause });
      for (const chunk of this.#queue.splice(0)) rejectChunk(chunk, error);
      this.#afterChange();
    });
  }

  /** maxTasksPerChild: a worker that has run its share is retired once it has nothing in flight. */
  #countTasks(worker: PoolWorker, ran: number): void {
    if (this.#maxTasksPerChild === undefined) return;
    const done = (this.#tasksDone.get(worker) ?? 0) + ran;
    this.#tasksDone.set(worker, done);
    if (done >= this.#maxTasksPerChild && worker.inFlight.size === 0) {
      this.#tasksDone.delete(worker);
      void this.#workers.retire(worker, false).then(() => void this.#pump());
    }
  }

  #afterChange(): void {
    void this.#pump();
    if (this.#queue.length === 0 && this.#running.size === 0) {
      this.#workers.setActive(false);
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    for (const wake of this.#idle.splice(0)) wake();
  }
}

function rejectChunk(chunk: Chunk, error: unknown): void {
  const count = callCount(chunk.calls);
  for (let i = 0; i < count; i++) chunk.sink.reject(chunk.first + i, error);
}
