/**
 * Task results on their way back to the parent. Threads transfer the
 * buffers of large typed arrays (no copy); child processes write large
 * arrays to a file in the run's folder that the parent reads once and
 * removes. A Memmap travels as a reference to its file; an NDArray keeps its
 * shape and order (structured clone would lose its class).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadSync } from '../format/load.js';
import { dumpScratchSync } from '../format/dump.js';
import type { TypedArray } from '../memmap/dtype.js';
import { mappedBufferOrigin } from '../memmap/file-mapping.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { openMemmapView } from '../memmap/open.js';
import { REF, fromNDArrayRef, memmapRef, ndarrayRef, type ArrayRef } from './array-refs.js';
import { DEFAULT_MAX_NBYTES } from './options.js';
import { isNoSpace } from './run-folders.js';

type ResultDumpRef = { [REF]: 'result-dump'; path: string };
type ResultRef = ArrayRef | ResultDumpRef;

export interface ResultPackOptions {
  maxNbytes: number | null;
  /** Child processes: folder for large results. Threads: undefined, and buffers are transferred. */
  resultFolder: string | undefined;
  nextName: () => string;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** In the worker: the value to post, and the buffers to transfer with it. */
export function packResult(value: unknown, options: ResultPackOptions): { value: unknown; transfer: ArrayBuffer[] } {
  const transfer = new Set<ArrayBuffer>();
  const threshold = options.maxNbytes ?? DEFAULT_MAX_NBYTES;
  const large = (data: TypedArray) => data.byteLength > threshold && mappedBufferOrigin(data.buffer) === undefined && data.buffer instanceof ArrayBuffer;

  const walk = (item: unknown, depth: number): unknown => {
    if (typeof item !== 'object' || item === null || depth > 100) return item;
    if (item instanceof Memmap) return memmapRef(item);
    const data = item instanceof NDArray ? item.data : ArrayBuffer.isView(item) && !(item instanceof DataView) ? (item as TypedArray) : undefined;
    if (data !== undefined && large(data)) {
      if (options.resultFolder !== undefined) {
        const ref = dumpResult(item, options);
        if (ref !== undefined) return ref;
        // No room for the file: the array goes through the IPC channel instead (one more copy, but it arrives).
      } else {
        transfer.add(data.buffer as ArrayBuffer);
      }
    }
    if (item instanceof NDArray) return ndarrayRef(item);
    if (Array.isArray(item)) return item.some((x) => typeof x === 'object' && x !== null) ? item.map((x) => walk(x, depth + 1)) : item;
    if (item instanceof Map) return new Map([...item].map(([k, v]) => [k, walk(v, depth + 1)]));
    if (isPlainObject(item)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(item)) out[key] = walk(item[key], depth + 1);
      return out;
    }
    return item;
  };
  return { value: walk(value, 0), transfer: [...transfer] };
}

/** Writes a large result array to the result folder; undefined when the file system is full (dumpScratchSync removed its partial file). */
function dumpResult(item: object, options: ResultPackOptions): ResultDumpRef | undefined {
  const path = join(options.resultFolder!, options.nextName());
  try {
    dumpScratchSync(item, path);
  } catch (error) {
    if (isNoSpace(error)) return undefined;
    throw error;
  }
  return { [REF]: 'result-dump', path };
}

/**
 * In the parent. A Memmap inside the run's own temp folders (`ownedByRun`)
 * is copied into memory (those folders are removed when the run ends); one
 * on the caller's own file is mapped again, so writes stay shared.
 */
export function unpackResult(value: unknown, ownedByRun: (path: string) => boolean): unknown {
  const walk = (item: unknown, depth: number): unknown => {
    if (typeof item !== 'object' || item === null || depth > 100 || ArrayBuffer.isView(item)) return item;
    if (Object.hasOwn(item, REF)) return resolve(item as ResultRef);
    if (Array.isArray(item)) {
      for (let i = 0; i < item.length; i++) item[i] = walk(item[i], depth + 1);
    } else if (item instanceof Map) {
      for (const [k, v] of item) item.set(k, walk(v, depth + 1));
    } else if (isPlainObject(item)) {
      for (const key of Object.keys(item)) item[key] = walk(item[key], depth + 1);
    }
    return item;
  };
  const resolve = (ref: ResultRef): unknown => {
    switch (ref[REF]) {
      case 'ndarray':
        return fromNDArrayRef(ref);
      case 'result-dump': {
        const loaded = loadSync(ref.path);
        rmSync(ref.path, { force: true });
        return loaded;
      }
      case 'memmap': {
        const view = openMemmapView(ref);
        if (!ownedByRun(ref.path)) return view;
        const copy = new NDArray(view.toArray() as never, { dtype: view.dtype, shape: view.shape });
        view.close();
        return copy;
      }
      default:
        return ref;
    }
  };
  return walk(value, 0);
}
