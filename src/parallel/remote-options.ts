/**
 * The options of backend 'bullmq' (docs/distributed.md), checked with the
 * others when a Parallel is created, so that a missing secret or a bad URL
 * fails at `new Parallel()`, not at the first run.
 */
import { resolve } from 'node:path';
import { invalidArg } from '../errors.js';
import { parseBroker, type BrokerOption } from '../remote/broker.js';
import { parseQueueName } from '../remote/keys.js';
import { resolveSecret } from '../remote/wire.js';
import type { BullmqSettings } from './backends/bullmq-backend.js';

export interface RemoteOptions {
  /** backend 'bullmq': the Redis broker, a 'redis://' or 'rediss://' URL (user and password in it for AUTH/ACL) or ioredis options. */
  broker?: BrokerOption;
  /** backend 'bullmq': the queue the workers serve (`memjob worker --queue`). Default 'memjob'. */
  queue?: string;
  /** backend 'bullmq': the shared secret jobs are signed with. Default: the MEMJOB_SECRET environment variable. */
  secret?: string;
  /** backend 'bullmq': send unsigned jobs (only to workers started with --insecure, on a network you trust). Default false. */
  insecure?: boolean;
  /** backend 'bullmq': a folder mounted at the same path on every machine (NFS...): Memmaps there travel as paths, not uploaded. */
  sharedFolder?: string;
  /** backend 'bullmq': ms to reach the broker and find a worker at start, and to get the broker back after a loss. Default 5000. */
  brokerTimeout?: number;
}

export const DEFAULT_BROKER_TIMEOUT_MS = 5_000;

export function parseRemoteOptions(where: string, backend: string, options: RemoteOptions): BullmqSettings | undefined {
  // Ignored by the local backends: a parallelConfig({ backend: 'bullmq', broker }) around code that picks
  // backend: 'threads' for one Parallel must not make that Parallel fail.
  if (backend !== 'bullmq') return undefined;
  if (options.broker === undefined) throw invalidArg(where, 'broker', "a 'redis://' URL with backend 'bullmq'", undefined);
  const broker = parseBroker(where, options.broker);
  const queue = parseQueueName(where, options.queue);
  if (options.insecure !== undefined && typeof options.insecure !== 'boolean') throw invalidArg(where, 'insecure', 'true or false', options.insecure);
  const secret = resolveSecret(where, { secret: options.secret, insecure: options.insecure });
  const timeout = options.brokerTimeout ?? DEFAULT_BROKER_TIMEOUT_MS;
  if (!(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1)) throw invalidArg(where, 'brokerTimeout', 'a positive number of milliseconds', timeout);
  const shared = options.sharedFolder;
  if (shared !== undefined && (typeof shared !== 'string' || shared === '')) throw invalidArg(where, 'sharedFolder', 'a folder path', shared);
  return { broker, queue, secret, sharedFolder: shared === undefined ? undefined : resolve(shared), brokerTimeout: timeout };
}
