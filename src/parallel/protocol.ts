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

/**
 * Many calls of one function with plain arguments (numbers, strings...)
 * travel as one flat array: structured clone copies one array of 12,500
 * numbers about 40 times faster than 12,500 small call objects.
 */
export interface FlatCalls {
  flat: true;
  fn: number;
  arity: number;
  values: unknown[];
}

/** Numbers, strings, booleans, null...: nothing to map, pack or unpack; structured clone copies them as they are. */
export function isPlainValue(value: unknown): boolean {
  return typeof value !== 'object' || value === null;
}

export function compactCalls(calls: CallMessage[]): CallMessage[] | FlatCalls {
  const first = calls[0];
  if (first === undefined || calls.length < 8 || first.args.length === 0) return calls;
  const { fn, args } = first;
  const arity = args.length;
  const values: unknown[] = [];
  for (const call of calls) {
    if (call.fn !== fn || call.args.length !== arity) return calls;
    for (const arg of call.args) {
      if (!isPlainValue(arg)) return calls;
      values.push(arg);
    }
  }
  return { flat: true, fn, arity, values };
}

/**
 * A batch's calls as workers take them: a table of functions (each once,
 * however many calls use it) and the calls into it, compacted. Plain
 * arguments (numbers, strings...) are not walked: a seed-size run makes
 * 10,000 such calls, and the caller's own array is only read.
 */
export function tabulateCalls(
  calls: readonly { fn: unknown; args: readonly unknown[] }[],
  specOf: (fn: unknown) => FunctionSpec,
  pack: (args: readonly unknown[]) => unknown,
): { fns: FunctionSpec[]; calls: CallMessage[] | FlatCalls } {
  const fns: FunctionSpec[] = [];
  const fnIndex = new Map<FunctionSpec, number>();
  const messages: CallMessage[] = [];
  for (const call of calls) {
    const spec = specOf(call.fn);
    let fn = fnIndex.get(spec);
    if (fn === undefined) {
      fnIndex.set(spec, (fn = fns.length));
      fns.push(spec);
    }
    const args = (call.args.every(isPlainValue) ? call.args : pack(call.args)) as unknown[];
    messages.push({ fn, args });
  }
  return { fns, calls: compactCalls(messages) };
}

export function callCount(calls: CallMessage[] | FlatCalls): number {
  return Array.isArray(calls) ? calls.length : calls.values.length / calls.arity;
}

export function callAt(calls: CallMessage[] | FlatCalls, index: number): CallMessage {
  if (Array.isArray(calls)) return calls[index]!;
  return { fn: calls.fn, args: calls.values.slice(index * calls.arity, (index + 1) * calls.arity) };
}

export type ToWorker =
  /** `token`: the process tree's reference token (transport/walker.ts), so references made on either side are recognised. */
  | { type: 'init'; token: string; initializer?: { fn: FunctionSpec; args: unknown[] } }
  | {
      type: 'batch';
      batchId: number;
      /** The owner's transport (a Parallel's, a Pool's): the worker keeps what it mapped for it between runs. */
      session: number;
      /** Results larger than this are returned through a file (processes) or by transfer (threads). */
      maxNbytes: number | null;
      /** Where a child process may write large results; absent for threads. */
      resultFolder?: string;
      /** Post a 'task-start' before each call (the parent enforces taskTimeout). */
      reportStarts?: true;
      fns: FunctionSpec[];
      calls: CallMessage[] | FlatCalls;
    }
  /**
   * A run of `session` ended: every mapping made for it is released, but
   * those of the dumps in `keep` (the owner's dump cache: the next run sends
   * them again). `keep` null: the session is over.
   */
  | { type: 'run-end'; session: number; keep: string[] | null }
  /** Finish what is queued, unmap everything and exit: a clean stop at a safe point, unlike terminate(). */
  | { type: 'exit' };

export type ToParent =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  /** The module a worker was importing tried to start workers (MEMJOB_ERR_MAIN_REENTRY): the run cannot succeed. */
  | { type: 'main-reentry'; error: SerializedError }
  /** Call `index` of batch `batchId` is starting (only when the batch asked, with reportStarts). */
  | { type: 'task-start'; batchId: number; index: number }
  | {
      type: 'batch-done';
      batchId: number;
      /** Results of the calls that completed, in order; on error, those before the failing call. */
      results: unknown[];
      error?: { index: number; error: SerializedError };
    };
