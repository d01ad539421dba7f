/**
 * One worker, a thread or a child process, behind one small interface. Both
 * run src/worker-entry.ts and speak protocol.ts; the pool and the
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
  /** Whether the worker keeps this process alive (like a timer's ref/unref). */
  ref(on: boolean): void;
  /** Stops the worker now (SIGKILL for a process); resolves once it has exited. */
  terminate(): Promise<void>;
  /**
   * Asks an idle worker to exit by itself, and terminates it if it has not
   * within `graceMs`. A thread stopped by terminate() while inside a native
   * call can abort the whole process (node-addon-api cannot throw into a
   * dying isolate), so threads are never terminated when they need not be.
   */
  close(graceMs?: number): Promise<void>;
}

/** close() for either kind: the 'exit' message, then terminate() after a grace period. */
async function closeGracefully(handle: WorkerHandle, exited: Promise<void>, graceMs: number): Promise<void> {
  if (!handle.alive) return;
  handle.ref(true); // the wait keeps the process alive
  handle.post({ type: 'exit' });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') await handle.terminate();
}

export interface SpawnOptions {
  /** The worker's nesting level (1 for a worker of the main program), for nested Parallels (nesting.ts). */
  level?: number;
  /** Worker threads only: V8 heap limits, as node:worker_threads takes them. */
  resourceLimits?: ResourceLimits;
}

/** How long close() waits for a worker to exit by itself before terminating it. */
const CLOSE_GRACE_MS = 2000;

const entry = new URL(`../worker-entry.${runningFromSource ? 'ts' : 'js'}`, import.meta.url);

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
  // small bootstrap registers tsx first when TypeScript is needed. A failure
  // is left unhandled on purpose: it becomes the Worker's 'error' event, and
  // so the message of the crash the run reports.
  const steps = workersNeedTs()
    ? `import(${JSON.stringify(tsxOrFail().api)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(entry.href)}))`
    : `import(${JSON.stringify(entry.href)})`;
  const worker = new Worker(`${steps};`, {
    eval: true,
    workerData: { memjobWorker: true, level: options.level ?? 1 },
    stdout: false,
    stderr: false,
    ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
  });
  let alive = true;
  let lastError: Error | undefined;
  worker.on('error', (error) => (lastError = error));
  const exitListeners: ((info: ExitInfo) => void)[] = [];
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('exit', (code) => {
    alive = false;
    const info: ExitInfo = { code, signal: null };
    if (lastError !== undefined) info.error = lastError;
    for (const listener of exitListeners) listener(info);
  });
  const handle: WorkerHandle = {
    kind: 'threads',
    pid: undefined,
    get alive() {
      return alive;
    },
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage: (listener) => void worker.on('message', listener),
    onExit: (listener) => void exitListeners.push(listener),
    ref: (on) => (on ? worker.ref() : worker.unref()),
    terminate: async () => {
      if (!alive) return;
      worker.ref(); // an unreferenced worker would let the process exit before the wait is over
      await worker.terminate();
    },
    close: (graceMs = CLOSE_GRACE_MS) => closeGracefully(handle, exited, graceMs),
  };
  return handle;
}

function spawnProcess(options: SpawnOptions): WorkerHandle {
  const execArgv = workersNeedTs() ? ['--import', tsxOrFail().loader] : [];
  const heap = options.resourceLimits?.maxOldGenerationSizeMb;
  if (heap !== undefined) execArgv.push(`--max-old-space-size=${heap}`);
  const child: ChildProcess = fork(entry, [], {
    execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, MEMJOB_WORKER: String(options.level ?? 1) },
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
  const handle: WorkerHandle = {
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
    ref: (on) => {
      // The IPC channel is a handle of its own: both must let go for the process to exit.
      if (on) {
        child.ref();
        child.channel?.ref();
      } else {
        child.unref();
        child.channel?.unref();
      }
    },
    terminate: async () => {
      if (!alive) return;
      child.ref(); // an unreferenced child would let the process exit before its exit is seen
      child.kill('SIGKILL');
      await exited;
    },
    close: (graceMs = CLOSE_GRACE_MS) => closeGracefully(handle, exited, graceMs),
  };
  return handle;
}

export function spawnWorker(kind: BackendKind, options: SpawnOptions = {}): WorkerHandle {
  return kind === 'threads' ? spawnThread(options) : spawnProcess(options);
}
