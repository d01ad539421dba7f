/**
 * Writes bench/results.md and the bench/chart-*.svg files from one run of
 * bench/run.ts: the text each benchmark printed (tables and goal lines, as
 * printed) and charts drawn from the data its main() returned. A chart whose
 * data is missing (module not run, competitor skipped) is left out or says
 * so; nothing is filled in.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DumpBenchResult } from './dump.js';
import type { JoblibBenchResult } from './joblib.js';
import { environmentLines, type BenchRow } from './memmap.js';
import type { MultiprocessingResult } from './multiprocessing.js';
import type { ParallelMainResult } from './parallel.js';
import { benchSources } from './paths.js';
import { barChartSvg, type BarChart } from './svg.js';

const benchDir = benchSources;
const GiB = 1024 ** 3;

/** What one benchmark module produced in this run. */
export interface ModuleOutput {
  name: string;
  /** Everything its main() printed to stdout. */
  printed: string;
  /** What its main() returned. */
  data: unknown;
}

export interface ReportInput {
  startedAt: Date;
  finishedAt: Date;
  command: string;
  /** Every benchmark run.ts knows, to say which were left out. */
  known: string[];
  modules: ModuleOutput[];
}

/** Environment variables that change sizes or counts: any set means a non-default run. */
function sizeVariables(): string[] {
  return Object.keys(process.env)
    .filter((k) => k.startsWith('BENCH_') && k !== 'BENCH_PYTHON')
    .sort()
    .map((k) => `${k}=${process.env[k]}`);
}

/** Header and rows of a markdown table printed by markdownTable(). */
function parseTable(table: string): { header: string[]; rows: string[][] } {
  const lines = table.split('\n').filter((l) => l.trim().startsWith('|'));
  const cells = (line: string) => line.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
  const [head, , ...body] = lines;
  return { header: head === undefined ? [] : cells(head), rows: body.map(cells) };
}

/** "1.23 GiB", "-4.00 MiB", "512 B" → bytes. */
function parseBytes(text: string): number {
  const match = /^(-?[\d.]+)\s*(GiB|MiB|KiB|B)$/.exec(text.replace('−', '-').trim());
  if (!match) return Number.NaN;
  return Number(match[1]) * { GiB, MiB: 1024 ** 2, KiB: 1024, B: 1 }[match[2] as 'GiB' | 'MiB' | 'KiB' | 'B'];
}

const parseCount = (text: string) => Number(text.replace(/,/g, ''));

function column(table: { header: string[]; rows: string[][] }, name: string): number {
  return table.header.indexOf(name);
}

function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', GiB], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size) return `${+(bytes / size).toFixed(2)} ${unit}`;
  }
  return `${bytes} B`;
}

