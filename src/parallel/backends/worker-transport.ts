/**
 * How calls cross to worker threads and child processes: functions as
 * references (source, module export, memjob export), arrays above maxNbytes
 * as memory-mapped dumps in the owner's temp folder, results and errors back
 * through structured clone (large results by transfer or through a file).
 */
import { ArgumentPacker } from '../../transport/array-refs.js';
import { DumpCache } from '../../transport/dump-cache.js';
import { rebuildError, type SerializedError } from '../../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../../transport/functions.js';
import { memjobExports } from '../../transport/memjob-exports.js';
import { unpackResult } from '../../transport/result-refs.js';
import { RunFolders } from '../../transport/run-folders.js';
import { isPlainValue, tabulateCalls, type CallMessage, type FlatCalls } from '../protocol.js';
import type { EncodedBatch, TaskCall, Transport, TransportOptions } from './backend.js';

/** A batch as workers receive it: a table of functions and the calls into it. */
export interface WorkerBatch {
  fns: FunctionSpec[];
  calls: CallMessage[] | FlatCalls;
}

let transportCounter = 0;

export class WorkerTransport implements Transport {
  readonly id = ++transportCounter;
  readonly #options: TransportOptions;
  /**
   * The dumps of arguments and the result files of child processes. Removed
   * after each run, or, with the dump cache, after a failed run and by
   * close(): the dumps of a run that succeeded serve the next run of the
   * same arrays (a result file is removed as soon as it is read).
   */
  #folders: RunFolders;
  #packer: ArgumentPacker;
  readonly #specs = new Map<unknown, FunctionSpec>();
  /** Dumps kept for the next run (dump-cache.ts), when the owner asked for it. */
  readonly #cache: DumpCache | undefined;

  constructor(options: TransportOptions) {
    this.#options = options;
    // Workers write through 'r+' and 'w+' mappings: a dump kept for the next run would no longer hold the caller's array.
    if (options.cacheDumps && (options.mmapMode === 'r' || options.mmapMode === 'c')) this.#cache = new DumpCache();
    this.#folders = new RunFolders(options.tempFolder);
    this.#packer = this.#newPacker();
  }

  get maxNbytes(): number | null {
    return this.#options.maxNbytes;
  }

  encode(calls: readonly TaskCall[]): EncodedBatch {
    const encoded: WorkerBatch = tabulateCalls(calls, (fn) => this.#spec(fn), (args) => this.#packer.pack(args));
    return { encoded, count: calls.length };
  }

  /** Pool.map's chunks: one function; plain single arguments travel as one flat array (see protocol.ts). */
  encodeMap(fn: unknown, items: readonly unknown[], spread: boolean): EncodedBatch {
    if (!spread && items.every(isPlainValue)) {
      const encoded: WorkerBatch = { fns: [this.#spec(fn)], calls: { flat: true, fn: 0, arity: 1, values: [...items] } };
      return { encoded, count: items.length };
    }
    return this.encode(items.map((item) => ({ fn, args: spread ? (item as readonly unknown[]) : [item] })));
  }

  /** Checks that `fn` can be shipped (MEMJOB_ERR_CLOSURE and the like), before anything is queued. */
  check(fn: unknown): void {
    this.#spec(fn);
  }

  decodeResult(value: unknown): unknown {
    // Plain results (numbers, strings...) need no unpacking: skip the walk for tiny tasks.
    if (typeof value !== 'object' || value === null) return value;
    return unpackResult(value, (path) => this.#folders.owns(path));
  }

  decodeError(serialized: SerializedError): Promise<Error> {
    return rebuildError(serialized);
  }

  /** Where a child process writes large results for this owner. */
  resultFolder(): string {
    return this.#folders.current().path;
  }

  newDumpScope(): void {
    this.#packer = this.#newPacker();
  }

  endRun(failed: boolean): void {
    if (this.#cache !== undefined && !failed) {
      this.#cache.endRun(); // keeps this run's dumps, removes older ones
    } else {
      // No cache, or a failed run (it may have stopped a worker mid-write): nothing of the run is kept.
      this.#cache?.clear();
      this.#folders.remove();
      this.#folders = new RunFolders(this.#options.tempFolder); // a removed folder is never reused
    }
    this.#packer = this.#newPacker(); // arrays are deduplicated by identity within one run; across runs only through the cache
  }

  keptDumps(): string[] {
    return this.#cache?.keptPaths() ?? [];
  }

  close(): void {
    this.#cache?.clear();
    this.#folders.remove();
  }

  #newPacker(): ArgumentPacker {
    const { maxNbytes, mmapMode } = this.#options;
    return new ArgumentPacker({ maxNbytes, mmapMode, folders: this.#folders, ...(this.#cache === undefined ? {} : { dumpCache: this.#cache }) });
  }

  #spec(fn: unknown): FunctionSpec {
    let spec = this.#specs.get(fn);
    if (spec === undefined) this.#specs.set(fn, (spec = describeFunction(fn, memjobExports())));
    return spec;
  }
}
