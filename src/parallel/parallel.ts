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
import type { DelayedCall } from './delayed.js';
import { resolveOptions, type ParallelOptions, type ResolvedOptions, type ReturnAs } from './options.js';
import { WorkerPool } from './pool.js';
import { Run, type ResultSink, type TaskSource } from './run.js';

type Result<T> = T extends DelayedCall<infer R> ? R : unknown;
export type RunOutput<RA extends ReturnAs, T> = RA extends 'array' ? Promise<Result<T>[]> : AsyncIterableIterator<Result<T>>;

const memjobExports = () => import('../index.js') as unknown as Promise<Readonly<Record<string, unknown>>>;

export class Parallel<RA extends ReturnAs = 'array'> {
  readonly options: Readonly<ResolvedOptions>;
  #pool: WorkerPool | null = null;
  #running = false;
  #closed = false;

  constructor(options: ParallelOptions<RA> = {}) {
    this.options = Object.freeze(resolveOptions(options));
  }

  /** The number of workers a run uses (1 when sequential). */
  get nJobs(): number {
    return this.options.backend === 'sequential' ? 1 : this.options.nJobs;
  }

  /**
   * Runs the delayed calls. Resolves to the results in input order
   * (returnAs 'array'), or returns an AsyncIterable of them in input order
   * ('generator') or completion order ('unordered').
   */
  run<T extends DelayedCall>(tasks: Iterable<T> | AsyncIterable<T>): RunOutput<RA, T> {
    if (this.options.returnAs === 'array') return this.#runToArray(tasks) as RunOutput<RA, T>;
    return this.#runToIterator(tasks, this.options.returnAs === 'unordered') as RunOutput<RA, T>;
  }

  /** Stops the workers and frees everything. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = null;
    await pool?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #begin(tasks: TaskSource, sink: ResultSink): Promise<Run> {
    if (this.#closed) throw new MemjobError(ErrorCodes.BUSY, 'Parallel.run: this Parallel was closed; create a new one');
    if (this.#running) {
      throw new MemjobError(ErrorCodes.BUSY, 'Parallel.run: another run of this Parallel is still in progress; await it first, or use a second Parallel');
    }
    this.#running = true;
    try {
      const exports = await memjobExports();
      const { options } = this;
      let pool: WorkerPool | null = null;
      if (options.backend !== 'sequential') {
        if (this.#pool === null) {
          const init = options.initializer;
          const initializer = init === undefined ? undefined : { fn: describeFunction(init.fn, exports), args: [...init.args] };
          this.#pool = new WorkerPool(options.backend, options.nJobs, initializer, options.resourceLimits ? { resourceLimits: options.resourceLimits } : {});
        }
        pool = this.#pool;
      } else if (options.initializer !== undefined && !this.#initializedInProcess) {
        // Sequential: "each worker" is this thread; run the initializer once.
        this.#initializedInProcess = true;
        await (options.initializer.fn as (...args: unknown[]) => unknown)(...options.initializer.args);
      }
      const knownTotal = Array.isArray(tasks) ? tasks.length : undefined;
      const run = new Run(tasks, options, pool, sink, exports, knownTotal);
      void run.start();
      void run.done.then(
        () => (this.#running = false),
        () => (this.#running = false),
      );
      return run;
    } catch (error) {
      this.#running = false;
      throw error;
    }
  }

  #initializedInProcess = false;

  async #runToArray(tasks: TaskSource): Promise<unknown[]> {
    const results: unknown[] = [];
    const run = await this.#begin(tasks, { put: (index, value) => void (results[index] = value) });
    await run.done;
    return results;
  }

  async *#runToIterator(tasks: TaskSource, unordered: boolean): AsyncIterableIterator<unknown> {
    const ready = new Map<number, unknown>();
    const order: number[] = [];
    let wake: (() => void) | null = null;
    const run = await this.#begin(tasks, {
      put: (index, value) => {
        ready.set(index, value);
        order.push(index);
        wake?.();
      },
    });
    let ended = false;
    void run.done.then(
      () => {
        ended = true;
        wake?.();
      },
      () => {
        ended = true;
        wake?.();
      },
    );
    let next = 0;
    try {
      for (;;) {
        if (unordered) {
          const index = order.shift();
          if (index !== undefined) {
            const value = ready.get(index);
            ready.delete(index);
            yield value;
            continue;
          }
        } else if (ready.has(next)) {
          const value = ready.get(next);
          ready.delete(next++);
          yield value;
          continue;
        }
        if (ended) {
          await run.done; // rethrows the run's failure
          if (ready.size === 0) return;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      // A consumer that stops early (break, return, throw) ends the run.
      run.fail(new MemjobError(ErrorCodes.CANCELLED, 'Parallel: the results were no longer wanted'));
      await run.done.catch(() => undefined);
    }
  }
}
