/**
 * distributed benchmark (issue 13): memjob's `backend: 'bullmq'` on a
 * loopback cluster beside joblib's dask backend on a loopback
 * distributed.LocalCluster, in one run, 2 worker processes on each side:
 *   memjob: a throwaway redis-server and 2 `memjob worker --jobs 1 --backend processes`,
 *           each with its own temp folder (one "machine" each); Parallel({ backend: 'bullmq', nJobs: 2 })
 *   dask:   LocalCluster(n_workers=2, threads_per_worker=1, processes=True) and
 *           `with parallel_backend('dask'): Parallel(n_jobs=-1)` (bench/distributed_dask.py)
 * Parts:
 *   1. no-op tasks per second (10,000 tasks, auto batching)
 *   2. seed 000's process(n) over 10,000 tasks: speedup over a sequential loop, beside
 *      memjob's own backend 'processes' with nJobs 2 (dask: fewer tasks, each ~40× slower in Python)
 *   3. one 256 MiB Float64Array given to 16 chunk-sum tasks (task c sums every 16th element
 *      from c): wall time, and the bytes each machine received
 *
 *   npm run bench -- distributed                         # full sizes (about 1.5 minutes)
 *   BENCH_QUICK=1 node build-dev/bench/distributed.js    # small sizes, one round; prints only (after npm run build:dev)
 *
 * Environment (whole numbers; BENCH_DIST_BYTES takes K, M, G suffixes, base 1024):
 *   BENCH_QUICK              1: quick defaults for everything below
 *   BENCH_DIST_NOOP_TASKS    no-op tasks (default 10000; quick 2000)
 *   BENCH_DIST_TASKS         seed workload tasks for memjob (default 10000; quick 2000)
 *   BENCH_DIST_PY_TASKS      seed workload tasks for dask (default 1000; quick 200)
 *   BENCH_DIST_BYTES         the array of part 3 (default 256M; quick 64M; a multiple of 8 MiB)
 *   BENCH_DIST_CHUNKS        chunk-sum tasks of part 3 (default 16; a power of 2 up to 2^17)
 *   BENCH_DIST_ROUNDS        timed rounds of every part; medians shown (default 3; quick 1)
 *   BENCH_PYTHON             the python with dask.distributed and joblib (default /usr/bin/python3)
 *
 * Only a wrong result, a worker that does not stop cleanly or leaves files
 * in its temp folder, or a failing tool makes it fail. Everything it starts
 * is stopped, and every folder it makes removed, however it ends.
 */
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Parallel, delayed } from 'memjob';
import { STATUS_SETTLE_MS, Teardown, clusterStatus, descendantsCpu, runDask, startMemjobWorker, startRedis, type Guarded, type WorkerStatus } from './distributed-cluster.js';
import { environmentLines } from './memmap.js';
import { formatBytes, formatCount, formatGoalRatio, formatMs, formatRatio, listMs, markdownTable, median, noop, verdict, yieldToSignals, type Section } from './parallel-common.js';
import { checkSeed, process as seedProcess } from './parallel-seed.js';

export interface DistributedOptions {
  quick: boolean;
  noopTasks: number;
  seedTasks: number;
  pySeedTasks: number;
  bytes: number;
  chunks: number;
  rounds: number;
  python: string;
}

// The issue's goals.
const noopGoal = 2;
const seedGoal = 0.9;
/** A blob is the array's dump: the data plus a header well under this. */
const headerAllowance = 64 * 1024;
const PERIOD = 2 ** 20;

function count(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`${name}: expected a whole number of at least 1, received "${text}"`);
  return Number(text);
}

