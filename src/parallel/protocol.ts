/**
 * The messages between the parent and a worker: the same for worker threads
 * and child processes (both use structured clone).
 */
import type { SerializedError } from '../transport/error-transport.js';
import type { FunctionSpec } from '../transport/functions.js';

export interface CallMessage {
  /** Index into the batch's function table. */
  fn: number;
  /** Packed arguments (see transport/array-refs.ts). */
  args: unknown[];
}

export type ToWorker =
  | { type: 'init'; initializer?: { fn: FunctionSpec; args: unknown[] } }
  | {
      type: 'batch';
      batchId: number;
      runId: number;
      /** Results larger than this are returned through a file (processes) or by transfer (threads). */
      maxNbytes: number | null;
      /** Where a child process may write large results; absent for threads. */
      resultFolder?: string;
      fns: FunctionSpec[];
      calls: CallMessage[];
    }
  | { type: 'run-end'; runId: number }
  /** Finish what is queued, unmap everything and exit: a clean stop at a safe point, unlike terminate(). */
  | { type: 'exit' };

export type ToParent =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  | {
      type: 'batch-done';
      batchId: number;
      /** Results of the calls that completed, in order; on error, those before the failing call. */
      results: unknown[];
      error?: { index: number; error: SerializedError };
    };
