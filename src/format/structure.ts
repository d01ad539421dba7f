/**
 * The structure of a dumped value: a tree of plain msgpack values in which
 * everything msgpack cannot say by itself is a tagged list [tag, ...], and
 * every array is a descriptor pointing at a segment of the data region.
 * Encoding refuses what it cannot store, naming the path inside the value;
 * decoding trusts nothing and rebuilds only what the grammar allows.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import { dtypeInfo, dtypeOfArray, isDType, type DType, type TypedArray } from '../memmap/dtype.js';
import { sizeOf, type Order } from '../memmap/layout.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { maxViewBytes } from '../native.js';

/** The first element of every tagged list. Numbers are part of the format: never renumber. */
export const Tag = Object.freeze({
  UNDEFINED: 0,
  ARRAY: 1,
  OBJECT: 2,
  MAP: 3,
  SET: 4,
  DATE: 5,
  BIGINT: 6,
  NEGATIVE_ZERO: 7,
  ARRAY_DATA: 8,
} as const);

/** What a descriptor says an array was, so load gives back the same kind. */
const typedArrayKinds = {
  Int8Array: 'int8',
  Uint8Array: 'uint8',
  Uint8ClampedArray: 'uint8',
  Int16Array: 'int16',
  Uint16Array: 'uint16',
  Int32Array: 'int32',
  Uint32Array: 'uint32',
  BigInt64Array: 'int64',
  BigUint64Array: 'uint64',
  Float32Array: 'float32',
  Float64Array: 'float64',
  Buffer: 'uint8',
  ArrayBuffer: 'uint8',
  DataView: 'uint8',
} as const satisfies Record<string, DType>;
export type TypedArrayKind = keyof typeof typedArrayKinds;
export type ArrayKind = TypedArrayKind | 'NDArray' | 'Memmap';

export interface ArrayDescriptor {
  kind: ArrayKind;
  dtype: DType;
  shape: number[];
  order: Order;
  segment: number;
  /** Bytes of the elements (shape x itemsize), equal to the segment's length. */
  byteLength: number;
}

/** Where a segment's bytes come from when dumping. */
export type SegmentSource = { bytes: Uint8Array } | { memmap: Memmap };

export interface Segment {
  /** Offset inside the data region (a multiple of the alignment). */
  offset: number;
  byteLength: number;
}

const MAX_DEPTH = 1000;

export interface EncodedValue {
  tree: unknown;
  sources: SegmentSource[];
  byteLengths: number[];
}

/** Turns `value` into a msgpack-ready tree and the list of array segments to write after it. */
/**
 * The order a Memmap's bytes are written in: an F-ordered one that fits one
 * view as stored, everything else in C order (row blocks, strided ones copied).
 */
export function memmapStorageOrder(m: Memmap): Order {
  return m.contiguous && m.order === 'F' && m.ndim > 1 && m.nbytes <= maxViewBytes ? 'F' : 'C';
}

