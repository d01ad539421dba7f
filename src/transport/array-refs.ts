/**
 * Large arrays cross a thread or process boundary as references, never as
 * bytes (joblib's _memmapping_reducer). The parent side packs a task's
 * arguments: a Memmap, or an array already backed by a file mapping, becomes
 * a reference to its own file; any other TypedArray or NDArray larger than
 * maxNbytes is dumped once per run into the run's temp folder and becomes a
 * reference to that dump. The worker side unpacks references into mapped
 * views, caching one mapping per reference for the whole run. The walk is
 * walker.ts's; the kinds of reference are ref-kinds.ts's ARGUMENT_KINDS.
 */
import { dumpScratchSync } from '../format/dump.js';
import type { LoadMmapMode } from '../format/load.js';
import type { TypedArray } from '../memmap/dtype.js';
import { NDArray } from '../memmap/ndarray.js';
import type { DumpCache } from './dump-cache.js';
import { ARGUMENT_KINDS, type ArgumentPackContext, type UnpackContext } from './ref-kinds.js';
import { isNoSpace } from './run-folders.js';
import { packValue, unpackValue } from './walker.js';

export { REF } from './walker.js';
export { fromNDArrayRef, isArrayRef, memmapRef, ndarrayRef, viewRef, type ArrayRef, type NDArrayRef } from './ref-kinds.js';

/** A folder a run writes its dumps to (a RunFolder, see temp-folder.ts). */
export interface DumpTarget {
  file(name: string): string;
}

/** Where a run's dumps go: run-folders.ts's RunFolders. */
export interface DumpFolders {
  /** The folder for the next dump, created on first use. */
  current(neededBytes: number): DumpTarget;
  /** The next folder after `failed` ran out of space; throws a clear ENOSPC MemjobError when there is none. */
  fallback(failed: DumpTarget, neededBytes: number, cause: unknown): DumpTarget;
}

export type PackOptions = {
  /** Arrays larger than this many bytes are dumped and sent by reference; null: never. */
  maxNbytes: number | null;
  /** How workers map dumped arrays. */
  mmapMode: LoadMmapMode;
  /** Dumps kept from earlier runs (a Parallel's dump cache): reused when they still match the array. */
  dumpCache?: DumpCache;
} & (
  | {
      /** The run's temp folders, with a fallback when one is full. */
      folders: DumpFolders;
    }
  | {
      /** One folder, created on first use; a full file system is an error. */
      folder: () => DumpTarget;
    }
);

function asFolders(options: PackOptions): DumpFolders {
  if ('folders' in options) return options.folders;
  const { folder } = options;
  return {
    current: () => folder(),
    fallback: (_failed, _neededBytes, cause) => {
      throw cause;
    },
  };
}

/**
 * Parent side, one per run: identical arrays are dumped once for all tasks
 * (deduplicated by identity), as joblib does within one Parallel call.
 */
export class ArgumentPacker {
  readonly #folders: DumpFolders;
  readonly #context: ArgumentPackContext;
  readonly #cache: DumpCache | undefined;
  #counter = 0;

  constructor(options: PackOptions) {
    this.#folders = asFolders(options);
    this.#cache = options.dumpCache;
    this.#context = {
      maxNbytes: options.maxNbytes,
      mmapMode: options.mmapMode,
      dumps: new Map(),
      writeDump: (value, byteLength) => this.#dump(value, byteLength),
    };
  }

  /** A structured-cloneable copy of `value` with references in place of large arrays (containers copied only where something changed; `value` is never mutated). */
  pack(value: unknown): unknown {
    return packValue(value, ARGUMENT_KINDS, this.#context, 'arguments');
  }

  /** How many arrays this run has dumped. */
  get dumpCount(): number {
    return this.#context.dumps.size;
  }

  /**
   * Dumps `value` into the run's folder and returns the file's path. A full
   * file system (ENOSPC) moves on to the next candidate root: dumpScratchSync
   * has already removed its partial file, and fallback() throws a clear
   * error when no root is left, so this loop always ends.
   */
  #dump(value: object, byteLength: number): string {
    const data = value instanceof NDArray ? (value.data as TypedArray) : (value as TypedArray);
    const cache = this.#cache;
    const cached = cache?.lookup(value, data);
    if (cached !== undefined) return cached;
    const folders = this.#folders;
    let folder = folders.current(byteLength);
    for (;;) {
      const path = folder.file(`arg-${cache?.nextId() ?? this.#counter++}.mjdump`);
      try {
        dumpScratchSync(value, path);
        cache?.record(value, data, path);
        return path;
      } catch (error) {
        if (!isNoSpace(error)) throw error;
        folder = folders.fallback(folder, byteLength, error);
      }
    }
  }
}

/** What one reference was unpacked to, the mappings behind it, and its file. */
interface Opened {
  value: unknown;
  mappings: { close(): void }[];
  path: unknown;
}

/**
 * Worker side, one per owner (a Parallel's or a Pool's transport): turns
 * references back into mapped arrays, one mapping per reference. When a run
 * ends its mappings are released, but those of the dumps the parent keeps
 * for the next run (a Parallel's dump cache sends them again: no new mapping).
 */
export class ArgumentUnpacker {
  readonly #opened = new Map<string, Opened>();
  /** Mappings made while a reference is being opened: they belong to it. */
  #opening: { close(): void }[] | undefined;
  /** Mappings made outside any reference (none today): released with the run. */
  #loose: { close(): void }[] = [];
  readonly #context: UnpackContext = {
    open: <T>(ref: object, open: () => T): T => {
      const key = JSON.stringify(ref);
      const known = this.#opened.get(key);
      if (known !== undefined) return known.value as T;
      const outer = this.#opening;
      const mappings: { close(): void }[] = [];
      this.#opening = mappings;
      try {
        const value = open();
        this.#opened.set(key, { value, mappings, path: (ref as { path?: unknown }).path });
        return value;
      } catch (error) {
        for (const mapping of mappings) mapping.close();
        throw error;
      } finally {
        this.#opening = outer;
      }
    },
    keep: (mapping) => {
      (this.#opening ?? this.#loose).push(mapping);
      return mapping;
    },
    // The worker maps the caller's files and the run's dumps alike: nothing to copy.
    ownedByRun: () => false,
  };

  /** `value` with its references replaced by what they stand for (containers copied only where something changed). */
  unpack(value: unknown): unknown {
    return unpackValue(value, ARGUMENT_KINDS, this.#context, 'arguments');
  }

  /**
   * A run ended: unmaps what it mapped (arrays a task kept read as empty
   * afterwards instead of pinning deleted files), but the dumps in `keep`.
   */
  endRun(keep: ReadonlySet<string> = new Set()): void {
    for (const [key, opened] of this.#opened) {
      if (typeof opened.path === 'string' && keep.has(opened.path)) continue;
      for (const mapping of opened.mappings) mapping.close();
      this.#opened.delete(key);
    }
    for (const mapping of this.#loose.splice(0)) mapping.close();
  }

  /** Unmaps everything. */
  close(): void {
    for (const opened of this.#opened.values()) for (const mapping of opened.mappings) mapping.close();
    this.#opened.clear();
    for (const mapping of this.#loose.splice(0)) mapping.close();
  }
}
