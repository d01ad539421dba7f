/**
 * `memjob worker`: serves a broker's queue with a local pool of --jobs
 * workers. For each job (one batch) it checks the format version and the
 * signature before reading anything else, skips jobs of runs that have
 * ended, resolves task modules in its own project, downloads the run's blobs
 * once for the machine (remote/blob-cache.ts), runs the batch on a local
 * worker where the arrays are mapped as on one machine, and returns the
 * signed results (large ones as blobs).
 *
 * BullMQ holds a lock on each job while it runs; if this process dies the
 * lock lapses after LOCK_MS and another worker's stall check (every
 * STALL_CHECK_MS) hands the job to another worker: tasks run at least once.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { ErrorCodes, MemjobError } from '../errors.js';
import { dumpScratchSync } from '../format/dump.js';
import type { LoadMmapMode } from '../format/load.js';
import type { JobBody, ResultBody } from '../parallel/backends/bullmq-transport.js';
import type { WorkerTransport } from '../parallel/backends/worker-transport.js';
import { BlobCache } from '../remote/blob-cache.js';
import { uploadBlob, type BlobInfo } from '../remote/blob-store.js';
import { connectBroker, type BrokerOption } from '../remote/broker.js';
import { BULL_PREFIX, RUN_TTL_MS, aliveKey, controlChannel, runPrefix, workerKey, WORKER_HEARTBEAT_MS, WORKER_TTL_MS, type ControlMessage, type WorkerStats } from '../remote/keys.js';
import { withGrace } from '../remote/grace.js';
import { localSpec } from '../remote/task-modules.js';
import { hostName, jobHeader, openJob, refusalReason, sealResult, type Secret } from '../remote/wire.js';
import { packForWire, toLocalRefs } from '../remote/wire-refs.js';
import { serializeError } from '../transport/error-transport.js';
import { LocalPool } from './local-pool.js';

/** How long a job's lock lasts without renewal (BullMQ renews it every half): a dead worker's batch moves on after about this. */
export const LOCK_MS = 4_000;
export const STALL_CHECK_MS = 1_500;
const ALIVE_CACHE_MS = 1_000;

export interface WorkerServiceOptions {
  broker: BrokerOption;
  queue: string;
  jobs: number;
  backend: 'threads' | 'processes';
  secret: Secret;
  /** The project root task modules are resolved in. */
  project: string;
  tempFolder: string | undefined;
  brokerTimeout: number;
  version: string;
  log(line: string): void;
}

interface RunState {
  transport: WorkerTransport;
  lastUsed: number;
}

export class WorkerService {
  readonly #options: WorkerServiceOptions;
  readonly #pool: LocalPool;
  readonly #cache: BlobCache;
  readonly #runs = new Map<string, RunState>();
  /** Until when each run is known to be live (see #alive). */
  readonly #aliveUntil = new Map<string, number>();
  /** Active jobs by run, so a cancel reaches them. */
  readonly #active = new Map<string, Set<string>>();
  #redis: Redis | undefined;
  #subscriber: Redis | undefined;
  #worker: Worker | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #rejected = 0;
  #runsServed = 0;
  readonly #startedAt = Date.now();
  readonly #key: string;

  constructor(options: WorkerServiceOptions) {
    this.#options = options;
    this.#pool = new LocalPool(options.backend, options.jobs, options.tempFolder);
    this.#cache = new BlobCache(options.tempFolder === undefined ? {} : { tempFolder: options.tempFolder });
    this.#key = workerKey(options.queue, hostName, process.pid);
  }

  stats(): WorkerStats {
    const { jobs, backend, version } = this.#options;
    return {
      host: hostName,
      pid: process.pid,
      jobs,
      busy: this.#pool.busy,
      backend,
      version,
      downloads: this.#cache.stats(),
      rejected: this.#rejected,
      runs: this.#runsServed,
      startedAt: this.#startedAt,
    };
  }

