// No temp file and no worker outlives a run, whatever way it ends: results,
// a task error, a crash, a timeout, an abort, a consumer that stops early,
// a parent that is SIGKILLed (its resource tracker removes its folder), a
// program that forgets close().
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, Parallel, closeSharedWorkers, delayed, hasShareableMemory, type ParallelOptions } from '../src/index.js';
import { childPids, entries, isAlive, rejection, t, waitFor, workerBackends } from './fixtures/parallel-helpers.js';
import { repoRoot, runTsChild, scratchDir } from './helpers.js';

let scratch: ReturnType<typeof scratchDir>;
beforeAll(() => {
  scratch = scratchDir('parallel-cleanup');
});
afterAll(() => scratch.remove());

let rootCounter = 0;
function freshRoot(): string {
  const root = scratch.file(`root-${rootCounter++}`);
  mkdirSync(root);
  return root;
}

const big = new Float64Array(300_000); // 2.4 MB: dumped into the run folder

// memjob adds no signal listeners (signals keep their default action; the resource tracker cleans up after a
// process killed by one), and its 'exit' listener only while a run folder lives.
const signalListeners = () => ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
const exitListeners = () => process.listenerCount('exit');

interface End {
  options?: () => ParallelOptions;
  /** Starts the run; resolves (or rejects) with how it ended. */
  run(p: Parallel, root: string): Promise<unknown>;
  /** What it must end with: 'ok', or an error code or name. */
  outcome: string;
}

const ends: Record<string, End> = {
  success: {
    run: (p) => p.run([delayed(t('sleepThen'))(200, big), delayed(t('sleepThen'))(200, 1)]),
    outcome: 'ok',
  },
  'a task error': {
    run: (p) => p.run([delayed(t('sleepThen'))(100, big), delayed(t('sleepThenThrow'))(300, 1)]),
    outcome: 'E_QUOTA',
  },
  'a crash': {
    run: (p) => p.run([delayed(t('sleepThen'))(100, big), delayed(t('sleepThenExit'))(300, 9)]),
    outcome: ErrorCodes.WORKER_CRASHED,
  },
  'a timeout': {
    options: () => ({ timeout: 2500 }),
    run: async (p) => {
      await p.run([delayed(Math.abs)(1), delayed(Math.abs)(2)]); // start the workers first: the timeout counts them
      return p.run([1, 2].map(() => delayed(t('sleepThen'))(30_000, big)));
    },
    outcome: ErrorCodes.TIMEOUT,
  },
  'an abort': (() => {
    let controller = new AbortController();
    return {
      options: () => ({ signal: (controller = new AbortController()).signal }),
      run: (p: Parallel, root: string) => {
        const running = p.run([1, 2].map(() => delayed(t('sleepThen'))(30_000, big)));
        // Abort once the tasks are surely past mapping their argument (milliseconds) and asleep.
        void waitFor(() => entries(root).length === 1).then(() => setTimeout(() => controller.abort(), 400));
        return running;
      },
      outcome: 'ABORT_ERR', // Node's code for an AbortError
    };
  })(),
  'a generator left early': {
    options: () => ({ returnAs: 'generator', batchSize: 1 }),
    run: async (p) => {
      // The abandoned tasks take no large array: a thread is never terminated while it maps one
      // (see the note on WorkerHandle.close about terminating threads inside the addon).
      const calls = [delayed(t('sleepThen'))(50, 1, big), ...[2, 3, 4].map((i) => delayed(t('sleepThen'))(30_000, i))];
      for await (const value of (p as unknown as Parallel<'generator'>).run(calls)) {
        if (value === 1) break;
      }
    },
    outcome: 'ok',
  },
};

