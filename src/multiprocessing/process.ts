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
import { chooseTempRoot, createRunFolder, type RunFolder } from '../transport/temp-folder.js';
import { ArgumentPacker } from '../transport/array-refs.js';
import { rebuildError } from '../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../transport/functions.js';
import { memjobExports } from '../transport/memjob-exports.js';
import { parseMaxNbytes } from '../transport/options.js';
import { refuseMainReentry } from '../transport/worker-context.js';
import { spawnWorker, type BackendKind, type WorkerHandle } from '../parallel/worker-handle.js';

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

export class Process {
  readonly name: string;
  readonly #options: ProcessOptions;
  readonly #maxNbytes: number | null;
  #handle: WorkerHandle | undefined;
  #folder: RunFolder | undefined;
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
    return this.#handle?.pid;
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
    return this.#handle !== undefined && this.#exitCode === null;
  }

  /** Starts the worker and the call; throws MEMJOB_ERR_CLOSURE and the like before anything starts. */
  start(): void {
    if (this.#done !== undefined) throw new MemjobError(ErrorCodes.BUSY, `Process.start: ${this.name} was already started (a Process runs once)`);
    // Checked now, so a closure fails in start() as an unpicklable target fails in Python.
    const fn = describeFunction(this.#options.target, memjobExports());
    this.#done = this.#run(fn);
    this.#done.catch(() => undefined);
  }

  async #run(fn: FunctionSpec): Promise<void> {
    const packer = new ArgumentPacker({
      maxNbytes: this.#maxNbytes,
      mmapMode: 'r',
      folders: {
        current: (needed) => (this.#folder ??= createRunFolder(chooseTempRoot(undefined, needed).root)),
        fallback: (_failed, _needed, cause) => {
          throw cause;
        },
      },
    });
    const args = packer.pack([...(this.#options.args ?? [])]) as unknown[];
    const handle = spawnWorker(this.#options.backend!);
    this.#handle = handle;
    await new Promise<void>((resolve) => {
      let finished = false;
      handle.onMessage((message) => {
        if (message.type === 'ready') {
          handle.post({ type: 'batch', batchId: 1, runId: 1, maxNbytes: null, fns: [fn], calls: [{ fn: 0, args }] });
        } else if (message.type === 'main-reentry' && !finished) {
          // The target's module starts workers when imported: the call cannot run (the batch's own error may follow).
          finished = true;
          void rebuildError(message.error).then(async (error) => {
            this.#error = error;
            process.stderr.write(`${this.name}: ${error.stack ?? error.message}\n`);
            this.#exitCode = 1;
            await handle.terminate();
            resolve();
          });
        } else if (message.type === 'batch-done' && !finished) {
          finished = true;
          void (async () => {
            if (message.error !== undefined) {
              this.#error = await rebuildError(message.error.error);
              // Python prints the child's traceback on its stderr and exits with 1.
              process.stderr.write(`${this.name}: ${this.#error.stack ?? this.#error.message}\n`);
              this.#exitCode = 1;
            } else {
              this.#exitCode = 0;
            }
            await handle.terminate();
            resolve();
          })();
        }
      });
      handle.onExit((info) => {
        if (!finished) {
          const signal = info.signal === null ? undefined : constants.signals[info.signal];
          this.#exitCode = signal !== undefined ? -signal : (info.code ?? 1);
          resolve();
        }
      });
      handle.post({ type: 'init' });
    });
    this.#folder?.remove();
  }

  /** Waits for the call to end; with `timeout` (ms), returns after it even if still running (check exitCode). */
  async join(timeout?: number): Promise<void> {
    if (this.#done === undefined) throw new MemjobError(ErrorCodes.INVALID_ARG, `Process.join: ${this.name} was never started`);
    if (timeout === undefined) return this.#done;
    await Promise.race([this.#done, new Promise((resolve) => setTimeout(resolve, timeout).unref())]);
  }

  /** Stops the worker now (SIGKILL for a child process). */
  async terminate(): Promise<void> {
    await this.#handle?.terminate();
    await this.#done;
  }
}
