/**
 * parallel benchmark: memjob's Parallel beside a plain loop, joblib
 * (Debian's python3) and piscina, in one run:
 *   1. seed 000's workload, 10,000 tasks: sequential vs nJobs 2 (threads, processes)
 *   2. 100,000 no-op tasks with auto batching: tasks per second
 *   3. one 1 GiB Float64Array given to 16 chunk-sum tasks: peak memory of the process tree
 *   4. cold start: new Parallel({ nJobs: 2 }) to the first result of a 1-task run (and of a 2-task run)
 *   5. reuse: a second run on the same 256 MiB array (dump cache); a new Parallel on shared workers
 *
 *   npm run bench -- parallel                 # full sizes (about 1.5 minutes)
 *   BENCH_QUICK=1 node build-dev/bench/parallel.js   # small sizes, one round (about 25 s; after npm run build:dev)
 *
 * Environment (counts are whole numbers; BENCH_BYTES takes K, M, G suffixes, base 1024):
 *   BENCH_QUICK                  1: quick defaults for everything below
 *   BENCH_PARALLEL_PARTS         which parts, comma-separated: seed,noop,memory,cold,reuse (default all)
 *   BENCH_PARALLEL_TASKS         seed workload tasks for memjob (default 10000; quick 2000)
 *   BENCH_PARALLEL_JOBLIB_TASKS  seed workload tasks for joblib, ~40× slower per task (default 1000; quick 200)
 *   BENCH_PARALLEL_NOOP_TASKS    no-op tasks (default 100000; quick 20000)
 *   BENCH_PARALLEL_ROUNDS        timed rounds of parts 1 and 2; medians shown (default 3; quick 1)
 *   BENCH_BYTES                  the array of part 3 (default 1G; quick 64M; under 2G, multiple of 8)
 *   BENCH_PARALLEL_CHUNKS        chunk-sum tasks of part 3 (default 16)
 *   BENCH_PARALLEL_MEMORY_JOBS   memjob nJobs values of part 3 (default 2,4)
 *   BENCH_PARALLEL_COLD          cold starts per case in part 4 (default 5; quick 3)
 *   BENCH_PYTHON                 the python with joblib (default /usr/bin/python3)
 *
 * Parts 1 and 2 live here; part 3 in parallel-memory.ts (its child in
 * parallel-memory-case.ts), part 4 in parallel-cold.ts; the joblib side in
 * parallel_joblib.py; piscina's worker in parallel-piscina-worker.ts.
 *
 * This is a script that prints tables, not a test: only a wrong result
 * (a sum that does not match its formula), a file memjob leaves in its
 * tempFolder, or a failing tool makes it fail.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Parallel, delayed } from 'memjob';
import { environmentLines, optionsFromEnv } from './memmap.js';
import {
  Scratch, backends, formatBytes, formatCount, formatGoalRatio, formatMs, formatRatio, listMs, markdownTable, median, noop, piscinaWorker, runJoblib, verdict,
  withOtherLoad, yieldToSignals, type Context, type Section,
} from './parallel-common.js';
import { coldSection } from './parallel-cold.js';
import { reuseSection } from './parallel-reuse.js';
import { runMemoryBench } from './parallel-memory.js';
import { bareHalves, checkSeed, process as seedProcess } from './parallel-seed.js';

const parts = ['seed', 'noop', 'memory', 'cold', 'reuse'] as const;
type Part = (typeof parts)[number];

export interface ParallelBenchOptions {
  quick: boolean;
  parts: Part[];
  seedTasks: number;
  joblibSeedTasks: number;
  noopTasks: number;
  rounds: number;
  bytes: number;
  chunks: number;
  memoryJobs: number[];
  coldStarts: number;
  python: string;
}

// The issue's goals.
const speedupGoal = 1.9;
/** With worker start included (a newcomer's first run): issue 10's goal. */
const coldSpeedupGoal = 1.5;
const vsJoblibGoal = 2;
const vsPiscinaGoal = 5;

function count(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`${name}: expected a whole number of at least 1, received "${text}"`);
  return Number(text);
}

