/**
 * One worker, a thread or a child process, behind one small interface. Both
 * run src/parallel/worker.ts and speak protocol.ts; the pool and the
 * scheduler never need to know which kind they hold.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { ErrorCodes, MemjobError } from '../errors.js';
import type { ToParent, ToWorker } from './protocol.js';
import { findTsx, runningFromSource, workersNeedTs } from './ts-loader.js';

export type BackendKind = 'threads' | 'processes';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** An error the worker reported before dying (an uncaught exception, V8 out of memory). */
  error?: Error;
}

export interface WorkerHandle {
  readonly kind: BackendKind;
  readonly pid: number | undefined;
  readonly alive: boolean;
  post(message: ToWorker, transfer?: ArrayBuffer[]): void;
  onMessage(listener: (message: ToParent) => void): void;
  onExit(listener: (info: ExitInfo) => void): void;
  /** Stops the worker now (SIGKILL for a process); resolves once it has exited. */
  terminate(): Promise<void>;
}

export interface SpawnOptions {
  /** Worker threads only: V8 heap limits, as node:worker_threads takes them. */
  resourceLimits?: ResourceLimits;
}

const entry = new URL(`./worker.${runningFromSource ? 'ts' : 'js'}`, import.meta.url);

function tsxOrFail(): { loader: string; api: string } {
  const tsx = findTsx();
  if (tsx === null) {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      'Parallel: workers need TypeScript support (the program runs under tsx or memjob runs from its sources), but the tsx package cannot be found; install it (npm install -D tsx)',
    );
  }
  return tsx;
}

function spawnThread(options: SpawnOptions): WorkerHandle {
  // Node 20 starts a worker's entry before any --import hook applies, so a
  // small bootstrap registers tsx first when TypeScript is needed.
  const steps = workersNeedTs()
    ? `import(${JSON.stringify(tsxOrFail().api)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(entry.href)}))`
    : `import(${JSON.stringify(entry.href)})`;
  const worker = new Worker(`${steps}.catch((error) => { console.error(error); process.exit(70); });`, {
    eval: true,
    workerData: { memjobWorker: true },
    stdout: false,
    stderr: false,
    ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
  });
  let alive = true;
  let lastError: Error | undefined;
  worker.on('error', (error) => (lastError = error));
  const exitListeners: ((info: ExitInfo) => void)[] = [];
  worker.on('exit', (code) => {
    alive = false;
    const info: ExitInfo = { code, signal: null };
    if (lastError !== undefined) info.error = lastError;
    for (const listener of exitListeners) listener(info);
  });
  return {
    kind: 'threads',
    pid: undefined,
    get alive() {
      return alive;
    },
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage: (listener) => void worker.on('message', listener),
    onExit: (listener) => void exitListeners.push(listener),
    terminate: async () => {
      if (alive) await worker.terminate();
    },
  };
}

function spawnProcess(options: SpawnOptions): WorkerHandle {
  const execArgv = workersNeedTs() ? ['--import', tsxOrFail().loader] : [];
  const heap = options.resourceLimits?.maxOldGenerationSizeMb;
  if (heap !== undefined) execArgv.push(`--max-old-space-size=${heap}`);
  const child: ChildProcess = fork(entry, [], {
    execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, MEMJOB_WORKER: '1' },
  });
  let alive = true;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const exitListeners: ((info: ExitInfo) => void)[] = [];
  child.on('exit', (code, signal) => {
    alive = false;
    for (const listener of exitListeners) listener({ code, signal });
  });
  // A failed send means the child is gone; its 'exit' reports that.
  child.on('error', () => undefined);
  return {
    kind: 'processes',
    get pid() {
      return child.pid;
    },
    get alive() {
      return alive;
    },
    post: (message) => {
      if (alive && child.connected) child.send(message);
    },
    onMessage: (listener) => void child.on('message', listener as (message: unknown) => void),
    onExit: (listener) => void exitListeners.push(listener),
    terminate: async () => {
      if (!alive) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function spawnWorker(kind: BackendKind, options: SpawnOptions = {}): WorkerHandle {
  return kind === 'threads' ? spawnThread(options) : spawnProcess(options);
}
