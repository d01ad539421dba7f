/**
 * The worker's half of function references (functions.ts is the parent's):
 * turning a FunctionSpec back into a callable. Kept apart so that a worker
 * does not load the source parser (acorn, periscopic) it never uses.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import type { SourceOrigin } from './call-site.js';

export type FunctionSpec =
  | {
      kind: 'source'; // evaluated in the worker
      source: string;
      name: string;
      /** memjob exports the source uses by name (load, memmap...): the worker passes them in. */
      memjob?: string[];
      /** Where the function was found, for the file and line its stack frames show. */
      origin?: SourceOrigin;
    }
  | { kind: 'module'; url: string; name: string } // url: absolute file: URL string; name: export name
  | { kind: 'builtin'; path: string } // e.g. 'Math.sqrt', 'parseInt', 'JSON.stringify'
  | { kind: 'memjob'; name: string }; // an export of memjob's src/index.ts, e.g. 'hasShareableMemory'

/** A file: URL or path as the user would recognise it in a message. */
export function displayUrl(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    return url;
  }
}

/** Imports `url` and returns its export `name`, which must be a function. */
export async function importExport(url: string, name: string): Promise<(...args: unknown[]) => unknown> {
  const where = `task(${JSON.stringify(url)}, ${JSON.stringify(name)})`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // The module refused to start workers while imported: that error is the one to report.
    if (code === ErrorCodes.MAIN_REENTRY) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    const hint =
      code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?tsx?$/.test(url)
        ? ' (a TypeScript module imports only when the program runs under tsx: node --import tsx, or the tsx command)'
        : '';
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: cannot import module ${displayUrl(url)}: ${reason}${hint}`, {
      cause: error,
    });
  }
  const fn = mod[name];
  if (typeof fn === 'function') return fn as (...args: unknown[]) => unknown;
  const functions = Object.keys(mod).filter((key) => typeof mod[key] === 'function');
  const available = functions.length === 0 ? 'it exports no functions' : `its function exports are: ${functions.join(', ')}`;
  const problem = name in mod ? `exports "${name}" as ${describe(fn)}, not a function` : `has no export "${name}"`;
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: module ${displayUrl(url)} ${problem}; ${available}`);
}

/** The helper tsx/esbuild's keepNames calls; defined for evaluated sources. */
function nameHelper(fn: unknown, name: string): unknown {
  return Object.defineProperty(fn, 'name', { value: name, configurable: true });
}

type Callable = (...args: unknown[]) => unknown;

/**
 * Compiles a shipped source into a factory taking __name and the memjob
 * exports it uses. new Function, not node:vm: code from vm cannot use
 * dynamic import() without an experimental flag. A `//# sourceURL` names the
 * user's file in stack frames instead of "eval at ..."; with the function's
 * line known, blank lines ahead of the source put its frames on the file's
 * own lines (`at process (/app/main.js:12:9)`).
 */
function evaluateSource(spec: Extract<FunctionSpec, { kind: 'source' }>): Callable {
  const { origin } = spec;
  const label = spec.name || 'anonymous';
  // The body of a new Function starts on line 3 of its code (lines 1 and 2 hold the header).
  const line = origin?.line !== undefined && origin.line >= 3 ? origin.line : undefined;
  const where = origin === undefined ? `memjob-task:${label}` : line === undefined ? `${origin.file}#${label}` : origin.file;
  // A sourceURL ends at white space: such paths go as file: URLs.
  const url = /\s/.test(where) && where.startsWith('/') ? pathToFileURL(where).href : where;
  const lead = line === undefined ? '' : '\n'.repeat(line - 3);
  const body = `${lead}return (${spec.source}\n);\n//# sourceURL=${url}`;
  return new Function('__name', ...(spec.memjob ?? []), body) as Callable;
}

const resolved = new Map<string, Promise<Callable>>();

/**
 * In the worker: turns a spec back into a callable (evaluated source,
 * imported module export, global built-in or memjob export). Cached per spec.
 */
export function resolveFunction(
  spec: FunctionSpec,
  memjobExports: (names: readonly string[]) => Promise<Readonly<Record<string, unknown>>>,
): Promise<Callable> {
  const key = JSON.stringify(spec);
  let result = resolved.get(key);
  if (result === undefined) {
    result = resolveUncached(spec, memjobExports);
    resolved.set(key, result);
    // A failure is not kept: the next call tries again.
    result.catch(() => resolved.delete(key));
  }
  return result;
}

async function resolveUncached(spec: FunctionSpec, memjobExports: (names: readonly string[]) => Promise<Readonly<Record<string, unknown>>>): Promise<Callable> {
  switch (spec.kind) {
    case 'source': {
      const names = spec.memjob ?? [];
      const exports = names.length > 0 ? await memjobExports(names) : {};
      const fn = evaluateSource(spec)(nameHelper, ...names.map((name) => exports[name])) as unknown;
      if (typeof fn !== 'function') {
        throw new MemjobError(ErrorCodes.INTERNAL, `the source sent for function ${spec.name || '<anonymous>'} did not evaluate to a function`);
      }
      if (fn.name === '' && spec.name !== '') nameHelper(fn, spec.name);
      return fn as Callable;
    }
    case 'module':
      return importExport(spec.url, spec.name);
    case 'builtin': {
      let value: unknown = globalThis;
      for (const part of spec.path.split('.')) {
        value = value === null || value === undefined ? undefined : (value as Record<string, unknown>)[part];
      }
      if (typeof value !== 'function') {
        throw new MemjobError(ErrorCodes.INVALID_ARG, `the built-in function ${spec.path} does not exist in this worker (received ${describe(value)})`);
      }
      return value as Callable;
    }
    case 'memjob': {
      const exports = await memjobExports([spec.name]);
      const fn = exports[spec.name];
      if (typeof fn !== 'function') {
        throw new MemjobError(ErrorCodes.INTERNAL, `memjob has no exported function "${spec.name}" in this worker (received ${describe(fn)})`);
      }
      return fn as Callable;
    }
    default: {
      const kind = (spec as { kind?: unknown }).kind;
      throw new MemjobError(ErrorCodes.INTERNAL, `unknown function reference kind ${describe(kind)}`);
    }
  }
}