export function parallelOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ParallelBenchOptions {
  const quick = env.BENCH_QUICK === '1';
  // memmap's parser, as bench/dump.ts uses it, so BENCH_BYTES means the same everywhere.
  const { bytes } = optionsFromEnv({ ...env, BENCH_BYTES: env.BENCH_BYTES ?? (quick ? '64M' : '1G') });
  const wanted = (env.BENCH_PARALLEL_PARTS ?? parts.join(',')).split(',').map((p) => p.trim());
  const unknown = wanted.filter((p) => !(parts as readonly string[]).includes(p));
  if (unknown.length > 0) throw new Error(`BENCH_PARALLEL_PARTS: unknown ${unknown.join(', ')}; known: ${parts.join(', ')}`);
  const jobsText = env.BENCH_PARALLEL_MEMORY_JOBS ?? '2,4';
  const memoryJobs = jobsText.split(',').map((j) => Number(j.trim()));
  if (memoryJobs.some((j) => !Number.isInteger(j) || j < 1)) {
    throw new Error(`BENCH_PARALLEL_MEMORY_JOBS: expected whole numbers such as 2,4, received "${jobsText}"`);
  }
  return {
    quick,
    parts: parts.filter((p) => wanted.includes(p)),
    seedTasks: count(env, 'BENCH_PARALLEL_TASKS', quick ? 2000 : 10000),
    joblibSeedTasks: count(env, 'BENCH_PARALLEL_JOBLIB_TASKS', quick ? 200 : 1000),
    noopTasks: count(env, 'BENCH_PARALLEL_NOOP_TASKS', quick ? 20000 : 100000),
    rounds: count(env, 'BENCH_PARALLEL_ROUNDS', quick ? 1 : 3),
    bytes,
    chunks: count(env, 'BENCH_PARALLEL_CHUNKS', 16),
    memoryJobs,
    coldStarts: count(env, 'BENCH_PARALLEL_COLD', quick ? 3 : 5),
    python: env.BENCH_PYTHON ?? '/usr/bin/python3',
  };
}

// ---- 1. seed workload -------------------------------------------------------

