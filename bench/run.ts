/**
 * Runs memjob's benchmarks in order (`npm run bench`), or only those named:
 * `npm run bench -- memmap`. Each prints its tables as it goes; at the end
 * bench/report.ts writes bench/results.md (date, machine, command, every
 * table and goal line as printed) and bench/chart-*.svg from that same run.
 * To add one, write bench/<name>.ts exporting `main()` (printing its tables
 * and returning its data), list it below, and draw its charts in report.ts.
 */
import { format } from 'node:util';
import { writeReport, type ModuleOutput } from './report.js';

interface BenchModule {
  main(): Promise<unknown>;
}

// Imported lazily, so a run of one benchmark loads only that one.
const benchmarks: Record<string, () => Promise<BenchModule>> = {
  memmap: () => import('./memmap.js'),
  dump: () => import('./dump.js'),
  joblib: () => import('./joblib.js'),
  memory: () => import('./memory.js'),
  parallel: () => import('./parallel.js'),
  multiprocessing: () => import('./multiprocessing.js'),
  distributed: () => import('./distributed.js'),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !Object.hasOwn(benchmarks, name));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}`);
  process.exit(2);
}

// The command as typed, with the variables that change what runs.
const variables = Object.keys(process.env)
  .filter((k) => k.startsWith('BENCH_'))
  .sort()
  .map((k) => `${k}=${process.env[k]}`);
const invocation =
  process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${wanted.length > 0 ? ` -- ${wanted.join(' ')}` : ''}`
    : [import.meta.url.endsWith('.ts') ? 'npx tsx bench/run.ts' : 'node build-dev/bench/run.js', ...wanted].join(' ');
const command = [...variables, invocation].join(' ');

// What each benchmark prints goes to the terminal as before, and is kept for the report.
let printed = '';
const log = console.log.bind(console);
console.log = (...args: unknown[]) => {
  printed += `${format(...args)}\n`;
  log(...args);
};

const startedAt = new Date();
const modules: ModuleOutput[] = [];
for (const [name, load] of Object.entries(benchmarks)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  printed = '';
  // One at a time: benchmarks running side by side would measure each other.
  const data = await (await load()).main();
  modules.push({ name, printed, data });
  console.log('');
}
console.log = log;

const { charts } = writeReport({ startedAt, finishedAt: new Date(), command, known: Object.keys(benchmarks), modules });
console.log(`bench: wrote bench/results.md${charts.length > 0 ? ` and ${charts.map((c) => `bench/${c}`).join(', ')}` : ''}`);
