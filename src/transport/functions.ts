/**
 * Function references: how a task function crosses a thread or process
 * boundary. Node cannot send a closure, so a function travels as its source
 * (when it is self-contained), as a module URL and export name (`task()`),
 * as the path of a global built-in (`Math.sqrt`), or as the name of one of
 * memjob's exports. docs/functions.md explains the rules to users.
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import { importExport, type FunctionSpec } from './function-resolve.js';
import { sourceOrigin } from './call-site.js';
import { analyzeFunctionSource, isNativeSource } from './function-source.js';

// The worker's half lives in function-resolve.ts, so that workers do not load the parser.
export { resolveFunction, type FunctionSpec } from './function-resolve.js';
export { rememberCallSite } from './call-site.js';

/** A function exported by a module, referenced by URL and export name; see task(). */
export interface TaskFunction<A extends unknown[], R> {
  (...args: A): Promise<Awaited<R>>;
  /** The module's absolute file: URL. */
  readonly moduleUrl: string;
  /** The name the module exports the function under. */
  readonly exportName: string;
}

/**
 * Where a TaskFunction keeps its reference. A registered symbol rather than a
 * private one, so that a TaskFunction made by another copy of memjob (src and
 * dist loaded side by side) is still recognised.
 */
const TASK_REFERENCE = Symbol.for('memjob.taskReference');

interface TaskReference {
  url: string;
  name: string;
}

function taskReference(fn: object): TaskReference | undefined {
  const ref = (fn as { [TASK_REFERENCE]?: unknown })[TASK_REFERENCE];
  if (typeof ref !== 'object' || ref === null) return undefined;
  const { url, name } = ref as { url?: unknown; name?: unknown };
  return typeof url === 'string' && typeof name === 'string' ? { url, name } : undefined;
}