export function encodeValue(value: unknown): EncodedValue {
  const sources: SegmentSource[] = [];
  const byteLengths: number[] = [];
  const seen = new Map<object, unknown>(); // one segment per array object, however often it appears
  const ancestors = new Set<object>();

  const refuse = (path: string, what: string): never => {
    throw new MemjobError(ErrorCodes.UNSUPPORTED_VALUE, `dump: cannot store ${path}: ${what}`);
  };

  const addArray = (array: object, kind: ArrayKind, dtype: DType, shape: number[], order: Order, source: SegmentSource, byteLength: number) => {
    const known = seen.get(array);
    if (known !== undefined) return known;
    sources.push(source);
    byteLengths.push(byteLength);
    const node = [Tag.ARRAY_DATA, kind, dtype, shape, order, sources.length - 1];
    seen.set(array, node);
    return node;
  };

  const bytesOf = (view: ArrayBufferView | ArrayBuffer): Uint8Array =>
    view instanceof ArrayBuffer ? new Uint8Array(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

  const encodeArrayLike = (value: object, path: string): unknown => {
    if (value instanceof Memmap) {
      return addArray(value, 'Memmap', value.dtype, [...value.shape], memmapStorageOrder(value), { memmap: value }, value.nbytes);
    }
    if (value instanceof NDArray) {
      return addArray(value, 'NDArray', value.dtype, [...value.shape], value.order, { bytes: bytesOf(value.data) }, value.nbytes);
    }
    if (value instanceof ArrayBuffer) {
      return addArray(value, 'ArrayBuffer', 'uint8', [value.byteLength], 'C', { bytes: bytesOf(value) }, value.byteLength);
    }
    if (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer) {
      return refuse(path, 'a SharedArrayBuffer (its memory is shared with live threads); copy it into an ArrayBuffer');
    }
    if (value instanceof DataView) {
      return addArray(value, 'DataView', 'uint8', [value.byteLength], 'C', { bytes: bytesOf(value) }, value.byteLength);
    }
    if (ArrayBuffer.isView(value)) {
      const kind: TypedArrayKind | undefined = Buffer.isBuffer(value)
        ? 'Buffer'
        : value instanceof Uint8ClampedArray
          ? 'Uint8ClampedArray'
          : (Object.keys(typedArrayKinds) as TypedArrayKind[]).find((name) => (globalThis as Record<string, unknown>)[name] === value.constructor);
      const dtype = kind === undefined ? undefined : kind === 'Buffer' || kind === 'Uint8ClampedArray' ? 'uint8' : dtypeOfArray(value as TypedArray);
      if (kind === undefined || dtype === undefined) return refuse(path, `${describe(value)}, a TypedArray subclass memjob does not know`);
      return addArray(value, kind, dtype, [value.byteLength / dtypeInfo(dtype).itemsize], 'C', { bytes: bytesOf(value) }, value.byteLength);
    }
    return undefined;
  };

  const encode = (value: unknown, path: string, depth: number): unknown => {
    switch (typeof value) {
      case 'string':
      case 'boolean':
        return value;
      case 'number':
        return Object.is(value, -0) ? [Tag.NEGATIVE_ZERO] : value;
      case 'bigint':
        return [Tag.BIGINT, value.toString()];
      case 'undefined':
        return [Tag.UNDEFINED];
      case 'function':
        return refuse(path, `${describe(value)} (functions are code; dump data and import the code where you load it)`);
      case 'symbol':
        return refuse(path, `${describe(value)} (symbols are unique to one process)`);
    }
    if (value === null) return null;
    const object = value as object;
    const array = encodeArrayLike(object, path);
    if (array !== undefined) return array;
    if (depth >= MAX_DEPTH) return refuse(`${path.slice(0, 120)}...`, `nesting deeper than ${MAX_DEPTH} levels`);
    if (ancestors.has(object)) return refuse(path, 'a circular reference (the value contains itself)');
    ancestors.add(object);
    try {
      return encodeContainer(object, path, depth + 1);
    } finally {
      ancestors.delete(object);
    }
  };

  const encodeContainer = (object: object, path: string, depth: number): unknown => {
    if (object instanceof Date) return [Tag.DATE, object.getTime()];
    if (object instanceof Map) {
      const node: unknown[] = [Tag.MAP];
      let i = 0;
      for (const [key, item] of object) {
        node.push(encode(key, `${path}.<key ${i}>`, depth), encode(item, `${path}.get(${describeKey(key)})`, depth));
        i++;
      }
      return node;
    }
    if (object instanceof Set) {
      const node: unknown[] = [Tag.SET];
      let i = 0;
      for (const item of object) node.push(encode(item, `${path}.<item ${i++}>`, depth));
      return node;
    }
    if (Array.isArray(object) && Object.getPrototypeOf(object) === Array.prototype) {
      const node: unknown[] = [Tag.ARRAY];
      for (let i = 0; i < object.length; i++) node.push(encode(object[i], `${path}[${i}]`, depth));
      return node;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      return refuse(path, `${describe(object)} (only plain objects, arrays, Map, Set, Date and typed arrays are stored; convert it to a plain object)`);
    }
    const node: unknown[] = [Tag.OBJECT];
    for (const key of Object.keys(object)) {
      node.push(key, encode((object as Record<string, unknown>)[key], `${path}${propertyPath(key)}`, depth));
    }
    return node;
  };

  const tree = encode(value, 'value', 0);
  return { tree, sources, byteLengths };
}

function propertyPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function describeKey(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(key) : String(key);
}

/** The problems a structure can have; load turns them into MEMJOB_ERR_FORMAT with the file's name. */
export class StructureError extends Error {}

const fail = (problem: string): never => {
  throw new StructureError(problem);
};

/**
 * Checks the segment table against the data region before anything is mapped
 * or allocated. Segments may not overlap, so what load allocates is bounded
 * by the data region's length.
 */
export function validateSegments(raw: unknown, dataLength: number, alignment: number): Segment[] {
  if (!Array.isArray(raw)) return fail('the segment table is not a list');
  const segments = raw.map((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 2) return fail(`segment ${i} is not an [offset, length] pair`);
    const [offset, byteLength] = entry as unknown[];
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || (offset as number) < 0 || (byteLength as number) < 0) {
      return fail(`segment ${i} has offset ${describe(offset)} and length ${describe(byteLength)}, not non-negative integers`);
    }
    const segment = { offset: offset as number, byteLength: byteLength as number };
    if (segment.offset % alignment !== 0) return fail(`segment ${i} starts at ${segment.offset}, not a multiple of ${alignment}`);
    if (segment.offset + segment.byteLength > dataLength) {
      return fail(`segment ${i} (${segment.offset} + ${segment.byteLength} bytes) runs past the data region of ${dataLength} bytes`);
    }
    return segment;
  });
  const byOffset = segments.map((segment, index) => ({ ...segment, index })).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const before = byOffset[i - 1]!;
    const after = byOffset[i]!;
    if (before.offset + before.byteLength > after.offset) return fail(`segments ${before.index} and ${after.index} overlap`);
  }
  return segments;
}

