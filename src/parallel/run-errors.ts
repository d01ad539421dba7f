/**
 * The errors a Parallel run ends with, other than a task's own: an abort, the
 * run's timeout, a worker's death, arguments that cannot be sent. Each says
 * what happened in the words the docs use (docs/api.md, "Errors from a run").
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import type { Slot } from './backends/backend.js';
import type { ExitInfo } from './worker-handle.js';

/** What an aborted AbortSignal gives, as Node's own APIs do (name AbortError, code ABORT_ERR, cause the reason). */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}

export function timeoutError(ms: number, done: number): MemjobError {
  return new MemjobError(
    ErrorCodes.TIMEOUT,
    `Parallel: the run did not finish within its timeout of ${ms} ms (${done} tasks done); its busy workers were stopped`,
  );
}

/** Marks which task an error belongs to (not enumerable: it does not show among the error's own data). */
export function withTaskIndex(error: Error, index: number): Error {
  Object.defineProperty(error, 'taskIndex', { value: index, configurable: true, writable: true, enumerable: false });
  return error;
}

/** "a worker thread", "a worker process 1234", "this thread": where something ran, for messages. */
export function slotPhrase(slot: Slot): string {
  const name = slot.describe();
  return name.startsWith('this ') ? name : `a ${name}`;
}

/** Marks which task an error belongs to, unless it already names one (an error of a nested run). Other thrown values pass as they are. */
export function attributeToTask(error: unknown, index: number): unknown {
  if (error instanceof Error && !Object.hasOwn(error, 'taskIndex')) withTaskIndex(error, index);
  return error;
}

export function taskTimeoutError(ms: number, index: number, inThisThread: boolean): MemjobError {
  const after = inThisThread ? 'it runs in this thread, which cannot stop it: the run no longer waits for it' : 'its worker was stopped';
  const error = new MemjobError(ErrorCodes.TIMEOUT, `Parallel: task ${index} did not finish within its taskTimeout of ${ms} ms; ${after}`);
  return withTaskIndex(error, index) as MemjobError;
}

export function describeExit(info: ExitInfo): string {
  const how = info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  return info.error === undefined ? how : `${how} (${info.error.message})`;
}

/** Calls whose arguments structured clone cannot copy (a function, a symbol, ...): names the first such task. */
export function unsendable(calls: readonly { args: readonly unknown[] }[], indices: readonly number[], error: unknown): MemjobError {
  const at = calls.findIndex((call) => {
    try {
      structuredClone(call.args);
      return false;
    } catch {
      return true;
    }
  });
  const index = indices[Math.max(at, 0)]!;
  const reason = error instanceof Error ? error.message : String(error);
  const problem = new MemjobError(
    ErrorCodes.UNSUPPORTED_VALUE,
    `Parallel: the arguments of task ${index} cannot be sent to a worker (${reason}); pass plain data, arrays, Memmaps or NDArrays`,
    { cause: error },
  );
  withTaskIndex(problem, index);
  return problem;
}
