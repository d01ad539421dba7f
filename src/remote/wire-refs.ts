/**
 * Values across machines. Arguments and results are walked (transport's
 * walker) before they are signed and sent: an array larger than maxNbytes
 * becomes a blob (dumped to a local file, moved through the broker once, and
 * mapped on the other side: blob-store.ts), a smaller NDArray or Memmap
 * travels in the body with its shape, a Memmap on a folder every machine
 * shares (sharedFolder) travels as its path. Lock, Value, Queue and the like
 * are one machine's shared memory and cannot cross.
 *
 * Wire references carry a random token of their run, as local references
 * carry the process tree's (walker.ts): data that merely looks like one stays
 * data. On a worker they become the local references its pool understands
 * (dump, ndarray, memmap); on the parent, the values they stand for.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { sep } from 'node:path';
import { ErrorCodes, MemjobError } from '../errors.js';
import { loadSync, type LoadMmapMode } from '../format/load.js';
import type { DType, TypedArray } from '../memmap/dtype.js';
import type { Order } from '../memmap/layout.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { openMemmapView } from '../memmap/open.js';
import { isSharedObject } from '../transport/shared-objects.js';
import { isPlainObject, makeRef, packValue, type RefKind } from '../transport/walker.js';

const WIRE = '__memjob_wire__';

type WireRef =
  | { [WIRE]: string; kind: 'blob'; id: number }
  | { [WIRE]: string; kind: 'ndarray'; dtype: DType; shape: readonly number[]; order: Order; data: TypedArray }
  | { [WIRE]: string; kind: 'memmap'; path: string; dtype: DType; shape: readonly number[]; strides: readonly number[]; offset: number; order: Order };

/** A new run's wire token. */
export function wireToken(): string {
  return randomBytes(16).toString('hex');
}

function wireKind(value: object, token: string): WireRef['kind'] | undefined {
  if (!isPlainObject(value) || value[WIRE] !== token) return undefined;
  const kind = value['kind'];
  return kind === 'blob' || kind === 'ndarray' || kind === 'memmap' ? kind : undefined;
}

export interface WirePackContext {
  token: string;
  /** Arrays larger than this become blobs; null: never. */
  maxNbytes: number | null;
  /** A folder every machine mounts at the same path: Memmaps in it travel as paths. */
  sharedFolder: string | undefined;
  /** Dumps `value` to a local file for upload and returns its blob id (the same array object: the same id). */
  blob(value: object, byteLength: number): number;
  /** 'arguments' or 'result': for messages. */
  where: string;
}

function arrayBytes(value: object): number | undefined {
  if (value instanceof Memmap || value instanceof NDArray) return value.nbytes;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value.byteLength;
  return undefined;
}

const packKinds: readonly RefKind<WirePackContext, never>[] = [
  {
    name: 'shared',
    test: isSharedObject,
    pack(_value, context) {
      throw new MemjobError(
        ErrorCodes.UNSUPPORTED_VALUE,
        `${context.where}: expected values that can cross to another machine, received a Lock, Value, SharedArray or Queue: those are shared memory of one machine; use them with the threads or processes backend`,
      );
    },
  },
  {
    name: 'memmap',
    test: (value) => value instanceof Memmap,
    pack(value, context) {
      const m = value as Memmap;
      const shared = context.sharedFolder;
      if (shared === undefined || !m.filename.startsWith(shared.endsWith(sep) ? shared : shared + sep)) return undefined;
      return { [WIRE]: context.token, kind: 'memmap', path: m.filename, dtype: m.dtype, shape: m.shape, strides: m.strides, offset: m.offset, order: m.order };
    },
  },
  {
    name: 'blob',
    test: (value) => arrayBytes(value) !== undefined,
    pack(value, context) {
      const bytes = arrayBytes(value)!;
      if (context.maxNbytes === null || bytes <= context.maxNbytes) return undefined;
      return { [WIRE]: context.token, kind: 'blob', id: context.blob(value, bytes) };
    },
  },
  {
    name: 'ndarray',
    test: (value) => value instanceof NDArray || value instanceof Memmap,
    pack(value, context) {
      const a = value as NDArray | Memmap;
      // A small Memmap is copied into the body: its file is this machine's.
      const data = (a instanceof Memmap ? a.toArray() : a.data) as TypedArray;
      return { [WIRE]: context.token, kind: 'ndarray', dtype: a.dtype, shape: a.shape, order: a instanceof Memmap ? 'C' : a.order, data };
    },
  },
];

/** Arguments or results on their way to the broker (containers copied only where something changed). */
export function packForWire(value: unknown, context: WirePackContext): unknown {
  return packValue(value, packKinds, context, context.where);
}

/** Replaces every wire reference of run `token` inside `value` with `replace(ref)`. */
function replaceWireRefs(value: unknown, token: string, where: string, replace: (ref: WireRef) => unknown): unknown {
  const kinds: RefKind<undefined, never>[] = [{ name: 'wire', test: (item) => wireKind(item, token) !== undefined, pack: (item) => replace(item as WireRef) }];
  return packValue(value, kinds, undefined, where);
}

/** On a worker: wire references become the local references its pool maps (a blob: a dump file it downloaded). */
export function toLocalRefs(value: unknown, token: string, context: { blobPath(id: number): string; mode: LoadMmapMode }): unknown {
  return replaceWireRefs(value, token, 'arguments', (ref) => {
    switch (ref.kind) {
      case 'blob':
        return makeRef('dump', { path: context.blobPath(ref.id), mode: context.mode });
      case 'ndarray':
        return makeRef('ndarray', { dtype: ref.dtype, shape: ref.shape, order: ref.order, data: ref.data });
      case 'memmap':
        return makeRef('memmap', { path: ref.path, mode: 'r' as const, dtype: ref.dtype, shape: ref.shape, strides: ref.strides, offset: ref.offset, order: ref.order });
    }
  });
}

/**
 * On the parent: wire references become values. A blob's file (downloaded
 * into the run's folder) is loaded into memory and removed, as a child
 * process's result file is; a shared-folder Memmap is mapped again.
 */
export function fromWire(value: unknown, token: string, context: { blobPath(id: number): string }): unknown {
  const loaded = new Map<number, unknown>();
  return replaceWireRefs(value, token, 'result', (ref) => {
    switch (ref.kind) {
      case 'blob': {
        if (!loaded.has(ref.id)) {
          const path = context.blobPath(ref.id);
          loaded.set(ref.id, loadSync(path));
          rmSync(path, { force: true });
        }
        return loaded.get(ref.id);
      }
      case 'ndarray':
        return new NDArray(ref.data as never, { dtype: ref.dtype, shape: ref.shape, order: ref.order });
      case 'memmap':
        return openMemmapView({ path: ref.path, mode: 'r', dtype: ref.dtype, shape: ref.shape, strides: ref.strides, offset: ref.offset, order: ref.order });
    }
  });
}
