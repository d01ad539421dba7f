/**
 * How a Parallel's calls cross to `memjob worker`s through a Redis broker.
 * Functions travel as today (source, or module paths relative to the
 * project: remote/task-modules.ts). An array larger than maxNbytes is dumped
 * once per run into the run's local folder, hashed, and uploaded once as a
 * content-addressed blob under the run's keys; each worker machine downloads
 * it once and maps it (remote/blob-store.ts). Large results come back the
 * same way. Every key of a run is removed when the run ends, and expires by
 * TTL if this process dies first.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { dumpScratchSync } from '../../format/dump.js';
import { downloadBlob, uploadBlob, type BlobInfo } from '../../remote/blob-store.js';
import { RUN_REFRESH_MS, RUN_TTL_MS, aliveKey, controlChannel, runPrefix, type ControlMessage } from '../../remote/keys.js';
import { portableSpec } from '../../remote/task-modules.js';
import type { Secret } from '../../remote/wire.js';
import { fromWire, packForWire, wireToken } from '../../remote/wire-refs.js';
import { rebuildError, type SerializedError } from '../../transport/error-transport.js';
import { describeFunction, type FunctionSpec } from '../../transport/functions.js';
import { memjobExports } from '../../transport/memjob-exports.js';
import { RunFolders } from '../../transport/run-folders.js';
import { tabulateCalls, type CallMessage, type FlatCalls } from '../protocol.js';
import type { BatchOutcome, EncodedBatch, TaskCall, Transport, TransportOptions } from './backend.js';

/** Where the broker is and how to talk to it: settled by the backend. */
export interface RemoteSettings {
  queue: string;
  secret: Secret;
  /** A folder mounted at the same path on every machine: Memmaps there travel as paths. */
  sharedFolder: string | undefined;
}

/** A batch as encode() leaves it; its blobs are uploaded when it is sent. */
interface RemoteBatch {
  fns: FunctionSpec[];
  calls: CallMessage[] | FlatCalls;
  blobIds: number[];
}

/** What a worker receives in a job's body (signed). */
export interface JobBody {
  token: string;
  fns: FunctionSpec[];
  calls: CallMessage[] | FlatCalls;
  maxNbytes: number | null;
  mmapMode: string;
  taskTimeout: number | null;
  /** [blob id, info] of the blobs this batch's arguments name. */
  blobs: [number, BlobInfo][];
  /** The parent's host, for the worker's log line. */
  from: string;
}

/** What a worker returns (signed). */
export interface ResultBody {
  results: unknown[];
  error?: { index: number; error: SerializedError };
  blobs: [number, BlobInfo][];
  /** Set when the run had already ended on the broker: nothing was run. */
  skipped?: true;
}

interface Blob {
  path: string;
  uploaded?: Promise<BlobInfo>;
}

let transportCounter = 0;

export class BullmqTransport implements Transport {
  readonly id = ++transportCounter;
  /** The current run's id on the broker, and its wire token: new for every run. */
  run = randomBytes(16).toString('hex');
  token = wireToken();
  #folders: RunFolders;
  #blobs: Blob[] = [];
  #byValue = new Map<object, number>();
  readonly #specs = new Map<unknown, FunctionSpec>();
  /** The run's keys this parent wrote (chunks), refreshed with the alive key. */
  #keys = new Set<string>();
  #started: Promise<void> | undefined;
  #refresh: NodeJS.Timeout | undefined;
  /** Cleanups of ended runs still talking to the broker: close() waits for them. */
  readonly #cleanups = new Set<Promise<void>>();

  constructor(
    readonly options: TransportOptions,
    readonly settings: RemoteSettings,
    /** The broker connection, once the backend has one. */
    readonly redis: () => Redis | undefined,
  ) {
    this.#folders = new RunFolders(options.tempFolder);
  }

