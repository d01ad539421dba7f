/**
 * Process: multiprocessing.Process. Runs one function call in a worker of
 * its own (a child process by default, or a worker thread), on the same
 * worker implementation, function shipping and array references as
 * Parallel and Pool.
 *
 *   const p = new Process({ target: producer, args: [queue], name: 'producer' });
 *   p.start();
 *   await p.join();
 *   p.exitCode; // 0, 1 after an exception, -9 after SIGKILL
 */
import { constants } from 'node:os';
import { ErrorCodes, MemjobError, invalidArg } from '../errors.js';
import type { EncodedBatch, ExitInfo, Slot, Transport } from '../parallel/backends/backend.js';
import type { WorkerBackend } from '../parallel/backends/worker-backend.js';
import { Dispatcher, type DispatchBatch, type DispatchOwner, type Failure } from '../parallel/dispatcher.js';
import { makeWorkerBackend } from '../parallel/executor.js';
import type { BackendKind } from '../parallel/worker-handle.js';
import { parseMaxNbytes } from '../transport/options.js';
import { refuseMainReentry } from '../transport/worker-context.js';

export interface ProcessOptions {
  /** The function to run: self-contained, a task() reference, or a memjob export. */
  target: (...args: never[]) => unknown;
  args?: readonly unknown[];
  /** Default 'Process-N', as Python numbers them. */
  name?: string;
  /** 'processes' (default, as Python) or 'threads'. */
  backend?: BackendKind;
  /** Arrays larger than this go by memory-mapped reference: bytes, or a string such as '1M'. Default 1 MiB; null: never. */
  maxNbytes?: number | string | null;
}

let counter = 0;

/** Python's exit codes: -N after signal N, the code otherwise. */
function exitCodeOf(info: { code: number | null; signal: NodeJS.Signals | null }): number {
  const signal = info.signal === null ? undefined : constants.signals[info.signal];
  return signal !== undefined ? -signal : (info.code ?? 1);
}

/** A Dispatcher of size one: one worker, one batch of one call. */
export class Process {
  readonly name: string;
  readonly #options: ProcessOptions;
  readonly #maxNbytes: number | null;
  #backend: WorkerBackend | undefined;
  #pid: number | undefined;
  #exitCode: number | null = null;
  #error: Error | undefined;
  #done: Promise<void> | undefined;

  constructor(options: ProcessOptions) {
    refuseMainReentry('new Process()');
    if (typeof options !== 'object' || options === null) throw invalidArg('Process', 'options', 'an object with a "target" function', options);
    if (typeof options.target !== 'function') throw invalidArg('Process', 'target', 'a function', options.target);
    if (options.args !== undefined && !Array.isArray(options.args)) throw invalidArg('Process', 'args', 'an array', options.args);
    const backend = options.backend ?? 'processes';
    if (backend !== 'processes' && backend !== 'threads') throw invalidArg('Process', 'backend', "'processes' or 'threads'", backend);
    this.#maxNbytes = parseMaxNbytes('Process', options.maxNbytes);
    this.#options = { ...options, backend };
    this.name = options.name ?? `Process-${++counter}`;
  }

  /** The child's pid (processes backend, once started). */
  get pid(): number | undefined {
    return this.#pid;
  }

  /** null while running (or before start); 0 on success, 1 if the target threw, -N if killed by signal N. */
  get exitCode(): number | null {
    return this.#exitCode;
  }

  /** The error the target threw, rebuilt in this process (exitCode 1). */
  get error(): Error | undefined {
    return this.#error;
  }

  isAlive(): boolean {
    return this.#backend !== undefined && this.#exitCode === null;
  }

  /** Starts the worker and the call; throws MEMJOB_ERR_CLOSURE and the like before anything starts. */
  start(): void {
    if (this.#done !== undefined) throw new MemjobError(ErrorCodes.BUSY, `Process.start: ${this.name} was already started (a Process runs once)`);
    const backend = makeWorkerBackend({ backend: this.#options.backend!, nJobs: 1, initializer: undefined, resourceLimits: undefined }, 1);
    const transport = backend.transport({ maxNbytes: this.#maxNbytes, mmapMode: 'r', tempFolder: undefined, cacheDumps: false });
    let batch: EncodedBatch;
    try {
      // Checked now, so a closure fails in start() as an unpicklable target fails in Python.
      batch = transport.encode([{ fn: this.#options.target, args: [...(this.#options.args ?? [])] }]);
    } catch (error) {
      transport.close();
      throw error;
    }
    this.#backend = backend;
    backend.fill(1);
    this.#pid = backend.slots[0]?.pid;
    this.#done = this.#run(backend, transport, batch);
    this.#done.catch(() => undefined);
  }

  async #run(backend: WorkerBackend, transport: Transport, batch: EncodedBatch): Promise<void> {
    await new Promise<void>((resolve) => {
      const finish = (exitCode: number, error?: Error) => {
        if (this.#exitCode !== null) return;
        this.#exitCode = exitCode;
        if (error !== undefined) {
          this.#error = error;
          // Python prints the child's traceback on its stderr and exits with 1.
          process.stderr.write(`${this.name}: ${error.stack ?? error.message}\n`);
        }
        resolve();
      };
      let sent = false;
      const owner: DispatchOwner<DispatchBatch> = {
        where: 'Process',
        maxInFlight: 1,
        waiting: () => !sent,
        next: () => {
          sent = true;
          return { batch };
        },
        wantedSlots: () => 1,
        batchDone: (_batch: DispatchBatch, _results: unknown[], failure: Failure | undefined) => {
          if (failure === undefined) finish(0);
          else void failure.error.then((error) => finish(1, error), (error: Error) => finish(1, error));
        },
        batchesLost: (_batches: DispatchBatch[], _slot: Slot, info: ExitInfo) => finish(exitCodeOf(info)),
        setupFailed: (error: Promise<Error>) =>
          void error.then((failure) => {
            // A death while starting carries its exit; a module that re-entered main is the target's error.
            const { exitCode, signal } = failure as { exitCode?: number | null; signal?: NodeJS.Signals | null };
            if (exitCode !== undefined || signal !== undefined) finish(exitCodeOf({ code: exitCode ?? null, signal: signal ?? null }));
            else finish(1, failure);
          }),
        pullFailed: (error: unknown) => finish(1, error as Error),
        sendFailed: (_batch: DispatchBatch, error: unknown) => finish(1, error as Error),
        taskTimedOut: () => undefined,
        changed: () => undefined,
      };
      const dispatcher = new Dispatcher(backend, transport, owner);
      dispatcher.attach();
      void dispatcher.pump();
    });
    await backend.close();
    transport.close();
  }

  /** Waits for the call to end; with `timeout` (ms), returns after it even if still running (check exitCode). */
  async join(timeout?: number): Promise<void> {
    if (this.#done === undefined) throw new MemjobError(ErrorCodes.INVALID_ARG, `Process.join: ${this.name} was never started`);
    if (timeout === undefined) return this.#done;
    await Promise.race([this.#done, new Promise((resolve) => setTimeout(resolve, timeout).unref())]);
  }

  /** Stops the worker now (SIGKILL for a child process). */
  async terminate(): Promise<void> {
    await this.#backend?.slots[0]?.handle.terminate();
    await this.#done;
  }
}
