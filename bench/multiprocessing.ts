/**
 * multiprocessing benchmarks, side by side with Python's multiprocessing run
 * from the same script (Debian's /usr/bin/python3):
 * 1. Pool.map over 100,000 tiny items with the default ('auto') chunksize,
 *    pool already started, beside multiprocessing.Pool.map (goal: at least
 *    2x its throughput);
 * 2. Queue throughput in items per second between two processes (a
 *    producer and a consumer Process), beside multiprocessing.Queue.
 *
 *   npm run bench -- multiprocessing
 *   BENCH_MP_ITEMS=20000 node build-dev/bench/multiprocessing.js   (after npm run build:dev)
 */
import { spawnSync } from 'node:child_process';
import { Pool, Process, Queue, Value, task } from 'memjob';
import { environmentLines } from './memmap.js';
import { sibling } from './paths.js';

const ITEMS = Number(process.env.BENCH_MP_ITEMS ?? 100_000);
const QUEUE_ITEMS = Number(process.env.BENCH_MP_QUEUE_ITEMS ?? 100_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const tasks = sibling('multiprocessing-tasks');

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function poolMap(backend: 'threads' | 'processes'): Promise<number> {
  await using pool = new Pool({ processes: 2, backend });
  await pool.map((x: number) => x * 2, [1, 2, 3, 4]); // start the workers outside the timing
  const items = Array.from({ length: ITEMS }, (_, i) => i);
  const times: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const started = performance.now();
    const out = await pool.map((x: number) => x * 2, items);
    times.push(performance.now() - started);
    if (out.length !== ITEMS || out[ITEMS - 1] !== (ITEMS - 1) * 2) throw new Error('Pool.map returned wrong results');
  }
  return ITEMS / (median(times) / 1000);
}

async function queueThroughput(): Promise<number> {
  const queue = new Queue<number>({ maxsize: 1000 });
  const elapsed = new Value('float64', 0);
  const received = new Value('int32', 0);
  const producer = new Process({ target: task(tasks, 'produce'), args: [queue, QUEUE_ITEMS] });
  const consumer = new Process({ target: task(tasks, 'consume'), args: [queue, elapsed, received] });
  consumer.start();
  producer.start();
  await producer.join();
  await consumer.join();
  if (received.value !== QUEUE_ITEMS) throw new Error(`Queue lost items: ${received.value} of ${QUEUE_ITEMS}`);
  queue.dispose();
  return QUEUE_ITEMS / (elapsed.value / 1000);
}

const pythonScript = String.raw`
import json, sys, time
from multiprocessing import Pool, Process, Queue
def double(x): return x * 2
def produce(q, n):
    for i in range(n): q.put(i)
    q.put(None)
def consume(q, out):
    first = None; count = 0
    while True:
        item = q.get()
        if first is None: first = time.perf_counter()
        if item is None: break
        count += 1
    out.put((count, time.perf_counter() - first))
if __name__ == '__main__':
    items, queue_items, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with Pool(2) as pool:
        pool.map(double, range(4))
        times = []
        for _ in range(repeats):
            t = time.perf_counter(); out = pool.map(double, range(items)); times.append(time.perf_counter() - t)
            assert out[-1] == (items - 1) * 2
    times.sort()
    q = Queue(1000); out = Queue()
    c = Process(target=consume, args=(q, out)); p = Process(target=produce, args=(q, queue_items))
    c.start(); p.start(); p.join(); count, seconds = out.get(); c.join()
    assert count == queue_items
    print(json.dumps({"map_per_s": items / times[len(times) // 2], "queue_per_s": queue_items / seconds}))
`;

function python(): { map_per_s: number; queue_per_s: number } | string {
  const result = spawnSync(PYTHON, ['-c', pythonScript, String(ITEMS), String(QUEUE_ITEMS), String(REPEATS)], { encoding: 'utf8' });
  if (result.status !== 0) return `skipped: ${PYTHON} failed (${(result.stderr || result.error?.message || '').trim().split('\n').pop()})`;
  return JSON.parse(result.stdout) as { map_per_s: number; queue_per_s: number };
}

/** The figures of one run, in items per second; `python` is the reason when Python was skipped. */
export interface MultiprocessingResult {
  items: number;
  queueItems: number;
  repeats: number;
  threads: number;
  processes: number;
  queue: number;
  python: { map_per_s: number; queue_per_s: number } | string;
}

/** Runs every measurement and returns the figures (for main(), or bench/run.ts's report). */
export async function runMultiprocessingBench(): Promise<MultiprocessingResult> {
  const threads = await poolMap('threads');
  const processes = await poolMap('processes');
  const queue = await queueThroughput();
  return { items: ITEMS, queueItems: QUEUE_ITEMS, repeats: REPEATS, threads, processes, queue, python: python() };
}

/** Prints the table and goal line; returns the figures for bench/run.ts's report. */
export async function main(): Promise<MultiprocessingResult> {
  console.log('## multiprocessing\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  const result = await runMultiprocessingBench();
  const { threads, processes, queue, python: py } = result;
  const fmt = (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`;
  console.log('');
  console.log('| Measurement | memjob | Python multiprocessing | ratio |');
  console.log('| --- | --- | --- | --- |');
  if (typeof py === 'string') {
    console.log(`| Pool.map, ${ITEMS.toLocaleString('en-US')} tiny items, 2 threads | ${fmt(threads)} | ${py} | |`);
    console.log(`| Pool.map, ${ITEMS.toLocaleString('en-US')} tiny items, 2 processes | ${fmt(processes)} | ${py} | |`);
    console.log(`| Queue, ${QUEUE_ITEMS.toLocaleString('en-US')} items between 2 processes | ${fmt(queue)} | ${py} | |`);
    return result;
  }
  console.log(`| Pool.map, ${ITEMS.toLocaleString('en-US')} tiny items, 2 threads | ${fmt(threads)} | ${fmt(py.map_per_s)} (2 processes) | ${(threads / py.map_per_s).toFixed(2)}× |`);
  console.log(`| Pool.map, ${ITEMS.toLocaleString('en-US')} tiny items, 2 processes | ${fmt(processes)} | ${fmt(py.map_per_s)} | ${(processes / py.map_per_s).toFixed(2)}× |`);
  console.log(`| Queue, ${QUEUE_ITEMS.toLocaleString('en-US')} items between 2 processes | ${fmt(queue)} | ${fmt(py.queue_per_s)} | ${(queue / py.queue_per_s).toFixed(2)}× |`);
  console.log('');
  const best = Math.max(threads, processes);
  console.log(`Goal (Pool.map at least 2x multiprocessing.Pool.map): ${best >= 2 * py.map_per_s ? 'met' : 'MISSED'} — threads ${(threads / py.map_per_s).toFixed(2)}×, processes ${(processes / py.map_per_s).toFixed(2)}× (medians of ${REPEATS}, pools started beforehand)`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