function validateDescriptor(node: unknown[], segments: readonly Segment[]): ArrayDescriptor {
  const [, kind, dtype, shape, order, segment] = node;
  if (node.length !== 6) fail(`an array descriptor has ${node.length - 1} fields instead of 5`);
  const isKind = typeof kind === 'string' && (kind === 'NDArray' || kind === 'Memmap' || Object.hasOwn(typedArrayKinds, kind));
  if (!isKind) fail(`unknown array kind ${describe(kind)}`);
  if (!isDType(dtype)) fail(`unknown dtype ${describe(dtype)}`);
  const typedKind = typedArrayKinds[kind as TypedArrayKind] as DType | undefined;
  if (typedKind !== undefined && typedKind !== dtype) fail(`a ${kind as string} cannot hold dtype ${dtype as string}`);
  if (!Array.isArray(shape) || shape.length > 64 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape ${describe(shape)} is not a list of at most 64 non-negative integers`);
  }
  if (typedKind !== undefined && (shape as number[]).length !== 1) fail(`a ${kind as string} must be 1-d, its shape is ${describe(shape)}`);
  if (order !== 'C' && order !== 'F') fail(`order ${describe(order)} is not 'C' or 'F'`);
  if (!Number.isSafeInteger(segment) || (segment as number) < 0 || (segment as number) >= segments.length) {
    fail(`segment index ${describe(segment)} is not one of the ${segments.length} segments`);
  }
  const { itemsize } = dtypeInfo(dtype as DType);
  // Multiply step by step so a lying shape cannot overflow into a plausible number.
  let byteLength = itemsize;
  for (const d of shape as number[]) {
    byteLength *= d;
    if (byteLength > Number.MAX_SAFE_INTEGER) fail(`shape ${describe(shape)} is impossibly large`);
  }
  const target = segments[segment as number]!;
  if (byteLength !== target.byteLength) {
    fail(`an array of shape [${(shape as number[]).join(', ')}] ${dtype as string} needs ${byteLength} bytes, its segment holds ${target.byteLength}`);
  }
  if (kind !== 'Memmap' && byteLength > maxViewBytes) fail(`a ${kind as string} of ${byteLength} bytes is larger than any this Node can hold`);
  return { kind: kind as ArrayKind, dtype: dtype as DType, shape: shape as number[], order: order as Order, segment: segment as number, byteLength };
}

/** A descriptor's identity: the same array dumped twice gives two equal nodes. */
export function descriptorKey(d: ArrayDescriptor): string {
  return `${d.segment}:${d.kind}:${d.dtype}:${d.order}:${d.shape.join(',')}`;
}

/**
 * Every distinct array descriptor in a tree, validated, before any array is
 * read. Each segment belongs to one array (the writer makes one node per
 * array object), so a file cannot make load allocate one segment many times.
 */
export function collectDescriptors(tree: unknown, segments: readonly Segment[]): ArrayDescriptor[] {
  const found = new Map<number, ArrayDescriptor>();
  const walk = (node: unknown, depth: number): void => {
    if (!Array.isArray(node)) return;
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`);
    if (node[0] === Tag.ARRAY_DATA) {
      const descriptor = validateDescriptor(node, segments);
      const earlier = found.get(descriptor.segment);
      if (earlier === undefined) found.set(descriptor.segment, descriptor);
      else if (descriptorKey(earlier) !== descriptorKey(descriptor)) fail(`segment ${descriptor.segment} is claimed by two different arrays`);
      return;
    }
    for (let i = 1; i < node.length; i++) walk(node[i], depth + 1);
  };
  walk(tree, 0);
  return [...found.values()];
}