  async start(): Promise<void> {
    const { broker, brokerTimeout, queue, jobs } = this.#options;
    const redis = (this.#redis = await connectBroker(broker, { timeoutMs: brokerTimeout, name: 'memjob worker' }));
    const subscriber = (this.#subscriber = redis.duplicate());
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_channel: string, text: string) => this.#control(text));
    await subscriber.subscribe(controlChannel(queue));
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat(), WORKER_HEARTBEAT_MS);
    this.#worker = new Worker(queue, (job, _token, signal) => this.#process(job, signal), {
      connection: redis,
      prefix: BULL_PREFIX,
      concurrency: jobs,
      lockDuration: LOCK_MS,
      stalledInterval: STALL_CHECK_MS,
      maxStalledCount: 2,
    });
    this.#worker.on('error', () => undefined); // connection errors: ioredis reconnects and the worker resumes
  }

  /** Stops taking jobs, finishes those running, unregisters, and stops the local workers. */
  async stop(): Promise<void> {
    clearInterval(this.#heartbeat);
    // With the broker gone, waiting for the jobs in progress would wait for it: their results could not be delivered anyway.
    const reachable = this.#redis?.status === 'ready';
    if (reachable) await this.#worker?.close();
    else await withGrace(this.#worker?.close(true));
    await withGrace(this.#redis?.del(this.#key)); // else its registration expires by TTL
    await this.#pool.close();
    for (const state of this.#runs.values()) this.#pool.endRun(state.transport);
    this.#runs.clear();
    this.#cache.close();
    this.#subscriber?.disconnect();
    this.#redis?.disconnect();
  }

  async #beat(): Promise<void> {
    await this.#redis!.set(this.#key, JSON.stringify(this.stats()), 'PX', WORKER_TTL_MS).catch(() => undefined);
    // Runs whose end message was missed (a parent that died): their local files go after the run's TTL.
    const now = Date.now();
    for (const [run, state] of this.#runs) if (now - state.lastUsed > RUN_TTL_MS && !this.#active.has(run)) this.#endRun(run);
    for (const [run, until] of this.#aliveUntil) if (until < now) this.#aliveUntil.delete(run);
  }

  #control(text: string): void {
    let message: ControlMessage;
    try {
      message = JSON.parse(text) as ControlMessage;
    } catch {
      return;
    }
    if (typeof message?.run !== 'string') return;
    if (message.type === 'cancel' || message.type === 'run-end') {
      for (const id of this.#active.get(message.run) ?? []) this.#worker?.cancelJob(id, 'the run ended');
    }
    if (message.type === 'run-end') this.#endRun(message.run);
  }

  #endRun(run: string): void {
    this.#aliveUntil.delete(run);
    const state = this.#runs.get(run);
    if (state === undefined) return;
    this.#runs.delete(run);
    this.#pool.endRun(state.transport);
  }

  async #process(job: Job, signal: AbortSignal | undefined): Promise<unknown> {
    const { queue, secret } = this.#options;
    let body: JobBody;
    let envelope;
    try {
      envelope = jobHeader(job.data);
      body = checkBody(openJob(secret, queue, envelope));
    } catch (error) {
      this.#rejected++;
      void this.#beat();
      const refusal = error instanceof MemjobError ? error : new MemjobError(ErrorCodes.FORMAT, `memjob worker on ${hostName}: ${String(error)}`);
      throw new UnrecoverableError(refusalReason(refusal));
    }
    const { run, batch } = envelope;
    if (!(await this.#alive(run))) {
      return sealResult(secret, queue, run, batch, { results: [], blobs: [], skipped: true } satisfies ResultBody);
    }
    const active = this.#active.get(run) ?? new Set<string>();
    this.#active.set(run, active);
    active.add(job.id!);
    const pinned: string[] = [];
    try {
      const state = this.#runState(run, body);
      const downloads = this.#cache.stats().count;
      const result = await this.#runBatch(run, body, state, pinned, signal ?? new AbortController().signal);
      // New downloads are published before the answer: `cluster status` right after a run counts them.
      if (this.#cache.stats().count !== downloads) await this.#beat();
      return sealResult(secret, queue, run, batch, result);
    } finally {
      for (const path of pinned) this.#cache.unpin(path);
      active.delete(job.id!);
      if (active.size === 0) this.#active.delete(run);
    }
  }

  /**
   * Whether the run is still live on the broker. A positive answer holds for
   * a second (a run of tiny batches asks once, not once per batch); a run
   * that ended within it may still have a batch run, whose answer is ignored
   * and whose blobs the alive check in blob-store refuses.
   */
  async #alive(run: string): Promise<boolean> {
    const known = this.#aliveUntil.get(run);
    if (known !== undefined && known > Date.now()) return true;
    const alive = (await this.#redis!.exists(aliveKey(this.#options.queue, run))) === 1;
    if (alive) this.#aliveUntil.set(run, Date.now() + ALIVE_CACHE_MS);
    else this.#aliveUntil.delete(run);
    return alive;
  }

  #runState(run: string, body: JobBody): RunState {
    let state = this.#runs.get(run);
    if (state === undefined) {
      state = { transport: this.#pool.transport(body.maxNbytes), lastUsed: Date.now() };
      this.#runs.set(run, state);
      this.#runsServed++;
      this.#options.log(`[memjob worker ${hostName}:${process.pid}] serving run ${run.slice(0, 8)} from ${body.from}`);
    }
    state.lastUsed = Date.now();
    return state;
  }

  async #runBatch(run: string, body: JobBody, state: RunState, pinned: string[], signal: AbortSignal): Promise<ResultBody> {
    const { queue, project } = this.#options;
    let fns;
    try {
      fns = body.fns.map((spec) => localSpec(spec, project, hostName));
    } catch (error) {
      return { results: [], error: { index: 0, error: serializeError(error) }, blobs: [] };
    }
    const prefix = runPrefix(queue, run);
    const paths = new Map<number, string>();
    try {
      for (const [id, info] of body.blobs) {
        const path = await this.#cache.get(this.#redis!, prefix, info);
        this.#cache.pin(path);
        pinned.push(path);
        paths.set(id, path);
      }
    } catch (error) {
      // A blob that cannot be had (no space here, a broken chunk): the batch's error, with its code, for the parent.
      return { results: [], error: { index: 0, error: serializeError(error) }, blobs: [] };
    }
    // Writes to an argument cannot reach the parent's array from here, and the blob file serves every run: map it copy-on-write.
    const mode: LoadMmapMode = body.mmapMode === 'r' ? 'r' : 'c';
    const calls = toLocalRefs(body.calls, body.token, { blobPath: (id) => paths.get(id)!, mode }) as JobBody['calls'];
    const count = Array.isArray(calls) ? calls.length : calls.values.length / calls.arity;
    const outcome = await this.#pool.run({ fns, calls, count, taskTimeout: body.taskTimeout, transport: state.transport, signal });
    return this.#encodeResults(run, body, outcome.results, outcome.failure);
  }

  async #encodeResults(run: string, body: JobBody, values: unknown[], failure: { index: number; error: Promise<Error> } | undefined): Promise<ResultBody> {
    const { queue } = this.#options;
    const files: { id: number; path: string }[] = [];
    const context = {
      token: body.token,
      maxNbytes: body.maxNbytes,
      sharedFolder: undefined,
      where: 'result',
      blob: (value: object) => {
        const path = join(this.#cache.folder, `result-${randomBytes(8).toString('hex')}.mjdump`);
        dumpScratchSync(value, path);
        files.push({ id: files.length, path });
        return files.length - 1;
      },
    };
    let results: unknown[] = [];
    let error: ResultBody['error'];
    try {
      results = packForWire(values, context) as unknown[];
      if (failure !== undefined) error = { index: failure.index, error: serializeError(await failure.error) };
    } catch (problem) {
      error = { index: failure?.index ?? 0, error: serializeError(problem) };
    }
    const blobs: [number, BlobInfo][] = [];
    try {
      const target = { prefix: runPrefix(queue, run), aliveKey: aliveKey(queue, run), ttlMs: RUN_TTL_MS };
      for (const file of files) {
        const uploaded = await uploadBlob(this.#redis!, target, { path: file.path, privateFile: true });
        if (uploaded === null) return { results: [], blobs: [], skipped: true }; // the run ended meanwhile: nothing to send
        blobs.push([file.id, uploaded.info]);
      }
    } finally {
      for (const file of files) rmSync(file.path, { force: true });
    }
    return error === undefined ? { results, blobs } : { results, error, blobs };
  }
}

/** The body's shape, checked (it is signed, but a bug or a version skew must fail clearly, not deep inside). */
function checkBody(value: unknown): JobBody {
  const body = value as Partial<JobBody> | null;
  if (
    typeof body !== 'object' ||
    body === null ||
    typeof body.token !== 'string' ||
    !Array.isArray(body.fns) ||
    typeof body.calls !== 'object' ||
    body.calls === null ||
    !Array.isArray(body.blobs) ||
    typeof body.mmapMode !== 'string'
  ) {
    throw new MemjobError(ErrorCodes.FORMAT, `memjob worker on ${hostName}: expected a job body with token, fns, calls and blobs`);
  }
  return body as JobBody;
}