async function seedSection(ctx: Context): Promise<Section> {
  const { seedTasks: n, rounds } = ctx.options;
  const calls = () => Array.from({ length: n }, (_, i) => delayed(seedProcess)(i));
  const samples: Record<string, number[]> = { sequential: [], ceiling: [], 'threads cold': [], 'threads warm': [], 'processes cold': [], 'processes warm': [] };
  for (let i = 0; i < 200; i++) seedProcess(i); // compiles it in this thread before the timed loop
  const steps = ['sequential', 'ceiling', ...backends] as const;
  for (let round = 0; round < rounds; round++) {
    // Rotate the order, so no case always runs first.
    for (const step of steps.map((_, i) => steps[(i + round) % steps.length]!)) {
      process.stderr.write(`bench parallel: seed workload, round ${round + 1}/${rounds}, ${step}\n`);
      await yieldToSignals();
      if (step === 'sequential') {
        const start = performance.now();
        const results = new Array<number>(n);
        for (let i = 0; i < n; i++) results[i] = seedProcess(i);
        samples.sequential!.push(performance.now() - start);
        checkSeed('sequential loop', results, n);
        continue;
      }
      if (step === 'ceiling') {
        samples.ceiling!.push(await bareHalves(n));
        continue;
      }
      const start = performance.now();
      const p = new Parallel({ nJobs: 2, backend: step, tempFolder: ctx.tempFolder, reuse: false });
      try {
        const first = await p.run(calls());
        samples[`${step} cold`]!.push(performance.now() - start);
        checkSeed(`memjob ${step}, first run`, first, n);
        const again = performance.now();
        const second = await p.run(calls());
        samples[`${step} warm`]!.push(performance.now() - again);
        checkSeed(`memjob ${step}, second run`, second, n);
      } finally {
        await p.close();
      }
    }
  }
  const sequential = median(samples.sequential!);
  const row = (label: string, tasks: number, s: number[], base: number, note: string) => [
    label, formatCount(tasks), formatMs(median(s)), formatRatio(base / median(s)), `${listMs(s)}; ${note}`,
  ];
  const rows = [
    row('sequential loop in the parent', n, samples.sequential!, sequential, 'a plain for loop calling process(i)'),
    row('2 bare worker_threads, half each', n, samples.ceiling!, sequential, 'warm, no pool: the ceiling for 2 workers on this machine now'),
  ];
  for (const b of backends) {
    rows.push(row(`memjob ${b}, nJobs 2, first run`, n, samples[`${b} cold`]!, sequential, 'new Parallel → results: includes starting 2 workers'));
    rows.push(row(`memjob ${b}, nJobs 2, second run`, n, samples[`${b} warm`]!, sequential, 'the same Parallel again: workers already warm'));
  }
  const warm = backends.map((b) => sequential / median(samples[`${b} warm`]!));
  const cold = backends.map((b) => sequential / median(samples[`${b} cold`]!));
  const figures = (speedups: number[]) => backends.map((b, i) => `${b} ${formatGoalRatio(speedups[i]!)}`).join(', ');
  const lines = [
    `Goal (speedup ≥ ${speedupGoal} with nJobs 2, workers started): ${verdict(warm.every((s) => s >= speedupGoal))} — ${figures(warm)}`,
    `Goal (speedup ≥ ${coldSpeedupGoal} with nJobs 2, worker start included): ${verdict(cold.every((s) => s >= coldSpeedupGoal))} — ${figures(cold)}`,
    `Ceiling: 2 bare worker threads reached ${formatGoalRatio(sequential / median(samples.ceiling!))} in this run; memjob's warm runs reached ` +
      `${backends.map((b, i) => `${b} ${((100 * warm[i]!) / (sequential / median(samples.ceiling!))).toFixed(0)}%`).join(', ')} of it (no goal)`,
  ];
  if (ctx.joblibSkipped === undefined) {
    const m = ctx.options.joblibSeedTasks;
    process.stderr.write(`bench parallel: seed workload, joblib (${m} tasks)\n`);
    const j = await runJoblib<{ sequential_s: number; cold_s: number; warm_s: number }>(ctx.scratch, ctx.options.python, ['seed', String(m)]);
    const [seq, first, second] = [j.sequential_s, j.cold_s, j.warm_s].map((s) => s * 1e3) as [number, number, number];
    rows.push(row('joblib: sequential loop', m, [seq], seq, 'the same function in Python; fewer tasks, each ~40× slower'));
    rows.push(row('joblib: Parallel(n_jobs=2), first call', m, [first], seq, 'loky: includes starting 2 workers'));
    rows.push(row('joblib: Parallel(n_jobs=2), second call', m, [second], seq, 'loky reuses its workers'));
    lines.push(`joblib reference: speedup ${formatRatio(seq / second)} with warm workers, ${formatRatio(seq / first)} with worker start (no goal)`);
  }
  const table = markdownTable(['Case', 'Tasks', 'Median time', 'Speedup', 'Note'], rows);
  return { title: `1. Seed workload: process(n), ${formatCount(n)} tasks, nJobs 2`, table, lines };
}

// ---- 2. no-op throughput ------------------------------------------------------

function checkNoop(label: string, results: readonly unknown[], n: number): void {
  if (results.length !== n) throw new Error(`bench: ${label} returned ${results.length} results, expected ${n}`);
  for (let i = 0; i < n; i++) if (results[i] !== i) throw new Error(`bench: ${label} result ${i} is ${String(results[i])}, expected ${i}`);
}