export function distributedOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DistributedOptions {
  const quick = env.BENCH_QUICK === '1';
  const bytesText = (env.BENCH_DIST_BYTES ?? (quick ? '64M' : '256M')).trim();
  const match = /^(\d+)([KMG]?)$/i.exec(bytesText);
  const bytes = match === null ? Number.NaN : Number(match[1]) * 1024 ** ' KMG'.indexOf((match[2] || ' ').toUpperCase());
  if (!(bytes > 0 && bytes % (8 * PERIOD) === 0 && bytes < 2 ** 31)) {
    throw new Error(`BENCH_DIST_BYTES: expected a multiple of 8M below 2G such as 256M, received "${bytesText}"`);
  }
  const chunks = count(env, 'BENCH_DIST_CHUNKS', 16);
  // A power of 2 up to 2^17 divides the period, so every chunk's sum has a formula.
  if ((chunks & (chunks - 1)) !== 0 || chunks > 2 ** 17) throw new Error(`BENCH_DIST_CHUNKS: expected a power of 2 up to 131072, received ${chunks}`);
  return {
    quick,
    noopTasks: count(env, 'BENCH_DIST_NOOP_TASKS', quick ? 2000 : 10000),
    seedTasks: count(env, 'BENCH_DIST_TASKS', quick ? 2000 : 10000),
    pySeedTasks: count(env, 'BENCH_DIST_PY_TASKS', quick ? 200 : 1000),
    bytes,
    chunks,
    rounds: count(env, 'BENCH_DIST_ROUNDS', quick ? 1 : 3),
    python: env.BENCH_PYTHON ?? '/usr/bin/python3',
  };
}

/** Self-contained, sent by source: every `stride`-th element from `offset`. */
const chunkSum = (a: Float64Array, offset: number, stride: number): number => {
  let s = 0;
  for (let i = offset; i < a.length; i += stride) s += a[i]!;
  return s;
};

/** Σ ((i % PERIOD) + r) over i = offset, offset + stride, … < n: n a multiple of PERIOD, stride dividing it. */
function expectedChunk(n: number, offset: number, stride: number, r: number): number {
  const perPeriod = PERIOD / stride;
  return (n / PERIOD) * (perPeriod * offset + (stride * perPeriod * (perPeriod - 1)) / 2) + (r * n) / stride;
}

function checkNoop(label: string, results: readonly unknown[], n: number): void {
  if (results.length !== n || results.some((v, i) => v !== i)) throw new Error(`bench: ${label}: the no-op results are not 0 .. ${n - 1} in order`);
}

interface DaskOutput {
  start_s: number;
  noop_s: number[];
  seed: { sequential_s: number[]; parallel_s: number[] };
  big: { seconds: number; workers: { address: string; tasks: number; scattered: number; peers: number }[] }[];
}

interface MemjobFigures {
  noop: { bullmq: number[]; processes: number[] };
  seed: { sequential: number[]; processes: number[]; bullmq: number[] };
  /** CPU ms of each seed run, by process role. */
  cpu: Record<'processes' | 'bullmq', CpuSample[]>;
  big: { ms: number; machines: { pid: number; count: number; bytes: number }[] }[];
  local: number[];
}

interface CpuSample {
  parent: number;
  services: number;
  serviceWorkers: number;
  ownWorkers: number;
  redis: number;
}

