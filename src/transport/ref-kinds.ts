/**
 * The kinds of reference that stand for a value across a thread or process
 * boundary, and the two tables the walker (walker.ts) applies: one for task
 * arguments and Queue items (parent to worker), one for results (worker to
 * parent). Within a table the first kind whose test() passes and whose
 * pack() gives something wins. A new kind of reference is one entry here.
 */
import { closeSync, constants as fsConstants, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dumpScratchSync } from '../format/dump.js';
import { loadMappedSync, loadSync, type LoadMmapMode } from '../format/load.js';
import { arrayTypeNamed, type DType, type TypedArray } from '../memmap/dtype.js';
import { FileMapping, mappedBufferOrigin } from '../memmap/file-mapping.js';
import type { Order } from '../memmap/layout.js';
import { Memmap, type MemmapMode } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { openMemmapView, type MemmapLayoutRef } from '../memmap/open.js';
import { ErrorCodes, MemjobError } from '../errors.js';
import { openRegularFile } from '../system/regular-file.js';
import { isNoSpace } from './run-folders.js';
import { isSharedObject, packShared, reviveShared, type SharedRef } from './shared-objects.js';
import { makeRef, refName, type Ref, type RefKind } from './walker.js';

/** A Memmap: its file and layout. */
export type MemmapRef = Ref<'memmap'> & MemmapLayoutRef;
/** An array the parent dumped into the run's folder. */
export type DumpRef = Ref<'dump'> & { path: string; mode: LoadMmapMode };
/** A TypedArray or NDArray whose bytes already live in a mapped file region. */
export type ViewRef = Ref<'view'> & {
  path: string;
  mode: MemmapMode;
  fileOffset: number;
  byteLength: number;
  arrayType: string;
  nd?: { dtype: DType; shape: readonly number[]; order: Order };
};
/** An NDArray in ordinary memory, in parts: structured clone would copy it as a plain object and lose its class. */
export type NDArrayRef = Ref<'ndarray'> & { dtype: DType; shape: readonly number[]; order: Order; data: TypedArray };
/** A Lock, Value, SharedArray or Queue: a handle on the same shared file on the other side. */
export type SharedObjectRef = Ref<'shared'> & { ref: SharedRef };
/** A large result a child process wrote to the run's folder; the parent loads it once and removes it. */
export type ResultDumpRef = Ref<'result-dump'> & { path: string };
export type ArrayRef = MemmapRef | DumpRef | ViewRef | NDArrayRef | SharedObjectRef;

/** Packing arguments (parent side, one per run or per Queue item). */
export interface ArgumentPackContext {
  /** Arrays larger than this many bytes are dumped; null: never. */
  maxNbytes: number | null;
  mmapMode: LoadMmapMode;
  /** What this run dumped, by identity: an array is dumped once for all its tasks. */
  dumps: Map<object, DumpRef>;
  /** Writes `value` into the run's folder and returns the file's path. */
  writeDump(value: object, byteLength: number): string;
}

/** Packing a result (worker side). */
export interface ResultPackContext {
  /** Arrays larger than this many bytes leave by file (processes) or by transfer (threads). */
  threshold: number;
  /** Child processes: the folder for large results. Threads: undefined, and buffers are transferred. */
  resultFolder: string | undefined;
  nextName(): string;
  /** The buffers to transfer with the message. */
  transfer: Set<ArrayBuffer>;
}

/** Unpacking, on either side. */
export interface UnpackContext {
  /** Opens what `ref` stands for, once per equal reference (arguments: once per run, so a worker maps each file once). */
  open<T>(ref: Ref, open: () => T): T;
  /** A mapping to unmap when the run ends (arguments); results hand theirs to the caller. */
  keep<T extends { close(): void }>(mapping: T): T;
  /** A path inside the run's own temp folders, which go when the run ends: a Memmap there comes back as a copy. */
  ownedByRun(path: string): boolean;
}

/** A Memmap travels as its file and layout; 'w+' becomes 'r+' so a worker never truncates. */
export function memmapRef(m: Memmap): MemmapRef {
  return makeRef('memmap', {
    path: m.filename,
    mode: m.mode === 'w+' ? 'r+' : m.mode,
    dtype: m.dtype,
    shape: m.shape,
    strides: m.strides,
    offset: m.offset,
    order: m.order,
  });
}