function toModuleUrl(moduleUrl: unknown): string | undefined {
  let href: string;
  if (moduleUrl instanceof URL) {
    href = moduleUrl.href;
  } else if (typeof moduleUrl === 'string' && moduleUrl.startsWith('file:')) {
    href = moduleUrl;
  } else if (typeof moduleUrl === 'string' && isAbsolute(moduleUrl)) {
    return pathToFileURL(moduleUrl).href;
  } else {
    return undefined;
  }
  try {
    const url = new URL(href);
    return url.protocol === 'file:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A function exported by a module, referenced by URL and export name so that
 * workers can import it: `task(import.meta.url, 'process')`, or
 * `task(new URL('./tasks.js', import.meta.url), 'process')`. The module is
 * not imported here; calling the returned function in the parent imports it
 * and calls the export (and returns a Promise). A module that is also a
 * program's entry point must guard its main code with `inWorker()`.
 */
export function task<A extends unknown[] = unknown[], R = unknown>(moduleUrl: string | URL, exportName: string): TaskFunction<A, R> {
  const url = toModuleUrl(moduleUrl);
  if (url === undefined) {
    throw invalidArg(
      'task()',
      'moduleUrl',
      "a file: URL (import.meta.url, or new URL('./tasks.js', import.meta.url)) or an absolute path",
      moduleUrl,
    );
  }
  if (typeof exportName !== 'string' || exportName === '') {
    throw invalidArg('task()', 'exportName', 'the non-empty name of a function the module exports', exportName);
  }
  const call = async (...args: A): Promise<Awaited<R>> => {
    const fn = await importExport(url, exportName);
    return (await fn(...args)) as Awaited<R>;
  };
  Object.defineProperties(call, {
    name: { value: exportName, configurable: true },
    moduleUrl: { value: url, enumerable: true },
    exportName: { value: exportName, enumerable: true },
    [TASK_REFERENCE]: { value: Object.freeze({ url, name: exportName }) },
  });
  return call as unknown as TaskFunction<A, R>;
}

/** Global functions worth sending by reference: a function's identity → its path from globalThis. */
let builtins: Map<unknown, string> | undefined;

/** Namespaces whose functions are sent by path. */
const NAMESPACES = ['Math', 'JSON', 'Number', 'String', 'Object', 'Array', 'BigInt', 'Date', 'Reflect', 'Atomics', 'Promise', 'Buffer'];
/**
 * Globals defined as getters (lazily loaded by Node) that are read anyway.
 * Other getters are left alone: reading some of them has side effects, such
 * as experimental warnings.
 */
const GLOBAL_GETTERS = new Set(['atob', 'btoa', 'fetch', 'structuredClone', 'queueMicrotask', 'Buffer']);
const TYPED_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
];

function globalValue(holder: object, key: string, readGetters: boolean): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(holder, key);
  if (descriptor === undefined) return undefined;
  if ('value' in descriptor) return descriptor.value;
  if (!readGetters) return undefined;
  try {
    return (holder as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function builtinPaths(): Map<unknown, string> {
  if (builtins !== undefined) return builtins;
  const map = new Map<unknown, string>();
  const add = (fn: unknown, path: string): void => {
    if (typeof fn === 'function' && !map.has(fn)) map.set(fn, path);
  };
  for (const key of Object.getOwnPropertyNames(globalThis)) {
    add(globalValue(globalThis, key, GLOBAL_GETTERS.has(key)), key);
  }
  for (const namespace of [...NAMESPACES, ...TYPED_ARRAYS]) {
    const holder = globalValue(globalThis, namespace, GLOBAL_GETTERS.has(namespace));
    if ((typeof holder !== 'object' && typeof holder !== 'function') || holder === null) continue;
    for (const key of Object.getOwnPropertyNames(holder)) {
      if (key === 'prototype' || key === 'constructor') continue;
      add(globalValue(holder, key, false), `${namespace}.${key}`);
    }
  }
  builtins = map;
  return map;
}

/** Names a free variable may have: `__name` is the helper tsx/esbuild (keepNames) inserts into function bodies. */
function isAvailableInWorker(name: string): boolean {
  return name === '__name' || name in globalThis;
}

function quoteList(names: string[]): string {
  const quoted = names.map((n) => `"${n}"`);
  return quoted.length === 1 ? (quoted[0] as string) : `${quoted.slice(0, -1).join(', ')} and ${quoted[quoted.length - 1]}`;
}

function closureError(fn: Function, free: string[], called: string[]): MemjobError {
  const label = describe(fn);
  const exportName = fn.name && /^[\p{L}_$][\p{L}\p{N}_$]*$/u.test(fn.name) ? fn.name : 'exportName';
  const helper = free.some((n) => n.startsWith('__'))
    ? ` (a name starting with "__" is usually a helper or import rewrite that a compiler or bundler inserted)`
    : '';
  // A value can be passed as an argument; a function cannot (MEMJOB_ERR_UNSUPPORTED_VALUE): say which is which.
  const values = free.filter((name) => !called.includes(name));
  const functions = free.filter((name) => called.includes(name));
  const selfContained: string[] = [];
  if (values.length > 0) selfContained.push(`pass ${quoteList(values)} as ${values.length === 1 ? 'an argument' : 'arguments'}`);
  if (functions.length > 0) selfContained.push(`define ${quoteList(functions)} inside it`);
  return new MemjobError(
    ErrorCodes.CLOSURE,
    `${label} uses ${quoteList(free)} from an enclosing scope${helper}, which cannot be sent to a worker. ` +
      `Either make it self-contained (${selfContained.join(', and ')}), ` +
      `or export it from a module and use task(import.meta.url, '${exportName}'). ` +
      'A worker imports that module to find the function: keep tasks in a module of their own (tasks.ts), ' +
      "or guard the program's main code with if (!inWorker()) { ... } (docs/functions.md)",
  );
}

const specs = new WeakMap<object, FunctionSpec>();

/**
 * How to ship `fn` to a worker; throws MemjobError (`MEMJOB_ERR_CLOSURE` for a
 * function that uses variables from an enclosing scope,
 * `MEMJOB_ERR_INVALID_ARG` for anything else that cannot travel). Cached per
 * function object. `memjobExports` is memjob's own export namespace (passed
 * in, since importing src/index.ts here would be an import cycle).
 */
export function describeFunction(fn: unknown, memjobExports: Readonly<Record<string, unknown>>): FunctionSpec {
  if (typeof fn !== 'function') throw invalidArg('memjob', 'the task function', 'a function', fn);
  const cached = specs.get(fn);
  if (cached !== undefined) return cached;
  const spec = computeSpec(fn, memjobExports);
  specs.set(fn, spec);
  return spec;
}

function computeSpec(fn: Function, memjobExports: Readonly<Record<string, unknown>>): FunctionSpec {
  const ref = taskReference(fn);
  if (ref !== undefined) return { kind: 'module', url: ref.url, name: ref.name };
  for (const key of Object.keys(memjobExports)) {
    if (memjobExports[key] === fn) return { kind: 'memjob', name: key };
  }
  const path = builtinPaths().get(fn);
  if (path !== undefined) return { kind: 'builtin', path };

  const label = describe(fn);
  const useTask = "export a function from a module and use task(import.meta.url, 'name')";
  const text = Function.prototype.toString.call(fn);
  if (isNativeSource(text)) {
    const what = fn.name.startsWith('bound ')
      ? 'a bound function (made with .bind()), whose source is not available. Send the unbound function and pass the bound values as arguments'
      : 'a native function that is not one of the global built-ins memjob sends by name. Call it from a self-contained function instead';
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${label} cannot be sent to a worker: it is ${what}, or ${useTask}`);
  }
  const analysis = analyzeFunctionSource(text);
  if (!analysis.ok) {
    const fix = analysis.problem === 'shape' ? 'A task must be a plain or async function' : `Make it a plain function, or ${useTask}`;
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${label} cannot be sent to a worker: ${analysis.reason}. ${fix}`);
  }
  const needed = analysis.freeVariables.filter((name) => !isAvailableInWorker(name));
  // memjob's own exports (load, memmap, hasShareableMemory...) are provided by the worker under their names.
  const memjobNames = needed.filter((name) => Object.hasOwn(memjobExports, name) && name !== 'default');
  const free = needed.filter((name) => !memjobNames.includes(name));
  if (free.length > 0) throw closureError(fn, free, analysis.calledVariables);
  try {
    // The same text resolveFunction evaluates: catches what the parser
    // accepts but this Node does not.
    new Function('__name', ...memjobNames, `return (\n${analysis.source}\n);`);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${label} cannot be sent to a worker: its source does not compile on its own (${reason}). Make it a plain function, or ${useTask}`,
      { cause: error },
    );
  }
  const spec: FunctionSpec = { kind: 'source', source: analysis.source, name: fn.name };
  if (memjobNames.length > 0) spec.memjob = memjobNames;
  const origin = sourceOrigin(fn, text);
  if (origin !== undefined) spec.origin = origin;
  return spec;
}
