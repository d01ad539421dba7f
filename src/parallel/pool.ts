/**
 * A set of warm workers of one kind, kept between runs until close(). Each
 * worker runs the initializer once, then takes batches; the pool replaces a
 * worker that died and tells the current run about it.
 */
import type { FunctionSpec } from '../transport/functions.js';
import type { SerializedError } from '../transport/error-transport.js';
import type { ToParent, ToWorker } from './protocol.js';
import { spawnWorker, type BackendKind, type ExitInfo, type SpawnOptions, type WorkerHandle } from './worker-handle.js';

export interface PoolListener {
  onBatchDone(worker: PoolWorker, message: Extract<ToParent, { type: 'batch-done' }>): void;
  onWorkerExit(worker: PoolWorker, info: ExitInfo): void;
  onInitError(worker: PoolWorker, error: SerializedError): void;
}

export class PoolWorker {
  /** Batches sent and not yet answered. */
  readonly inFlight = new Set<number>();
  ready = false;
  /** Set when the pool terminated it on purpose (an error, a timeout): its exit is not a crash. */
  retired = false;
  constructor(readonly handle: WorkerHandle) {}

  post(message: ToWorker, transfer?: ArrayBuffer[]): void {
    this.handle.post(message, transfer);
  }

  describe(): string {
    return this.handle.kind === 'processes' ? `worker process ${this.handle.pid ?? '?'}` : 'worker thread';
  }
}

export class WorkerPool {
  readonly workers: PoolWorker[] = [];
  listener: PoolListener | null = null;
  #readyWaiters: (() => void)[] = [];

  constructor(
    readonly kind: BackendKind,
    readonly size: number,
    readonly initializer: { fn: FunctionSpec; args: unknown[] } | undefined,
    readonly spawnOptions: SpawnOptions,
  ) {}

  /** Starts workers until there are `size` live ones. */
  fill(): void {
    while (this.workers.length < this.size) this.#spawn();
  }

  /** Resolves at the next change in who can take work: a worker became ready, or one exited. */
  async nextReadyChange(): Promise<void> {
    await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  /** The ready worker with the fewest batches in flight, below `limit`. */
  pick(limit: number): PoolWorker | undefined {
    let best: PoolWorker | undefined;
    for (const worker of this.workers) {
      if (!worker.ready || worker.retired || worker.inFlight.size >= limit) continue;
      if (best === undefined || worker.inFlight.size < best.inFlight.size) best = worker;
    }
    return best;
  }

  /** Stops a worker on purpose and starts a fresh one in its place. */
  async retire(worker: PoolWorker, replace: boolean): Promise<void> {
    worker.retired = true;
    this.#remove(worker);
    if (replace) this.fill();
    await worker.handle.terminate();
  }

  broadcast(message: ToWorker): void {
    for (const worker of this.workers) if (worker.handle.alive) worker.post(message);
  }

  async close(): Promise<void> {
    const all = this.workers.splice(0);
    for (const worker of all) worker.retired = true;
    await Promise.all(all.map((worker) => worker.handle.terminate()));
  }

  #spawn(): void {
    const worker = new PoolWorker(spawnWorker(this.kind, this.spawnOptions));
    this.workers.push(worker);
    worker.handle.onMessage((message) => {
      if (message.type === 'ready') {
        worker.ready = true;
        for (const wake of this.#readyWaiters.splice(0)) wake();
      } else if (message.type === 'init-error') {
        this.listener?.onInitError(worker, message.error);
      } else {
        worker.inFlight.delete(message.batchId);
        this.listener?.onBatchDone(worker, message);
      }
    });
    worker.handle.onExit((info) => {
      this.#remove(worker);
      if (!worker.retired) this.listener?.onWorkerExit(worker, info);
      for (const wake of this.#readyWaiters.splice(0)) wake();
    });
    const init: ToWorker = this.initializer === undefined ? { type: 'init' } : { type: 'init', initializer: this.initializer };
    worker.post(init);
  }

  #remove(worker: PoolWorker): void {
    const at = this.workers.indexOf(worker);
    if (at >= 0) this.workers.splice(at, 1);
  }
}
