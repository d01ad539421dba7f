/**
 * Task results on their way back to the parent. Threads transfer the
 * buffers of large typed arrays (no copy); child processes write large
 * arrays to a file in the run's folder that the parent reads once and
 * removes. A Memmap travels as a reference to its file; an NDArray keeps its
 * shape and order (structured clone would lose its class).
 */
import { rmSync } from 'node:fs';
import { loadSync } from '../format/load.js';
import { dumpScratchSync } from '../format/dump.js';
import type { DType, TypedArray } from '../memmap/dtype.js';
import { mappedBufferOrigin } from '../memmap/file-mapping.js';
import type { Order } from '../memmap/layout.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { openMemmapView } from '../memmap/open.js';
import { REF, memmapRef, type ArrayRef } from './array-refs.js';

type NDArrayRef = { [REF]: 'ndarray'; dtype: DType; shape: readonly number[]; order: Order; data: TypedArray };
type ResultDumpRef = { [REF]: 'result-dump'; path: string };
type ResultRef = ArrayRef | NDArrayRef | ResultDumpRef;

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
  const threshold = options.maxNbytes ?? 1024 * 1024;
  const large = (data: TypedArray) => data.byteLength > threshold && mappedBufferOrigin(data.buffer) === undefined && data.buffer instanceof ArrayBuffer;

  const walk = (item: unknown, depth: number): unknown => {
    if (typeof item !== 'object' || item === null || depth > 100) return item;
    if (item instanceof Memmap) return memmapRef(item);
    const data = item instanceof NDArray ? item.data : ArrayBuffer.isView(item) && !(item instanceof DataView) ? (item as TypedArray) : undefined;
    if (data !== undefined && large(data)) {
      if (options.resultFolder !== undefined) {
        const path = `${options.resultFolder}/${options.nextName()}`;
        dumpScratchSync(item, path);
        return { [REF]: 'result-dump', path } satisfies ResultDumpRef;
      }
      transfer.add(data.buffer as ArrayBuffer);
    }
    if (item instanceof NDArray) return { [REF]: 'ndarray', dtype: item.dtype, shape: item.shape, order: item.order, data: item.data } satisfies NDArrayRef;
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

/**
 * In the parent. A Memmap inside the run's own temp folder is copied into
 * memory (the folder is removed when the run ends); one on the caller's own
 * file is mapped again, so writes stay shared.
 */
export function unpackResult(value: unknown, runFolder: string | undefined): unknown {
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
        return new NDArray(ref.data as never, { dtype: ref.dtype, shape: ref.shape, order: ref.order });
      case 'result-dump': {
        const loaded = loadSync(ref.path);
        rmSync(ref.path, { force: true });
        return loaded;
      }
      case 'memmap': {
        const view = openMemmapView(ref);
        if (runFolder === undefined || !ref.path.startsWith(`${runFolder}/`)) return view;
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
