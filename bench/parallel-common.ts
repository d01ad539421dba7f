/**
 * Helpers shared by bench/parallel.ts and its parts: the no-op task, the
 * chunk-sum formulas, statistics, table cells, the python runner and the
 * list of things to stop or remove however the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ParallelBenchOptions } from './parallel.js';
import { benchSources, sibling } from './paths.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The memory benchmark's array holds i % 2^20, so any chunk's sum is an exact integer (as in memmap.ts). */
export const period = 2 ** 20;

/** Σ (i % period) for i < n, by formula. */
export function prefixSum(n: number): number {
  const whole = Math.floor(n / period);
  const rest = n % period;
  return (whole * period * (period - 1)) / 2 + (rest * (rest - 1)) / 2;
}

/** [start, end) of chunk k of `chunks` over n elements. */
export function chunkBounds(n: number, chunks: number, k: number): [number, number] {
  return [Math.floor((k * n) / chunks), Math.floor(((k + 1) * n) / chunks)];
}

export function checkChunkSums(label: string, sums: readonly unknown[], n: number, chunks: number): void {
  if (sums.length !== chunks) throw new Error(`bench: ${label} returned ${sums.length} chunk sums, expected ${chunks}`);
  for (let k = 0; k < chunks; k++) {
    const [start, end] = chunkBounds(n, chunks, k);
    const expected = prefixSum(end) - prefixSum(start);
    if (sums[k] !== expected) throw new Error(`bench: ${label} chunk ${k} summed to ${String(sums[k])}, expected ${expected}`);
  }
}

export { median, quantile } from './steps.js';

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (Math.abs(bytes) >= size) return `${(bytes / size).toFixed(2)} ${unit}`;
  }
  return `${bytes} B`;
}

export const formatCount = (n: number) => Math.round(n).toLocaleString('en-US');
export const formatRatio = (x: number) => `${x.toFixed(2)}×`;
/** For goal lines: three decimals, so 1.897 never reads as a 1.90 that missed 1.9. */
export const formatGoalRatio = (x: number) => `${x.toFixed(3)}×`;
/** Every sample, for the note column: "412 / 398 / 405 ms". */
export const listMs = (samples: readonly number[]) => `${samples.map((ms) => ms.toFixed(0)).join(' / ')} ms`;

/**
 * An aligned markdown table of free-form cells. memmap.ts's formatTable
 * prints only ms, GB/s and × values beside a byte size; these tables need
 * tasks/s and memory columns, so the same layout is done here on strings.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // Padded by code points, so ×, µ and − do not skew the columns.
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((cells) => width(cells[i] ?? ''))));
  const line = (cells: readonly string[]) => `| ${widths.map((w, i) => (cells[i] ?? '') + ' '.repeat(w - width(cells[i] ?? ''))).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** CPU time so far, in clock ticks (USER_HZ): the whole machine's busy time, and this process's own. */
interface CpuSnapshot {
  machine: number;
  own: number;
  at: number;
}

function cpuSnapshot(): CpuSnapshot {
  // /proc/stat "cpu": user nice system idle iowait irq softirq steal …; steal is time the VM's host gave to others.
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  // /proc/self/stat: utime stime cutime cstime (fields 14-17); children count once they exited and were waited for.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const own = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 15).map(Number).reduce((a, b) => a + b, 0);
  return { machine: user + nice + system + irq + softirq + (steal ?? 0), own, at: performance.now() };
}

/**
 * Measures how busy the rest of the machine was while `work` ran: other
 * processes' CPU (and the host's steal) in cores, averaged over the run.
 * This VM is shared; a figure above ~0.2 means the timings are disturbed.
 * Children count as this process once they exited and were waited for;
 * what they leave running unwaited counts as other load (python leaves its
 * resource-tracker processes so: about 0.2 cores during the cold starts).
 */
export async function withOtherLoad<T>(work: () => Promise<T>): Promise<{ value: T; otherCores: number }> {
  const before = cpuSnapshot();
  const value = await work();
  const after = cpuSnapshot();
  const ticksPerMs = 100 / 1000; // USER_HZ is 100 on Linux
  const others = after.machine - before.machine - (after.own - before.own);
  return { value, otherCores: Math.max(0, others) / ((after.at - before.at) * ticksPerMs) };
}

/** "met" or "MISSED", for the goal lines. */
export const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

// Signals reach JavaScript only between event-loop turns.
export const yieldToSignals = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Everything a run must undo however it ends: child processes to kill and
 * folders to remove. install() adds SIGINT/SIGTERM handlers that undo it
 * all and exit; the returned function removes them again (call it in finally).
 */
export class Scratch {
  readonly #folders: string[] = [];
  readonly #children = new Set<ChildProcess>();

  folder(path: string): string {
    this.#folders.push(path);
    return path;
  }

  child(proc: ChildProcess): ChildProcess {
    this.#children.add(proc);
    proc.once('exit', () => this.#children.delete(proc));
    return proc;
  }

  cleanup(): void {
    // SIGKILL: a memory case's memjob worker processes follow their parent
    // (they exit when the IPC channel closes), and python's loky workers
    // exit when their parent's pipes close.
    for (const proc of this.#children) proc.kill('SIGKILL');
    this.#children.clear();
    for (const folder of this.#folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  }

  install(): () => void {
    const onSignal = (signal: NodeJS.Signals) => {
      this.cleanup();
      process.stderr.write(`\nbench: ${signal}, child processes stopped and scratch files removed\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    return () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }
}

const joblibScript = join(benchSources, 'parallel_joblib.py');

/** Runs bench/parallel_joblib.py with `args`; resolves to its JSON output, rejects with its stderr. */
export function runJoblib<T>(scratch: Scratch, python: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const proc = scratch.child(spawn(python, [joblibScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${python} ${joblibScript} ${args.join(' ')} exited with ${signal ?? code}: ${err.trim() || '(no output)'}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new Error(`${python} ${joblibScript} printed no JSON: ${out.trim() || '(nothing)'}`));
      }
    });
  });
}

/** The no-op task: self-contained, sent by source. */
export const noop = (i: number) => i;

export type Backend = 'threads' | 'processes';
export const backends: readonly Backend[] = ['threads', 'processes'];

/** piscina's worker module (the same no-op). */
export const piscinaWorker = sibling('parallel-piscina-worker').href;

/** What every part of bench/parallel.ts gets. */
export interface Context {
  scratch: Scratch;
  options: ParallelBenchOptions;
  /** memjob's tempFolder for every Parallel here: whatever a run leaves in it goes with the scratch folder. */
  tempFolder: string;
  /** Why joblib is skipped, or undefined when it runs. */
  joblibSkipped: string | undefined;
  piscina: typeof import('piscina').Piscina | undefined;
}

/** One part's output: a table and its goal lines. */
export interface Section {
  title: string;
  table: string;
  lines: string[];
}
