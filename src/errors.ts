import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { getSystemErrorName } from 'node:util';

/**
 * memjob's one error class. `code` is stable and meant for programs:
 * operating-system failures keep Node's own codes (`ENOENT`, `EACCES`,
 * `ENOMEM`, ...) with `syscall` and `path`; memjob's own failures use the
 * `MEMJOB_ERR_*` codes below (docs/api.md lists them).
 */
export const ErrorCodes = Object.freeze({
  /** An argument or option has the wrong type or value. */
  INVALID_ARG: 'MEMJOB_ERR_INVALID_ARG',
  /** A dtype name memjob does not know. */
  DTYPE: 'MEMJOB_ERR_DTYPE',
  /** A shape that is malformed or does not fit the file. */
  SHAPE: 'MEMJOB_ERR_SHAPE',
  /** An offset or index outside what the file or array holds. */
  OUT_OF_RANGE: 'MEMJOB_ERR_OUT_OF_RANGE',
  /** A Memmap (or a view of it) used after close(). */
  CLOSED: 'MEMJOB_ERR_CLOSED',
  /** `.data` asked for an extent larger than one ArrayBuffer can hold. */
  VIEW_TOO_LARGE: 'MEMJOB_ERR_VIEW_TOO_LARGE',
  /** `.data` asked of a strided view, which no TypedArray can express. */
  NOT_CONTIGUOUS: 'MEMJOB_ERR_NOT_CONTIGUOUS',
  /** The native addon could not be loaded. */
  NATIVE_LOAD: 'MEMJOB_ERR_NATIVE_LOAD',
  /** A dump or .npy file that is corrupt, truncated, or not one memjob can read. */
  FORMAT: 'MEMJOB_ERR_FORMAT',
  /**
   * A pickle (a joblib file) names a global outside the allowlist (`posix.system`, `builtins.eval`, ...), or uses
   * persistent ids or the extension registry: it is refused before anything is built, and nothing is ever run.
   */
  UNSAFE_PICKLE: 'MEMJOB_ERR_UNSAFE_PICKLE',
  /** A .npy array in non-native byte order asked for memory-mapped (it would read as wrong numbers). */
  BYTE_ORDER: 'MEMJOB_ERR_BYTE_ORDER',
  /** dump() met a value it cannot store (a function, a symbol, a class instance, a cycle), or a task's argument or result cannot be copied to or from a worker. */
  UNSUPPORTED_VALUE: 'MEMJOB_ERR_UNSUPPORTED_VALUE',
  /** A task function uses variables from an enclosing scope, so it cannot be sent to a worker (docs/functions.md). */
  CLOSURE: 'MEMJOB_ERR_CLOSURE',
  /**
   * A worker importing a task's module (or the initializer's) found that module starting workers of its own at import
   * time: the program's entry file used as a task module without an `inWorker()` guard (Python's "bootstrapping phase" error).
   */
  MAIN_REENTRY: 'MEMJOB_ERR_MAIN_REENTRY',
  /** Parallel runs nested deeper than memjob allows (64): a task that starts a Parallel running itself, without end. */
  NESTING: 'MEMJOB_ERR_NESTING',
  /** A worker died (exit, signal, crash, out of memory) while running tasks. */
  WORKER_CRASHED: 'MEMJOB_ERR_WORKER_CRASHED',
  /** A run did not finish within its `timeout`, or a task within its `taskTimeout`. */
  TIMEOUT: 'MEMJOB_ERR_TIMEOUT',
  /** A worker's initializer threw. */
  INITIALIZER: 'MEMJOB_ERR_INITIALIZER',
  /** Work that was stopped before it finished: Parallel.close() during a run, Pool.terminate() with tasks pending (also used internally when a generator is left early). */
  CANCELLED: 'MEMJOB_ERR_CANCELLED',
  /** run() was called while another run of the same Parallel was in progress, or after close(). */
  BUSY: 'MEMJOB_ERR_BUSY',
  /** Queue.get() found the queue empty (no blocking, or until its timeout). */
  QUEUE_EMPTY: 'MEMJOB_ERR_QUEUE_EMPTY',
  /** Queue.put() found the queue full (no blocking, or until its timeout). */
  QUEUE_FULL: 'MEMJOB_ERR_QUEUE_FULL',
  /** put() on a closed Queue, or get() on one that is closed and drained. */
  QUEUE_CLOSED: 'MEMJOB_ERR_QUEUE_CLOSED',
  /**
   * The process holds as many file mappings as memjob allows (half of vm.max_map_count, 32,765 by default), counting
   * every Memmap, mapped load and shared object not yet closed or garbage collected, in every thread.
   */
  MAPPING_LIMIT: 'MEMJOB_ERR_MAPPING_LIMIT',
  /** The bullmq backend cannot reach its Redis broker (at start or mid-run, within brokerTimeout), or no `memjob worker` serves its queue. */
  BACKEND_UNAVAILABLE: 'MEMJOB_ERR_BACKEND_UNAVAILABLE',
  /** A job or result not signed with the shared secret (MEMJOB_SECRET): a worker refused to run it, or the parent refused its result. */
  UNAUTHORIZED: 'MEMJOB_ERR_UNAUTHORIZED',
  /** A task's module does not exist on the worker machine that was to run it (the message names the host and the path). */
  TASK_NOT_FOUND: 'MEMJOB_ERR_TASK_NOT_FOUND',
  /** A job from a memjob of another wire format version: update the parent and the workers to the same memjob. */
  VERSION_MISMATCH: 'MEMJOB_ERR_VERSION_MISMATCH',
  /** A MemorizedResult whose stored result was removed (cleared, reduced) or damaged since callAndShelve() returned it. */
  CACHE_MISS: 'MEMJOB_ERR_CACHE_MISS',
  /** Not enough free space for the file a 'w+' memmap would create. */
  NO_SPACE: 'ENOSPC',
  /** A failure inside memjob that is neither bad input nor an OS error: a bug, please report it. */
  INTERNAL: 'MEMJOB_ERR_INTERNAL',
} as const);

