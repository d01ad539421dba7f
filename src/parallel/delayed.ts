/**
 * delayed(fn)(...args): a call captured for later, as joblib.delayed. The
 * call is data (a function and its arguments); Parallel decides where it runs.
 */
import { rememberCallSite } from '../transport/functions.js';

const mark = Symbol('memjob.delayed');

export interface DelayedCall<R = unknown> {
  readonly fn: (...args: never[]) => unknown;
  readonly args: readonly unknown[];
  /** Only for typing: the result the call resolves to. */
  readonly __result?: R;
  readonly [mark]: true;
}

/** Wraps `fn` so that calling the wrapper records the call instead of running it. */
export function delayed<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => DelayedCall<Awaited<R>> {
  // Here the user's frame is on the stack: a source-shipped fn's worker stack frames will name its file.
  if (typeof fn === 'function') rememberCallSite(fn);
  return (...args: A) => ({ fn: fn as unknown as (...args: never[]) => unknown, args, [mark]: true }) as DelayedCall<Awaited<R>>;
}

export function isDelayedCall(value: unknown): value is DelayedCall {
  return typeof value === 'object' && value !== null && (value as { [mark]?: unknown })[mark] === true;
}
