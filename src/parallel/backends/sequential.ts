/**
 * The calls run in this thread, one after another (joblib's
 * SequentialBackend): nothing is copied, mapped or shipped, so closures and
 * any value work, and errors keep their identity. It is a Backend like the
 * others, so a run takes the same path (batching, progress, errors,
 * timeouts) whatever executes it.
 */
import type { DelayedCall } from '../delayed.js';
import { runNested } from '../nesting.js';
import type { Backend, BackendListener, EncodedBatch, OutgoingBatch, Slot, TaskCall, Transport } from './backend.js';

class ThisThread implements Slot {
  readonly inFlight = new Set<number>();
  readonly ready = true;
  readonly pid = undefined;
  describe(): string {
    return 'this thread';
  }
}

/** Calls stay as they are: the function and the caller's own arguments. */
const identity: Transport = {
  id: 0,
  encode: (calls: readonly TaskCall[]): EncodedBatch => ({ encoded: calls, count: calls.length }),
  newDumpScope: () => undefined,
  endRun: () => undefined,
  keptDumps: () => [],
  close: () => undefined,
};

export class SequentialBackend implements Backend {
  readonly name = 'sequential' as const;
  readonly size = 1;
  /** One batch at a time: the next is pulled from the input only when this one is done, as joblib does. */
  readonly perSlot = 1;
  listener: BackendListener | null = null;
  readonly #slot = new ThisThread();
  /** Batches a failed run gave up: a call still running finishes, but nothing after it runs or is reported. */
  readonly #abandoned = new Set<number>();
  #initialized: Promise<Error | undefined> | undefined;
  #closed = false;

  /** `initializer` runs once, in this thread, before the first batch (once per Parallel). */
  constructor(readonly initializer?: DelayedCall) {}

  get closed(): boolean {
    return this.#closed;
  }

  transport(): Transport {
    return identity;
  }

  fill(): void {}

  pick(): Slot | undefined {
    return this.hasRoom() ? this.#slot : undefined;
  }

  hasRoom(): boolean {
    return this.#slot.inFlight.size < this.perSlot;
  }

  starting(): boolean {
    return false;
  }

  nextReadyChange(): Promise<void> {
    return Promise.resolve();
  }

  send(_slot: Slot, outgoing: OutgoingBatch): void {
    this.#slot.inFlight.add(outgoing.batchId);
    void this.#run(outgoing);
  }

  async #run({ batchId, batch, taskTimeout }: OutgoingBatch): Promise<void> {
    const initError = await (this.#initialized ??= this.#initialize());
    if (initError !== undefined) {
      this.#slot.inFlight.delete(batchId);
      this.listener?.onInitError(this.#slot, Promise.resolve(initError));
      return;
    }
    const calls = batch.encoded as readonly TaskCall[];
    const results: unknown[] = [];
    for (let index = 0; index < calls.length; index++) {
      if (this.#abandoned.delete(batchId)) return;
      if (taskTimeout !== null) this.listener?.onTaskStart(this.#slot, batchId, index);
      const { fn, args } = calls[index]!;
      try {
        results.push(await runNested(() => (fn as (...a: unknown[]) => unknown)(...args)));
      } catch (error) {
        this.#finish(batchId, results, { index, error: Promise.resolve(error as Error) });
        return;
      }
    }
    this.#finish(batchId, results);
  }

  #finish(batchId: number, results: unknown[], failure?: { index: number; error: Promise<Error> }): void {
    this.#slot.inFlight.delete(batchId);
    if (this.#abandoned.delete(batchId)) return;
    this.listener?.onBatchDone(this.#slot, { batchId, results, ...(failure === undefined ? {} : { failure }) });
  }

  /** The initializer's error, or undefined once it has run. */
  async #initialize(): Promise<Error | undefined> {
    if (this.initializer === undefined) return undefined;
    try {
      await (this.initializer.fn as (...args: unknown[]) => unknown)(...this.initializer.args);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }

  retire(): Promise<void> {
    return Promise.resolve();
  }

  /** A call in progress cannot be stopped: its batch is abandoned, and nothing of it is reported. */
  stopBusy(): Promise<void> {
    for (const batchId of this.#slot.inFlight) this.#abandoned.add(batchId);
    this.#slot.inFlight.clear();
    return Promise.resolve();
  }

  endRun(): void {}

  setActive(): void {}

  close(): Promise<void> {
    this.#closed = true;
    return this.stopBusy();
  }
}
