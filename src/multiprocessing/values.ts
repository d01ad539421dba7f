/**
 * Value and SharedArray: multiprocessing.Value and multiprocessing.Array in
 * shared memory that worker threads and child processes both see. Integer
 * dtypes have an atomic add(); every object carries a Lock (getLock()) for
 * read-modify-write of anything else, as Python's do.
 *
 * Layout of the shared file: the lock's int32 at byte 0, the data at byte 64.
 */
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import { dtypeInfo, parseDType, type DType, type DTypeArrays, type DTypeScalar } from '../memmap/dtype.js';
import { Lock } from './lock.js';
import { SharedFile } from './shared-file.js';
import { SHARED_REF, registerShared, type SharedRef } from './shared-ref.js';

const DATA_OFFSET = 64;

/** Python's array typecodes, for people arriving from Value('i', 0) and Array('d', [...]). */
const typecodes: Record<string, DType> = {
  b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32',
  l: 'int64', L: 'uint64', q: 'int64', Q: 'uint64', f: 'float32', d: 'float64',
};

export function parseValueDType(value: unknown, where: string): DType {
  if (typeof value === 'string' && Object.hasOwn(typecodes, value)) return typecodes[value]!;
  const dtype = parseDType(value, where);
  // A shared value holds one plain number, bigint or boolean per slot (what toStored checks).
  if (!valueDTypes.has(dtype)) {
    throw new MemjobError(ErrorCodes.DTYPE, `${where}: expected "dtype" to be bool, an integer dtype, float32 or float64, received ${describe(value)}`);
  }
  return dtype;
}

const valueDTypes: ReadonlySet<DType> = new Set(['bool', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64']);

const atomicDTypes: ReadonlySet<DType> = new Set(['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64']);

/** The integers each integer dtype holds, as bigints so that the 64-bit bounds are exact. */
const integerRanges: Partial<Record<DType, readonly [bigint, bigint]>> = {
  int8: [-(2n ** 7n), 2n ** 7n - 1n], uint8: [0n, 2n ** 8n - 1n],
  int16: [-(2n ** 15n), 2n ** 15n - 1n], uint16: [0n, 2n ** 16n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n], uint32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n], uint64: [0n, 2n ** 64n - 1n],
};

/**
 * Checks a value before it is stored. A TypedArray would coerce silently
 * (1.5 -> 1, 2 ** 40 -> 0 in an int32), so integer dtypes refuse fractions
 * and values outside their range. An add()'s delta may also be negative for
 * an unsigned dtype (a decrement); the sum wraps, as the CPU's atomic add does.
 */
function toStored(dtype: DType, value: unknown, where: string, name = 'value'): number | bigint {
  if (dtype === 'bool') {
    if (typeof value === 'boolean') return Number(value);
    throw invalidArg(where, name, 'a boolean (bool)', value);
  }
  const range = integerRanges[dtype];
  if (range === undefined) {
    if (typeof value !== 'number') throw invalidArg(where, name, `a number (${dtype})`, value);
    return value;
  }
  const wide = dtype === 'int64' || dtype === 'uint64';
  const [min, max] = name === 'delta' && range[0] === 0n ? [-range[1], range[1]] : range;
  const integer =
    typeof value === 'bigint' ? (wide ? value : undefined)
    : typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value)
    : undefined;
  if (integer === undefined || integer < min || integer > max) {
    const kind = wide ? 'a bigint (or a safe integer)' : 'an integer';
    throw invalidArg(where, name, `${kind} from ${min} to ${max} (${dtype})`, value);
  }
  return wide ? integer : Number(integer);
}

function fromStored<D extends DType>(dtype: D, raw: number | bigint): DTypeScalar<D> {
  return (dtype === 'bool' ? raw !== 0 : raw) as DTypeScalar<D>;
}

/** The shared part of Value and SharedArray: a file, its lock, a typed view of its data. */
abstract class SharedData<D extends DType> {
  readonly dtype: D;
  protected readonly file: SharedFile;
  protected readonly array: DTypeArrays[D];
  readonly #lock: Lock;
  readonly #owner: boolean;

  protected constructor(dtype: D, length: number, kind: 'value' | 'array', existing?: SharedFile) {
    this.dtype = dtype;
    const { itemsize, arrayType } = dtypeInfo(dtype);
    this.#owner = existing === undefined;
    this.file = existing ?? SharedFile.create(kind, DATA_OFFSET + Math.max(1, length) * itemsize);
    this.array = new arrayType(this.file.buffer, DATA_OFFSET, length);
    this.#lock = new Lock({ file: this.file, byteOffset: 0 });
  }

  /** The lock that guards this object's read-modify-write sequences (Python's get_lock()). */
  getLock(): Lock {
    return this.#lock;
  }

  protected atomicAdd(index: number, delta: unknown, where: string): DTypeScalar<D> {
    this.file.check(where);
    if (!atomicDTypes.has(this.dtype)) {
      throw new MemjobError(
        ErrorCodes.INVALID_ARG,
        `${where}: add() is atomic for integer dtypes only, and this one is ${this.dtype}; use getLock().withLock(() => x.set(x.get() + d))`,
      );
    }
    const stored = toStored(this.dtype, delta, where, 'delta');
    const old = Atomics.add(this.array as never, index, stored as never) as number | bigint;
    // Atomics.add returns the old value; return the new one, wrapped as the dtype wraps it.
    const wrapped = new (dtypeInfo(this.dtype).arrayType)(1) as unknown as (number | bigint)[];
    wrapped[0] = typeof old === 'bigint' ? old + (stored as bigint) : old + (stored as number);
    return fromStored(this.dtype, wrapped[0]!);
  }

