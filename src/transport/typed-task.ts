/**
 * task()'s public signatures. The reference itself is made by functions.ts;
 * this adds the second way to type it, from the function's own type:
 *
 *   task<[number], number>(url, 'square')                       // stated
 *   task<typeof import('./tasks.js')['square']>(url, 'square')  // inferred
 *
 * The `typeof import(...)` is type-only, so nothing is loaded in the parent.
 */
import { task as makeTask, type TaskFunction } from './functions.js';

/**
 * A function exported by a module, referenced by URL and export name so that
 * workers can import it: `task(import.meta.url, 'process')`, or
 * `task(new URL('./tasks.js', import.meta.url), 'process')`. Type it with the
 * arguments and result (`task<[number], number>`) or with the function's type
 * (`task<typeof import('./tasks.js')['process']>`). A module that is also a
 * program's entry point must guard its main code with `inWorker()`.
 */
export function task<A extends unknown[] = unknown[], R = unknown>(moduleUrl: string | URL, exportName: string): TaskFunction<A, R>;
// `any[]` (not unknown[]) is what lets a function with typed parameters satisfy the constraint.
export function task<F extends (...args: any[]) => unknown>(moduleUrl: string | URL, exportName: string): TaskFunction<Parameters<F>, ReturnType<F>>;
export function task(moduleUrl: string | URL, exportName: string): TaskFunction<unknown[], unknown> {
  return makeTask(moduleUrl, exportName);
}
