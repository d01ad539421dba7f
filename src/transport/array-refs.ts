/**
 * Large arrays cross a thread or process boundary as references, never as
 * bytes (joblib's _memmapping_reducer). The parent side packs a task's
 * arguments: a Memmap, or an array already backed by a file mapping, becomes
 * a reference to its own file; any other TypedArray or NDArray larger than
 * maxNbytes is dumped once per run into the run's temp folder and becomes a
 * reference to that dump. The worker side unpacks references into mapped
 * views, caching one mapping per reference for the whole run.
 */
import type { DType, TypedArray } from '../memmap/dtype.js';
import { FileMapping, mappedBufferOrigin } from '../memmap/file-mapping.js';
import { Memmap, type MemmapMode } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { openMemmapView, type MemmapLayoutRef } from '../memmap/open.js';
import { dumpScratchSync } from '../format/dump.js';
import { loadMappedSync, type LoadMmapMode } from '../format/load.js';
import type { Order } from '../memmap/layout.js';
import { closeSync, openSync } from 'node:fs';
import { isNoSpace } from './run-folders.js';
import { packShared, reviveShared, type SharedRef } from '../multiprocessing/kinds.js';

/** The key that marks a reference inside structured-cloned data. */
export const REF = '__memjob_ref__';

type MemmapRef = { [REF]: 'memmap' } & MemmapLayoutRef;
type DumpRef = { [REF]: 'dump'; path: string; mode: LoadMmapMode };
/** A TypedArray or NDArray whose bytes already live in a mapped file region. */
type ViewRef = {
  [REF]: 'view';
  path: string;
  mode: MemmapMode;
  fileOffset: number;
  byteLength: number;
  arrayType: string;
  nd?: { dtype: DType; shape: readonly number[]; order: Order };
};
/** An NDArray in ordinary memory, in parts: structured clone would copy it as a plain object and lose its class. */
export type NDArrayRef = { [REF]: 'ndarray'; dtype: DType; shape: readonly number[]; order: Order; data: TypedArray };
/** A Lock, Value, SharedArray or Queue: a handle on the same shared file in the worker. */
type SharedObjectRef = { [REF]: 'shared'; ref: SharedRef };
export type ArrayRef = MemmapRef | DumpRef | ViewRef | NDArrayRef | SharedObjectRef;

export function ndarrayRef(value: NDArray): NDArrayRef {
  return { [REF]: 'ndarray', dtype: value.dtype, shape: value.shape, order: value.order, data: value.data };
}

export function fromNDArrayRef(ref: NDArrayRef): NDArray {
  return new NDArray(ref.data as never, { dtype: ref.dtype, shape: ref.shape, order: ref.order });
}

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

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Parent side, one per run: identical arrays are dumped once for all tasks
 * (deduplicated by identity), as joblib does within one Parallel call.
 */
export class ArgumentPacker {
  readonly #maxNbytes: number | null;
  readonly #mmapMode: LoadMmapMode;
  readonly #folders: DumpFolders;
  readonly #dumped = new Map<object, DumpRef>();
  #counter = 0;

  constructor(options: PackOptions) {
    this.#maxNbytes = options.maxNbytes;
    this.#mmapMode = options.mmapMode;
    this.#folders = asFolders(options);
  }

  /** A structured-cloneable copy of `value` with references in place of large arrays (shared structure kept when nothing changes). */
  pack(value: unknown): unknown {
    return this.#walk(value, new Map());
  }

  /** How many arrays this run has dumped. */
  get dumpCount(): number {
    return this.#dumped.size;
  }

  #walk(value: unknown, seen: Map<object, unknown>): unknown {
    if (typeof value !== 'object' || value === null) return value;
    const shared = packShared(value);
    if (shared !== undefined) return { [REF]: 'shared', ref: shared } satisfies SharedObjectRef;
    const ref = this.#arrayRef(value);
    if (ref !== undefined) return ref;
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
    const known = seen.get(value);
    if (known !== undefined) return known;
    if (Array.isArray(value)) {
      seen.set(value, value);
      let copy: unknown[] | undefined;
      value.forEach((item, i) => {
        const packed = this.#walk(item, seen);
        if (packed !== item) (copy ??= value.slice())[i] = packed;
      });
      if (copy !== undefined) seen.set(value, copy);
      return copy ?? value;
    }
    if (value instanceof Map) {
      seen.set(value, value);
      let changed = false;
      const entries = [...value].map(([k, v]) => {
        const packed = [this.#walk(k, seen), this.#walk(v, seen)] as const;
        if (packed[0] !== k || packed[1] !== v) changed = true;
        return packed;
      });
      const result = changed ? new Map(entries) : value;
      seen.set(value, result);
      return result;
    }
    if (value instanceof Set) {
      seen.set(value, value);
      const original = [...value];
      const items = original.map((item) => this.#walk(item, seen));
      const result = items.some((item, i) => item !== original[i]) ? new Set(items) : value;
      seen.set(value, result);
      return result;
    }
    if (isPlainObject(value)) {
      seen.set(value, value);
      let copy: Record<string, unknown> | undefined;
      for (const key of Object.keys(value)) {
        const packed = this.#walk(value[key], seen);
        if (packed !== value[key]) (copy ??= { ...value })[key] = packed;
      }
      if (copy !== undefined) seen.set(value, copy);
      return copy ?? value;
    }
    return value; // left to structured clone, which reports what it cannot copy
  }

  #arrayRef(value: object): ArrayRef | undefined {
    if (value instanceof Memmap) return memmapRef(value);
    const data = value instanceof NDArray ? value.data : ArrayBuffer.isView(value) && !(value instanceof DataView) ? (value as TypedArray) : undefined;
    if (data === undefined) return undefined;
    const nd = value instanceof NDArray ? { dtype: value.dtype, shape: value.shape, order: value.order } : undefined;
    const mapped = viewRef(data, nd);
    if (mapped !== undefined) return mapped;
    const maxNbytes = this.#maxNbytes;
    if (maxNbytes === null || data.byteLength <= maxNbytes) return value instanceof NDArray ? ndarrayRef(value) : undefined;
    let ref = this.#dumped.get(value);
    if (ref === undefined) {
      ref = { [REF]: 'dump', path: this.#dump(value, data.byteLength), mode: this.#mmapMode };
      this.#dumped.set(value, ref);
    }
    return ref;
  }

  /**
   * Dumps `value` into the run's folder and returns the file's path. A full
   * file system (ENOSPC) moves on to the next candidate root: dumpScratchSync
   * has already removed its partial file, and fallback() throws a clear
   * error when no root is left, so this loop always ends.
   */
  #dump(value: object, byteLength: number): string {
    const folders = this.#folders;
    let folder = folders.current(byteLength);
    for (;;) {
      const path = folder.file(`arg-${this.#counter++}.mjdump`);
      try {
        dumpScratchSync(value, path);
        return path;
      } catch (error) {
        if (!isNoSpace(error)) throw error;
        folder = folders.fallback(folder, byteLength, error);
      }
    }
  }
}

