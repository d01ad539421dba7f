/**
 * Nested Parallels, with joblib's policy: a task running in a worker process
 * may start a Parallel on threads; deeper down (in a worker thread, or a
 * worker of a worker) a nested Parallel runs sequentially; and recursion
 * without end fails with MEMJOB_ERR_NESTING instead of growing until the
 * machine runs out of memory (joblib relies on Python's RecursionError; an
 * async recursion in Node has no such limit).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ErrorCodes, MemjobError } from '../errors.js';
import { inWorkerThread, workerLevel } from '../transport/worker-context.js';
import type { BackendName } from './backends/backend.js';

/** Parallel runs nested inside one another, at most (counting across workers). */
export const MAX_NESTING_DEPTH = 64;

/** How many Parallel runs enclose the code running now, in this thread (tasks of a sequential run) and above it (workers). */
const depth = new AsyncLocalStorage<number>();

export function nestingDepth(): number {
  return depth.getStore() ?? workerLevel();
}

/** Runs a sequential task one level deeper. */
export function runNested<T>(fn: () => T): T {
  return depth.run(nestingDepth() + 1, fn);
}

let warnedDowngrade = false;

/**
 * The backend a Parallel created here gets for `requested`, as joblib
 * chooses: unchanged in the main program; threads in a worker process of
 * the main program; sequential anywhere deeper. A downgrade from what the
 * caller asked warns once (MEMJOB_NESTED_BACKEND), as joblib warns.
 */
export function nestedBackend(requested: BackendName, where: string): BackendName {
  const level = nestingDepth();
  if (level >= MAX_NESTING_DEPTH) {
    throw new MemjobError(
      ErrorCodes.NESTING,
      `${where}: Parallel runs are nested ${level} deep here, the limit is ${MAX_NESTING_DEPTH}: ` +
        'most likely a task starts a Parallel that runs the same task again, without end (joblib raises RecursionError for this)',
    );
  }
  if (requested === 'sequential' || workerLevel() === 0) return requested;
  const allowed: BackendName = workerLevel() === 1 && !inWorkerThread() ? 'threads' : 'sequential';
  if (requested === allowed) return allowed;
  if (!warnedDowngrade) {
    warnedDowngrade = true;
    process.emitWarning(`${where}: backend '${requested}' inside a memjob worker runs as '${allowed}'`, {
      code: 'MEMJOB_NESTED_BACKEND',
      detail:
        'As in joblib, a Parallel nested in a worker process uses threads, and one nested deeper (or in a worker thread) runs sequentially, ' +
        'so that nested parallelism never starts more workers than there are cores. Pass nJobs: 1 to silence this.',
    });
  }
  return allowed;
}
