/**
 * A JS value as the pickle `joblib.dump` writes (joblib >= 1.2, protocol 4):
 * containers as Python containers, and each array as joblib's
 * NumpyArrayWrapper followed by the array's bytes inline, padded to 16 bytes
 * so that Python's `joblib.load(f, mmap_mode='r')` maps them where they lie.
 * The result is a list of parts: opcode bytes, and arrays whose bytes are
 * streamed from their own memory when the file is written (never copied whole).
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import { dtypeInfo, dtypeOfArray, type DType, type TypedArray } from '../memmap/dtype.js';
import type { Order } from '../memmap/layout.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { segmentBytes } from './dump.js';
import { descrOf } from './npy-header.js';
import { BATCH, Op, OpcodeWriter } from './pickle/pickler.js';
import { memmapStorageOrder, type SegmentSource } from './structure.js';

/** joblib's NUMPY_ARRAY_ALIGNMENT_BYTES. */
const ALIGNMENT = 16;
/** Nesting is refused beyond this; each level holds one MARK open, and our reader allows 1,000. */
const MAX_DEPTH = 900;

/** Raw array bytes between frames: `nbytes` of them, from `source`. */
export interface ArrayPart {
  source: SegmentSource;
  nbytes: number;
}
export type PicklePart = Uint8Array | ArrayPart;

interface ArrayInfo {
  dtype: DType;
  shape: number[];
  order: Order;
  source: SegmentSource;
  nbytes: number;
}

/**
 * The parts of the pickle of `value`. `mappable` is joblib's allow_mmap: true
 * for an uncompressed file (joblib writes false into compressed ones, whose
 * arrays cannot be mapped). Throws UNSUPPORTED_VALUE, naming where in the
 * value, for anything Python could not load as joblib would.
 */
