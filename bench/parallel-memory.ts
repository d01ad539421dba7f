/**
 * Benchmark 3 of bench/parallel.ts: peak memory of the whole process tree
 * while 16 tasks sum the chunks of one large Float64Array, memjob (array
 * dumped once to /dev/shm, workers map it) against structured clone (each
 * plain worker_thread gets its own copy by postMessage).
 *
 * Each case runs in a child process (bench/parallel-memory-case.ts), whose
 * tree is sampled every 20 ms from /proc. One sample is
 *
 *   Σ over the tree (Pss_Anon + Pss_File)  +  bytes allocated in the tmpfs scratch folder
 *
 * PSS divides each page among the processes that map it, so memory shared
 * by a parent and its worker processes is not counted twice. Pss_Shmem (the
 * tmpfs pages a process maps) is left out and replaced by the scratch
 * folder's allocated size: a /dev/shm page then counts exactly once, whether
 * 0, 1 or 4 processes map it (PSS alone would miss the pages no one maps,
 * and RSS would count a page once per mapper).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkChunkSums, formatBytes, formatGoalRatio, formatMs, formatRatio, markdownTable, median, verdict, type Scratch } from './parallel-common.js';
import type { MemoryCase } from './parallel-memory-case.js';
import { sibling } from './paths.js';

export interface MemoryOptions {
  bytes: number;
  chunks: number;
  /** memjob's nJobs values to try; the clone cases always use 2 workers. */
  jobs: number[];
}

const caseScript = fileURLToPath(sibling('parallel-memory-case'));
const sampleMs = 20;
/** Baseline: the median of the samples over this long, once the case's workers are idle. */
const baselineMs = 300;
const goalFactor = 1.15;

interface Sample {
  /** Σ (Pss_Anon + Pss_File) + tmpfs folder bytes: the figure the goal uses. */
  total: number;
  /** Σ Pss_Shmem: the tmpfs pages the tree maps, for the sanity check against the folder. */
  pssShmem: number;
  /** Σ Rss: what naive per-process accounting would report. */
  rss: number;
  folder: number;
  processes: number;
}

