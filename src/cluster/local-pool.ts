/**
 * The local workers of one `memjob worker`: a thread or process Backend
 * (parallel/backends/worker-backend.ts) that runs the batches jobs bring,
 * one per worker at a time, with the per-task timeout enforced here (the
 * parent is on another machine). A worker that dies, times out or is
 * cancelled is replaced by the next batch's fill(); its batch ends with that
 * error, which goes back to the parent like any task's.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import type { BackendListener, BatchOutcome, ExitInfo, Slot } from '../parallel/backends/backend.js';
import type { WorkerBackend } from '../parallel/backends/worker-backend.js';
import { WorkerTransport } from '../parallel/backends/worker-transport.js';
import { makeWorkerBackend } from '../parallel/executor.js';
import type { CallMessage, FlatCalls } from '../parallel/protocol.js';
import { describeExit } from '../parallel/run-errors.js';
import type { FunctionSpec } from '../transport/functions.js';

interface Running {
  slot: Slot;
  resolve(outcome: BatchOutcome): void;
  /** taskTimeout: ms each call may take, timed from its task-start. */
  ms: number | null;
  timer?: NodeJS.Timeout;
}

export interface LocalBatch {
  fns: FunctionSpec[];
  calls: CallMessage[] | FlatCalls;
  count: number;
  taskTimeout: number | null;
  transport: WorkerTransport;
  signal: AbortSignal;
}

let batchCounter = 0;

export class LocalPool implements BackendListener {
  readonly backend: WorkerBackend;
  readonly #running = new Map<number, Running>();
  #waiters: (() => void)[] = [];

  constructor(
    readonly kind: 'threads' | 'processes',
    readonly size: number,
    readonly tempFolder: string | undefined,
  ) {
    this.backend = makeWorkerBackend({ backend: kind, nJobs: size, initializer: undefined, resourceLimits: undefined }, 1);
    this.backend.listener = this;
    this.backend.setActive(true);
  }

  get busy(): number {
    return this.#running.size;
  }

  /** A transport for one run's batches: how their results come back (child processes write large ones to its folder). */
  transport(maxNbytes: number | null): WorkerTransport {
    return new WorkerTransport({ maxNbytes, mmapMode: 'r', tempFolder: this.tempFolder, cacheDumps: false });
  }

  /** Runs a batch on the first free worker; resolves with its outcome (never rejects). */
  async run(batch: LocalBatch): Promise<BatchOutcome> {
    const batchId = ++batchCounter;
    let slot: Slot | undefined;
    for (;;) {
      if (batch.signal.aborted) return cancelled(batchId);
      this.backend.fill();
      slot = this.backend.pick();
      if (slot !== undefined) break;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        if (this.backend.starting()) void this.backend.nextReadyChange().then(resolve);
      });
    }
    const chosen = slot;
    const outcome = new Promise<BatchOutcome>((resolve) => this.#running.set(batchId, { slot: chosen, resolve, ms: batch.taskTimeout }));
    const onAbort = () => this.#stop(batchId, cancelled(batchId));
    batch.signal.addEventListener('abort', onAbort, { once: true });
    this.backend.send(
      chosen,
      { batchId, session: batch.transport.id, batch: { encoded: { fns: batch.fns, calls: batch.calls }, count: batch.count }, taskTimeout: batch.taskTimeout },
      batch.transport,
    );
    try {
      return await outcome;
    } finally {
      batch.signal.removeEventListener('abort', onAbort);
    }
  }

  /** A run ended: its workers release what they mapped for it, and its transport's files go. */
  endRun(transport: WorkerTransport): void {
    this.backend.endRun(transport.id, null);
    transport.close();
  }

  async close(): Promise<void> {
    for (const [batchId] of this.#running) this.#stop(batchId, cancelled(batchId));
    await this.backend.close();
  }

  onBatchDone(_slot: Slot, outcome: BatchOutcome): void {
    const running = this.#running.get(outcome.batchId);
    if (running === undefined) return;
    clearTimeout(running.timer);
    this.#running.delete(outcome.batchId);
    running.resolve(outcome);
    this.#wake();
  }

  onTaskStart(slot: Slot, batchId: number, index: number): void {
    const running = this.#running.get(batchId);
    if (running === undefined || running.ms === null) return;
    clearTimeout(running.timer);
    const ms = running.ms;
    running.timer = setTimeout(() => {
      const error = new MemjobError(ErrorCodes.TIMEOUT, `Parallel: a task ran longer than taskTimeout (${ms} ms); its worker was stopped`);
      Object.assign(error, { timeout: ms });
      this.#stop(batchId, { batchId, results: [], failure: { index, error: Promise.resolve(error) } }, slot);
    }, ms);
  }

  onSlotExit(slot: Slot, info: ExitInfo): void {
    for (const [batchId, running] of this.#running) {
      if (running.slot !== slot) continue;
      const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `Parallel: a ${slot.describe()} ${describeExit(info)} while running the batch`);
      Object.assign(error, { exitCode: info.code, signal: info.signal });
      this.#finish(batchId, { batchId, results: [], failure: { index: 0, error: Promise.resolve(error) } });
    }
    this.#wake();
  }

  onInitError(slot: Slot, error: Promise<Error>): void {
    this.#failSlot(slot, error);
  }

  onMainReentry(slot: Slot, error: Promise<Error>): void {
    this.#failSlot(slot, error);
  }

  onBackendFailed(): void {
    // Local workers have no backend-wide failure.
  }

  #failSlot(slot: Slot, error: Promise<Error>): void {
    for (const [batchId, running] of this.#running) {
      if (running.slot === slot) this.#finish(batchId, { batchId, results: [], failure: { index: 0, error } });
    }
  }

  /** Ends a batch now and terminates its worker (a timeout, a cancel): the next batch gets a fresh one. */
  #stop(batchId: number, outcome: BatchOutcome, slot?: Slot): void {
    const running = this.#running.get(batchId);
    if (running === undefined) return;
    this.#finish(batchId, outcome);
    void this.backend.retire(slot ?? running.slot, true).then(() => this.#wake());
  }

  #finish(batchId: number, outcome: BatchOutcome): void {
    const running = this.#running.get(batchId);
    if (running === undefined) return;
    clearTimeout(running.timer);
    this.#running.delete(batchId);
    running.resolve(outcome);
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

function cancelled(batchId: number): BatchOutcome {
  return { batchId, results: [], failure: { index: 0, error: Promise.resolve(new MemjobError(ErrorCodes.CANCELLED, 'Parallel: the run was cancelled')) } };
}