/** A reference to the file region an already-mapped array views, or undefined for ordinary memory. */
export function viewRef(data: TypedArray, nd?: ViewRef['nd']): ViewRef | undefined {
  const origin = mappedBufferOrigin(data.buffer);
  if (origin === undefined || data.byteLength === 0) return undefined;
  const ref: ViewRef = makeRef('view', {
    path: origin.path,
    mode: origin.shared ? ('r+' as const) : ('r' as const),
    fileOffset: origin.fileOffset + data.byteOffset,
    byteLength: data.byteLength,
    arrayType: Buffer.isBuffer(data) ? 'Buffer' : data.constructor.name,
  });
  if (nd !== undefined) ref.nd = nd;
  return ref;
}

export function ndarrayRef(value: NDArray): NDArrayRef {
  return makeRef('ndarray', { dtype: value.dtype, shape: value.shape, order: value.order, data: value.data as TypedArray });
}

export function fromNDArrayRef(ref: NDArrayRef): NDArray {
  return new NDArray(ref.data as never, { dtype: ref.dtype, shape: ref.shape, order: ref.order });
}

export function isArrayRef(value: unknown): value is ArrayRef {
  return refName(value) !== undefined;
}

/** The elements of a TypedArray or NDArray (not a DataView: it has no element type), else undefined. */
function arrayData(value: object): TypedArray | undefined {
  if (value instanceof NDArray) return value.data as TypedArray;
  return ArrayBuffer.isView(value) && !(value instanceof DataView) ? (value as TypedArray) : undefined;
}

const isArray = (value: object): boolean => arrayData(value) !== undefined;

/** Large, in ordinary memory, and transferable (a SharedArrayBuffer or a mapped buffer is neither copied cheaply nor moved). */
function isLargeResult(data: TypedArray, context: ResultPackContext): boolean {
  return data.byteLength > context.threshold && mappedBufferOrigin(data.buffer) === undefined && data.buffer instanceof ArrayBuffer;
}

export const sharedKind: RefKind<unknown, unknown> = {
  name: 'shared',
  test: isSharedObject,
  pack: (value) => makeRef('shared', { ref: packShared(value)! }),
  // Mapped once per file per thread (multiprocessing/shared-ref.ts), for as long as the thread lives.
  unpack: (ref) => reviveShared((ref as SharedObjectRef).ref),
};

export const memmapKind: RefKind<unknown, UnpackContext> = {
  name: 'memmap',
  test: (value) => value instanceof Memmap,
  pack: (value) => memmapRef(value as Memmap),
  unpack: (ref, context) =>
    context.open(ref, () => {
      const { path } = ref as MemmapRef;
      const view = openMemmapView(ref as MemmapRef);
      if (!context.ownedByRun(path)) return context.keep(view);
      const copy = new NDArray(view.toArray() as never, { dtype: view.dtype, shape: view.shape });
      view.close();
      return copy;
    }),
};

export const viewKind: RefKind<unknown, UnpackContext> = {
  name: 'view',
  test: isArray,
  pack: (value) => viewRef(arrayData(value)!, value instanceof NDArray ? { dtype: value.dtype, shape: value.shape, order: value.order } : undefined),
  unpack: (ref, context) => context.open(ref, () => mapView(ref as ViewRef, context)),
};

export const dumpKind: RefKind<ArgumentPackContext, UnpackContext> = {
  name: 'dump',
  test: isArray,
  pack(value, context) {
    const { byteLength } = arrayData(value)!;
    if (context.maxNbytes === null || byteLength <= context.maxNbytes) return undefined;
    let ref = context.dumps.get(value);
    if (ref === undefined) context.dumps.set(value, (ref = makeRef('dump', { path: context.writeDump(value, byteLength), mode: context.mmapMode })));
    return ref;
  },
  unpack: (ref, context) =>
    context.open(ref, () => {
      const { path, mode } = ref as DumpRef;
      const { value, mappings } = loadMappedSync(path, mode);
      for (const mapping of mappings) context.keep(mapping);
      return value;
    }),
};

