/**
 * The cache key of a call: a 128-bit XXH3 hash of a canonical encoding of
 * its arguments. Equal values give equal keys whatever their identity: object
 * keys are sorted, Maps and Sets ordered by their encoded keys, NaN has one
 * encoding, -0 is not 0, a BigInt is not a number. Arrays (NDArray, Memmap,
 * TypedArray) are hashed by content together with dtype, shape and order,
 * streamed in blocks, so a Memmap bigger than RAM hashes in constant memory.
 * native-notes/memory-hash.md has the hash measurements and the choice.
 */
import { statSync } from 'node:fs';
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import { dtypeOfArray, type TypedArray } from '../memmap/dtype.js';
import { Memmap } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { segmentBytes } from '../format/dump.js';
import { memmapStorageOrder } from '../format/structure.js';
import { xxh128, type Hasher128 } from './xxh128.js';

export interface HashOptions {
  /**
   * Hash a Memmap by its file's identity (path, size, modification time,
   * offset, dtype, shape, strides) instead of its content: much cheaper, and
   * right only for files nobody edits in place.
   */
  memmapIdentity?: boolean;
}

/** Small writes are gathered here, so the hasher is called per 64 KiB, not per number. */
const STAGE_BYTES = 64 * 1024;

class Sink {
  readonly #stage = Buffer.allocUnsafe(STAGE_BYTES);
  #used = 0;
  constructor(readonly hasher: Pick<Hasher128, 'update'>) {}

