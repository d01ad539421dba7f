// Producer and consumer for bench/multiprocessing.ts's Queue throughput, shipped with task().
import type { Queue, Value } from 'memjob';

export async function produce(queue: Queue<number>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await queue.put(i);
  queue.close();
}

/** Counts items until the queue is closed; reports the time from the first item to the last. */
export async function consume(queue: Queue<number>, elapsed: Value<'float64'>, received: Value<'int32'>): Promise<void> {
  let first = 0;
  let count = 0;
  for await (const item of queue) {
    if (count === 0) first = performance.now();
    count += item >= 0 ? 1 : 0;
  }
  elapsed.value = performance.now() - first;
  received.value = count;
}
