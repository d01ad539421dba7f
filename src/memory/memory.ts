/**
 * Memory: joblib's disk cache of function results. `memory.cache(fn)` gives
 * an async function that computes each distinct call once and afterwards
 * loads its result from disk, in memjob's dump format, so with `mmapMode`
 * the arrays of a cached result come back mapped: zero copy, in microseconds
 * whatever their size, and shared by every process on the machine.
 */
import { rmSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { describe, invalidArg } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { hashValue } from './hash.js';
import { identify, sha256, type FunctionIdentity } from './identity.js';
import { ignoredSlots, keyArguments } from './params.js';
import { FUNCTION_FILE, ensureFolder, hasEntry, listEntries, readEntry, removeEntry, writeEntry, type EntryMetadata } from './store.js';
import { reduceEntries, parseReduceLimits, type CacheEntry, type ReduceSizeLimits } from './limits.js';
import { MemorizedResult, type CacheOptions, type CachedFunction, type MemoryOptions } from './types.js';

const modes: readonly unknown[] = ['r', 'r+', 'c', 'w+', null];

export class Memory {
  /** The cache folder, absolute; null when caching is off (calls go straight through). */
  readonly location: string | null;
  readonly #options: Required<Pick<MemoryOptions, 'verbose' | 'memmapIdentity'>> & MemoryOptions;

  constructor(location: string | URL | null, options: MemoryOptions = {}) {
    const where = 'new Memory()';
    if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
    this.location = location === null ? null : resolve(parseFilename(location, where));
    const mmapMode = options.mmapMode ?? null;
    if (!modes.includes(mmapMode)) throw invalidArg(where, 'mmapMode', "'r', 'r+', 'c', 'w+' or null", mmapMode);
    const verbose = options.verbose ?? 0;
    if (!(Number.isInteger(verbose) && verbose >= 0)) throw invalidArg(where, 'verbose', 'a whole number from 0', verbose);
    if (options.bytesLimit !== undefined) parseReduceLimits({ bytesLimit: options.bytesLimit }, where);
    this.#options = { ...options, mmapMode, verbose, memmapIdentity: options.memmapIdentity ?? false };
  }

  /** `fn`, cached: same parameters, and a Promise of the same result. */
  cache<A extends unknown[], R>(fn: (...args: A) => R, options: CacheOptions = {}): CachedFunction<A, Awaited<R>> {
    const where = 'memory.cache()';
    if (typeof fn !== 'function') throw invalidArg(where, 'fn', 'a function', fn);
    if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
    const mmapMode = options.mmapMode === undefined ? this.#options.mmapMode ?? null : options.mmapMode;
    if (!modes.includes(mmapMode)) throw invalidArg(where, 'mmapMode', "'r', 'r+', 'c', 'w+' or null", mmapMode);
    if (options.validate !== undefined && typeof options.validate !== 'function') throw invalidArg(where, 'validate', 'a function of the entry metadata', options.validate);
    const ignored = ignoredSlots(fn, options.ignore, where);
    const identity = identify(fn);
    const location = this.location;
    const verbose = this.#options.verbose;
    const compress = this.#options.compress;
    const hashOptions = { memmapIdentity: options.memmapIdentity ?? this.#options.memmapIdentity };
    const folder = location === null ? null : join(location, identity.folder);
    let checked: Promise<void> | undefined;

    const entryOf = async (args: unknown[]): Promise<string> => {
      checked ??= checkSource(location!, identity);
      await checked;
      return join(folder!, await hashValue(keyArguments(args, ignored), hashOptions, `${identity.name}()`, 'arguments', identity.id));
    };

    const compute = async (args: unknown[], entry: string): Promise<{ value: Awaited<R>; stored: boolean }> => {
      if (verbose > 0) log(`[Memory] Calling ${identity.name}...`);
      const started = performance.now();
      const value = await fn(...(args as A));
      const duration = (performance.now() - started) / 1000;
      if (verbose > 0) log(`[Memory] ${formatTime(duration)}: ${identity.name} done`);
      const metadata: EntryMetadata = { function: identity.name, args: summarize(args), duration, createdAt: Date.now() };
      try {
        writeEntry(folder!, basename(entry), value, metadata, compress);
        return { value, stored: true };
      } catch (error) {
        // The call must not fail because the cache could not be written (disk full, a value dump() refuses).
        process.emitWarning(`memjob Memory: could not store the result of ${identity.name} in '${entry}': ${(error as Error).message}`, {
          code: 'MEMJOB_CACHE_WRITE_FAILED',
        });
        return { value, stored: false };
      }
    };

    /** The stored result, or undefined after removing an entry that is damaged or that `validate` refuses. */
    const lookup = (entry: string): { value: Awaited<R> } | undefined => {
      let found;
      const started = performance.now();
      try {
        found = readEntry(entry, mmapMode);
      } catch (error) {
        process.emitWarning(`memjob Memory: the cached result of ${identity.name} in '${entry}' is damaged (${(error as Error).message}); computing it again`, {
          code: 'MEMJOB_CACHE_CORRUPT',
        });
        removeEntry(entry);
        return undefined;
      }
      if (found === undefined) return undefined;
      if (options.validate !== undefined && !options.validate(found.metadata)) {
        removeEntry(entry);
        return undefined;
      }
      if (verbose > 0) log(`[Memory] ${formatTime((performance.now() - started) / 1000)}: Loading ${identity.name}...`);
      return { value: found.value as Awaited<R> };
    };

    const cached = (async (...args: unknown[]) => {
      if (location === null) return await fn(...(args as A));
      const entry = await entryOf(args);
      return lookup(entry)?.value ?? (await compute(args, entry)).value;
    }) as unknown as CachedFunction<A, Awaited<R>>;

    Object.defineProperties(cached, {
      name: { value: identity.name },
      func: { value: fn, enumerable: true },
      callAndShelve: {
        value: async (...args: unknown[]) => {
          if (location === null) return MemorizedResult.inMemory(await fn(...(args as A)));
          const entry = await entryOf(args);
          if (lookup(entry) === undefined) {
            const { value, stored } = await compute(args, entry);
            if (!stored) return MemorizedResult.inMemory(value);
          }
          return MemorizedResult.onDisk<Awaited<R>>(entry, mmapMode);
        },
      },
      checkCallInCache: {
        value: async (...args: unknown[]) => location !== null && hasEntry(await entryOf(args)),
      },
      clear: {
        value: () => {
          if (folder !== null) rmSync(folder, { recursive: true, force: true });
          checked = undefined;
        },
      },
    });
    return cached;
  }

  /** Removes every function's entries from the location (only folders memjob made: other files stay). */
  clear(): void {
    if (this.location === null) return;
    for (const entry of this.entries()) removeEntry(entry.path);
  }

  /** Every stored call: function, key, size, and when it was created and last used. */
  entries(): CacheEntry[] {
    if (this.location === null) return [];
    return listEntries(this.location).map((e) => ({
      function: e.metadata?.function ?? e.functionFolder,
      functionFolder: e.functionFolder,
      key: e.key,
      path: e.path,
      size: e.size,
      createdAt: e.createdAt,
      lastUsed: e.lastUsed,
      duration: e.metadata?.duration,
    }));
  }

  /** Removes least recently used entries until every limit holds; default limits from the constructor's `bytesLimit`. */
  reduceSize(limits: ReduceSizeLimits = {}): { removed: number; bytes: number } {
    const parsed = parseReduceLimits({ bytesLimit: this.#options.bytesLimit, ...limits }, 'memory.reduceSize()');
    return reduceEntries(this.entries(), parsed);
  }
}

/** Reads function.json; a different source hash clears the old entries, with joblib's warning. */
async function checkSource(location: string, identity: FunctionIdentity): Promise<void> {
  const folder = join(location, identity.folder);
  const sourceHash = sha256(await identity.source());
  ensureFolder(folder);
  const file = join(folder, FUNCTION_FILE);
  let previous: { id?: unknown; sourceHash?: unknown } | undefined;
  try {
    previous = JSON.parse(readFileSync(file, 'utf8')) as typeof previous;
  } catch {
    previous = undefined;
  }
  if (previous?.sourceHash === sourceHash) return;
  if (previous !== undefined) {
    process.emitWarning(`memjob Memory: function ${identity.name} (${identity.id}) has changed, clearing its cache`, {
      code: 'MEMJOB_CACHE_FUNCTION_CHANGED',
    });
    for (const entry of listEntries(location, identity.folder)) removeEntry(entry.path);
  }
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify({ id: identity.id, name: identity.name, sourceHash }), { mode: 0o600 });
  renameSync(temp, file);
}

function summarize(args: readonly unknown[]): string {
  const text = args.map((a) => describe(a)).join(', ');
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

/** joblib's format_time: '0.2s, 0.0min'. */
function formatTime(seconds: number): string {
  return `${seconds.toFixed(1)}s, ${(seconds / 60).toFixed(1)}min`;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