function cpuNow(): CpuSample {
  const { user, system } = process.cpuUsage();
  return { parent: (user + system) / 1000, ...descendantsCpu() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureMemjob(o: DistributedOptions, broker: string, secret: string, tempFolder: string): Promise<MemjobFigures> {
  const remote = new Parallel({ backend: 'bullmq', broker, secret, nJobs: 2, tempFolder });
  const local = new Parallel({ backend: 'processes', nJobs: 2, tempFolder, reuse: false });
  const figures: MemjobFigures = { noop: { bullmq: [], processes: [] }, seed: { sequential: [], processes: [], bullmq: [] }, cpu: { processes: [], bullmq: [] }, big: [], local: [] };
  try {
    const parallels = { bullmq: remote, processes: local } as const;
    // 1. no-op tasks: one untimed run each (connects, starts workers, warms the JIT on both sides).
    const noops = () => Array.from({ length: o.noopTasks }, (_, i) => delayed(noop)(i));
    for (const [name, p] of Object.entries(parallels)) {
      process.stderr.write(`bench distributed: memjob ${name}: no-op tasks (${o.noopTasks}), warm-up run\n`);
      checkNoop(`memjob ${name}, warm-up`, await p.run(noops()), o.noopTasks);
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const name of round % 2 === 0 ? (['bullmq', 'processes'] as const) : (['processes', 'bullmq'] as const)) {
        process.stderr.write(`bench distributed: memjob ${name}: no-op tasks, round ${round + 1}/${o.rounds}\n`);
        await yieldToSignals();
        const start = performance.now();
        const results = await parallels[name].run(noops());
        figures.noop[name].push(performance.now() - start);
        checkNoop(`memjob ${name}`, results, o.noopTasks);
      }
    }
    // 2. seed workload, the three cases rotated each round.
    const n = o.seedTasks;
    const calls = () => Array.from({ length: n }, (_, i) => delayed(seedProcess)(i));
    for (let i = 0; i < 200; i++) seedProcess(i); // compiled in this thread before the timed loop
    for (const p of [remote, local]) checkSeed('memjob, warm-up', await p.run(calls()), n);
    const steps = ['sequential', 'processes', 'bullmq'] as const;
    for (let round = 0; round < o.rounds; round++) {
      for (const step of steps.map((_, i) => steps[(i + round) % steps.length]!)) {
        process.stderr.write(`bench distributed: seed workload, round ${round + 1}/${o.rounds}, ${step}\n`);
        await yieldToSignals();
        const cpuBefore = cpuNow();
        const start = performance.now();
        let results: unknown[];
        if (step === 'sequential') {
          results = new Array<number>(n);
          for (let i = 0; i < n; i++) results[i] = seedProcess(i);
        } else {
          results = await parallels[step].run(calls());
        }
        figures.seed[step].push(performance.now() - start);
        if (step !== 'sequential') {
          const after = cpuNow();
          figures.cpu[step].push(Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - cpuBefore[k as keyof CpuSample]])) as unknown as CpuSample);
        }
        checkSeed(step, results, n);
      }
    }
    // 3. the large array: a new content each round, so no machine finds it in its blob cache.
    const length = o.bytes / 8;
    const work = (array: Float64Array) => Array.from({ length: o.chunks }, (_, c) => delayed(chunkSum)(array, c, o.chunks));
    const check = (label: string, sums: readonly unknown[], r: number) => {
      for (let c = 0; c < o.chunks; c++) {
        if (sums[c] !== expectedChunk(length, c, o.chunks, r)) throw new Error(`bench: ${label} chunk ${c} summed to ${String(sums[c])}, expected ${expectedChunk(length, c, o.chunks, r)}`);
      }
    };
    const fill = (r: number) => {
      const array = new Float64Array(length);
      for (let i = 0; i < length; i++) array[i] = (i % PERIOD) + r;
      return array;
    };
    let before = await settledStatus(broker);
    for (let round = 0; round < o.rounds; round++) {
      const array = fill(round);
      process.stderr.write(`bench distributed: memjob bullmq: ${formatBytes(o.bytes)} array to ${o.chunks} tasks, round ${round + 1}/${o.rounds}\n`);
      await yieldToSignals();
      const start = performance.now();
      const sums = await remote.run(work(array));
      const ms = performance.now() - start;
      check('memjob bullmq', sums, round);
      const after = await settledStatus(broker);
      const machines = after.map((w) => {
        const was = before.find((b) => b.pid === w.pid)?.downloads ?? { count: 0, bytes: 0 };
        return { pid: w.pid, count: w.downloads.count - was.count, bytes: w.downloads.bytes - was.bytes };
      });
      figures.big.push({ ms, machines });
      before = after;
      // The same on one machine (backend 'processes', the array dumped to /dev/shm and mapped): for reference.
      const again = fill(o.rounds + round);
      process.stderr.write(`bench distributed: memjob processes: ${formatBytes(o.bytes)} array to ${o.chunks} tasks, round ${round + 1}/${o.rounds}\n`);
      const t = performance.now();
      const localSums = await local.run(work(again));
      figures.local.push(performance.now() - t);
      check('memjob processes', localSums, o.rounds + round);
    }
  } finally {
    await Promise.all([remote.close(), local.close()]);
  }
  return figures;
}

