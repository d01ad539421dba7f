/**
 * Errors thrown in a worker, carried to the parent and rebuilt there with
 * their class, message, own properties and the worker's stack, as joblib
 * re-raises a child's exception with its traceback.
 */
import { MemjobError } from '../errors.js';

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** The error's class name, for built-in classes rebuilt by name. */
  className: string;
  /** Set when the class is exported by the task's module, so the parent can rebuild the user's own class. */
  classRef?: { url: string; exportName: string };
  /** Own enumerable properties that survive structured clone (code, errno, details...). */
  props: Record<string, unknown>;
  cause?: SerializedError | { value: unknown };
}

const builtins: Record<string, new (message?: string) => Error> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** Whether structured clone (postMessage, advanced IPC) can copy `value`. */
export function cloneable(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/** In the worker. `moduleExports` is the task's module namespace, when the task came from one. */
export function serializeError(error: unknown, module?: { url: string; exports: Record<string, unknown> }, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    return { name: 'Error', className: 'Error', message: `a task threw a non-Error value: ${String(error)}`, props: { thrown: cloneable(error) ? error : String(error) } };
  }
  const props: Record<string, unknown> = {};
  for (const key of Object.keys(error)) {
    const value = (error as unknown as Record<string, unknown>)[key];
    if (key !== 'cause' && cloneable(value)) props[key] = value;
  }
  const serialized: SerializedError = { name: error.name, message: error.message, className: error.constructor?.name ?? 'Error', props };
  if (error.stack !== undefined) serialized.stack = error.stack;
  if (module !== undefined) {
    const exportName = Object.keys(module.exports).find((name) => module.exports[name] === error.constructor);
    if (exportName !== undefined) serialized.classRef = { url: module.url, exportName };
  }
  if (error.cause !== undefined && depth < 5) {
    serialized.cause = error.cause instanceof Error ? serializeError(error.cause, module, depth + 1) : { value: cloneable(error.cause) ? error.cause : String(error.cause) };
  }
  return serialized;
}

/** In the parent: an error of the original class where it can be rebuilt, with the worker's stack. */
export async function rebuildError(serialized: SerializedError): Promise<Error> {
  let Class: (new (message?: string) => Error) | undefined = builtins[serialized.className];
  if (serialized.className === 'MemjobError') Class = MemjobError as never;
  if (Class === undefined && serialized.classRef !== undefined) {
    try {
      const mod = (await import(serialized.classRef.url)) as Record<string, unknown>;
      const candidate = mod[serialized.classRef.exportName];
      if (typeof candidate === 'function') Class = candidate as new () => Error;
    } catch {
      // the plain Error below still carries name, message, stack and properties
    }
  }
  // Object.create skips the constructor: a user's class may demand arguments.
  const error = Object.create((Class ?? Error).prototype) as Error;
  Object.defineProperty(error, 'message', { value: serialized.message, writable: true, configurable: true });
  if (Class === undefined || serialized.name !== Class.name) {
    Object.defineProperty(error, 'name', { value: serialized.name, writable: true, configurable: true });
  }
  for (const [key, value] of Object.entries(serialized.props)) (error as unknown as Record<string, unknown>)[key] = value;
  if (serialized.cause !== undefined) {
    const cause = 'value' in serialized.cause ? serialized.cause.value : await rebuildError(serialized.cause);
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true });
  }
  Object.defineProperty(error, 'stack', { value: serialized.stack ?? `${serialized.name}: ${serialized.message}`, writable: true, configurable: true });
  return error;
}