  bytes(data: Uint8Array): void {
    if (data.length > STAGE_BYTES / 4) {
      this.flush();
      this.hasher.update(data);
      return;
    }
    if (this.#used + data.length > STAGE_BYTES) this.flush();
    this.#stage.set(data, this.#used);
    this.#used += data.length;
  }

  tag(code: string): void {
    if (this.#used + 1 > STAGE_BYTES) this.flush();
    this.#stage[this.#used++] = code.charCodeAt(0);
  }

  uint(n: number): void {
    if (this.#used + 8 > STAGE_BYTES) this.flush();
    this.#stage.writeDoubleLE(n, this.#used);
    this.#used += 8;
  }

  number(n: number): void {
    this.uint(Number.isNaN(n) ? Number.NaN : n); // one NaN: writeDoubleLE writes the canonical bits for NaN
  }

  string(s: string): void {
    // UTF-16 code units, so strings differing only in lone surrogates stay different.
    const units = Buffer.from(s, 'utf16le');
    this.uint(units.length);
    this.bytes(units);
  }

  flush(): void {
    if (this.#used === 0) return;
    this.hasher.update(this.#stage.subarray(0, this.#used));
    this.#used = 0;
  }
}

/**
 * joblib.hash for memjob: the hex XXH3-128 digest of `value`'s canonical
 * encoding (see the top of this file). Equal values give equal digests
 * across processes, machines and memjob versions of the same format.
 */
export function hash(value: unknown, options: HashOptions = {}): Promise<string> {
  return hashValue(value, options, 'hash()', 'value');
}

/** The digest of `value`, after `salt` (a function's identity, for Memory's keys). */
export async function hashValue(value: unknown, options: HashOptions, where: string, rootName: string, salt = ''): Promise<string> {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const h = xxh128();
  h.init();
  const sink = new Sink(h);
  sink.string(salt);
  encode(sink, value, options, where, rootName);
  sink.flush();
  return h.digest();
}

function encode(rootSink: Sink, root: unknown, options: HashOptions, where: string, rootName: string): void {
  // Objects on the path from the root, by depth: a cycle is written as a reference to its ancestor.
  // A value shared by two branches is written twice, so equal content gives an equal key however it is shared.
  const ancestors = new Map<object, number>();
  const refuse = (path: string, what: string): never => {
    throw new MemjobError(ErrorCodes.UNSUPPORTED_VALUE, `${where}: cannot hash ${path}: ${what}`);
  };

  const visit = (sink: Sink, value: unknown, path: string): void => {
    switch (typeof value) {
      case 'undefined':
        return sink.tag('u');
      case 'boolean':
        return sink.tag(value ? 'T' : 'F');
      case 'number':
        sink.tag('n');
        return sink.number(value);
      case 'bigint':
        sink.tag('b');
        return sink.string(value.toString(16));
      case 'string':
        sink.tag('s');
        return sink.string(value);
      case 'function':
        // A function argument is known by its source (a closure's captured values are not part of it).
        sink.tag('f');
        return sink.string(Function.prototype.toString.call(value));
      case 'symbol':
        return refuse(path, `${describe(value)}: a symbol has no stable content`);
    }
    if (value === null) return sink.tag('z');
    const object = value as object;
    const ancestor = ancestors.get(object);
    if (ancestor !== undefined) {
      sink.tag('R');
      return sink.uint(ancestor);
    }
    if (arrayLike(sink, object, options, path, refuse)) return;
    ancestors.set(object, ancestors.size);
    try {
      container(sink, object, path);
    } finally {
      ancestors.delete(object);
    }
  };

  // A Map key or Set member as bytes, to order them; it shares the ancestors, so a cycle through a key ends too.
  const keyBytes = (value: unknown, path: string): Buffer => {
    const parts: Uint8Array[] = [];
    const sink = new Sink({ update: (data: Uint8Array) => void parts.push(Buffer.from(data)) });
    visit(sink, value, path);
    sink.flush();
    return Buffer.concat(parts);
  };

  const container = (sink: Sink, object: object, path: string): void => {
    if (Array.isArray(object)) {
      sink.tag('[');
      sink.uint(object.length);
      object.forEach((item, i) => visit(sink, item, `${path}[${i}]`));
      return;
    }
    if (object instanceof Map) {
      sink.tag('M');
      sink.uint(object.size);
      const entries = [...object].map(([k, v]) => ({ key: keyBytes(k, `${path} key`), v }));
      entries.sort((a, b) => Buffer.compare(a.key, b.key));
      for (const { key, v } of entries) {
        sink.bytes(key);
        visit(sink, v, `${path}.get(...)`);
      }
      return;
    }
    if (object instanceof Set) {
      sink.tag('S');
      sink.uint(object.size);
      const members = [...object].map((m) => keyBytes(m, `${path} member`)).sort(Buffer.compare);
      for (const member of members) sink.bytes(member);
      return;
    }
    if (object instanceof Date) {
      sink.tag('D');
      return sink.number(object.getTime());
    }
    if (object instanceof RegExp) {
      sink.tag('/');
      return sink.string(`${object.source}/${object.flags}`);
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      return refuse(path, `${describe(object)}: only plain objects, Arrays, Maps, Sets, Dates, strings, numbers, BigInts, booleans and arrays are hashed by content`);
    }
    const keys = Object.keys(object).sort();
    sink.tag('{');
    sink.uint(keys.length);
    for (const key of keys) {
      sink.string(key);
      visit(sink, (object as Record<string, unknown>)[key], `${path}.${key}`);
    }
  };
  visit(rootSink, root, rootName);
}

/** Writes an array's dtype, shape, order and bytes; false when `value` is not an array. */
function arrayLike(sink: Sink, value: object, options: HashOptions, path: string, refuse: (path: string, what: string) => never): boolean {
  const header = (dtype: string, shape: readonly number[], order: string) => {
    sink.tag('A');
    sink.string(dtype);
    sink.uint(shape.length);
    for (const d of shape) sink.uint(d);
    sink.tag(order);
  };
  if (value instanceof Memmap) {
    if (value.closed) refuse(path, `the Memmap of '${value.filename}' is closed`);
    if (options.memmapIdentity === true) {
      const stat = statSync(value.filename);
      sink.tag('I');
      sink.string(value.filename);
      for (const n of [stat.size, stat.mtimeMs, stat.ino, value.offset, ...value.strides]) sink.uint(n);
      header(value.dtype, value.shape, value.order);
      return true;
    }
    const order = memmapStorageOrder(value);
    header(value.dtype, value.shape, order);
    for (const block of segmentBytes({ memmap: value })) sink.bytes(block);
    return true;
  }
  if (value instanceof NDArray) {
    header(value.dtype, value.shape, value.order);
    sink.bytes(bytesOf(value.data as TypedArray));
    return true;
  }
  if (value instanceof ArrayBuffer || value instanceof DataView) {
    header('bytes', [value.byteLength], 'C');
    sink.bytes(value instanceof ArrayBuffer ? new Uint8Array(value) : bytesOf(value));
    return true;
  }
  if (ArrayBuffer.isView(value)) {
    const dtype = value instanceof Uint8ClampedArray ? 'uint8' : dtypeOfArray(value as TypedArray);
    if (dtype === undefined) return refuse(path, `${describe(value)}, a TypedArray memjob has no dtype for`);
    header(dtype, [(value as TypedArray).length], 'C');
    sink.bytes(bytesOf(value));
    return true;
  }
  return false;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