/** The workers' records once their heartbeat has published what they did. */
async function settledStatus(broker: string): Promise<WorkerStatus[]> {
  await sleep(STATUS_SETTLE_MS);
  return clusterStatus(broker);
}

function sections(o: DistributedOptions, m: MemjobFigures, dask: DaskOutput | undefined, daskSkipped: string | undefined): Section[] {
  const skipped = `not measured: dask was skipped (${daskSkipped})`;
  // 1. no-op tasks
  const rate = (ms: number[], n: number) => n / (median(ms) / 1e3);
  const noopRows = [
    ['memjob bullmq, nJobs 2', m.noop.bullmq, '2 `memjob worker --jobs 1 --backend processes` through redis-server'],
    ['memjob processes, nJobs 2', m.noop.processes, 'one machine, no broker: for reference'],
    ...(dask ? [['joblib dask backend, 2 workers', dask.noop_s.map((s) => s * 1e3), 'LocalCluster, 2 processes × 1 thread; batch_size auto']] : []),
  ] as [string, number[], string][];
  const bullRate = rate(m.noop.bullmq, o.noopTasks);
  const daskRate = dask ? rate(dask.noop_s.map((s) => s * 1e3), o.noopTasks) : Number.NaN;
  const noop: Section = {
    title: `1. No-op tasks: ${formatCount(o.noopTasks)} tasks, 2 workers, medians of ${o.rounds}`,
    table: markdownTable(['Case', 'Median time', 'Tasks/s', 'Note'], noopRows.map(([label, ms, note]) => [label, formatMs(median(ms)), formatCount(rate(ms, o.noopTasks)), `${listMs(ms)}; ${note}`])),
    lines: [dask ? `Goal (memjob bullmq ≥ ${noopGoal}× dask's no-op tasks/s): ${verdict(bullRate >= noopGoal * daskRate)} — ${formatGoalRatio(bullRate / daskRate)} (${formatCount(bullRate)} against ${formatCount(daskRate)} tasks/s)` : `Goal (memjob bullmq ≥ ${noopGoal}× dask's no-op tasks/s): ${skipped}`],
  };
  // 2. seed workload
  const seq = median(m.seed.sequential);
  const speedup = (ms: number[]) => seq / median(ms);
  const seedRows = [
    ['memjob: sequential loop', formatCount(o.seedTasks), m.seed.sequential, '1.00×', 'a plain for loop calling process(i) in the parent'],
    ['memjob processes, nJobs 2', formatCount(o.seedTasks), m.seed.processes, formatRatio(speedup(m.seed.processes)), 'one machine, workers warm'],
    ['memjob bullmq, nJobs 2', formatCount(o.seedTasks), m.seed.bullmq, formatRatio(speedup(m.seed.bullmq)), '2 workers through redis-server, warm'],
  ] as [string, string, number[], string, string][];
  let daskSpeedup = Number.NaN;
  if (dask) {
    const [pySeq, pyPar] = [dask.seed.sequential_s.map((s) => s * 1e3), dask.seed.parallel_s.map((s) => s * 1e3)];
    daskSpeedup = median(pySeq) / median(pyPar);
    seedRows.push(['python: sequential loop', formatCount(o.pySeedTasks), pySeq, '1.00×', 'the same function in Python; fewer tasks, each ~40× slower']);
    seedRows.push(['joblib dask backend, 2 workers', formatCount(o.pySeedTasks), pyPar, formatRatio(daskSpeedup), 'after one untimed call']);
  }
  const ratio = speedup(m.seed.bullmq) / speedup(m.seed.processes);
  const seed: Section = {
    title: `2. Seed workload: process(n), speedup over a sequential loop with 2 workers, medians of ${o.rounds}`,
    table: markdownTable(['Case', 'Tasks', 'Median time', 'Speedup', 'Note'], seedRows.map(([label, tasks, ms, s, note]) => [label, tasks, formatMs(median(ms)), s, `${listMs(ms)}; ${note}`])),
    lines: [
      `Goal (memjob bullmq's speedup within 10% of memjob processes', nJobs 2): ${verdict(ratio >= seedGoal)} — bullmq ${formatGoalRatio(speedup(m.seed.bullmq))}, processes ${formatGoalRatio(speedup(m.seed.processes))}: ${formatGoalRatio(ratio)} of it`,
      ...(dask ? [`dask reference: speedup ${formatRatio(daskSpeedup)} (no goal)`] : []),
      cpuLine(m.cpu),
    ],
  };
  // 3. the large array
  const bullMs = m.big.map((b) => b.ms);
  const machineText = (b: MemjobFigures['big'][number]) => b.machines.map((w) => `${formatBytes(w.bytes)} (${w.count} blob${w.count === 1 ? '' : 's'})`).join(' + ');
  const bigRows: string[][] = [
    ['memjob bullmq, nJobs 2', formatMs(median(bullMs)), m.big.map(machineText).join('; '), `${listMs(bullMs)}; per machine: downloads.bytes from \`memjob cluster status\`, before and after`],
    ['memjob processes, nJobs 2', formatMs(median(m.local)), '(one machine, mapped from /dev/shm)', `${listMs(m.local)}; for reference`],
  ];
  let daskMs = Number.NaN;
  if (dask) {
    const times = dask.big.map((b) => b.seconds * 1e3);
    daskMs = median(times);
    const perWorker = dask.big.map((b) => b.workers.map((w) => `${formatBytes(w.scattered + w.peers)} (${w.tasks} tasks)`).join(' + ')).join('; ');
    bigRows.push(['joblib dask backend, 2 workers', formatMs(daskMs), perWorker, `${listMs(times)}; per worker: bytes received by scatter + from peers (dask's own counters)`]);
  }
  const bytesOk = m.big.every((b) => b.machines.some((w) => w.count > 0) && b.machines.every((w) => w.count <= 1 && (w.count === 0 || (w.bytes >= o.bytes && w.bytes <= o.bytes + headerAllowance))));
  const worst = Math.max(...m.big.flatMap((b) => b.machines.map((w) => w.bytes)));
  const big: Section = {
    title: `3. One ${formatBytes(o.bytes)} Float64Array, ${o.chunks} chunk-sum tasks, medians of ${o.rounds}`,
    table: markdownTable(['Case', 'Median time', 'Bytes received per machine, each round', 'Note'], bigRows),
    lines: [
      dask
        ? `Goal (memjob bullmq faster than dask's auto-scatter): ${verdict(median(bullMs) < daskMs)} — ${formatGoalRatio(daskMs / median(bullMs))} (dask's time / memjob's: ${formatMs(daskMs)} / ${formatMs(median(bullMs))})`
        : `Goal (memjob bullmq faster than dask's auto-scatter): ${skipped}`,
      `Goal (bytes moved per machine = the array, once): ${verdict(bytesOk)} — at most ${formatCount(worst)} bytes per machine per round for a ${formatCount(o.bytes)}-byte array ` +
        `(${formatGoalRatio(worst / o.bytes)}; the blob is the array's dump: its data plus a ${formatCount(worst - o.bytes)}-byte header)`,
    ],
  };
  return [noop, seed, big];
}

