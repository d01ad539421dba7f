/**
 * One case of the memory benchmark, run by bench/parallel-memory.ts in a
 * child process of its own, so that its process tree holds nothing but the
 * case and the samples measure only it. Not meant to be run by hand.
 *
 * argv[2] is the case as JSON (MemoryCase). The exchange, one JSON line each:
 *   stdout {"phase":"ready"}  workers started and idle; the array does not exist yet
 *   stdin  go                 the parent has its baseline samples
 *   stdout {"phase":"done", "fillMs", "runMs", "sums"}  array filled, 16 chunks summed
 *   stdin  exit               the parent has its last sample (everything still alive)
 */
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { Parallel, delayed } from 'memjob';
import { chunkBounds, period } from './parallel-common.js';

export interface MemoryCase {
  /** memjob's Parallel, or the array sent by structured clone to plain worker_threads. */
  kind: 'memjob' | 'clone';
  backend: 'threads' | 'processes';
  /** Workers (memjob's nJobs; the plain worker_threads count for 'clone'). */
  workers: number;
  bytes: number;
  chunks: number;
  /** memjob's tempFolder: a folder of the parent's, whose size it samples. */
  tempFolder: string;
}

/** One chunk's sum: self-contained, so memjob sends it by source. */
function chunkSum(a: Float64Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s += a[i]!;
  return s;
}

// The plain worker: receives the array once, by copy, then sums the chunks it was given.
const cloneWorkerSource = `
const { parentPort } = require('node:worker_threads');
const chunkSum = ${chunkSum.toString()};
parentPort.on('message', ({ array, bounds }) => {
  parentPort.postMessage(bounds.map(([k, start, end]) => [k, chunkSum(array, start, end)]));
});
parentPort.postMessage('ready');
`;

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expect(word: string): Promise<void> {
  const line = await lines.next();
  if (line.done === true || line.value.trim() !== word) throw new Error(`memory case: expected "${word}" from the parent`);
}
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

function fill(n: number): Float64Array {
  const array = new Float64Array(n);
  for (let i = 0; i < n; i++) array[i] = i % period;
  return array;
}

async function runMemjob(c: MemoryCase): Promise<void> {
  const p = new Parallel({ nJobs: c.workers, backend: c.backend, tempFolder: c.tempFolder });
  try {
    // Starts the workers and compiles chunkSum in them: a small array (under maxNbytes) by clone.
    const warm = await p.run([delayed(chunkSum)(new Float64Array([1, 2, 3]), 0, 3)]);
    if (warm[0] !== 6) throw new Error(`memory case: warm-up sum is ${warm[0]}, expected 6`);
    say({ phase: 'ready' });
    await expect('go');
    let start = performance.now();
    const n = c.bytes / 8;
    const array = fill(n);
    const fillMs = performance.now() - start;
    start = performance.now();
    // One array object for all 16 calls: memjob dumps it once per run and every task maps that dump.
    const sums = await p.run(Array.from({ length: c.chunks }, (_, k) => delayed(chunkSum)(array, ...chunkBounds(n, c.chunks, k))));
    const runMs = performance.now() - start;
    say({ phase: 'done', fillMs, runMs, sums });
    await expect('exit');
  } finally {
    await p.close();
  }
}

async function runClone(c: MemoryCase): Promise<void> {
  const workers = Array.from({ length: c.workers }, () => new Worker(cloneWorkerSource, { eval: true }));
  try {
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
    say({ phase: 'ready' });
    await expect('go');
    let start = performance.now();
    const n = c.bytes / 8;
    const array = fill(n);
    const fillMs = performance.now() - start;
    start = performance.now();
    const sums: number[] = [];
    await Promise.all(
      workers.map((worker, w) => {
        const bounds = [];
        for (let k = w; k < c.chunks; k += workers.length) bounds.push([k, ...chunkBounds(n, c.chunks, k)]);
        const answer = new Promise<void>((resolve, reject) => {
          worker.once('message', (pairs: [number, number][]) => {
            for (const [k, sum] of pairs) sums[k] = sum;
            resolve();
          });
          worker.once('error', reject);
        });
        worker.postMessage({ array, bounds }); // no transfer list: a structured-clone copy per worker
        return answer;
      }),
    );
    const runMs = performance.now() - start;
    say({ phase: 'done', fillMs, runMs, sums });
    await expect('exit');
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

const memoryCase = JSON.parse(process.argv[2] ?? '') as MemoryCase;
await (memoryCase.kind === 'memjob' ? runMemjob(memoryCase) : runClone(memoryCase));
process.exit(0);
