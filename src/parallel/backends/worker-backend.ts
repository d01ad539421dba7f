/**
 * Worker threads and child processes as a Backend: a set of warm workers of
 * one kind. Each runs the initializer once, then takes batches; a worker
 * that died is replaced by the next fill() and reported to the listener.
 *
 * Between runs the workers are unreferenced, so a program that forgets
 * close() still exits (its workers go with it); during a run they keep the
 * process alive.
 */
import { rebuildError } from '../../transport/error-transport.js';
import type { FunctionSpec } from '../../transport/functions.js';
import { referenceToken } from '../../transport/walker.js';
import { isPlainValue, type ToParent, type ToWorker } from '../protocol.js';
import { spawnWorker, type BackendKind, type SpawnOptions, type WorkerHandle } from '../worker-handle.js';
import type { Backend, BackendListener, OutgoingBatch, Slot, Transport, TransportOptions } from './backend.js';
import { WorkerTransport, type WorkerBatch } from './worker-transport.js';

export class WorkerSlot implements Slot {
  readonly inFlight = new Set<number>();
  ready = false;
  /** Set when the backend stopped it on purpose (an error, a timeout): its exit is not a crash. */
  retired = false;
  /** The transport of each batch in flight: how its results come back. */
  readonly transports = new Map<number, WorkerTransport>();
  constructor(readonly handle: WorkerHandle) {}

  get pid(): number | undefined {
    return this.handle.pid;
  }

  describe(): string {
    return this.handle.kind === 'processes' ? `worker process ${this.handle.pid ?? '?'}` : 'worker thread';
  }
}

export interface WorkerBackendOptions {
  size: number;
  initializer?: { fn: FunctionSpec; args: unknown[] } | undefined;
  spawn?: SpawnOptions;
  /** Batches queued on one worker at a time. Default 2: one running, one waiting, so no round trip leaves it idle. */
  perSlot?: number;
}

export abstract class WorkerBackend implements Backend {
  abstract readonly name: BackendKind;
  readonly perSlot: number;
  readonly size: number;
  listener: BackendListener | null = null;
  readonly slots: WorkerSlot[] = [];
  #readyWaiters: (() => void)[] = [];
  #active = false;
  #closed = false;
  /** Workers retired and not yet exited: close() waits for them too. */
  readonly #retiring = new Set<Promise<void>>();

  constructor(readonly options: WorkerBackendOptions) {
    this.size = options.size;
    this.perSlot = options.perSlot ?? 2;
  }

  get closed(): boolean {
    return this.#closed;
  }

  transport(options: TransportOptions): Transport {
    return new WorkerTransport(options);
  }

  /** What a worker of this backend needs besides the batch (a child process: where to write large results). */
  protected abstract extra(transport: WorkerTransport): { resultFolder?: string };