export function pickleForJoblib(value: unknown, mappable: boolean, where: string): PicklePart[] {
  const w = new OpcodeWriter();
  const parts: PicklePart[] = [];
  const memo = new Map<object, number>();
  const ancestors = new Set<object>();

  const refuse = (path: string, what: string): never => {
    throw new MemjobError(ErrorCodes.UNSUPPORTED_VALUE, `${where}: cannot store ${path} in a joblib file: ${what}`);
  };
  const takeFrame = () => parts.push(...w.takeFrame());

  const writeArray = (array: ArrayInfo) => {
    w.global('joblib.numpy_pickle', 'NumpyArrayWrapper');
    w.op(Op.EMPTY_TUPLE, Op.NEWOBJ);
    w.op(Op.EMPTY_DICT, Op.MARK);
    w.string('subclass');
    w.global('numpy', 'ndarray');
    w.string('shape');
    writeTuple(array.shape.map((d) => () => w.int(BigInt(d))));
    w.string('order');
    w.string(array.order);
    w.string('dtype');
    writeDtype(array.dtype);
    w.string('allow_mmap');
    w.bool(mappable);
    w.string('numpy_array_alignment_bytes');
    w.int(BigInt(ALIGNMENT));
    w.op(Op.SETITEMS, Op.BUILD);
    // The bytes follow BUILD outside any frame, after one byte giving the padding and the padding itself (0xff).
    takeFrame();
    const padding = ALIGNMENT - ((w.offset + 1) % ALIGNMENT);
    const head = new Uint8Array(1 + padding).fill(0xff);
    head[0] = padding;
    parts.push(head, { source: array.source, nbytes: array.nbytes });
    w.skip(head.length + array.nbytes);
  };

  // numpy.dtype's own reduce: dtype('f8', False, True) then BUILD with its state tuple (version 3).
  const writeDtype = (dtype: DType) => {
    const descr = descrOf(dtype);
    w.global('numpy', 'dtype');
    w.string(descr.slice(1));
    w.op(Op.NEWFALSE, Op.NEWTRUE, Op.TUPLE3, Op.REDUCE, Op.MARK, Op.BININT1, 3);
    w.string(descr[0]!);
    w.op(Op.NONE, Op.NONE, Op.NONE);
    w.int(-1n);
    w.int(-1n);
    w.int(0n);
    w.op(Op.TUPLE, Op.BUILD);
  };

  // A Date as an aware datetime.datetime in UTC: datetime(state, timezone(timedelta(0))), as pickle writes one.
  const writeDate = (date: Date, path: string) => {
    const t = date.getTime();
    const year = new Date(t).getUTCFullYear();
    if (Number.isNaN(t) || year < 1 || year > 9999) refuse(path, `${describe(date)}: Python's datetime holds years 1 to 9999`);
    const d = new Date(t);
    const us = d.getUTCMilliseconds() * 1000;
    w.global('datetime', 'datetime');
    w.bytes(Uint8Array.of(year >> 8, year & 0xff, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), us >> 16, (us >> 8) & 0xff, us & 0xff));
    w.global('datetime', 'timezone');
    w.global('datetime', 'timedelta');
    w.op(Op.BININT1, 0, Op.BININT1, 0, Op.BININT1, 0, Op.TUPLE3, Op.REDUCE, Op.TUPLE1, Op.REDUCE, Op.TUPLE2, Op.REDUCE);
  };

  const writeTuple = (items: (() => void)[]) => {
    const short = OpcodeWriter.tupleOp(items.length);
    if (short === undefined) w.op(Op.MARK);
    for (const item of items) item();
    w.op(short ?? Op.TUPLE);
  };

  /** Items in batches of 1,000 under MARK ... `op`, as CPython's _batch_appends. */
  const writeBatched = (items: Iterable<() => void>, op: number) => {
    let open = 0;
    for (const item of items) {
      if (open === 0) w.op(Op.MARK);
      item();
      if (++open === BATCH) {
        w.op(op);
        open = 0;
      }
    }
    if (open > 0) w.op(op);
  };

  const writeNumber = (n: number) => {
    if (Number.isSafeInteger(n) && !Object.is(n, -0)) w.int(BigInt(n));
    else w.float(n);
  };

  /** A value used as a dict key or set member: Python needs it hashable, so an Array becomes a tuple. */
  const writeKey = (key: unknown, path: string, depth: number): void => {
    if (depth > MAX_DEPTH) refuse(path, `nesting deeper than ${MAX_DEPTH} levels`);
    if (key === null || key === undefined) return w.none();
    switch (typeof key) {
      case 'string':
        return w.string(key);
      case 'number':
        return writeNumber(key);
      case 'bigint':
        return w.int(key);
      case 'boolean':
        return w.bool(key);
    }
    if (key instanceof Uint8Array) return w.bytes(key);
    if (Array.isArray(key)) {
      if (ancestors.has(key)) refuse(path, 'an Array that contains itself, used as a key (a Python tuple cannot)');
      ancestors.add(key);
      writeTuple(key.map((item, i) => () => writeKey(item, `${path}[${i}]`, depth + 1)));
      ancestors.delete(key);
      return;
    }
    return refuse(path, `${describe(key)} as a dict key or set member: Python can hash only strings, numbers, booleans, None, bytes and tuples (Arrays) of them`);
  };

  const write = (value: unknown, path: string, depth: number): void => {
    if (w.frameFull) takeFrame();
    if (depth > MAX_DEPTH) refuse(path, `nesting deeper than ${MAX_DEPTH} levels`);
    if (value === null || value === undefined) return w.none();
    switch (typeof value) {
      case 'string':
        return w.string(value);
      case 'number':
        return writeNumber(value);
      case 'bigint':
        return w.int(value);
      case 'boolean':
        return w.bool(value);
      case 'object':
        break;
      default:
        return refuse(path, `${describe(value)} (a ${typeof value}) has no Python equivalent`);
    }
    const known = memo.get(value);
    if (known !== undefined) return w.get(known);
    const array = arrayInfo(value, path, refuse);
    if (array !== undefined) return writeArray(array);
    if (value instanceof Date) return writeDate(value, path);
    if (value instanceof Uint8Array || value instanceof ArrayBuffer || value instanceof DataView) {
      return w.bytes(value instanceof Uint8Array ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    }
    if (Array.isArray(value)) {
      w.op(Op.EMPTY_LIST);
      memo.set(value, w.memoize());
      writeBatched(value.map((item, i) => () => write(item, `${path}[${i}]`, depth + 1)), Op.APPENDS);
      return;
    }
    if (value instanceof Map) {
      w.op(Op.EMPTY_DICT);
      memo.set(value, w.memoize());
      const items = [...value].map(([key, item]) => () => {
        writeKey(key, `${path} key ${describe(key)}`, depth + 1);
        write(item, `${path}.get(${describe(key)})`, depth + 1);
      });
      writeBatched(items, Op.SETITEMS);
      return;
    }
    if (value instanceof Set) {
      w.op(Op.EMPTY_SET);
      memo.set(value, w.memoize());
      writeBatched([...value].map((item) => () => writeKey(item, `${path} member ${describe(item)}`, depth + 1)), Op.ADDITEMS);
      return;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      w.op(Op.EMPTY_DICT);
      memo.set(value, w.memoize());
      const items = Object.keys(value).map((key) => () => {
        w.string(key);
        write((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
      });
      writeBatched(items, Op.SETITEMS);
      return;
    }
    return refuse(path, `${describe(value)}: a joblib file holds plain objects, Maps, Sets, Arrays, strings, numbers, BigInts, booleans, null, Dates, bytes (Uint8Array) and arrays (NDArray, Memmap, TypedArray)`);
  };

  write(value, 'value', 0);
  w.op(Op.STOP);
  takeFrame();
  return parts;
}

/** The dtype, shape, order and bytes of an array value; undefined when `value` is not one (Uint8Array is bytes, not an array). */
function arrayInfo(value: object, path: string, refuse: (path: string, what: string) => never): ArrayInfo | undefined {
  if (value instanceof Memmap) {
    if (value.closed) refuse(path, `the Memmap of '${value.filename}' was closed; open it again with memmap()`);
    return { dtype: value.dtype, shape: [...value.shape], order: memmapStorageOrder(value), source: { memmap: value }, nbytes: value.nbytes };
  }
  if (value instanceof NDArray) {
    return { dtype: value.dtype, shape: [...value.shape], order: value.order, source: { bytes: bytesOf(value.data) }, nbytes: value.nbytes };
  }
  if (!ArrayBuffer.isView(value) || value instanceof DataView || (value instanceof Uint8Array && !(value instanceof Uint8ClampedArray))) return undefined;
  const dtype = value instanceof Uint8ClampedArray ? 'uint8' : dtypeOfArray(value as TypedArray);
  if (dtype === undefined) return refuse(path, `${describe(value)}, a TypedArray numpy has no dtype for`);
  const itemsize = dtypeInfo(dtype).itemsize;
  return { dtype, shape: [value.byteLength / itemsize], order: 'C', source: { bytes: bytesOf(value as TypedArray) }, nbytes: value.byteLength };
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Each part's bytes in file order: opcode chunks as they are, arrays streamed in bounded chunks. */
export function* partBytes(parts: readonly PicklePart[]): Generator<Uint8Array, void, undefined> {
  for (const part of parts) {
    if (part instanceof Uint8Array) yield part;
    else yield* segmentBytes(part.source);
  }
}