async function noopSection(ctx: Context): Promise<Section> {
  const { noopTasks: n, rounds } = ctx.options;
  const cases: { label: string; note: string; samples: number[] }[] = [];
  for (const backend of backends) {
    process.stderr.write(`bench parallel: no-op tasks, memjob ${backend}\n`);
    const samples: number[] = [];
    const p = new Parallel({ nJobs: 2, backend, tempFolder: ctx.tempFolder });
    try {
      // Untimed: starts the workers and warms the JIT on both sides (every run starts auto-batching afresh).
      checkNoop(`memjob ${backend}, warm-up`, await p.run(Array.from({ length: n }, (_, i) => delayed(noop)(i))), n);
      for (let round = 0; round < rounds; round++) {
        await yieldToSignals();
        const start = performance.now();
        const results = await p.run(Array.from({ length: n }, (_, i) => delayed(noop)(i)));
        samples.push(performance.now() - start);
        checkNoop(`memjob ${backend}`, results, n);
      }
    } finally {
      await p.close();
    }
    cases.push({ label: `memjob ${backend}, nJobs 2`, note: "batchSize 'auto'; building the delayed calls included", samples });
  }
  if (ctx.piscina !== undefined) {
    process.stderr.write('bench parallel: no-op tasks, piscina\n');
    const pool = new ctx.piscina({ filename: piscinaWorker, maxThreads: 2 });
    const samples: number[] = [];
    const runAll = () => Promise.all(Array.from({ length: n }, (_, i) => pool.run(i) as Promise<unknown>));
    try {
      checkNoop('piscina, warm-up', await runAll(), n);
      for (let round = 0; round < rounds; round++) {
        await yieldToSignals();
        const start = performance.now();
        const results = await runAll();
        samples.push(performance.now() - start);
        checkNoop('piscina', results, n);
      }
    } finally {
      await pool.destroy();
    }
    cases.push({ label: 'piscina, maxThreads 2', note: `${formatCount(n)} × pool.run(i), other options default`, samples });
  }
  if (ctx.joblibSkipped === undefined) {
    process.stderr.write('bench parallel: no-op tasks, joblib\n');
    const j = await runJoblib<{ seconds: number[] }>(ctx.scratch, ctx.options.python, ['noop', String(n), String(rounds)]);
    cases.push({ label: 'joblib Parallel(n_jobs=2)', note: 'loky, batch_size auto, after one untimed call', samples: j.seconds.map((s) => s * 1e3) });
  }
  const rate = (c: { samples: number[] }) => n / (median(c.samples) / 1e3);
  const table = markdownTable(
    ['Case', 'Tasks', 'Median time', 'Tasks/s', 'Note'],
    cases.map((c) => [c.label, formatCount(n), formatMs(median(c.samples)), formatCount(rate(c)), `${listMs(c.samples)}; ${c.note}`]),
  );
  const memjob = cases.slice(0, 2);
  const against = (label: string, goal: number, what: string) => {
    const other = cases.find((c) => c.label.startsWith(label));
    if (other === undefined) return `Goal (memjob ≥ ${goal}× ${what}'s tasks/s): not measured, ${what} was skipped`;
    const ratios = memjob.map((c) => rate(c) / rate(other));
    const figures = memjob.map((c, i) => `${c.label.replace(', nJobs 2', '')} ${formatGoalRatio(ratios[i]!)}`).join(', ');
    return `Goal (memjob ≥ ${goal}× ${what}'s tasks/s): ${verdict(ratios.every((r) => r >= goal))} — ${figures}`;
  };
  const lines = [against('joblib', vsJoblibGoal, 'joblib'), against('piscina', vsPiscinaGoal, 'piscina')];
  return { title: `2. No-op tasks: ${formatCount(n)} tasks, nJobs 2 / 2 threads, medians of ${rounds}`, table, lines };
}

// ---- main -----------------------------------------------------------------------

async function joblibStatus(scratch: Scratch, python: string): Promise<{ text: string; skipped: string | undefined }> {
  try {
    const v = await runJoblib<{ python: string; joblib: string }>(scratch, python, ['--versions']);
    return { text: `joblib ${v.joblib}, Python ${v.python} (${python})`, skipped: undefined };
  } catch (error) {
    const reason = (error as Error).message.trim().split('\n').at(-1) ?? 'unknown';
    return { text: `skipped: ${python} cannot run joblib (${reason}); no joblib figures`, skipped: reason };
  }
}