/** Where the CPU of a seed run went (medians; process CPU from /proc, 10 ms ticks): the broker path shares these 2 cores with the workers. */
function cpuLine(cpu: MemjobFigures['cpu']): string {
  const at = (samples: CpuSample[], key: keyof CpuSample) => `${median(samples.map((c) => c[key])).toFixed(0)} ms`;
  const [p, b] = [cpu.processes, cpu.bullmq];
  return (
    `CPU per seed run (medians, no goal): processes — parent ${at(p, 'parent')}, its 2 workers ${at(p, 'ownWorkers')}; ` +
    `bullmq — parent ${at(b, 'parent')}, 2 memjob worker services ${at(b, 'services')}, their 2 local workers ${at(b, 'serviceWorkers')}, redis-server ${at(b, 'redis')}`
  );
}

async function daskStatus(python: string, teardown: Teardown): Promise<{ text: string; skipped: string | undefined }> {
  try {
    const v = await runDask<Record<string, string>>(teardown, python, ['--versions']);
    return { text: `joblib ${v.joblib}, dask.distributed ${v.distributed}, numpy ${v.numpy}, Python ${v.python} (${python})`, skipped: undefined };
  } catch (error) {
    const reason = (error as Error).message.trim().split('\n').at(-1) ?? 'unknown';
    return { text: `skipped: ${python} cannot run dask.distributed and joblib (${reason}); no dask figures`, skipped: reason };
  }
}