  fill(wanted: number = this.size): void {
    if (this.#closed) return;
    const target = Math.min(this.size, wanted);
    while (this.slots.length < target) this.#spawn();
  }

  async nextReadyChange(): Promise<void> {
    await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  pick(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const slot of this.slots) {
      if (!slot.ready || slot.inFlight.size >= this.perSlot) continue;
      if (best === undefined || slot.inFlight.size < best.inFlight.size) best = slot;
    }
    return best;
  }

  hasRoom(): boolean {
    return this.slots.length < this.size || this.slots.some((slot) => slot.inFlight.size < this.perSlot);
  }

  starting(): boolean {
    return this.slots.some((slot) => !slot.ready);
  }

  send(slot: Slot, outgoing: OutgoingBatch, transport: Transport): void {
    const worker = slot as WorkerSlot;
    const through = transport as WorkerTransport;
    const { fns, calls } = outgoing.batch.encoded as WorkerBatch;
    worker.handle.post({
      type: 'batch',
      batchId: outgoing.batchId,
      session: outgoing.session,
      maxNbytes: through.maxNbytes,
      ...(outgoing.taskTimeout === null ? {} : { reportStarts: true }),
      ...this.extra(through),
      fns,
      calls,
    });
    worker.inFlight.add(outgoing.batchId);
    worker.transports.set(outgoing.batchId, through);
  }

  async retire(slot: Slot, now: boolean): Promise<void> {
    const worker = slot as WorkerSlot;
    worker.retired = true;
    this.#remove(worker);
    const exited = now ? worker.handle.terminate() : worker.handle.close();
    this.#retiring.add(exited);
    await exited.finally(() => this.#retiring.delete(exited));
  }

  /**
   * Terminates the workers busy with a failed run's abandoned batches and
   * resolves once they have exited. Workers still starting are retired too
   * (their setup may be what hangs), without waiting: they hold none of the
   * run's files. Idle workers stay warm.
   */
  async stopBusy(): Promise<void> {
    for (const slot of this.slots.filter((s) => !s.ready && s.inFlight.size === 0)) void this.retire(slot, false);
    await Promise.all(this.slots.filter((s) => s.inFlight.size > 0).map((slot) => this.retire(slot, true)));
  }

  endRun(session: number, keep: readonly string[] | null): void {
    const message: ToWorker = { type: 'run-end', session, keep: keep === null ? null : [...keep] };
    for (const slot of this.slots) if (slot.handle.alive) slot.handle.post(message);
  }

  setActive(active: boolean): void {
    this.#active = active;
    for (const slot of this.slots) slot.handle.ref(active);
  }

  /** Resolves once the workers retired so far have exited. */
  async settled(): Promise<void> {
    await Promise.all(this.#retiring);
  }

  /** Stops every worker: idle ones exit by themselves (see WorkerHandle.close), busy ones are terminated. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.slots].map((slot) => this.retire(slot, slot.inFlight.size > 0)));
    await Promise.all(this.#retiring);
  }

  #spawn(): void {
    const slot = new WorkerSlot(spawnWorker(this.name, this.options.spawn ?? {}));
    slot.handle.ref(this.#active);
    this.slots.push(slot);
    slot.handle.onMessage((message) => this.#onMessage(slot, message));
    slot.handle.onExit((info) => {
      this.#remove(slot);
      if (!slot.retired) this.listener?.onSlotExit(slot, info);
      this.#wakeWaiters();
    });
    const { initializer } = this.options;
    const token = referenceToken();
    slot.handle.post(initializer === undefined ? { type: 'init', token } : ({ type: 'init', token, initializer } satisfies ToWorker));
  }

  #onMessage(slot: WorkerSlot, message: ToParent): void {
    switch (message.type) {
      case 'ready':
        slot.ready = true;
        this.#wakeWaiters();
        return;
      case 'init-error': {
        // A worker whose initializer failed is no use to any run: stop it here, so that it is
        // gone even when no run is listening (one that failed before this worker finished starting).
        void this.retire(slot, false).then(() => this.#wakeWaiters());
        this.listener?.onInitError(slot, rebuildError(message.error));
        return;
      }
      case 'main-reentry':
        this.listener?.onMainReentry(slot, rebuildError(message.error));
        return;
      case 'task-start':
        this.listener?.onTaskStart(slot, message.batchId, message.index);
        return;
      case 'batch-done': {
        slot.inFlight.delete(message.batchId);
        const transport = slot.transports.get(message.batchId);
        slot.transports.delete(message.batchId);
        if (transport === undefined) return;
        let failure = message.error === undefined ? undefined : { index: message.error.index, error: transport.decodeError(message.error.error) };
        if (message.results.every(isPlainValue)) {
          // The common case of tiny tasks: numbers, strings... need no decoding and no copy.
          this.listener?.onBatchDone(slot, { batchId: message.batchId, results: message.results, ...(failure === undefined ? {} : { failure }) });
          return;
        }
        const results: unknown[] = [];
        for (const value of message.results) {
          try {
            results.push(transport.decodeResult(value));
          } catch (error) {
            // A result that cannot be read back (its file is gone, say) is that task's failure.
            failure = { index: results.length, error: Promise.resolve(error as Error) };
            break;
          }
        }
        this.listener?.onBatchDone(slot, { batchId: message.batchId, results, ...(failure === undefined ? {} : { failure }) });
        return;
      }
    }
  }

  #wakeWaiters(): void {
    for (const wake of this.#readyWaiters.splice(0)) wake();
  }

  #remove(slot: WorkerSlot): void {
    const at = this.slots.indexOf(slot);
    if (at >= 0) this.slots.splice(at, 1);
  }
}

/** Worker threads: results come back by transfer (no copy). */
export class ThreadBackend extends WorkerBackend {
  readonly name = 'threads' as const;
  protected extra(): { resultFolder?: string } {
    return {};
  }
}

/** Child processes: large results come back through a file in the owner's run folder. */
export class ProcessBackend extends WorkerBackend {
  readonly name = 'processes' as const;
  protected extra(transport: WorkerTransport): { resultFolder?: string } {
    return { resultFolder: transport.resultFolder() };
  }
}
