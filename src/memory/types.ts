/**
 * Memory's public types, the handle callAndShelve() returns, and
 * expiresAfter(), the validator joblib calls `expires_after`.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import type { CompressOption } from '../format/compression.js';
import { loadSync, type LoadMmapMode } from '../format/load.js';
import type { EntryMetadata } from './store.js';
import { removeEntry } from './store.js';

export type { EntryMetadata as CacheEntryMetadata } from './store.js';

export interface MemoryOptions {
  /** Map the arrays of cached results on reload: 'r' (read-only), 'r+', 'c' (copy-on-write) or null (read into memory). Default null. */
  mmapMode?: LoadMmapMode | null;
  /** Compress stored results, as dump()'s `compress` (compressed results cannot be mapped). Default none. */
  compress?: CompressOption;
  /** 0: silent (default); 1 or more: joblib's `[Memory] Calling f...` and `Loading f...` lines, on stderr. */
  verbose?: number;
  /** The default `bytesLimit` of reduceSize(): bytes, or a string such as '1G'. Nothing is removed until reduceSize() is called. */
  bytesLimit?: number | string;
  /** Key a Memmap argument by its file's identity (path, size, mtime, offset, shape) instead of its content: for files nobody edits in place. */
  memmapIdentity?: boolean;
}

export interface CacheOptions {
  /** Parameters whose values do not enter the key: positional parameters, properties of a destructured options parameter, or a rest parameter. */
  ignore?: string[];
  /** Overrides the Memory's mmapMode for this function. */
  mmapMode?: LoadMmapMode | null;
  /** Called with a stored entry's metadata before it is used: false recomputes it (expiresAfter() makes one). */
  validate?: (metadata: EntryMetadata) => boolean;
  /** Overrides the Memory's memmapIdentity for this function. */
  memmapIdentity?: boolean;
}

export interface CachedFunction<A extends unknown[], R> {
  (...args: A): Promise<R>;
  /** The function being cached. */
  readonly func: (...args: A) => unknown;
  /** Computes (or finds) the result and returns a handle to it on disk, without loading it. */
  callAndShelve(...args: A): Promise<MemorizedResult<R>>;
  /** Whether this call's result is stored (and would be loaded, not computed). */
  checkCallInCache(...args: A): Promise<boolean>;
  /** Removes every stored result of this function. */
  clear(): void;
}

/** A stored result, as joblib's MemorizedResult: get() loads it, clear() removes it. */
export class MemorizedResult<R> {
  private constructor(
    /** The entry's folder; null when the result could not be stored (or Memory(null)) and is held in memory. */
    readonly path: string | null,
    readonly mmapMode: LoadMmapMode | null,
    private readonly value: R | undefined,
  ) {}

  /** @internal */
  static onDisk<R>(path: string, mmapMode: LoadMmapMode | null): MemorizedResult<R> {
    return new MemorizedResult<R>(path, mmapMode, undefined);
  }

  /** @internal */
  static inMemory<R>(value: R): MemorizedResult<R> {
    return new MemorizedResult<R>(null, null, value);
  }

  async get(): Promise<R> {
    if (this.path === null) return this.value as R;
    try {
      return loadSync(`${this.path}/output.dump`, this.mmapMode === null ? {} : { mmapMode: this.mmapMode }) as R;
    } catch (error) {
      throw new MemjobError(ErrorCodes.CACHE_MISS, `MemorizedResult.get(): the result stored in '${this.path}' is gone or damaged (${(error as Error).message})`, {
        path: this.path,
        cause: error,
      });
    }
  }

  clear(): void {
    if (this.path !== null) removeEntry(this.path);
  }
}

export interface Duration {
  days?: number;
  hours?: number;
  minutes?: number;
  seconds?: number;
}

export function durationMs(value: unknown, where: string, name: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'object' && value !== null) {
    const { days = 0, hours = 0, minutes = 0, seconds = 0, ...rest } = value as Duration;
    const parts = [days, hours, minutes, seconds];
    if (Object.keys(rest).length === 0 && parts.every((p) => typeof p === 'number' && Number.isFinite(p) && p >= 0)) {
      return ((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000;
    }
  }
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "${name}" to be milliseconds or { days, hours, minutes, seconds }, received ${describe(value)}`);
}

/** A validator that refuses entries older than `duration` (joblib's expires_after). */
export function expiresAfter(duration: Duration | number): (metadata: EntryMetadata) => boolean {
  const ms = durationMs(duration, 'expiresAfter()', 'duration');
  return (metadata) => Date.now() - metadata.createdAt <= ms;
}
