/**
 * `memjob worker`s on other machines as a Backend, through BullMQ on Redis.
 * A batch becomes one signed job (remote/wire.ts); the workers' answers
 * arrive as BullMQ 'completed' and 'failed' events. The slots are the
 * batches this parent keeps in flight (nJobs): the workers' own --jobs decide
 * how many run at once.
 *
 * Delivery is at least once: a worker killed mid-batch loses its job lock
 * and BullMQ gives the batch to another worker within seconds (LOCK_MS and
 * the workers' stall check). A batch answered twice is taken once: the first
 * answer removes it from the batches in flight.
 *
 * The broker must answer within brokerTimeout: at start (with at least one
 * worker registered on the queue), and again within it after a connection
 * loss; otherwise the run fails with MEMJOB_ERR_BACKEND_UNAVAILABLE.
 */
import type { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { ErrorCodes, MemjobError } from '../../errors.js';
import { connectBroker, describeBroker, type BrokerOption } from '../../remote/broker.js';
import { withGrace } from '../../remote/grace.js';
import { BULL_PREFIX, WORKER_HEARTBEAT_MS, WORKER_TTL_MS, controlChannel, jobId, workerPattern, type ControlMessage } from '../../remote/keys.js';
import { hostName, openResult, refusalError, sealJob } from '../../remote/wire.js';
import type { Backend, BackendListener, BatchOutcome, OutgoingBatch, Slot, Transport, TransportOptions } from './backend.js';
import { BullmqTransport, type RemoteSettings, type ResultBody } from './bullmq-transport.js';

export interface BullmqSettings extends RemoteSettings {
  broker: BrokerOption;
  /** ms to reach the broker (and find a worker) at start, and to get it back after a loss. */
  brokerTimeout: number;
}

class RemoteSlot implements Slot {
  readonly inFlight = new Set<number>();
  ready = false;
  readonly pid = undefined;
  describe(): string {
    return 'bullmq worker';
  }
}

interface Pending {
  slot: RemoteSlot;
  batchId: number;
  transport: BullmqTransport;
  run: string;
  /** The job is on the broker (its blobs are uploaded first). */
  added: boolean;
  /** The broker knew nothing of the job at the last look: answered (and removed) with the answer not yet here, or lost. */
  missing: boolean;
}

const WORKER_POLL_MS = 200;


export class BullmqBackend implements Backend {
  readonly name = 'bullmq' as const;
  readonly perSlot = 1;
  listener: BackendListener | null = null;
  readonly #slots: RemoteSlot[] = [];
  readonly #pending = new Map<string, Pending>();
  #redis: Redis | undefined;
  #queue: Queue | undefined;
  #events: QueueEvents | undefined;
  #eventsConnection: Redis | undefined;
  #connecting: Promise<void> | undefined;
  #readyWaiters: (() => void)[] = [];
  #lostTimer: NodeJS.Timeout | undefined;
  #watch: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #transports = new Set<BullmqTransport>();

  constructor(
    readonly size: number,
    readonly settings: BullmqSettings,
    /** 'Parallel' or 'Pool': how messages begin. */
    readonly where = 'Parallel',
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  transport(options: TransportOptions): Transport {
    const transport = new BullmqTransport(options, this.settings, () => this.#redis);
    this.#transports.add(transport);
    return transport;
  }

  fill(wanted: number = this.size): void {
    if (this.#closed) return;
    while (this.#slots.length < Math.min(this.size, wanted)) {
      const slot = new RemoteSlot();
      slot.ready = this.#queue !== undefined;
      this.#slots.push(slot);
    }
    if (this.#queue === undefined) this.#connecting ??= this.#connect();
  }

  pick(): Slot | undefined {
    return this.#slots.find((slot) => slot.ready && slot.inFlight.size < this.perSlot);
  }

  hasRoom(): boolean {
    return this.#slots.length < this.size || this.#slots.some((slot) => slot.inFlight.size < this.perSlot);
  }

  starting(): boolean {
    return this.#slots.some((slot) => !slot.ready);
  }

  async nextReadyChange(): Promise<void> {
    await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  send(slot: Slot, outgoing: OutgoingBatch, transport: Transport): void {
    const remote = slot as RemoteSlot;
    const through = transport as BullmqTransport;
    const id = jobId(through.run, outgoing.batchId);
    remote.inFlight.add(outgoing.batchId);
    const pending: Pending = { slot: remote, batchId: outgoing.batchId, transport: through, run: through.run, added: false, missing: false };
    this.#pending.set(id, pending);
    void (async () => {
      const body = await through.body(outgoing.batch, outgoing.taskTimeout, hostName);
      const job = sealJob(this.settings.secret, this.settings.queue, through.run, outgoing.batchId, body);
      await this.#queue!.add('batch', job, { jobId: id, removeOnComplete: true, removeOnFail: true, attempts: 1 });
      pending.added = true;
    })().catch((error: unknown) => this.#finish(id, { results: [], failure: { index: 0, error: Promise.resolve(this.#unavailable(error)) } }));
  }

  async retire(slot: Slot): Promise<void> {
    const at = this.#slots.indexOf(slot as RemoteSlot);
    if (at >= 0) this.#slots.splice(at, 1);
  }

  /** After a failed run: its waiting jobs are removed, and the workers running the others are told to stop them. */
  async stopBusy(): Promise<void> {
    const runs = new Set<string>();
    const ids = [...this.#pending.keys()];
    for (const pending of this.#pending.values()) runs.add(pending.run);
    this.#pending.clear();
    for (const slot of this.#slots) slot.inFlight.clear();
    const queue = this.#queue;
    const redis = this.#redis;
    if (queue === undefined || redis === undefined || redis.status !== 'ready') return;
    await Promise.all(ids.map((id) => queue.remove(id).catch(() => 0)));
    for (const run of runs) {
      const message: ControlMessage = { type: 'cancel', run };
      await redis.publish(controlChannel(this.settings.queue), JSON.stringify(message)).catch(() => 0);
    }
  }

  endRun(): void {
    // Each run's keys go with its transport's endRun; nothing is kept on the workers between runs but their blob cache.
  }

  setActive(): void {
    // The broker connection is a client's socket, closed by close() (as a database client's is).
  }

  /**
   * Closes the broker connections. Each graceful step gets a second: a broker
   * that is gone would make them wait for ever (commands queue until it
   * returns), and close() must end; the connections are then cut.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#lostTimer);
    clearInterval(this.#watch);
    await this.#connecting?.catch(() => undefined);
    await withGrace(Promise.all([...this.#transports].map((transport) => transport.settled())));
    await withGrace(this.#events?.close());
    await withGrace(this.#queue?.close());
    this.#eventsConnection?.disconnect();
    this.#redis?.disconnect();
    this.#wake();
  }

  async #connect(): Promise<void> {
    const { broker, brokerTimeout, queue: name } = this.settings;
    const deadline = Date.now() + brokerTimeout;
    let redis: Redis | undefined;
    try {
      redis = await connectBroker(broker, { timeoutMs: brokerTimeout, name: this.where });
      // Imported here: bullmq takes about 0.4 s to load, which no program using only the local backends should pay.
      const { Queue, QueueEvents } = await import('bullmq');
      while (!(await this.#hasWorkers(redis))) {
        if (Date.now() >= deadline || this.#closed) {
          throw new MemjobError(
            ErrorCodes.BACKEND_UNAVAILABLE,
            `${this.where}: no memjob worker serves queue '${name}' on the broker at ${describeBroker(broker)} (waited ${brokerTimeout} ms); ` +
              `start one on each machine: memjob worker --broker <url> --queue ${name}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, WORKER_POLL_MS));
      }
      // Blocking reads need a connection of their own.
      this.#eventsConnection = redis.duplicate();
      this.#eventsConnection.on('error', () => undefined);
      // Read from the stream's last event as it is now, not from '$' when the first blocking read happens
      // to start: an answer that arrived in between (a busy machine, a fast worker) would be missed for good.
      const [latest] = (await redis.xrevrange(`${BULL_PREFIX}:${name}:events`, '+', '-', 'COUNT', 1)) as [string, string[]][];
      const lastEventId = latest?.[0] ?? '0-0';
      const events = new QueueEvents(name, { connection: this.#eventsConnection, prefix: BULL_PREFIX, lastEventId });
      events.on('error', () => undefined); // a lost connection is handled below, through redis' own events
      await events.waitUntilReady();
      events.on('completed', ({ jobId: id, returnvalue }) => this.#completed(id, returnvalue));
      events.on('failed', ({ jobId: id, failedReason }) => this.#failedJob(id, failedReason));
      this.#events = events;
      this.#queue = new Queue(name, { connection: redis, prefix: BULL_PREFIX });
      this.#queue.on('error', () => undefined);
      this.#redis = redis;
      redis.on('close', () => this.#connectionLost());
      this.#watchWorkers(redis);
      redis.on('ready', () => this.#connectionBack());
      for (const slot of this.#slots) slot.ready = true;
    } catch (error) {
      redis?.disconnect();
      this.#eventsConnection?.disconnect();
      this.#slots.length = 0;
      this.#connecting = undefined; // the next run tries again
      this.listener?.onBackendFailed(Promise.resolve(this.#unavailable(error)));
    }
    this.#wake();
  }

  async #hasWorkers(redis: Redis): Promise<boolean> {
    // SCAN may need more than one step to find a key in a large keyspace.
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', workerPattern(this.settings.queue), 'COUNT', 1000);
      if (found.length > 0) return true;
      cursor = next;
    } while (cursor !== '0');
    return false;
  }

  /**
   * While batches are pending, checks that some worker still serves the
   * queue: with every worker gone the jobs would wait for ever, so after
   * brokerTimeout (at least a registration's TTL) without one the run fails.
   */
  #watchWorkers(redis: Redis): void {
    let lastSeen = Date.now();
    const patience = Math.max(this.settings.brokerTimeout, WORKER_TTL_MS);
    this.#watch = setInterval(() => {
      if (this.#pending.size === 0 || redis.status !== 'ready') {
        lastSeen = Date.now();
        return;
      }
      void this.#checkLost('its answer never arrived');
      void this.#hasWorkers(redis).then((found) => {
        if (found) lastSeen = Date.now();
        else if (Date.now() - lastSeen > patience && this.#pending.size > 0) {
          lastSeen = Date.now();
          this.listener?.onBackendFailed(
            Promise.resolve(new MemjobError(ErrorCodes.BACKEND_UNAVAILABLE, `${this.where}: no memjob worker has served queue '${this.settings.queue}' for ${patience} ms; the run's batches would wait for ever`)),
          );
        }
      }, () => undefined);
    }, WORKER_HEARTBEAT_MS);
    this.#watch.unref();
  }

  #completed(id: string, returnvalue: unknown): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return; // another run's, or a second answer to a redelivered batch
    this.#pending.delete(id);
    const { transport, run, batchId } = pending;
    void (async () => {
      const { host, body } = openResult(this.settings.secret, this.settings.queue, run, batchId, returnvalue);
      if ((body as ResultBody).skipped === true) throw new MemjobError(ErrorCodes.INTERNAL, `Parallel: the worker on ${host} found run ${run} already ended`);
      return transport.decode(body as ResultBody, host);
    })().then(
      (outcome) => this.#deliver(pending, outcome),
      (error: unknown) => this.#deliver(pending, { results: [], failure: { index: 0, error: Promise.resolve(error as Error) } }),
    );
  }

  #failedJob(id: string, reason: string): void {
    const error = /stalled more than allowable limit/.test(reason)
      ? new MemjobError(ErrorCodes.WORKER_CRASHED, 'Parallel: the workers running a batch died (or stalled) more than twice; it was not tried again')
      : refusalError(reason);
    this.#finish(id, { results: [], failure: { index: 0, error: Promise.resolve(error) } });
  }

  #finish(id: string, outcome: Omit<BatchOutcome, 'batchId'>): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    this.#deliver(pending, outcome);
  }

  #deliver(pending: Pending, outcome: Omit<BatchOutcome, 'batchId'>): void {
    pending.slot.inFlight.delete(pending.batchId);
    this.listener?.onBatchDone(pending.slot, { batchId: pending.batchId, ...outcome });
  }

  #connectionLost(): void {
    if (this.#closed || this.#lostTimer !== undefined) return;
    this.#lostTimer = setTimeout(() => {
      this.#lostTimer = undefined;
      if (this.#pending.size === 0 || this.#closed) return;
      this.listener?.onBackendFailed(
        Promise.resolve(
          new MemjobError(ErrorCodes.BACKEND_UNAVAILABLE, `${this.where}: lost the Redis broker at ${describeBroker(this.settings.broker)} and it did not come back within ${this.settings.brokerTimeout} ms`),
        ),
      );
    }, this.settings.brokerTimeout);
    this.#lostTimer.unref();
  }

  /** Back after a loss: a broker that restarted without persistence lost the jobs in flight, which would never be answered. */
  #connectionBack(): void {
    clearTimeout(this.#lostTimer);
    this.#lostTimer = undefined;
    for (const pending of this.#pending.values()) pending.missing = false;
    void this.#checkLost('the broker restarted and lost it');
  }

  /**
   * Looks for batches the broker no longer has although their answer never
   * came: a job answered is removed at once and its answer follows within
   * milliseconds, so a job missing at two looks in a row (2 s apart, or 0.5 s
   * after a reconnect) is lost, and the run fails instead of waiting for ever.
   */
  async #checkLost(how: string): Promise<void> {
    const queue = this.#queue;
    if (queue === undefined) return;
    for (const [id, pending] of [...this.#pending]) {
      if (!pending.added) continue;
      const state = await queue.getJobState(id).catch(() => 'error');
      if (state !== 'unknown' || !this.#pending.has(id)) {
        pending.missing = false;
        continue;
      }
      if (!pending.missing) {
        pending.missing = true;
        if (how.startsWith('the broker')) setTimeout(() => void this.#checkLost(how), 500).unref();
        continue;
      }
      this.listener?.onBackendFailed(
        Promise.resolve(new MemjobError(ErrorCodes.BACKEND_UNAVAILABLE, `${this.where}: a batch of this run is gone from the Redis broker at ${describeBroker(this.settings.broker)}: ${how}`)),
      );
      return;
    }
  }

  #unavailable(error: unknown): Error {
    if (error instanceof MemjobError) return error;
    const reason = error instanceof Error ? error.message : String(error);
    return new MemjobError(ErrorCodes.BACKEND_UNAVAILABLE, `${this.where}: the Redis broker at ${describeBroker(this.settings.broker)} failed: ${reason}`, { cause: error });
  }

  #wake(): void {
    for (const wake of this.#readyWaiters.splice(0)) wake();
  }
}