/** Runs everything and returns the sections and tool lines. */
export async function runDistributedBench(o: DistributedOptions = distributedOptionsFromEnv()): Promise<{ sections: Section[]; tools: string[] }> {
  const teardown = new Teardown();
  const uninstall = teardown.install();
  try {
    const root = teardown.root('/dev/shm/memjob-bench-dist-');
    const dask = await daskStatus(o.python, teardown);
    const broker = await startRedis(teardown, root);
    const secret = randomBytes(24).toString('hex');
    const machines: { worker: Guarded; folder: string }[] = [];
    for (const name of ['a', 'b']) {
      const folder = teardown.folder(`${root}/machine-${name}-`);
      machines.push({ worker: await startMemjobWorker(teardown, broker, secret, folder), folder });
    }
    const parentFolder = teardown.folder(`${root}/parent-`);
    const memjob = await measureMemjob(o, broker, secret, parentFolder);
    // The memjob side stops before dask's runs; each worker must exit 0 and leave its temp folder empty.
    for (const { worker, folder } of machines) {
      const code = await worker.stop();
      if (code !== 0) throw new Error(`bench: a memjob worker exited with ${code} on SIGTERM: ${worker.output().slice(-2000)}`);
      const left = readdirSync(folder);
      if (left.length > 0) throw new Error(`bench: a memjob worker left ${left.join(', ')} in its temp folder ${folder}`);
    }
    const left = readdirSync(parentFolder);
    if (left.length > 0) throw new Error(`bench: memjob left ${left.join(', ')} in the parent's tempFolder`);
    let daskOutput: DaskOutput | undefined;
    if (dask.skipped === undefined) {
      const local = teardown.folder(`${root}/dask-`);
      daskOutput = await runDask<DaskOutput>(teardown, o.python, ['all', o.noopTasks, o.rounds, o.pySeedTasks, o.bytes, o.chunks, local].map(String));
    }
    const tools = [
      `memjob: redis-server (${broker}), 2 × memjob worker --jobs 1 --backend processes, each with its own temp folder in /dev/shm`,
      `dask: ${dask.text}${daskOutput ? `; LocalCluster started in ${formatMs(daskOutput.start_s * 1e3)} (untimed)` : ''}`,
    ];
    return { sections: sections(o, memjob, daskOutput, dask.skipped), tools };
  } finally {
    await teardown.run();
    uninstall();
  }
}

export interface DistributedMainResult {
  sections: Section[];
  tools: string[];
  options: DistributedOptions;
}

/** Prints the sections; returns them for bench/run.ts's report. */
export async function main(): Promise<DistributedMainResult> {
  const options = distributedOptionsFromEnv();
  console.log('## distributed\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  console.log(`Load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}  `);
  const { sections: parts, tools } = await runDistributedBench(options);
  for (const line of tools) console.log(`${line}  `);
  console.log(`Mode: ${options.quick ? 'quick (BENCH_QUICK=1)' : 'full'}; memjob's runs first, then dask's; every result checked against its formula`);
  console.log(`Load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  for (const section of parts) {
    console.log(`\n### ${section.title}\n`);
    console.log(section.table);
    console.log('');
    for (const line of section.lines) console.log(line);
  }
  return { sections: parts, tools, options };
}

// Also runnable on its own, printing only: node build-dev/bench/distributed.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