export type MemjobErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface MemjobErrorDetails {
  cause?: unknown;
  syscall?: string;
  path?: string;
  errno?: number;
}

export class MemjobError extends Error {
  /** `MEMJOB_ERR_*`, or Node's code for an operating-system failure (`ENOENT`, ...). */
  readonly code: MemjobErrorCode | (string & {});
  // `declare`: set only when known, so an error prints without `syscall: undefined` lines.
  declare readonly syscall?: string;
  declare readonly path?: string;
  declare readonly errno?: number;

  constructor(code: MemjobErrorCode | (string & {}), message: string, details: MemjobErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
    if (details.errno !== undefined) this.errno = details.errno;
  }

  override get name(): string {
    return 'MemjobError';
  }
}

/** Describes a received value for a message: `'abc' (string)`, `-1 (number)`, `an instance of Foo`. */
export function describe(value: unknown, depth = 0): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)} (string)`;
    case 'bigint': {
      // A number of millions of digits is never put whole in a message, nor
      // converted to decimal (quadratic); hexadecimal is linear.
      const hex = (value < 0n ? -value : value).toString(16);
      if (hex.length <= 32) return `${String(value)} (bigint)`;
      return `${value < 0n ? '-' : ''}0x${hex.slice(0, 16)}... (bigint of ${hex.length * 4} bits)`;
    }
    case 'number':
    case 'boolean':
      return `${String(value)} (${typeof value})`;
    case 'function':
      return `function ${typeof value.name === 'string' && value.name !== '' ? value.name : '<anonymous>'}`;
    case 'symbol':
      return `${String(value)} (symbol)`;
    default: {
      // Values can come from untrusted files: never recurse deeply, never call their methods.
      if (Array.isArray(value)) {
        if (depth >= 2) return `[... ${value.length} items] (array)`;
        return `[${value.slice(0, 8).map((v) => describe(v, depth + 1)).join(', ')}${value.length > 8 ? ', ...' : ''}] (array)`;
      }
      let name: unknown;
      try {
        name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      } catch {
        name = undefined;
      }
      return typeof name === 'string' && name !== '' && name !== 'Object' ? `an instance of ${name}` : 'an object';
    }
  }
}

/**
 * Text from elsewhere (a library's error message, a value from a file) cut
 * to `max` characters for a message, saying how long it was.
 */
export function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

/** `MEMJOB_ERR_INVALID_ARG` for an option: says what was expected and what was received. */
export function invalidArg(where: string, name: string, expected: string, received: unknown): MemjobError {
  return new MemjobError(
    ErrorCodes.INVALID_ARG,
    `${where}: expected "${name}" to be ${expected}, received ${describe(received)}`,
  );
}

/**
 * Wraps a failed system call (a Node fs error, or one from the addon, which
 * carries a positive `errno` and a `syscall`) into a MemjobError that keeps
 * Node's code, the syscall and the path.
 */
export function systemError(where: string, error: unknown, path?: string): MemjobError {
  const err = error as { code?: unknown; errno?: unknown; syscall?: unknown; message?: unknown };
  // An error without an errno is not an OS failure (for example a TypeError
  // from a bad argument that slipped past validation): report it as such.
  let code = typeof err.code === 'string' ? err.code : ErrorCodes.INTERNAL;
  const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : undefined;
  // The addon reports a positive errno; getSystemErrorName wants it negated.
  if (typeof err.code !== 'string' && errno !== undefined) code = getSystemErrorName(-errno);
  const syscall = typeof err.syscall === 'string' ? err.syscall : undefined;
  const details: MemjobErrorDetails = { cause: error };
  if (syscall !== undefined) details.syscall = syscall;
  if (path !== undefined) details.path = path;
  if (errno !== undefined) details.errno = errno;
  // The path and the code are said once each; the original message stays in `cause`.
  if (code === 'ENOENT' && path !== undefined) {
    // Creating a file in a missing folder fails the same way as opening a missing file: name what is missing.
    const folder = dirname(path);
    const missing = folder !== path && !existsSync(folder) ? `the folder '${folder}'` : `'${path}'`;
    return new MemjobError(code, `${where}: expected ${missing} to exist, but it does not (ENOENT, ${syscall ?? 'system call'})`, details);
  }
  const target = path === undefined ? '' : ` for '${path}'`;
  return new MemjobError(code, `${where}: ${syscall ?? 'system call'} failed${target}: ${osReason(err.message, code, syscall)} (${code})`, details);
}

/**
 * The operating system's words alone, without what Node's fs message
 * (`ENOENT: no such file or directory, open '/p'`) or the addon's
 * (`mmap failed: Cannot allocate memory`) repeats around them.
 */
function osReason(message: unknown, code: string, syscall: string | undefined): string {
  if (typeof message !== 'string') return 'unknown error';
  let reason = message;
  if (reason.startsWith(`${code}: `)) reason = reason.slice(code.length + 2);
  if (syscall !== undefined) {
    if (reason.startsWith(`${syscall} failed: `)) reason = reason.slice(syscall.length + 9);
    const tail = reason.lastIndexOf(`, ${syscall}`);
    if (tail > 0) reason = reason.slice(0, tail);
  }
  return reason;
}
