/**
 * Part 4 of bench/parallel.ts: the time from a fresh pool to its first
 * result. memjob (threads, processes) beside piscina, joblib's loky (a new
 * python each time) and two floors: a bare worker thread and a bare child
 * process echoing one message.
 */
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { Parallel, delayed } from 'memjob';
import {
  backends, formatMs, listMs, markdownTable, median, noop, piscinaWorker, quantile, runJoblib, verdict, yieldToSignals,
  type Backend, type Context, type Scratch, type Section,
} from './parallel-common.js';

/** A bare worker thread that echoes one message: the floor under any thread pool's start. */
async function plainThreadStart(): Promise<number> {
  const start = performance.now();
  const worker = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m));", { eval: true });
  worker.postMessage(41);
  const value = await new Promise((resolve) => worker.once('message', resolve));
  const ms = performance.now() - start;
  await worker.terminate();
  if (value !== 41) throw new Error(`bench: plain worker thread answered ${String(value)}, expected 41`);
  return ms;
}

/** A bare child process that echoes one IPC message: the floor under any process pool's start. */
async function plainProcessStart(scratch: Scratch): Promise<number> {
  const start = performance.now();
  const child = scratch.child(spawn(process.execPath, ['-e', "process.on('message', (m) => process.send(m))"], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send(41);
  const value = await new Promise((resolve) => child.once('message', resolve));
  const ms = performance.now() - start;
  child.kill('SIGKILL');
  await exited;
  if (value !== 41) throw new Error(`bench: plain child process answered ${String(value)}, expected 41`);
  return ms;
}

/** Issue 10's goals for a fresh Parallel's first result (bare floors here: about 40 ms and 95 ms). */
const coldGoalMs: Record<Backend, number> = { threads: 100, processes: 150 };

export async function coldSection(ctx: Context): Promise<Section> {
  const repeats = ctx.options.coldStarts;
  const cases = new Map<string, { note: string; samples: number[]; start: () => Promise<number> }>();
  // One task starts one worker (memjob starts no more workers than an array has tasks); two tasks start both.
  const memjobStart = (backend: Backend, values: number[]) => async () => {
    const start = performance.now();
    // reuse: false: a cold start starts its workers (shared warm workers are part 5's subject).
    const p = new Parallel({ nJobs: 2, backend, tempFolder: ctx.tempFolder, reuse: false });
    try {
      const results = await p.run(values.map((v) => delayed(noop)(v)));
      const ms = performance.now() - start;
      if (String(results) !== String(values)) throw new Error(`bench: memjob ${backend} cold start returned ${String(results)}, expected ${String(values)}`);
      return ms;
    } finally {
      await p.close();
    }
  };
  for (const backend of backends) {
    cases.set(`memjob ${backend}, nJobs 2`, {
      note: 'new Parallel → run([delayed(noop)(41)]) resolved: 1 task, so 1 worker starts; close() not timed',
      samples: [],
      start: memjobStart(backend, [41]),
    });
  }
  for (const backend of backends) {
    cases.set(`memjob ${backend}, nJobs 2, 2 tasks`, {
      note: 'the same with 2 tasks, both results: 2 workers start (no goal)',
      samples: [],
      start: memjobStart(backend, [41, 42]),
    });
  }
  const Piscina = ctx.piscina;
  if (Piscina !== undefined) {
    cases.set('piscina, maxThreads 2', {
      note: 'new Piscina → await pool.run(41); destroy() not timed',
      samples: [],
      start: async () => {
        const start = performance.now();
        const pool = new Piscina({ filename: piscinaWorker, maxThreads: 2 });
        try {
          const value = await pool.run(41);
          const ms = performance.now() - start;
          if (value !== 41) throw new Error(`bench: piscina cold start returned ${String(value)}, expected 41`);
          return ms;
        } finally {
          await pool.destroy();
        }
      },
    });
  }
  if (ctx.joblibSkipped === undefined) {
    cases.set('joblib Parallel(n_jobs=2)', {
      note: 'loky, a fresh python each time, timed inside after the imports',
      samples: [],
      start: async () => (await runJoblib<{ seconds: number }>(ctx.scratch, ctx.options.python, ['cold'])).seconds * 1e3,
    });
  }
  cases.set('plain worker_threads (floor)', { note: 'new Worker(eval) → one message echoed', samples: [], start: plainThreadStart });
  cases.set('plain child process (floor)', { note: 'spawn node -e with IPC → one message echoed', samples: [], start: () => plainProcessStart(ctx.scratch) });

  for (let k = 0; k < repeats; k++) {
    process.stderr.write(`bench parallel: cold start ${k + 1}/${repeats}\n`);
    // Interleaved, so a slow moment of the machine does not land on one case only.
    for (const c of cases.values()) {
      await yieldToSignals();
      c.samples.push(await c.start());
    }
  }
  const table = markdownTable(
    ['Case', 'Median', 'p90', 'First', 'Note'],
    [...cases].map(([label, c]) => [label, formatMs(median(c.samples)), formatMs(quantile(c.samples, 0.9)), formatMs(c.samples[0]!), `${listMs(c.samples)}; ${c.note}`]),
  );
  const loky = cases.get('joblib Parallel(n_jobs=2)');
  const memjob = backends.map((b) => [b, median(cases.get(`memjob ${b}, nJobs 2`)!.samples)] as const);
  const figures = memjob.map(([b, ms]) => `${b} ${formatMs(ms)}`).join(', ');
  const goalFigures = memjob.map(([b, ms]) => `${b} ${formatMs(ms)} (goal < ${coldGoalMs[b]} ms)`).join(', ');
  const lines = [
    `Goal (cold start to the first result under ${coldGoalMs.threads} ms with threads, ${coldGoalMs.processes} ms with processes): ` +
      `${verdict(memjob.every(([b, ms]) => ms < coldGoalMs[b]))} — ${goalFigures}`,
    loky === undefined
      ? `Goal (cold start faster than joblib's loky): not measured, joblib was skipped — ${figures}`
      : `Goal (cold start faster than joblib's loky, ${formatMs(median(loky.samples))} here): ${verdict(memjob.every(([, ms]) => ms < median(loky.samples)))} — ${figures}`,
  ];
  return { title: `4. Cold start to the first result, nJobs 2, ${repeats} starts each`, table, lines };
}