export const ndarrayKind: RefKind<unknown, unknown> = {
  name: 'ndarray',
  test: (value) => value instanceof NDArray,
  pack: (value) => ndarrayRef(value as NDArray),
  unpack: (ref) => fromNDArrayRef(ref as NDArrayRef), // its own copy: nothing to cache
};

export const resultDumpKind: RefKind<ResultPackContext, UnpackContext> = {
  name: 'result-dump',
  test: isArray,
  pack(value, context) {
    if (context.resultFolder === undefined || !isLargeResult(arrayData(value)!, context)) return undefined;
    const path = join(context.resultFolder, context.nextName());
    try {
      dumpScratchSync(value, path);
    } catch (error) {
      // No room for the file (dumpScratchSync removed its partial file): the array goes through
      // the IPC channel instead, by the kinds after this one (one more copy, but it arrives).
      if (isNoSpace(error)) return undefined;
      throw error;
    }
    return makeRef('result-dump', { path });
  },
  unpack: (ref, context) =>
    context.open(ref, () => {
      const { path } = ref as ResultDumpRef;
      // Loaded, then deleted: only ever a file in the run's own folder (defence in depth: the token already proves memjob made it).
      if (typeof path !== 'string' || !context.ownedByRun(path)) {
        throw new MemjobError(ErrorCodes.INTERNAL, `result: a result file outside the run's temp folder was refused (${JSON.stringify(String(path).slice(0, 200))})`);
      }
      const loaded = loadSync(path);
      rmSync(path, { force: true });
      return loaded;
    }),
};

export const transferKind: RefKind<ResultPackContext, unknown> = {
  name: 'transfer',
  test: isArray,
  pack(value, context) {
    const data = arrayData(value)!;
    if (context.resultFolder !== undefined || !isLargeResult(data, context)) return undefined;
    context.transfer.add(data.buffer as ArrayBuffer);
    return value instanceof NDArray ? ndarrayRef(value) : value;
  },
};

/** Parent to worker: task arguments and Queue items. */
export const ARGUMENT_KINDS: readonly RefKind<ArgumentPackContext, UnpackContext>[] = [sharedKind, memmapKind, viewKind, dumpKind, ndarrayKind];
/** Worker to parent: task results. */
export const RESULT_KINDS: readonly RefKind<ResultPackContext, UnpackContext>[] = [memmapKind, resultDumpKind, transferKind, ndarrayKind];

function mapView(ref: ViewRef, context: UnpackContext): unknown {
  const { fd, size } = openRegularFile(ref.path, ref.mode === 'r+' ? fsConstants.O_RDWR : fsConstants.O_RDONLY, 'view');
  let mapping: FileMapping;
  try {
    // A region past the end of the file would be SIGBUS on first touch: the file may have shrunk since it was sent.
    if (!(Number.isSafeInteger(ref.fileOffset) && Number.isSafeInteger(ref.byteLength) && ref.fileOffset >= 0 && ref.byteLength >= 0 && ref.fileOffset + ref.byteLength <= size)) {
      throw new MemjobError(
        ErrorCodes.OUT_OF_RANGE,
        `view: expected ${ref.byteLength} bytes at offset ${ref.fileOffset} of '${ref.path}', received a file of ${size} bytes`,
        { path: ref.path },
      );
    }
    mapping = context.keep(new FileMapping(fd, ref.path, ref.fileOffset, ref.byteLength, ref.mode === 'r+'));
  } finally {
    closeSync(fd);
  }
  const buffer = mapping.view(ref.fileOffset, ref.byteLength);
  if (ref.arrayType === 'Buffer') return Buffer.from(buffer);
  const ArrayType = arrayTypeNamed(ref.arrayType) ?? Uint8Array;
  const data = new ArrayType(buffer, 0, ref.byteLength / ArrayType.BYTES_PER_ELEMENT);
  if (ref.nd === undefined) return data;
  return new NDArray(data as never, { dtype: ref.nd.dtype, shape: ref.nd.shape, order: ref.nd.order });
}