/** The charts of one module, each as [file name, chart]. */
function chartsFor(output: ModuleOutput): [string, BarChart][] {
  const charts: [string, BarChart][] = [];
  if (output.name === 'memmap') {
    const rows = output.data as BenchRow[];
    const opens = rows.filter((r) => r.unit === 'ms' && r.measurement.startsWith('memmap() open'));
    if (opens.length > 0) {
      charts.push([
        'chart-memmap-open.svg',
        {
          title: 'memmap(): open → first element, median latency by file size',
          unit: 'µs',
          notes: [`Sparse files; ${opens[0]!.note.replace(/^sparse file in [^;]+; /, '')}. Goal: under 1,000 µs and not growing with size.`],
          bars: opens.map((r) => ({ label: `${formatSize(r.bytes)}, ${r.note.match(/in (\S+);/)?.[1] ?? ''}`, value: r.value * 1000, memjob: true })),
        },
      ]);
    }
    const sums = rows.filter((r) => r.unit === 'GB/s');
    if (sums.length > 0) {
      charts.push([
        'chart-memmap-sum.svg',
        {
          title: `Summing a ${formatSize(sums[0]!.bytes)} Float64Array file: mapped vs fs.readFileSync`,
          unit: 'GB/s',
          notes: ['File in /dev/shm; GB = 10^9 bytes. Higher is better.'],
          bars: sums.map((r) => ({ label: r.measurement, value: r.value, memjob: r.measurement.startsWith('mapped') })),
        },
      ]);
    }
  } else if (output.name === 'dump') {
    const result = output.data as DumpBenchResult;
    const rows = result.rows.filter((r) => r.unit === 'GB/s');
    if (rows.length > 0) {
      const notes = ['Medians; files in /dev/shm; GB = 10^9 bytes. Higher is better.'];
      if (result.joblib.startsWith('skipped')) notes.push(`joblib ${result.joblib}`);
      charts.push([
        'chart-dump-throughput.svg',
        {
          title: `dump/load throughput, one ${formatSize(rows[0]!.bytes)} Float64Array: memjob vs fs vs joblib`,
          unit: 'GB/s',
          notes,
          bars: rows.map((r) => ({ label: r.measurement, value: r.value, memjob: r.measurement.startsWith('memjob') })),
        },
      ]);
    }
  } else if (output.name === 'joblib') {
    const result = output.data as JoblibBenchResult;
    const rows = result.rows.filter((r) => r.unit === 'GB/s' && r.bytes === result.rows[0]!.bytes);
    if (rows.length > 0) {
      charts.push([
        'chart-joblib-throughput.svg',
        {
          title: `joblib files, a dict with one ${formatSize(rows[0]!.bytes)} float64 array: memjob vs joblib 1.2`,
          unit: 'GB/s',
          notes: ['Medians; files in /dev/shm; GB = 10^9 bytes of array data. Higher is better. Both sides load the file joblib.dump wrote.'],
          bars: rows.map((r) => ({ label: r.measurement, value: r.value, memjob: r.measurement.startsWith('memjob') })),
        },
      ]);
    }
  } else if (output.name === 'parallel') {
    const { sections, tools, options } = output.data as ParallelMainResult;
    const skipped = tools.filter((t) => t.includes('skipped'));
    const memory = sections.find((s) => s.title.startsWith('3. Memory'));
    if (memory !== undefined) {
      const table = parseTable(memory.table);
      const [label, above] = [column(table, 'Case'), column(table, 'Peak − baseline')];
      const bars = table.rows.map((r) => ({ label: r[label]!, value: parseBytes(r[above]!) / GiB, memjob: r[label]!.startsWith('memjob') }));
      if (bars.length > 0 && bars.every((b) => Number.isFinite(b.value))) {
        charts.push([
          'chart-parallel-memory.svg',
          {
            title: `Parallel: peak memory above baseline, one ${formatSize(options.bytes)} Float64Array to ${options.chunks} tasks (array + one copy = ${formatSize(2 * options.bytes)})`,
            unit: 'GiB',
            notes: ['Σ PSS of the process tree + /dev/shm bytes, sampled every 20 ms. Lower is better; goal: memjob within 1.15× of array + one copy.'],
            format: (v) => v.toFixed(3),
            bars,
          },
        ]);
      }
    }
    const noop = sections.find((s) => s.title.startsWith('2. No-op'));
    if (noop !== undefined) {
      const table = parseTable(noop.table);
      const [label, rate] = [column(table, 'Case'), column(table, 'Tasks/s')];
      const bars = table.rows.map((r) => ({ label: r[label]!, value: parseCount(r[rate]!), memjob: r[label]!.startsWith('memjob') }));
      if (bars.length > 0 && bars.every((b) => Number.isFinite(b.value))) {
        charts.push([
          'chart-parallel-noop.svg',
          {
            title: `Parallel: no-op tasks per second, ${options.noopTasks.toLocaleString('en-US')} tasks, 2 workers`,
            unit: 'tasks/s',
            notes: [`Medians of ${options.rounds}. Higher is better.`, ...skipped],
            bars,
          },
        ]);
      }
    }
  } else if (output.name === 'multiprocessing') {
    const r = output.data as MultiprocessingResult;
    const py = typeof r.python === 'string' ? undefined : r.python;
    const notes = [`Medians of ${r.repeats}, pools started beforehand. Higher is better.`];
    if (typeof r.python === 'string') notes.push(`Python multiprocessing ${r.python}`);
    charts.push([
      'chart-multiprocessing-pool-map.svg',
      {
        title: `Pool.map over ${r.items.toLocaleString('en-US')} tiny items, 2 workers: memjob vs Python multiprocessing`,
        unit: 'items/s',
        notes,
        bars: [
          { label: 'memjob Pool, threads', value: r.threads, memjob: true },
          { label: 'memjob Pool, processes', value: r.processes, memjob: true },
          ...(py ? [{ label: 'multiprocessing.Pool (2 processes)', value: py.map_per_s }] : []),
        ],
      },
    ]);
    charts.push([
      'chart-multiprocessing-queue.svg',
      {
        title: `Queue between two processes, ${r.queueItems.toLocaleString('en-US')} items: memjob vs Python multiprocessing`,
        unit: 'items/s',
        notes: ['One producer Process, one consumer Process. Higher is better.', ...notes.slice(1)],
        bars: [
          { label: 'memjob Queue', value: r.queue, memjob: true },
          ...(py ? [{ label: 'multiprocessing.Queue', value: py.queue_per_s }] : []),
        ],
      },
    ]);
  }
  return charts;
}

/** Writes bench/results.md and this run's charts; removes charts of earlier runs that this one did not draw. */
export function writeReport(input: ReportInput): { markdown: string; charts: string[] } {
  const ran = input.modules.map((m) => m.name);
  const left = input.known.filter((n) => !ran.includes(n));
  const sizes = sizeVariables();
  const seconds = (input.finishedAt.getTime() - input.startedAt.getTime()) / 1000;
  const head = ['# memjob benchmark results', ''];
  if (left.length > 0) {
    head.push(`**Partial run:** only ${ran.join(', ')} ran; ${left.join(', ')} did not, so this file has no figures for them.`, '');
  }
  if (sizes.length > 0) {
    head.push(
      `**Reduced or non-default sizes:** this run set ${sizes.map((s) => `\`${s}\``).join(', ')}, so its figures are not the ` +
        'default-size ones. For those, run `npm run bench` with none of these set.',
      '',
    );
  }
  head.push(
    'Every figure below comes from the one run described here; a competitor that was not installed is reported as skipped. ' +
      'The tables and goal lines are exactly what each benchmark printed; the charts are drawn from the same data.',
    '',
    `Date: ${input.startedAt.toISOString()} (took ${seconds.toFixed(0)} s)  `,
    ...environmentLines().filter((l) => !l.startsWith('Date:')).map((l) => `${l}  `),
    `Command: \`${input.command}\``,
    '',
  );

  const charts: string[] = [];
  const body: string[] = [];
  for (const output of input.modules) {
    body.push(output.printed.trimEnd(), '');
    for (const [file, chart] of chartsFor(output)) {
      if (chart.bars.length === 0) continue;
      writeFileSync(join(benchDir, file), barChartSvg(chart));
      charts.push(file);
      body.push(`![${chart.title.replace(/[[\]]/g, '')}](${file})`, '');
    }
  }
  for (const file of readdirSync(benchDir)) {
    if (/^chart-.*\.svg$/.test(file) && !charts.includes(file)) rmSync(join(benchDir, file));
  }
  const markdown = [...head, ...body].join('\n').trimEnd() + '\n';
  writeFileSync(join(benchDir, 'results.md'), markdown);
  return { markdown, charts };
}
