/**
 * The names memjob gives things on a broker. BullMQ keeps a queue's jobs
 * under `memjob:<queue>:...`; memjob's own keys live beside them under other
 * prefixes, so no job id can ever collide with them:
 * - `memjob-run:<queue>:<run>:alive`: exists while the parent's run is live
 *   (it refreshes its TTL); a worker runs a run's jobs and uploads its blobs
 *   only while it exists, so nothing outlives a finished or dead run;
 * - `memjob-run:<queue>:<run>:blob:<sha>:<i>`: chunks of the run's blobs;
 * - `memjob-worker:<queue>:<host>:<pid>`: a worker's registration and stats
 *   (JSON), with a TTL its heartbeat refreshes;
 * - the pub/sub channel `memjob-control:<queue>`: runs that ended or were cancelled.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';

/** BullMQ's key prefix for memjob's queues. */
export const BULL_PREFIX = 'memjob';
export const DEFAULT_QUEUE = 'memjob';

export function parseQueueName(where: string, value: unknown): string {
  if (value === undefined) return DEFAULT_QUEUE;
  if (typeof value === 'string' && /^[A-Za-z0-9_.-]{1,100}$/.test(value)) return value;
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected queue to be a name of 1 to 100 letters, digits, '_', '.' or '-', received ${describe(value)}`);
}

export const runPrefix = (queue: string, run: string): string => `memjob-run:${queue}:${run}`;
export const aliveKey = (queue: string, run: string): string => `${runPrefix(queue, run)}:alive`;
export const workerKey = (queue: string, host: string, pid: number): string => `memjob-worker:${queue}:${host}:${pid}`;
export const workerPattern = (queue: string): string => `memjob-worker:${queue}:*`;
export const controlChannel = (queue: string): string => `memjob-control:${queue}`;
/** A batch's BullMQ job id: the run and the batch (never a number, which BullMQ would confuse with its own ids). */
export const jobId = (run: string, batch: number): string => `${run}.${batch}`;

/** How long a run's keys outlive a parent that stopped refreshing them (it died). */
export const RUN_TTL_MS = 60_000;
/** How often the parent refreshes them. */
export const RUN_REFRESH_MS = 15_000;
/** A worker's registration outlives its last heartbeat by this much. */
export const WORKER_TTL_MS = 10_000;
export const WORKER_HEARTBEAT_MS = 2_000;

/** What a worker publishes about itself (`memjob cluster status`). */
export interface WorkerStats {
  host: string;
  pid: number;
  jobs: number;
  busy: number;
  backend: string;
  version: string;
  /** Blobs this machine downloaded (each once). */
  downloads: { count: number; bytes: number };
  /** Jobs refused: wrong or missing signature, other wire version. */
  rejected: number;
  /** Runs served so far. */
  runs: number;
  startedAt: number;
}

/** A message on the control channel. */
export type ControlMessage = { type: 'run-end'; run: string } | { type: 'cancel'; run: string };
