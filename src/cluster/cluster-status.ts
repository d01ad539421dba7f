/**
 * `memjob cluster status`: the workers registered on a queue (their own
 * heartbeat records: remote/keys.ts) and the queue's job counts.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BULL_PREFIX, workerPattern, type WorkerStats } from '../remote/keys.js';

export interface ClusterStatus {
  workers: WorkerStats[];
  queues: Record<string, Record<string, number>>;
}

export async function clusterStatus(redis: Redis, queue: string): Promise<ClusterStatus> {
  const workers: WorkerStats[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', workerPattern(queue), 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const text = await redis.get(key);
      if (text === null) continue; // expired between SCAN and GET
      try {
        workers.push(JSON.parse(text) as WorkerStats);
      } catch {
        // Not a record a memjob worker wrote: left out rather than trusted.
      }
    }
  } while (cursor !== '0');
  workers.sort((a, b) => (a.host === b.host ? a.pid - b.pid : a.host < b.host ? -1 : 1));
  const bull = new Queue(queue, { connection: redis, prefix: BULL_PREFIX });
  bull.on('error', () => undefined);
  try {
    const counts = await bull.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
    return { workers, queues: { [queue]: counts } };
  } finally {
    await bull.close();
  }
}