async function loadPiscina(): Promise<{ text: string; piscina: Context['piscina'] }> {
  try {
    const module = await import('piscina');
    // piscina's "exports" hide its package.json; read it beside the resolved entry point.
    let version = 'unknown version';
    for (let dir = dirname(createRequire(import.meta.url).resolve('piscina')); dirname(dir) !== dir; dir = dirname(dir)) {
      const path = join(dir, 'package.json');
      const pkg = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string }) : {};
      if (pkg.name === 'piscina') {
        version = pkg.version ?? version;
        break;
      }
    }
    return { text: `piscina ${version}`, piscina: module.Piscina };
  } catch (error) {
    return { text: `skipped: piscina cannot be imported (${(error as Error).message.split('\n')[0]}); npm install -D piscina`, piscina: undefined };
  }
}

/** Runs the selected parts and returns their sections (for main(), or a later report writer). */
export async function runParallelBench(options: ParallelBenchOptions = parallelOptionsFromEnv()): Promise<{ sections: Section[]; tools: string[] }> {
  const scratch = new Scratch();
  const uninstall = scratch.install();
  try {
    const tempFolder = scratch.folder(mkdtempSync('/dev/shm/memjob-bench-'));
    const joblib = await joblibStatus(scratch, options.python);
    const piscina = await loadPiscina();
    const ctx: Context = { scratch, options, tempFolder, joblibSkipped: joblib.skipped, piscina: piscina.piscina };
    const sections: Section[] = [];
    const memorySection = async (): Promise<Section> => {
      const { bytes, chunks, memoryJobs: jobs } = options;
      const memory = await runMemoryBench(scratch, { bytes, chunks, jobs });
      return { title: `3. Memory: one ${formatBytes(bytes)} Float64Array, ${chunks} chunk-sum tasks`, table: memory.table, lines: memory.goals };
    };
    const run = { seed: seedSection, noop: noopSection, cold: coldSection, memory: memorySection, reuse: reuseSection } satisfies Record<Part, (ctx: Context) => Promise<Section>>;
    for (const part of options.parts) {
      const { value: section, otherCores } = await withOtherLoad(() => run[part](ctx));
      // In part 4 each python leaves its resource trackers to exit unwaited: ~0.2 cores that are joblib's own.
      const quiet = part === 'cold' && joblib.skipped === undefined ? '~0.2 (python\'s unwaited resource trackers)' : '~0.05';
      section.lines.push(
        `Other processes on the machine used ${otherCores.toFixed(2)} cores on average during this part ` +
          `(of ${availableParallelism()}; quiet is ${quiet}, and more than 0.2 above that disturbs the timings).`,
      );
      sections.push(section);
    }
    // Every Parallel here had this tempFolder; each run must have removed its own folder.
    const left = readdirSync(tempFolder);
    if (left.length > 0) throw new Error(`bench: memjob left ${left.join(', ')} in its tempFolder ${tempFolder}`);
    return { sections, tools: [`joblib: ${joblib.text}`, `piscina: ${piscina.text}`] };
  } finally {
    scratch.cleanup();
    uninstall();
  }
}

/** What main() returns to bench/run.ts's report: the sections as printed, and the options they ran with. */
export interface ParallelMainResult {
  sections: Section[];
  tools: string[];
  options: ParallelBenchOptions;
}

/** Prints the sections; returns them for bench/run.ts's report. */
export async function main(): Promise<ParallelMainResult> {
  const options = parallelOptionsFromEnv();
  console.log('## parallel\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  console.log(`Load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}  `);
  const { sections, tools } = await runParallelBench(options);
  for (const line of tools) console.log(`${line}  `);
  console.log(`Mode: ${options.quick ? 'quick (BENCH_QUICK=1)' : 'full'}; every result checked against its formula`);
  console.log(`Load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  for (const section of sections) {
    console.log(`\n### ${section.title}\n`);
    console.log(section.table);
    console.log('');
    for (const line of section.lines) console.log(line);
  }
  return { sections, tools, options };
}

// Also runnable on its own: node build-dev/bench/parallel.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