describe.each(workerBackends)('%s: the run folder is gone however the run ends (a success: at close())', (backend) => {
  for (const [name, end] of Object.entries(ends)) {
    it(`after ${name}`, async () => {
      const root = freshRoot();
      const listeners = signalListeners();
      const exits = exitListeners();
      const others = childPids();
      await using p = new Parallel({ backend, nJobs: 2, tempFolder: root, ...end.options?.() } as ParallelOptions);
      let seen = false;
      let signalListenerAdded = false;
      const watch = setInterval(() => {
        seen ||= entries(root).length === 1;
        signalListenerAdded ||= signalListeners().join() !== listeners.join();
      }, 5);
      const outcome = await end.run(p, root).then(
        () => 'ok',
        (error: { code?: string; name?: string }) => error.code ?? error.name,
      );
      clearInterval(watch);
      expect(outcome).toBe(end.outcome);
      expect(seen).toBe(true); // the folder did exist during the run
      // A run that failed removes its files at once; one that succeeded keeps its dumps for the next run until close().
      if (name !== 'success') expect(readdirSync(root)).toEqual([]);
      await p.close();
      expect(readdirSync(root)).toEqual([]);
      expect(signalListenerAdded).toBe(false); // not even while the folder lived
      expect(signalListeners()).toEqual(listeners);
      expect(exitListeners()).toBe(exits); // the 'exit' listener left with the folder
      await closeSharedWorkers();
      await waitFor(() => childPids().length === others.length, 5000, 'the workers to exit');
    });
  }
});

describe('a parent that dies', () => {
  it('SIGKILLed mid-run: its resource tracker removes its folder, and its workers exit', async () => {
    const root = freshRoot();
    const script = fileURLToPath(new URL('./fixtures/parallel-sigkill-parent.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, root, 'processes'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.on('exit', () => reject(new Error(`the parent exited before printing its folder: ${out}`)));
    });
    const { pid, folder } = JSON.parse(line) as { pid: number; folder: string };
    await waitFor(() => childPids(pid).length === 2, 10_000, "the parent's two workers");
    const workers = childPids(pid);

    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    // The parent could remove nothing; its tracker saw the parent's end of their pipe close, and removes the folder.
    await waitFor(() => !existsSync(folder), 5000, "the tracker to remove the dead parent's folder");
    // The workers see the IPC channel close and exit (they were busy with 60 s tasks).
    await waitFor(() => workers.every((w) => !isAlive(w)), 5000, 'the orphaned workers to exit');

    // The root is usable at once by the next run, which leaves nothing either.
    await using p = new Parallel({ backend: 'threads', nJobs: 2, tempFolder: root });
    expect(await p.run([delayed(hasShareableMemory)(big)])).toEqual([true]);
    await p.close(); // and its own dump cache goes with close()
    expect(readdirSync(root)).toEqual([]);
  });

  it('a program that never calls close() still exits once its runs are done, and its workers with it', async () => {
    const started = performance.now();
    const result = await runTsChild('parallel-no-close.ts');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(performance.now() - started).toBeLessThan(20_000);
    const out = JSON.parse(result.stdout) as { threads: number[]; processes: number[]; workerPids: number[] };
    expect(out.threads).toEqual([1, 4, 9]);
    expect(out.processes).toEqual([1, 4, 9]);
    await waitFor(() => out.workerPids.every((pid) => !isAlive(pid)), 5000, 'the workers to exit');
  });
});

it('a run that fails before dumping anything creates no folder; an unusable tempFolder is a clear error', async () => {
  const root = freshRoot();
  await using p = new Parallel({ backend: 'threads', nJobs: 2, tempFolder: root });
  const error = await rejection(p.run([delayed(Math.abs)(1), 42 as never]));
  expect(error.code).toBe(ErrorCodes.INVALID_ARG);
  expect(readdirSync(root)).toEqual([]);

  await using missing = new Parallel({ backend: 'threads', nJobs: 2, tempFolder: scratch.file('does-not-exist') });
  const noFolder = await rejection(missing.run([delayed(hasShareableMemory)(big)]));
  expect(noFolder.code).toBe('ENOENT');
  expect(noFolder.message).toMatch(/does-not-exist/);
});