/** A Memmap travels as its file and layout; 'w+' becomes 'r+' so a worker never truncates. */
export function memmapRef(m: Memmap): MemmapRef {
  return {
    [REF]: 'memmap',
    path: m.filename,
    mode: m.mode === 'w+' ? 'r+' : m.mode,
    dtype: m.dtype,
    shape: m.shape,
    strides: m.strides,
    offset: m.offset,
    order: m.order,
  };
}

/** A reference to the file region an already-mapped array views, or undefined for ordinary memory. */
export function viewRef(data: TypedArray, nd?: ViewRef['nd']): ViewRef | undefined {
  const origin = mappedBufferOrigin(data.buffer);
  if (origin === undefined || data.byteLength === 0) return undefined;
  const ref: ViewRef = {
    [REF]: 'view',
    path: origin.path,
    mode: origin.shared ? 'r+' : 'r',
    fileOffset: origin.fileOffset + data.byteOffset,
    byteLength: data.byteLength,
    arrayType: Buffer.isBuffer(data) ? 'Buffer' : data.constructor.name,
  };
  if (nd !== undefined) ref.nd = nd;
  return ref;
}

export function isArrayRef(value: unknown): value is ArrayRef {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, REF);
}

const arrayTypes: Record<string, new (buffer: ArrayBuffer, byteOffset: number, length: number) => TypedArray> = {
  Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array,
  BigInt64Array, BigUint64Array, Float32Array, Float64Array,
} as never;

/** Worker side, one per run: turns references back into mapped arrays, one mapping per reference. */
export class ArgumentUnpacker {
  readonly #cache = new Map<string, unknown>();
  readonly #mappings: { close(): void }[] = [];

  unpack(value: unknown): unknown {
    return this.#walk(value, new Map());
  }

  /** Unmaps everything this run mapped: arrays a task kept read as empty afterwards instead of pinning deleted files. */
  close(): void {
    for (const mapping of this.#mappings.splice(0)) mapping.close();
    this.#cache.clear();
  }

  #walk(value: unknown, seen: Map<object, unknown>): unknown {
    if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
    if (isArrayRef(value)) return this.#resolve(value);
    const known = seen.get(value);
    if (known !== undefined) return known;
    seen.set(value, value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.#walk(value[i], seen);
    } else if (value instanceof Map) {
      for (const [k, v] of value) value.set(k, this.#walk(v, seen));
    } else if (isPlainObject(value)) {
      for (const key of Object.keys(value)) value[key] = this.#walk(value[key], seen);
    }
    return value;
  }

  #resolve(ref: ArrayRef): unknown {
    if (ref[REF] === 'ndarray') return fromNDArrayRef(ref); // its own copy: nothing to cache
    if (ref[REF] === 'shared') return reviveShared(ref.ref); // mapped once per file per thread, for as long as the thread lives
    const key = JSON.stringify(ref);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    let result: unknown;
    if (ref[REF] === 'memmap') {
      const view = openMemmapView(ref);
      this.#mappings.push(view);
      result = view;
    } else if (ref[REF] === 'dump') {
      const { value, mappings } = loadMappedSync(ref.path, ref.mode);
      this.#mappings.push(...mappings);
      result = value;
    } else {
      result = this.#mapView(ref);
    }
    this.#cache.set(key, result);
    return result;
  }

  #mapView(ref: ViewRef): unknown {
    const fd = openSync(ref.path, ref.mode === 'r+' ? 'r+' : 'r');
    let mapping: FileMapping;
    try {
      mapping = new FileMapping(fd, ref.path, ref.fileOffset, ref.byteLength, ref.mode === 'r+');
    } finally {
      closeSync(fd);
    }
    this.#mappings.push(mapping);
    const buffer = mapping.view(ref.fileOffset, ref.byteLength);
    if (ref.arrayType === 'Buffer') return Buffer.from(buffer);
    const ArrayType = arrayTypes[ref.arrayType] ?? Uint8Array;
    const data = new ArrayType(buffer, 0, ref.byteLength / (ArrayType as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT);
    if (ref.nd === undefined) return data;
    return new NDArray(data as never, { dtype: ref.nd.dtype, shape: ref.nd.shape, order: ref.nd.order });
  }
}
