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

/** What the parent receives for a part of an error that could not be read (a throwing getter, a Proxy trap, a throwing toString). */
export const UNREADABLE = '<unreadable>';

/** `read()`, or `fallback` when it throws: every read of a task's error goes through this. */
function attempt<T, F>(read: () => T, fallback: F): T | F {
  try {
    return read();
  } catch {
    return fallback;
  }
}

/** Marks a read that threw, as distinct from one that gave undefined. */
const FAILED: unique symbol = Symbol('failed');

/** A string for any value: strings as they are, others through String() (which may call a user's toString, and throw). */
function text(read: () => unknown): string {
  return attempt(() => {
    const value = read();
    return typeof value === 'string' ? value : String(value);
  }, UNREADABLE);
}

/**
 * Whether `value` is to be sent as an error: an Error, or an object
 * `instanceof` cannot judge that has an error's parts: one without a
 * prototype (Object.create(null), an Error whose prototype was taken away)
 * with a message or a stack, or a Proxy whose traps throw. Other thrown
 * values, plain objects included, are sent as "a non-Error value".
 */
function errorLike(value: unknown): value is Error {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  const isError = attempt(() => value instanceof Error, FAILED);
  if (isError !== false) return true; // true, or a getPrototypeOf trap that threw
  return attempt(() => Object.getPrototypeOf(value) === null && ('message' in value || 'stack' in value), true);
}

/**
 * In the worker. `moduleExports` is the task's module namespace, when the
 * task came from one. Never throws, and returns only what structured clone
 * can copy, whatever was thrown: a task's error may have throwing getters, be
 * a Proxy, have no prototype or a throwing toString, and a worker that threw
 * here would be reported as crashed and the error lost. What cannot be read
 * arrives as UNREADABLE.
 */
export function serializeError(error: unknown, module?: { url: string; exports: Record<string, unknown> }, depth = 0): SerializedError {
  try {
    return serializeUnchecked(error, module, depth);
  } catch {
    // Every read below is guarded: this is the last resort, should one not be.
    return { name: 'Error', className: 'Error', message: UNREADABLE, props: {} };
  }
}

function serializeUnchecked(error: unknown, module: { url: string; exports: Record<string, unknown> } | undefined, depth: number): SerializedError {
  if (!errorLike(error)) {
    const thrown = cloneable(error) ? error : text(() => error);
    return { name: 'Error', className: 'Error', message: `a task threw a non-Error value: ${text(() => error)}`, props: { thrown } };
  }
  const props: Record<string, unknown> = {};
  for (const key of attempt(() => Object.keys(error), [])) {
    // These travel in their own fields (an own `name`, as a class sets in its constructor, stays a property too);
    // a getter that throws leaves its key out.
    if (key === 'cause' || key === 'message' || key === 'stack') continue;
    const value = attempt(() => (error as unknown as Record<string, unknown>)[key], FAILED);
    if (value !== FAILED && cloneable(value)) props[key] = value;
  }
  const name = attempt(() => error.name, FAILED);
  const message = attempt(() => error.message, FAILED);
  const constructor = attempt(() => error.constructor, undefined);
  const className = attempt(() => (typeof constructor === 'function' && typeof constructor.name === 'string' ? constructor.name : undefined), undefined);
  const serialized: SerializedError = {
    name: name === undefined ? 'Error' : name === FAILED ? UNREADABLE : text(() => name),
    message: message === undefined ? '' : message === FAILED ? UNREADABLE : text(() => message),
    className: className || 'Error',
    props,
  };
  const stack = attempt(() => error.stack, FAILED);
  // An unreadable stack is left out: the parent then shows "name: message".
  if (stack !== undefined && stack !== FAILED) {
    const readable = text(() => stack);
    if (readable !== UNREADABLE) serialized.stack = readable;
  }
  if (module !== undefined && typeof constructor === 'function') {
    const exportName = attempt(() => Object.keys(module.exports).find((key) => module.exports[key] === constructor), undefined);
    if (exportName !== undefined) serialized.classRef = { url: module.url, exportName };
  }
  const cause = attempt(() => error.cause, undefined);
  if (cause !== undefined && depth < 5) {
    serialized.cause = errorLike(cause) ? serializeError(cause, module, depth + 1) : { value: cloneable(cause) ? cause : text(() => cause) };
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
  // defineProperty, not assignment: an own key named __proto__ stays a plain property.
  for (const [key, value] of Object.entries(serialized.props)) {
    Object.defineProperty(error, key, { value, writable: true, enumerable: true, configurable: true });
  }
  if (serialized.cause !== undefined) {
    const cause = 'value' in serialized.cause ? serialized.cause.value : await rebuildError(serialized.cause);
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true });
  }
  Object.defineProperty(error, 'stack', { value: serialized.stack ?? `${serialized.name}: ${serialized.message}`, writable: true, configurable: true });
  return error;
}
