/**
 * Seed 004: a producer and a consumer Process joined by a bounded Queue, for
 * data too big to hold at once, with a shared Value the consumer adds into.
 *
 * Run: npm run build:dev && node build-dev/examples/seed-004-process-queue.js
 */
import { Process, Queue, Value } from 'memjob';

// Puts 50 chunks of 100,000 float64s, then closes the queue. put() waits while the queue is full.
async function producer(queue: Queue<Float64Array>): Promise<void> {
  for (let k = 0; k < 50; k++) {
    const chunk = new Float64Array(100_000);
    for (let i = 0; i < chunk.length; i++) chunk[i] = k;
    await queue.put(chunk);
  }
  queue.close();
}

// Sums every chunk into the shared total until the queue is closed and drained.
async function consumer(queue: Queue<Float64Array>, total: Value<'float64'>, count: Value<'int32'>): Promise<void> {
  for await (const chunk of queue) {
    let s = 0;
    for (let i = 0; i < chunk.length; i++) s += chunk[i]!;
    total.getLock().withLock(() => total.set(total.get() + s));
    count.add(1);
  }
}

const queue = new Queue<Float64Array>({ maxsize: 4 });
const total = new Value('float64', 0);
const count = new Value('int32', 0);
const workers = [
  new Process({ target: producer, args: [queue], name: 'producer' }),
  new Process({ target: consumer, args: [queue, total, count], name: 'consumer' }),
];
for (const p of workers) p.start();
for (const p of workers) await p.join();
const expected = 100_000 * ((49 * 50) / 2);
console.log(`chunks consumed: ${count.value}, total: ${total.value} (expected ${expected})`);
console.log(`exit codes: ${workers.map((p) => `${p.name}=${p.exitCode}`).join(', ')}`);
if (total.value !== expected) process.exitCode = 1;
