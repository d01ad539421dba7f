import { isMainThread, workerData } from 'node:worker_threads';

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
 * environment variable `MEMJOB_WORKER=1`, worker threads get
 * `workerData.memjobWorker === true`.
 */
export function inWorker(): boolean {
  if (process.env.MEMJOB_WORKER === '1') return true;
  if (isMainThread) return false;
  const data: unknown = workerData;
  return typeof data === 'object' && data !== null && (data as { memjobWorker?: unknown }).memjobWorker === true;
}
