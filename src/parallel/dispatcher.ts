/**
 * The one scheduler: sends an owner's batches to a Backend's slots while
 * they have room, keeps the batches in flight, and tells the owner how each
 * ended, which were lost with a crashed worker, and when a worker's setup
 * failed. Parallel's Run (a lazy queue with preDispatch, failing fast),
 * Pool (a FIFO whose failures reject only their own call) and Process (one
 * batch) are its owners; what a batch is and what a failure means is theirs.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import type { Backend, BackendListener, BatchOutcome, EncodedBatch, ExitInfo, Slot, Transport } from './backends/backend.js';
import { describeExit, slotPhrase } from './run-errors.js';

/** A batch as the Dispatcher sees it; owners extend it with what they need (task indices, the call it belongs to). */
export interface DispatchBatch {
  batch: EncodedBatch;
  /** Set when sent. */
  id?: number;
  slot?: Slot;
  sentAt?: number;
}

export type Failure = { index: number; error: Promise<Error> };

export interface DispatchOwner<B extends DispatchBatch> {
  /** 'Parallel', 'Pool': how messages begin. */
  readonly where: string;
  /** Batches in flight at most (Parallel's preDispatch). */
  readonly maxInFlight: number;
  /** Whether next() may give a batch now. */
  waiting(): boolean;
  /** The next batch, pulled lazily (Parallel reads its input only as slots can take it); undefined when none. */
  next(): Promise<B | undefined> | B | undefined;
  /** Slots worth starting: an input of 4 tasks starts 4, whatever nJobs. */
  wantedSlots(): number;
  batchDone(batch: B, results: unknown[], failure: Failure | undefined): void;
  /** A slot died while these batches were sent to it. */
  batchesLost(batches: B[], slot: Slot, info: ExitInfo): void;
  /** Every slot would fail the same way: an initializer that throws, a module that re-enters main, a death while starting. */
  setupFailed(error: Promise<Error>): void;
  /** next() threw (a closure, an item that is not a delayed call). */
  pullFailed(error: unknown): void;
  /** Sending failed (arguments structured clone cannot copy). */
  sendFailed(batch: B, error: unknown): void;
  /** With taskTimeout: call `index` of `batch` ran too long. */
  taskTimedOut(batch: B, index: number): void;
  /** Something changed: a pump ended, a batch ended. */
  changed(): void;
}

let batchCounter = 0;

export class Dispatcher<B extends DispatchBatch> implements BackendListener {
  readonly inFlight = new Map<number, B>();
  /** A batch pulled from the owner that no slot could take yet. */
  #pending: B | undefined;
  #pumping = false;
  #stopped = false;
  readonly #timers = new Map<Slot, NodeJS.Timeout>();

  constructor(
    readonly backend: Backend,
    readonly transport: Transport,
    readonly owner: DispatchOwner<B>,
    readonly taskTimeout: number | null = null,
  ) {}

  /** The backend reports to this dispatcher, and keeps the process alive, until detach(). */
  attach(): void {
    this.backend.listener = this;
    this.backend.setActive(true);
  }

  detach(): void {
    this.#clearTimers();
    if (this.backend.listener === this) this.backend.listener = null;
    this.backend.setActive(false);
  }

  /** Nothing waits in the dispatcher and nothing is in flight. */
  get idle(): boolean {
    return this.#pending === undefined && this.inFlight.size === 0;
  }

  /** The batch pulled and not yet sent, taken away (an owner failing everything that waits). */
  takePending(): B | undefined {
    const pending = this.#pending;
    this.#pending = undefined;
    return pending;
  }

  /** Stops sending, and stops the slots busy with batches in flight; resolves once they are gone. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#clearTimers();
    this.inFlight.clear();
    return this.backend.stopBusy();
  }

  /**
   * Sends batches while slots have room and the owner has batches. One pump
   * at a time; a completion, a slot becoming ready or dying pumps again.
   * A batch is pulled before any slot starts, so a bad first call (a
   * closure) fails before any worker is started.
   */
  async pump(): Promise<void> {
    if (this.#pumping || this.#stopped) return;
    this.#pumping = true;
    try {
      const { backend, owner } = this;
      while (!this.#stopped && this.inFlight.size < owner.maxInFlight) {
        if (this.#pending === undefined) {
          if (!owner.waiting() || !backend.hasRoom()) break;
          this.#pending = await owner.next();
          if (this.#pending === undefined || this.#stopped) break;
        }
        backend.fill(owner.wantedSlots());
        const slot = backend.pick();
        if (slot === undefined) {
          // Slots still starting take work once ready: wait for that, not in a loop.
          if (backend.starting()) {
            await backend.nextReadyChange();
            continue;
          }
          break; // every slot is full: a completion pumps again
        }
        const batch = this.#pending;
        this.#pending = undefined;
        this.#send(batch, slot);
      }
    } catch (error) {
      this.owner.pullFailed(error);
    } finally {
      this.#pumping = false;
    }
    this.owner.changed();
  }

  #send(batch: B, slot: Slot): void {
    batch.id = ++batchCounter;
    batch.slot = slot;
    batch.sentAt = performance.now();
    try {
      this.backend.send(slot, { batchId: batch.id, session: this.transport.id, batch: batch.batch, taskTimeout: this.taskTimeout }, this.transport);
    } catch (error) {
      this.owner.sendFailed(batch, error);
      return;
    }
    this.inFlight.set(batch.id, batch);
  }

  onBatchDone(slot: Slot, outcome: BatchOutcome): void {
    this.#clearTimer(slot);
    const batch = this.inFlight.get(outcome.batchId);
    if (batch === undefined || this.#stopped) return;
    this.inFlight.delete(outcome.batchId);
    this.owner.batchDone(batch, outcome.results, outcome.failure);
    void this.pump();
  }

  onTaskStart(slot: Slot, batchId: number, index: number): void {
    const batch = this.inFlight.get(batchId);
    if (batch === undefined || this.taskTimeout === null) return;
    this.#clearTimer(slot);
    this.#timers.set(
      slot,
      setTimeout(() => this.owner.taskTimedOut(batch, index), this.taskTimeout),
    );
  }

  onSlotExit(slot: Slot, info: ExitInfo): void {
    this.#clearTimer(slot);
    if (!slot.ready) {
      // Dying before the first task is not bad luck but a broken setup: do not respawn forever.
      const error = new MemjobError(ErrorCodes.WORKER_CRASHED, `${this.owner.where}: a ${slot.describe()} ${describeExit(info)} while starting`);
      Object.assign(error, { exitCode: info.code, signal: info.signal });
      this.owner.setupFailed(Promise.resolve(error));
      return;
    }
    const lost = [...this.inFlight.values()].filter((batch) => batch.slot === slot);
    for (const batch of lost) this.inFlight.delete(batch.id!);
    if (lost.length > 0) this.owner.batchesLost(lost, slot, info);
    void this.pump(); // the backend starts another slot in its place
  }

  onInitError(slot: Slot, error: Promise<Error>): void {
    const { where } = this.owner;
    this.owner.setupFailed(
      error.then((cause) => new MemjobError(ErrorCodes.INITIALIZER, `${where}: the initializer failed in ${slotPhrase(slot)}: ${cause.message}`, { cause })),
    );
  }

  onMainReentry(_slot: Slot, error: Promise<Error>): void {
    this.owner.setupFailed(error);
  }

  onBackendFailed(error: Promise<Error>): void {
    this.owner.setupFailed(error);
  }

  #clearTimer(slot: Slot): void {
    clearTimeout(this.#timers.get(slot));
    this.#timers.delete(slot);
  }

  #clearTimers(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}
