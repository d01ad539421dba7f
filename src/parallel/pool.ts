/**
 * A set of warm workers of one kind, kept between runs until close(). Each
 * worker runs the initializer once, then takes batches; the pool replaces a
 * worker that died and tells the current run about it.
 *
 * Between runs the workers are unreferenced, so a program that forgets
 * close() still exits (its workers go with it); during a run they keep the
 * process alive until the run ends.
 */
import type { FunctionSpec } from '../transport/functions.js';
import type { SerializedError } from '../transport/error-transport.js';
import type { ToParent, ToWorker } from './protocol.js';
import { spawnWorker, type BackendKind, type ExitInfo, type SpawnOptions, type WorkerHandle } from './worker-handle.js';

export interface PoolListener {
  onBatchDone(worker: PoolWorker, message: Extract<ToParent, { type: 'batch-done' }>): void;
  onWorkerExit(worker: PoolWorker, info: ExitInfo): void;
  onInitError(worker: PoolWorker, error: SerializedError): void;
  /** The worker's task module started workers while being imported (MEMJOB_ERR_MAIN_REENTRY). */
  onMainReentry(worker: PoolWorker, error: SerializedError): void;
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
  #active = false;
  /** Workers retired and not yet exited: close() waits for them too. */
  readonly #retiring = new Set<Promise<void>>();

  constructor(
    readonly kind: BackendKind,
    readonly size: number,
    readonly initializer: { fn: FunctionSpec; args: unknown[] } | undefined,
    readonly spawnOptions: SpawnOptions,
  ) {}

  /**
   * Starts workers until there are `size` live ones, or `wanted` when fewer:
   * a caller that knows how many tasks exist never starts a worker that
   * could get none (nJobs 1000 for 4 tasks starts 4).
   */
  fill(wanted: number = this.size): void {
    const target = Math.min(this.size, wanted);
    while (this.workers.length < target) this.#spawn();
  }

  /** Resolves at the next change in who can take work: a worker became ready, or one exited. */
  async nextReadyChange(): Promise<void> {
    await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  /** The ready worker with the fewest batches in flight, below `limit`. */
  pick(limit: number): PoolWorker | undefined {
    let best: PoolWorker | undefined;
    for (const worker of this.workers) {
      if (!worker.ready || worker.inFlight.size >= limit) continue;
      if (best === undefined || worker.inFlight.size < best.inFlight.size) best = worker;
    }
    return best;
  }

  /** Whether a batch would find a worker now or once the workers being started are ready. */
  hasRoom(limit: number): boolean {
    return this.workers.length < this.size || this.workers.some((worker) => worker.inFlight.size < limit);
  }

  /** Whether some worker is still starting (running its bootstrap and initializer). */
  starting(): boolean {
    return this.workers.some((worker) => !worker.ready);
  }

  /**
   * Stops a worker on purpose; the next fill() starts another in its place.
   * `now`: terminate it (it runs a task that may never end); otherwise ask
   * it to exit by itself (WorkerHandle.close: terminating a thread is not
   * free of risk).
   */
  async retire(worker: PoolWorker, now: boolean): Promise<void> {
    worker.retired = true;
    this.#remove(worker);
    const exited = now ? worker.handle.terminate() : worker.handle.close();
    this.#retiring.add(exited);
    await exited.finally(() => this.#retiring.delete(exited));
  }

  /**
   * After a failed run: terminates the workers busy with its abandoned tasks
   * and resolves once they have exited. Workers still starting are retired
   * too (their setup may be what hangs; close() terminates them after a
   * grace period), without waiting: they hold none of the run's files.
   * Idle workers stay warm.
   */
  async stopBusy(): Promise<void> {
    for (const worker of this.workers.filter((w) => !w.ready && w.inFlight.size === 0)) void this.retire(worker, false);
    await Promise.all(this.workers.filter((w) => w.inFlight.size > 0).map((worker) => this.retire(worker, true)));
  }

  broadcast(message: ToWorker): void {
    for (const worker of this.workers) if (worker.handle.alive) worker.post(message);
  }

  /** While a run is active the workers keep the process alive; between runs they do not. */
  setActive(active: boolean): void {
    this.#active = active;
    for (const worker of this.workers) worker.handle.ref(active);
  }

  /** Stops every worker: idle ones exit by themselves (see WorkerHandle.close), busy ones are terminated. */
  async close(): Promise<void> {
    await Promise.all([...this.workers].map((worker) => this.retire(worker, worker.inFlight.size > 0)));
    await Promise.all(this.#retiring);
  }

  #spawn(): void {
    const worker = new PoolWorker(spawnWorker(this.kind, this.spawnOptions));
    worker.handle.ref(this.#active);
    this.workers.push(worker);
    worker.handle.onMessage((message) => {
      if (message.type === 'ready') {
        worker.ready = true;
        this.#wakeWaiters();
      } else if (message.type === 'init-error') {
        // A worker whose initializer failed is no use to any run: stop it here, so that it is
        // gone even when no run is listening (one that failed before this worker finished starting).
        void this.retire(worker, false).then(() => this.#wakeWaiters());
        this.listener?.onInitError(worker, message.error);
      } else if (message.type === 'main-reentry') {
        this.listener?.onMainReentry(worker, message.error);
      } else {
        worker.inFlight.delete(message.batchId);
        this.listener?.onBatchDone(worker, message);
      }
    });
    worker.handle.onExit((info) => {
      this.#remove(worker);
      if (!worker.retired) this.listener?.onWorkerExit(worker, info);
      this.#wakeWaiters();
    });
    const init: ToWorker = this.initializer === undefined ? { type: 'init' } : { type: 'init', initializer: this.initializer };
    worker.post(init);
  }

  #wakeWaiters(): void {
    for (const wake of this.#readyWaiters.splice(0)) wake();
  }

  #remove(worker: PoolWorker): void {
    const at = this.workers.indexOf(worker);
    if (at >= 0) this.workers.splice(at, 1);
  }
}
