import { AsyncLocalStorage } from 'node:async_hooks';
import { isMainThread, workerData } from 'node:worker_threads';
import { ErrorCodes, MemjobError } from '../errors.js';

/** A registered symbol: every copy of memjob loaded in the process (src and dist, say) sees the same mark. */
const WORKER_MARK = Symbol.for('memjob.workerProcess');

/**
 * In a child worker process, at start: keeps "this is a worker" for
 * inWorker() and takes MEMJOB_WORKER out of the environment, so that a
 * program a task spawns does not inherit it and believe it is a worker too.
 */
export function adoptWorkerMark(): void {
  const level = parseLevel(process.env.MEMJOB_WORKER);
  if (level === undefined) return;
  (globalThis as { [WORKER_MARK]?: unknown })[WORKER_MARK] = level;
  delete process.env.MEMJOB_WORKER;
}

/** MEMJOB_WORKER holds the worker's nesting level: 1 for a worker of the main program, 2 for a worker of a worker... */
function parseLevel(text: string | undefined): number | undefined {
  if (text === undefined || !/^[1-9]\d{0,3}$/.test(text)) return undefined;
  return Number(text);
}

/**
 * How deep in nested Parallels this worker is: 0 in the main program, 1 in
 * a worker it started, 2 in a worker that worker started. A worker thread
 * learns it from workerData, a child process from MEMJOB_WORKER.
 */
export function workerLevel(): number {
  const mark = (globalThis as { [WORKER_MARK]?: unknown })[WORKER_MARK];
  if (typeof mark === 'number') return mark;
  const fromEnv = parseLevel(process.env.MEMJOB_WORKER);
  if (fromEnv !== undefined) return fromEnv;
  if (isMainThread) return 0;
  const data: unknown = workerData;
  if (typeof data !== 'object' || data === null || (data as { memjobWorker?: unknown }).memjobWorker !== true) return 0;
  const level = (data as { level?: unknown }).level;
  return typeof level === 'number' && Number.isSafeInteger(level) && level > 0 ? level : 1;
}

/** True inside a memjob worker thread (as opposed to a worker process or the main program). */
export function inWorkerThread(): boolean {
  return !isMainThread && workerLevel() > 0 && (globalThis as { [WORKER_MARK]?: unknown })[WORKER_MARK] === undefined;
}

/**
 * True inside a memjob worker (a worker thread or a child process that
 * memjob started to run tasks), false everywhere else.
 *
 * Its purpose is guarding a module's main code. A worker that runs
 * `task(import.meta.url, 'process')` imports the module that exports
 * `process`; when that module is also the program's entry point, its
 * top-level code would run again in every worker. Put that code behind
 * `if (!inWorker()) { ... }`: the Node version of Python's
 * `if __name__ == '__main__':` (docs/functions.md).
 *
 * Workers are marked when memjob starts them: child processes get the
 * environment variable `MEMJOB_WORKER=<level>` (1 below the main program), which the worker turns into a
 * process-wide mark and removes at once (so programs its tasks start are not
 * taken for workers), worker threads get `workerData.memjobWorker === true`.
 */
export function inWorker(): boolean {
  return workerLevel() > 0;
}

/**
 * Main-module re-entry. A worker imports the module of a task() function (and
 * of the initializer); when that module is the program's entry file with no
 * inWorker() guard, its top-level code would start a Parallel/Pool/Process
 * inside the worker, whose workers import the module again: endless nesting
 * that looks like a hang. The worker runs each such import inside this
 * context (which follows the module's async code too, so an unawaited
 * `main()` is caught after its first await), and starting workers inside it
 * is refused, as Python refuses starting a process during bootstrapping.
 */
const importing = new AsyncLocalStorage<string>();
let reentryReporter: ((error: MemjobError) => void) | undefined;

/** In a worker: runs `load` (which imports the module behind `what`) inside the import context. */
export function whileImportingTaskModule<T>(what: string, load: () => T): T {
  return importing.run(what, load);
}

/** In a worker: how a refused re-entry reaches the parent at once, whatever the module does with the error. */
export function onMainReentry(report: (error: MemjobError) => void): void {
  reentryReporter = report;
}

/**
 * Called wherever memjob is about to start workers (`new Parallel`, `run`,
 * `new Pool`, `new Process`): throws MEMJOB_ERR_MAIN_REENTRY when that code
 * runs while a worker imports a task module.
 */
export function refuseMainReentry(what: string): void {
  const module = importing.getStore();
  if (module === undefined || !inWorker()) return;
  const error = new MemjobError(
    ErrorCodes.MAIN_REENTRY,
    `${what} was called inside a memjob worker while it imported ${module} to find a task function: ` +
      'that module starts workers when it is imported, so every worker would start workers of its own, without end. ' +
      'It is most likely the program\'s entry file used as a task module. Fix it in one of two ways: ' +
      "move the task functions to a module of their own (tasks.ts) with no main code, and use task(new URL('./tasks.js', import.meta.url), 'name'); " +
      "or guard the program's main code with `if (!inWorker()) { ... }` (import { inWorker } from 'memjob'), Node's `if __name__ == '__main__':`. " +
      'See docs/functions.md',
  );
  reentryReporter?.(error);
  throw error;
}