  /** Unmaps this handle (the creating process also removes the file). */
  close(): void {
    if (this.#owner) this.file.close();
  }
}

/** A single shared number: `new Value('int32', 0)` or `new Value('i', 0)` as in Python. */
export class Value<D extends DType = DType> extends SharedData<D> {
  constructor(dtype: D | string, initial?: DTypeScalar<D>, existing?: SharedFile) {
    const parsed = parseValueDType(dtype, 'Value') as D;
    super(parsed, 1, 'value', existing);
    if (existing === undefined && initial !== undefined) this.#store(initial, 'Value', 'initial');
  }

  get(): DTypeScalar<D> {
    this.file.check('Value.get');
    const raw = atomicDTypes.has(this.dtype) ? (Atomics.load(this.array as never, 0) as number | bigint) : (this.array[0] as number);
    return fromStored(this.dtype, raw);
  }

  set(value: DTypeScalar<D>): void {
    this.#store(value, 'Value.set', 'value');
  }

  #store(value: unknown, where: string, name: string): void {
    this.file.check(where);
    const stored = toStored(this.dtype, value, where, name);
    if (atomicDTypes.has(this.dtype)) Atomics.store(this.array as never, 0, stored as never);
    else (this.array as unknown as (number | bigint)[])[0] = stored;
  }

  /** Python's `.value`. */
  get value(): DTypeScalar<D> {
    return this.get();
  }

  set value(value: DTypeScalar<D>) {
    this.set(value);
  }

  /** Adds `delta` atomically (integer dtypes) and returns the new value. */
  add(delta: DTypeScalar<D>): DTypeScalar<D> {
    return this.atomicAdd(0, delta, 'Value.add');
  }

  /** @internal */
  [SHARED_REF](): SharedRef {
    return { kind: 'value', path: this.file.path, byteLength: this.file.byteLength, dtype: this.dtype };
  }

  toString(): string {
    return `Value<${this.dtype}>(${String(this.get())})`;
  }
}

/** A shared fixed-length array: `new SharedArray('float64', 10)` or `new SharedArray('d', [1, 2, 3])`. */
export class SharedArray<D extends DType = DType> extends SharedData<D> {
  readonly length: number;

  constructor(dtype: D | string, sizeOrValues: number | ArrayLike<DTypeScalar<D>>, existing?: SharedFile) {
    const parsed = parseValueDType(dtype, 'SharedArray') as D;
    const length = typeof sizeOrValues === 'number' ? sizeOrValues : (sizeOrValues as ArrayLike<unknown>)?.length;
    if (!Number.isSafeInteger(length) || (length as number) < 0) {
      throw invalidArg('SharedArray', 'sizeOrValues', 'a non-negative integer size or an array of values', sizeOrValues);
    }
    super(parsed, length as number, 'array', existing);
    this.length = length as number;
    if (existing === undefined && typeof sizeOrValues !== 'number') {
      for (let i = 0; i < this.length; i++) this.array[i] = toStored(this.dtype, sizeOrValues[i], 'SharedArray', `sizeOrValues[${i}]`) as never;
    }
  }

  /** The elements, as a TypedArray on the shared memory (no copy). */
  get data(): DTypeArrays[D] {
    this.file.check('SharedArray.data');
    return this.array;
  }

  get(index: number): DTypeScalar<D> {
    return fromStored(this.dtype, this.data[this.#at(index, 'SharedArray.get')] as number | bigint);
  }

  set(index: number, value: DTypeScalar<D>): void {
    (this.data as unknown as (number | bigint)[])[this.#at(index, 'SharedArray.set')] = toStored(this.dtype, value, 'SharedArray.set');
  }

  /** Adds `delta` to element `index` atomically (integer dtypes) and returns the new value. */
  add(index: number, delta: DTypeScalar<D>): DTypeScalar<D> {
    return this.atomicAdd(this.#at(index, 'SharedArray.add'), delta, 'SharedArray.add');
  }

  /** An owned copy of the elements. */
  toArray(): DTypeArrays[D] {
    return this.data.slice() as DTypeArrays[D];
  }

  *[Symbol.iterator](): IterableIterator<DTypeScalar<D>> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  #at(index: number, where: string): number {
    const i = index < 0 ? index + this.length : index;
    if (!Number.isInteger(index) || i < 0 || i >= this.length) {
      throw new MemjobError(ErrorCodes.OUT_OF_RANGE, `${where}: index ${describe(index)} is out of range for length ${this.length}`);
    }
    return i;
  }

  /** @internal */
  [SHARED_REF](): SharedRef {
    return { kind: 'array', path: this.file.path, byteLength: this.file.byteLength, dtype: this.dtype, length: this.length };
  }
}

registerShared('value', (ref, file) => new Value(ref.dtype as DType, undefined, file));
registerShared('array', (ref, file) => new SharedArray(ref.dtype as DType, ref.length as number, file));
