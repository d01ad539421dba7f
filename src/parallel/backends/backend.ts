/**
 * The Backend seam: where batches of calls run. The Dispatcher (dispatcher.ts)
 * decides what to send and when; a Backend owns the places that run it (this
 * thread, worker threads, child processes, a remote engine) and its
 * Transport owns how calls, arrays, results and errors cross to them.
 * A batch is plain data plus array references (EncodedBatch), so a remote
 * backend can describe it without a live worker handle.
 */
import type { SerializedError } from '../../transport/error-transport.js';
import type { LoadMmapMode } from '../../format/load.js';
import type { ExitInfo } from '../worker-handle.js';

export type BackendName = 'sequential' | 'threads' | 'processes' | 'bullmq';

/** One call as the scheduler holds it: the user's function and arguments. */
export interface TaskCall {
  fn: unknown;
  args: readonly unknown[];
}

/** What a transport made of a batch's calls, ready to send (opaque to the Dispatcher). */
export type EncodedBatch = { readonly encoded: unknown; readonly count: number };

/** One place that runs batches: a worker thread, a child process, this thread. */
export interface Slot {
  /** Batches sent and not yet answered. */
  readonly inFlight: Set<number>;
  /** Ready for work (its initializer has run). */
  readonly ready: boolean;
  /** The child's pid, for processes. */
  readonly pid: number | undefined;
  /** "worker thread", "worker process 1234": for error messages. */
  describe(): string;
}

/** A batch that ended: results of the calls that completed, in order, and the first failure if any. */
export interface BatchOutcome {
  batchId: number;
  /** Already decoded by the transport. */
  results: unknown[];
  failure?: { index: number; error: Promise<Error> };
}

export interface BackendListener {
  onBatchDone(slot: Slot, outcome: BatchOutcome): void;
  /** With taskTimeout: call `index` of `batchId` began. */
  onTaskStart(slot: Slot, batchId: number, index: number): void;
  /** A slot stopped without being asked to (a crash, an exit). */
  onSlotExit(slot: Slot, info: ExitInfo): void;
  onInitError(slot: Slot, error: Promise<Error>): void;
  /** The slot's task module started workers while being imported (MEMJOB_ERR_MAIN_REENTRY). */
  onMainReentry(slot: Slot, error: Promise<Error>): void;
  /** The backend as a whole cannot go on (a broker that is unreachable or lost its jobs): the run fails with `error`. */
  onBackendFailed(error: Promise<Error>): void;
}

export interface TransportOptions {
  /** Arrays larger than this travel as memory-mapped dumps; null: never. */
  maxNbytes: number | null;
  mmapMode: LoadMmapMode;
  tempFolder: string | undefined;
  /** Keep dumps of the same array object from one run to the next (a Parallel's dump cache). */
  cacheDumps: boolean;
}

/**
 * How one owner's calls cross to the backend (a Parallel's, a Pool's).
 * encode() checks and packs now, so a closure or an unsendable value fails
 * before anything is dispatched.
 */
export interface Transport {
  encode(calls: readonly TaskCall[]): EncodedBatch;
  /** Names this transport to the workers: what they map for it is kept between its runs. */
  readonly id: number;
  /** Starts a new scope for dumped arrays: an array seen again after this is dumped again (Pool: once per call). */
  newDumpScope(): void;
  /** After a run: removes the run's files; dumps kept by a cache stay, unless the run failed. */
  endRun(failed: boolean): void;
  /** The dumps kept for the next run (their paths). */
  keptDumps(): string[];
  /** Removes every file this transport made. Idempotent. */
  close(): void;
}

export interface OutgoingBatch {
  batchId: number;
  /** The transport's id. */
  session: number;
  batch: EncodedBatch;
  /** ms a single call may take (the backend reports each call's start); null: no limit. */
  taskTimeout: number | null;
}

export interface Backend {
  readonly name: BackendName;
  /** How many slots it runs at most. */
  readonly size: number;
  /** Batches queued on one slot at a time (one running, one waiting for workers; one for this thread). */
  readonly perSlot: number;
  listener: BackendListener | null;
  transport(options: TransportOptions): Transport;
  /** Starts slots up to `size`, or `wanted` when fewer are useful. */
  fill(wanted?: number): void;
  /** The ready slot with the fewest batches in flight, below perSlot. */
  pick(): Slot | undefined;
  /** Whether a batch would find a slot now or once starting slots are ready. */
  hasRoom(): boolean;
  /** Whether some slot is still starting. */
  starting(): boolean;
  /** Resolves at the next change in who can take work. */
  nextReadyChange(): Promise<void>;
  send(slot: Slot, batch: OutgoingBatch, transport: Transport): void;
  /** Stops a slot on purpose (now: terminate it); the next fill() starts another. */
  retire(slot: Slot, now: boolean): Promise<void>;
  /** After a failed run: stops the slots busy with its abandoned batches, resolves once they are gone. */
  stopBusy(): Promise<void>;
  /**
   * Tells every slot that a run of `session` (a transport's id) ended: what
   * it mapped is released but the dumps in `keep`; null: all of it (the
   * owner closed).
   */
  endRun(session: number, keep: readonly string[] | null): void;
  /** While a run is active the backend keeps the process alive; between runs it does not. */
  setActive(active: boolean): void;
  /** Whether close() was called or every slot is gone for good. */
  readonly closed: boolean;
  close(): Promise<void>;
}

export type { ExitInfo, SerializedError };