/**
 * Rebuilds a value from a tree. `arrayFor` turns a (validated) descriptor into
 * the array value; it is called once per descriptor node.
 */
export function decodeValue(tree: unknown, segments: readonly Segment[], arrayFor: (descriptor: ArrayDescriptor) => unknown): unknown {
  const decode = (node: unknown, depth: number): unknown => {
    if (node === null || typeof node === 'string' || typeof node === 'boolean') return node;
    if (typeof node === 'number') return node;
    if (!Array.isArray(node) || node.length === 0) return fail(`unexpected ${describe(node)} in the structure`);
    if (depth > MAX_DEPTH) return fail(`nesting deeper than ${MAX_DEPTH} levels`);
    const items = node.slice(1);
    switch (node[0]) {
      case Tag.UNDEFINED:
        return undefined;
      case Tag.NEGATIVE_ZERO:
        return -0;
      case Tag.ARRAY:
        return items.map((item) => decode(item, depth + 1));
      case Tag.BIGINT: {
        const [digits] = items;
        if (typeof digits !== 'string' || !/^-?\d{1,100000}$/.test(digits)) return fail(`bigint ${describe(digits)} is not a decimal integer`);
        return BigInt(digits);
      }
      case Tag.DATE: {
        const [time] = items;
        if (typeof time !== 'number') return fail(`date ${describe(time)} is not a number`);
        return new Date(time);
      }
      case Tag.OBJECT: {
        if (items.length % 2 !== 0) return fail('an object has a key without a value');
        const object: Record<string, unknown> = {};
        for (let i = 0; i < items.length; i += 2) {
          const key = items[i];
          if (typeof key !== 'string') return fail(`object key ${describe(key)} is not a string`);
          // Define, never assign: assigning "__proto__" would change the object's prototype.
          Object.defineProperty(object, key, { value: decode(items[i + 1], depth + 1), enumerable: true, writable: true, configurable: true });
        }
        return object;
      }
      case Tag.MAP: {
        if (items.length % 2 !== 0) return fail('a Map has a key without a value');
        const map = new Map<unknown, unknown>();
        for (let i = 0; i < items.length; i += 2) map.set(decode(items[i], depth + 1), decode(items[i + 1], depth + 1));
        return map;
      }
      case Tag.SET:
        return new Set(items.map((item) => decode(item, depth + 1)));
      case Tag.ARRAY_DATA:
        return arrayFor(validateDescriptor(node, segments));
      default:
        return fail(`unknown tag ${describe(node[0])}`);
    }
  };
  return decode(tree, 0);
}

export function isTypedArrayKind(kind: ArrayKind): kind is TypedArrayKind {
  return Object.hasOwn(typedArrayKinds, kind);
}

/** The elements of a shape, for descriptors already validated. */
export function elementCount(descriptor: ArrayDescriptor): number {
  return sizeOf(descriptor.shape);
}
