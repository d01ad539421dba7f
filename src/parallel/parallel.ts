/**
 * Parallel: joblib's Parallel for Node. Keeps its workers warm between runs
 * until close(); one run at a time.
 *
 *   const p = new Parallel({ nJobs: -1 });
 *   const squares = await p.run(items.map((i) => delayed(square)(i)));
 *   await p.close();
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import { describeFunction } from '../transport/functions.js';
import { memjobExports } from '../transport/memjob-exports.js';
import { refuseMainReentry } from '../transport/worker-context.js';
import type { Backend, Transport } from './backends/backend.js';
import { BullmqBackend } from './backends/bullmq-backend.js';
import { AutoBatcher, REMOTE_BATCH_GROWTH } from './batching.js';
import { SequentialBackend } from './backends/sequential.js';
import type { WorkerBackend } from './backends/worker-backend.js';
import { withParallelConfig } from './config.js';
import type { DelayedCall } from './delayed.js';
import { giveBack, makeWorkerBackend, takeBackend, type WorkerOptions } from './executor.js';
import { resolveOptions, type ParallelOptions, type ResolvedOptions, type ReturnAs } from './options.js';
import { Run, type ResultSink, type TaskSource } from './run.js';

type Result<T> = T extends DelayedCall<infer R> ? R : unknown;
export type RunOutput<RA extends ReturnAs, T> = RA extends 'array' ? Promise<Result<T>[]> : AsyncIterableIterator<Result<T>>;


export class Parallel<RA extends ReturnAs = 'array'> {
  readonly options: Readonly<ResolvedOptions>;
  /** Sequential: this thread, with the initializer run once per Parallel. */
  #sequential: SequentialBackend | undefined;
  /** Its workers, from the first run until close(): taken from the shared executor, or its own with reuse: false. */
  #workers: WorkerBackend | undefined;
  #workerOptions: WorkerOptions | undefined;
  /** backend 'bullmq': the batch size learnt by earlier runs. */
  #batcher: AutoBatcher | undefined;
  /** backend 'bullmq': its broker connection, until close(). */
  #remote: Backend | undefined;
  /** How calls cross to workers; holds the dump cache, kept until close(). */
  #transport: Transport | undefined;
  /** A run is starting or in progress: one at a time. */
  #busy = false;
  /** The run in progress, once started (close() ends it). */
  #current: Run | null = null;
  #closed = false;

  constructor(options: ParallelOptions<RA> = {}) {
    refuseMainReentry('new Parallel()');
    this.options = Object.freeze(resolveOptions(withParallelConfig(options)));
  }

  /** The number of workers a run uses (1 when sequential). */
  get nJobs(): number {
    return this.options.backend === 'sequential' ? 1 : this.options.nJobs;
  }

  /**
   * Runs the delayed calls. Resolves to the results in input order
   * (returnAs 'array'), or returns an AsyncIterable of them in input order
   * ('generator') or completion order ('unordered'). An AsyncIterable starts
   * its run when first iterated; leaving it early (break) stops the run.
   */
  run<T extends DelayedCall>(tasks: Iterable<T> | AsyncIterable<T>): RunOutput<RA, T> {
    refuseMainReentry('Parallel.run()');
    if (this.options.returnAs === 'array') return this.#runToArray(tasks) as RunOutput<RA, T>;
    return this.#runToIterator(tasks, this.options.returnAs === 'unordered') as unknown as RunOutput<RA, T>;
  }

  /**
   * Frees everything: a run still in progress fails with MEMJOB_ERR_CANCELLED,
   * the dump cache is removed, and the workers go back to the shared
   * executor, warm for the next Parallel with the same worker options (they
   * never keep the process alive); with reuse: false they stop. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const run = this.#current;
    if (run !== null) {
      run.fail(new MemjobError(ErrorCodes.CANCELLED, 'Parallel: close() was called while a run was in progress'));
      await run.done.catch(() => undefined);
    }
    this.#transport?.close();
    const workers = this.#workers;
    this.#workers = undefined;
    if (workers !== undefined && this.#transport !== undefined) workers.endRun(this.#transport.id, null); // workers unmap its dumps
    if (workers !== undefined && this.options.reuse) {
      await workers.settled(); // workers a failed run stopped are gone before close() returns
      giveBack(this.#workerOptions!, workers);
    }
    await Promise.all([this.options.reuse ? undefined : workers?.close(), this.#sequential?.close(), this.#remote?.close()]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #begin(tasks: TaskSource, sink: ResultSink): Promise<Run> {
    this.#checkOpen();
    if (this.#busy) {
      throw new MemjobError(ErrorCodes.BUSY, 'Parallel.run: another run of this Parallel is still in progress; await it first, or use a second Parallel');
    }
    this.#busy = true; // before the first await, so a second run() in the same tick is refused
    try {
      const backend = this.#takeBackend();
      const { maxNbytes, mmapMode, tempFolder } = this.options;
      this.#transport ??= backend.transport({ maxNbytes, mmapMode, tempFolder, cacheDumps: true });
      const knownTotal = Array.isArray(tasks) ? tasks.length : undefined;
      // Through a broker the ramp from one task per batch costs round trips of milliseconds each: a Parallel's runs share one batcher.
      if (this.options.backend === 'bullmq') this.#batcher ??= new AutoBatcher(REMOTE_BATCH_GROWTH);
      const run = new Run(tasks, this.options, backend, this.#transport, sink, knownTotal, this.#batcher);
      this.#current = run;
      const release = () => {
        this.#current = null;
        this.#busy = false;
      };
      void run.done.then(release, release);
      void run.start();
      return run;
    } catch (error) {
      if (this.#current === null) this.#busy = false;
      throw error;
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new MemjobError(ErrorCodes.BUSY, 'Parallel.run: this Parallel was closed; create a new one');
  }

  /** The backend for the next run. The initializer is checked on first use, before any worker starts. */
  #takeBackend(): Backend {
    const { backend, nJobs, initializer: init, resourceLimits, reuse } = this.options;
    if (backend === 'sequential') return (this.#sequential ??= new SequentialBackend(init));
    if (backend === 'bullmq') {
      if (init !== undefined) {
        throw new MemjobError(ErrorCodes.INVALID_ARG, "Parallel: expected no initializer with backend 'bullmq' (its workers serve every run on the queue), received one");
      }
      return (this.#remote ??= new BullmqBackend(nJobs, this.options.remote!));
    }
    this.#workerOptions ??= {
      backend,
      nJobs,
      initializer: init === undefined ? undefined : { fn: describeFunction(init.fn, memjobExports()), args: [...init.args] },
      resourceLimits,
    };
    return (this.#workers ??= reuse ? takeBackend(this.#workerOptions) : makeWorkerBackend(this.#workerOptions));
  }

  async #runToArray(tasks: TaskSource): Promise<unknown[]> {
    const results: unknown[] = [];
    const run = await this.#begin(tasks, { put: (index, value) => void (results[index] = value) });
    await run.done;
    return results;
  }

  async *#runToIterator(tasks: TaskSource, unordered: boolean): AsyncGenerator<unknown, void, undefined> {
    const arrived: unknown[] = []; // unordered: values in completion order
    const ready = new Map<number, unknown>(); // generator: values by index, until their turn
    let wake: (() => void) | undefined;
    const run = await this.#begin(tasks, {
      put: (index, value) => {
        if (unordered) arrived.push(value);
        else ready.set(index, value);
        wake?.();
      },
    });
    let ended = false;
    const end = () => {
      ended = true;
      wake?.();
    };
    void run.done.then(end, end);
    try {
      for (let next = 0; ; ) {
        if (unordered && arrived.length > 0) {
          yield arrived.shift();
        } else if (!unordered && ready.has(next)) {
          const value = ready.get(next);
          ready.delete(next++);
          yield value;
        } else if (ended) {
          await run.done; // rethrows the run's failure; after a success every result was yielded
          return;
        } else {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      }
    } finally {
      // A consumer that stops early (break, return, throw) ends the run; after the end this does nothing.
      run.fail(new MemjobError(ErrorCodes.CANCELLED, 'Parallel: the results were no longer wanted'));
      await run.done.catch(() => undefined);
    }
  }
}