  encode(calls: readonly TaskCall[]): EncodedBatch {
    const blobIds = new Set<number>();
    const context = {
      token: this.token,
      maxNbytes: this.options.maxNbytes,
      sharedFolder: this.settings.sharedFolder,
      where: 'arguments',
      blob: (value: object) => {
        const id = this.#dump(value);
        blobIds.add(id);
        return id;
      },
    };
    const { fns, calls: messages } = tabulateCalls(calls, (fn) => this.#spec(fn), (args) => packForWire(args, context));
    const encoded: RemoteBatch = { fns, calls: messages, blobIds: [...blobIds] };
    return { encoded, count: calls.length };
  }

  /** Pool.map's chunks. */
  encodeMap(fn: unknown, items: readonly unknown[], spread: boolean): EncodedBatch {
    return this.encode(items.map((item) => ({ fn, args: spread ? (item as readonly unknown[]) : [item] })));
  }

  /** Checks that `fn` can be shipped (MEMJOB_ERR_CLOSURE and the like), before anything is queued. */
  check(fn: unknown): void {
    this.#spec(fn);
  }

  /** The signed body of a batch: starts the run on the broker and uploads its blobs first (each once per run). */
  async body(batch: EncodedBatch, taskTimeout: number | null, from: string): Promise<JobBody> {
    const redis = this.redis()!;
    await (this.#started ??= this.#start(redis));
    const { fns, calls, blobIds } = batch.encoded as RemoteBatch;
    const blobs: [number, BlobInfo][] = [];
    for (const id of blobIds) blobs.push([id, await this.#upload(redis, id)]);
    return { token: this.token, fns, calls, maxNbytes: this.options.maxNbytes, mmapMode: this.options.mmapMode, taskTimeout, blobs, from };
  }

  /** A worker's result body: its blobs downloaded into the run's folder, its values and error rebuilt. */
  async decode(body: ResultBody, host: string): Promise<Omit<BatchOutcome, 'batchId'>> {
    const paths = new Map<number, string>();
    const redis = this.redis()!;
    for (const [id, info] of body.blobs) {
      const path = this.#folders.current(info.size).file(`result-${randomBytes(6).toString('hex')}.mjdump`);
      await downloadBlob(redis, runPrefix(this.settings.queue, this.run), info, path);
      paths.set(id, path);
    }
    const results = fromWire(body.results, this.token, { blobPath: (id) => paths.get(id)! }) as unknown[];
    if (body.error === undefined) return { results };
    const error = rebuildError(body.error.error).then((rebuilt) => Object.assign(rebuilt, { host }));
    return { results, failure: { index: body.error.index, error } };
  }

  newDumpScope(): void {
    this.#byValue = new Map();
  }

  endRun(): void {
    clearInterval(this.#refresh);
    const redis = this.redis();
    const { run } = this;
    if (this.#started !== undefined && redis !== undefined) {
      const cleanup = this.#removeRunKeys(redis, run).catch(() => undefined); // an unreachable broker: the keys expire by TTL
      this.#cleanups.add(cleanup);
      void cleanup.finally(() => this.#cleanups.delete(cleanup));
    }
    this.#folders.remove();
    this.#folders = new RunFolders(this.options.tempFolder);
    this.#blobs = [];
    this.#byValue = new Map();
    this.#keys = new Set();
    this.#started = undefined;
    this.run = randomBytes(16).toString('hex');
    this.token = wireToken();
  }

  keptDumps(): string[] {
    return [];
  }

  /** Waits for the broker cleanups of ended runs. */
  async settled(): Promise<void> {
    await Promise.all(this.#cleanups);
  }

  close(): void {
    this.endRun();
  }

  async #start(redis: Redis): Promise<void> {
    const alive = aliveKey(this.settings.queue, this.run);
    await redis.set(alive, '1', 'PX', RUN_TTL_MS);
    const keys = this.#keys;
    this.#refresh = setInterval(() => {
      const pipeline = redis.pipeline().pexpire(alive, RUN_TTL_MS);
      for (const key of keys) pipeline.pexpire(key, RUN_TTL_MS);
      pipeline.exec().catch(() => undefined);
    }, RUN_REFRESH_MS);
    this.#refresh.unref();
  }

  async #removeRunKeys(redis: Redis, run: string): Promise<void> {
    const { queue } = this.settings;
    // The alive key first: from then on no worker uploads a result blob for this run (blob-store's script checks it).
    await redis.del(aliveKey(queue, run));
    const message: ControlMessage = { type: 'run-end', run };
    await redis.publish(controlChannel(queue), JSON.stringify(message));
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${runPrefix(queue, run)}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  }

  #dump(value: object): number {
    let id = this.#byValue.get(value);
    if (id !== undefined) return id;
    id = this.#blobs.length;
    const path = this.#folders.current().file(`arg-${id}.mjdump`);
    dumpScratchSync(value, path);
    this.#blobs.push({ path });
    this.#byValue.set(value, id);
    return id;
  }

  #upload(redis: Redis, id: number): Promise<BlobInfo> {
    const blob = this.#blobs[id]!;
    blob.uploaded ??= (async () => {
      const target = { prefix: runPrefix(this.settings.queue, this.run), aliveKey: aliveKey(this.settings.queue, this.run), ttlMs: RUN_TTL_MS };
      const uploaded = await uploadBlob(redis, target, { path: blob.path, privateFile: true });
      if (uploaded === null) throw new Error('the run ended while its arrays were being uploaded');
      for (const key of uploaded.keys) this.#keys.add(key);
      return uploaded.info;
    })();
    return blob.uploaded;
  }

  #spec(fn: unknown): FunctionSpec {
    let spec = this.#specs.get(fn);
    if (spec === undefined) this.#specs.set(fn, (spec = portableSpec(describeFunction(fn, memjobExports()))));
    return spec;
  }
}