/** The pid and all its descendants, from /proc/<pid>/task/<tid>/children. */
function tree(root: number): number[] {
  const pids = [root];
  for (let i = 0; i < pids.length; i++) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pids[i]}/task`);
    } catch {
      continue; // exited between two reads
    }
    for (const tid of tasks) {
      try {
        for (const child of readFileSync(`/proc/${pids[i]}/task/${tid}/children`, 'utf8').split(' ')) {
          if (child.trim() !== '') pids.push(Number(child));
        }
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return pids;
}

function rollup(pid: number): Record<string, number> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  const fields: Record<string, number> = {};
  for (const match of text.matchAll(/^(\w+):\s+(\d+) kB$/gm)) fields[match[1]!] = Number(match[2]) * 1024;
  return fields;
}

/** Bytes allocated (st_blocks, not st_size: a sparse file holds no pages) under `dir`. */
function allocatedBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0; // removed meanwhile
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += allocatedBytes(path);
    else {
      try {
        total += statSync(path).blocks * 512;
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}

function sample(root: number, folder: string): Sample {
  const s: Sample = { total: 0, pssShmem: 0, rss: 0, folder: allocatedBytes(folder), processes: 0 };
  for (const pid of tree(root)) {
    const f = rollup(pid);
    if (f === undefined) continue;
    s.processes++;
    s.total += (f.Pss_Anon ?? 0) + (f.Pss_File ?? 0);
    s.pssShmem += f.Pss_Shmem ?? 0;
    s.rss += f.Rss ?? 0;
  }
  s.total += s.folder;
  return s;
}

interface CaseResult {
  label: string;
  memoryCase: MemoryCase;
  baseline: number;
  peak: Sample;
  fillMs: number;
  runMs: number;
  samples: number;
}

/** Runs one case in its child and samples its tree until it is done. */
async function runCase(scratch: Scratch, label: string, memoryCase: MemoryCase): Promise<CaseResult> {
  const child = scratch.child(
    spawn(process.execPath, [...process.execArgv, caseScript, JSON.stringify(memoryCase)], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = (async function* () {
    let buffered = '';
    for await (const chunk of child.stdout!.setEncoding('utf8')) {
      buffered += chunk as string;
      let at: number;
      while ((at = buffered.indexOf('\n')) >= 0) {
        yield JSON.parse(buffered.slice(0, at)) as { phase: string; fillMs: number; runMs: number; sums: number[] };
        buffered = buffered.slice(at + 1);
      }
    }
  })();
  const next = async (phase: string) => {
    const line = await lines.next();
    if (line.done === true || line.value.phase !== phase) {
      throw new Error(`bench: memory case "${label}" ended before "${phase}" (exit code ${await exited})`);
    }
    return line.value;
  };

  await next('ready');
  const pid = child.pid!;
  const baselineSamples: number[] = [];
  const until = performance.now() + baselineMs;
  while (performance.now() < until) {
    baselineSamples.push(sample(pid, memoryCase.tempFolder).total);
    await new Promise((resolve) => setTimeout(resolve, sampleMs));
  }

  let peak = sample(pid, memoryCase.tempFolder);
  let count = 0;
  const take = () => {
    const s = sample(pid, memoryCase.tempFolder);
    count++;
    if (s.total > peak.total) peak = s;
  };
  const timer = setInterval(take, sampleMs);
  child.stdin!.write('go\n');
  let done;
  try {
    done = await next('done');
  } finally {
    clearInterval(timer);
  }
  take(); // the last moment with everything alive: the case waits for "exit"
  child.stdin!.write('exit\n');
  const code = await exited;
  if (code !== 0) throw new Error(`bench: memory case "${label}" exited with code ${code}`);
  checkChunkSums(label, done.sums, memoryCase.bytes / 8, memoryCase.chunks);
  // memjob removes its run folder when the run ends: anything left is its bug, not the benchmark's.
  const left = readdirSync(memoryCase.tempFolder);
  if (left.length > 0) throw new Error(`bench: memory case "${label}" left ${left.join(', ')} in ${memoryCase.tempFolder}`);
  return { label, memoryCase, baseline: median(baselineSamples), peak, fillMs: done.fillMs, runMs: done.runMs, samples: count };
}

export interface MemoryResult {
  table: string;
  goals: string[];
}

export async function runMemoryBench(scratch: Scratch, options: MemoryOptions): Promise<MemoryResult> {
  const { bytes, chunks } = options;
  const cases: [string, Omit<MemoryCase, 'tempFolder' | 'bytes' | 'chunks'>][] = [];
  for (const backend of ['threads', 'processes'] as const) {
    for (const workers of options.jobs) cases.push([`memjob ${backend}, nJobs ${workers}`, { kind: 'memjob', backend, workers }]);
  }
  cases.push(['structured clone, 2 plain worker_threads', { kind: 'clone', backend: 'threads', workers: 2 }]);

  const results: CaseResult[] = [];
  for (const [label, c] of cases) {
    process.stderr.write(`bench parallel: memory, ${label}\n`);
    // A fresh /dev/shm folder per case: memjob's run folder goes inside it, and it is what the sampler sizes.
    const tempFolder = scratch.folder(mkdtempSync('/dev/shm/memjob-bench-'));
    results.push(await runCase(scratch, label, { ...c, bytes, chunks, tempFolder }));
  }

  // What the goal allows: the array itself plus one shared copy in /dev/shm.
  const need = 2 * bytes;
  const rows = results.map((r) => {
    const above = r.peak.total - r.baseline;
    return [
      r.label,
      formatMs(r.runMs),
      formatBytes(r.baseline),
      formatBytes(r.peak.total),
      formatBytes(above),
      formatRatio(above / need),
      `${formatBytes(r.peak.folder)} in /dev/shm (mapped: ${formatBytes(r.peak.pssShmem)} Pss_Shmem); Σ RSS ${formatBytes(r.peak.rss)}; ` +
        `${r.peak.processes} processes; ${r.samples} samples; fill ${formatMs(r.fillMs)}`,
    ];
  });
  const table = markdownTable(
    ['Case', 'Run time', 'Baseline', 'Peak', 'Peak − baseline', '÷ (array + copy)', 'At the peak'],
    rows,
  );
  const memjob = results.filter((r) => r.memoryCase.kind === 'memjob');
  const ok = memjob.every((r) => r.peak.total - r.baseline <= goalFactor * need);
  const figures = memjob.map((r) => `${r.label.replace('memjob ', '')} ${formatGoalRatio((r.peak.total - r.baseline) / need)}`).join(', ');
  // Not the goal, but shown: with Node's own memory in, the ratio depends on the array size.
  const absolute = memjob.map((r) => formatRatio(r.peak.total / need)).join(', ');
  return {
    table,
    goals: [
      `Goal (memjob's peak − baseline within ${goalFactor}× of array + one shared copy = ${formatBytes(need)}, whatever nJobs): ${verdict(ok)} — ${figures}`,
      `For reference, memjob's absolute peak ÷ ${formatBytes(need)}, baseline included: ${absolute}`,
    ],
  };
}
