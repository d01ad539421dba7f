/**
 * The dtypes memjob maps: numpy's names, each with the TypedArray that views it.
 * 64-bit integers are BigInt64Array/BigUint64Array; bool is stored as one byte
 * (numpy's layout) and viewed as a Uint8Array. Some dtypes take more than one
 * TypedArray slot per element (`lanes`): complex (re, im interleaved) and the
 * fixed-width strings (one slot per byte or code point).
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';

/** numpy's datetime64/timedelta64 units, from years to attoseconds. */
export type DateTimeUnit = 'Y' | 'M' | 'W' | 'D' | 'h' | 'm' | 's' | 'ms' | 'us' | 'ns' | 'ps' | 'fs' | 'as';
/** 'datetime64[ns]' and friends; plain 'datetime64' is numpy's generic (unitless) datetime. */
export type DateTimeDType = 'datetime64' | `datetime64[${DateTimeUnit}]`;
export type TimeDeltaDType = 'timedelta64' | `timedelta64[${DateTimeUnit}]`;
/** Fixed-width strings: 'S5' is numpy's '|S5' (5 bytes), 'U5' is '<U5' (5 UTF-32 code points). */
export type StringDType = `S${number}` | `U${number}`;
/** A complex element as get() returns it and set() takes it: [real, imaginary]. */
export type Complex = [re: number, im: number];

interface FixedDTypeArrays {
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  /** The raw IEEE half-precision bits (Node 20 has no Float16Array); get() and set() convert. */
  float16: Uint16Array;
  float32: Float32Array;
  float64: Float64Array;
  /** Interleaved: [re0, im0, re1, im1, ...]. */
  complex64: Float32Array;
  complex128: Float64Array;
  bool: Uint8Array;
}

type DateTimeArrays = { [D in DateTimeDType | TimeDeltaDType]: BigInt64Array };

/**
 * The TypedArray that holds each dtype's data. 'S<n>' data is a Uint8Array
 * and 'U<n>' data a Uint32Array; TypeScript only sees "some TypedArray"
 * there, since one index signature per family would make the data of an
 * NDArray narrowed by `instanceof` an impossible intersection (never).
 */
export interface DTypeArrays extends FixedDTypeArrays, DateTimeArrays {
  [dtype: StringDType]: FixedDTypeArrays[keyof FixedDTypeArrays];
}

export type DType = keyof DTypeArrays;
export type TypedArray = DTypeArrays[DType];
/**
 * The dtype a TypedArray type holds, as dtypeOfArray() finds it at run time
 * (a Uint8Array is uint8; bool is only chosen explicitly). TypeScript tells
 * the arrays apart by their `Symbol.toStringTag` literal types.
 */
export type DTypeOfArray<T extends TypedArray> =
  T extends Int8Array ? 'int8'
  : T extends Int16Array ? 'int16'
  : T extends Int32Array ? 'int32'
  : T extends BigInt64Array ? 'int64'
  : T extends Uint8Array ? 'uint8'
  : T extends Uint16Array ? 'uint16'
  : T extends Uint32Array ? 'uint32'
  : T extends BigUint64Array ? 'uint64'
  : T extends Float32Array ? 'float32'
  : T extends Float64Array ? 'float64'
  : never;
/**
 * What one element reads as: a bigint for the 64-bit integers and for
 * datetime64/timedelta64 (a count of units; NaT is -2^63), a boolean for
 * bool, [re, im] for complex, a string for S and U, else a number.
 */
export type DTypeScalar<D extends DType> =
  D extends 'int64' | 'uint64' | DateTimeDType | TimeDeltaDType ? bigint
  : D extends 'bool' ? boolean
  : D extends 'complex64' | 'complex128' ? Complex
  : D extends StringDType ? string
  : number;

interface TypedArrayConstructor<T> {
  new (length: number): T;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** numpy's type character, combined with byte order and size in .npy descr strings: '<f8', '<c16', '<M8[ns]', '|S5'. */
export type DTypeKind = 'i' | 'u' | 'f' | 'b' | 'c' | 'M' | 'm' | 'S' | 'U';

export interface DTypeInfo<D extends DType = DType> {
  readonly name: D;
  /** Bytes of one element. */
  readonly itemsize: number;
  readonly arrayType: TypedArrayConstructor<DTypeArrays[D]>;
  readonly kind: DTypeKind;
  /** TypedArray slots one element takes: 2 for complex, the width for S and U, else 1. */
  readonly lanes: number;
  /** The datetime64/timedelta64 unit, '' for the generic one; '' for other dtypes. */
  readonly unit: string;
}

type FixedDType = keyof FixedDTypeArrays;

const fixed = (name: FixedDType, itemsize: number, arrayType: TypedArrayConstructor<TypedArray>, kind: DTypeKind, lanes = 1): DTypeInfo =>
  Object.freeze({ name, itemsize, arrayType, kind, lanes, unit: '' }) as DTypeInfo;

const table: Readonly<Record<FixedDType, DTypeInfo>> = {
  int8: fixed('int8', 1, Int8Array, 'i'),
  int16: fixed('int16', 2, Int16Array, 'i'),
  int32: fixed('int32', 4, Int32Array, 'i'),
  int64: fixed('int64', 8, BigInt64Array, 'i'),
  uint8: fixed('uint8', 1, Uint8Array, 'u'),
  uint16: fixed('uint16', 2, Uint16Array, 'u'),
  uint32: fixed('uint32', 4, Uint32Array, 'u'),
  uint64: fixed('uint64', 8, BigUint64Array, 'u'),
  float16: fixed('float16', 2, Uint16Array, 'f'),
  float32: fixed('float32', 4, Float32Array, 'f'),
  float64: fixed('float64', 8, Float64Array, 'f'),
  complex64: fixed('complex64', 8, Float32Array, 'c', 2),
  complex128: fixed('complex128', 16, Float64Array, 'c', 2),
  bool: fixed('bool', 1, Uint8Array, 'b'),
};

export const dateTimeUnits: readonly DateTimeUnit[] = Object.freeze(['Y', 'M', 'W', 'D', 'h', 'm', 's', 'ms', 'us', 'ns', 'ps', 'fs', 'as']);

/**
 * The dtype names memjob supports. The parametrised families are listed
 * once each, by pattern: 'datetime64[unit]', 'timedelta64[unit]' (unit one
 * of dateTimeUnits, or none for numpy's generic unit), 'S<n>' and 'U<n>'.
 */
export const dtypeNames: readonly string[] = Object.freeze([...Object.keys(table), 'datetime64[unit]', 'timedelta64[unit]', 'S<n>', 'U<n>']);

/** Short, for error messages: every family once. */
export const supportedDTypesText =
  'bool, int8..int64, uint8..uint64, float16, float32, float64, complex64, complex128, datetime64[unit], timedelta64[unit], S<n>, U<n>';

/** The largest S/U width: numpy keeps an element's size in a C int. */
const MAX_ITEMSIZE = 2 ** 31 - 1;

/** The info of a dtype given by its canonical name ('float64', 'datetime64[ns]', 'U5'); undefined for anything else. */
function infoOfName(name: string): DTypeInfo | undefined {
  if (Object.hasOwn(table, name)) return table[name as FixedDType];
  const time = /^(datetime64|timedelta64)(?:\[(Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?$/.exec(name);
  if (time !== null) {
    const kind = time[1] === 'datetime64' ? 'M' : 'm';
    return Object.freeze({ name: name as DType, itemsize: 8, arrayType: BigInt64Array, kind, lanes: 1, unit: time[2] ?? '' }) as DTypeInfo;
  }
  const text = /^([SU])([1-9]\d{0,9})$/.exec(name);
  if (text !== null) {
    const width = Number(text[2]);
    const unicode = text[1] === 'U';
    if (width * (unicode ? 4 : 1) > MAX_ITEMSIZE) return undefined;
    const arrayType = unicode ? Uint32Array : Uint8Array;
    return Object.freeze({ name: name as DType, itemsize: width * arrayType.BYTES_PER_ELEMENT, arrayType, kind: text[1], lanes: width, unit: '' }) as DTypeInfo;
  }
  return undefined;
}

export function dtypeInfo<D extends DType>(dtype: D): DTypeInfo<D> {
  const info = infoOfName(dtype);
  if (info === undefined) throw new MemjobError(ErrorCodes.DTYPE, `expected a dtype (${supportedDTypesText}), received ${describe(dtype)}`);
  return info as DTypeInfo<D>;
}

/** True for a canonical dtype name: what NDArray.dtype and a dump's descriptors hold. */
export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && infoOfName(value) !== undefined;
}

/** The byte order character of a numpy dtype string: '<', '>', '|', '=' or '' (none given). */
export type ByteOrderChar = '<' | '>' | '|' | '=' | '';

// numpy's type codes ('<d', 'i8') and names ('double', 'int_') for the dtypes memjob has
// (numpy 1.24 on 64-bit Linux, where 'l' and 'long' are 8 bytes).
const numpyCodes: Record<string, DType> = {
  b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32', l: 'int64', L: 'uint64',
  q: 'int64', Q: 'uint64', p: 'int64', P: 'uint64', e: 'float16', f: 'float32', d: 'float64',
  F: 'complex64', D: 'complex128', '?': 'bool', c: 'S1',
  i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64', u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64',
  f2: 'float16', f4: 'float32', f8: 'float64', c8: 'complex64', c16: 'complex128', b1: 'bool',
};
const numpyNames: Record<string, DType> = {
  byte: 'int8', ubyte: 'uint8', short: 'int16', ushort: 'uint16', intc: 'int32', uintc: 'uint32',
  int: 'int64', int_: 'int64', int0: 'int64', intp: 'int64', long: 'int64', longlong: 'int64',
  uint: 'uint64', uint0: 'uint64', uintp: 'uint64', ulong: 'uint64', ulonglong: 'uint64',
  half: 'float16', single: 'float32', float: 'float64', double: 'float64', float_: 'float64',
  csingle: 'complex64', complex: 'complex128', cfloat: 'complex128', cdouble: 'complex128', complex_: 'complex128',
  bool_: 'bool', bool8: 'bool',
};

/**
 * What numpy.dtype(text) gives, for the dtypes memjob has: names ('float64',
 * 'datetime64[ns]'), codes ('d', '<q', '|b1', 'e'), datetimes ('<M8[ns]',
 * 'm8', 'M8[1s]'), strings ('|S5', 'a5', '<U5'). Undefined when numpy would
 * refuse it or memjob lacks the dtype (object, structured, float128,
 * unit multiples such as 'M8[2ns]', zero-width strings).
 */
export function parseNumpyDType(text: string): { dtype: DType; order: ByteOrderChar } | undefined {
  const m = /^([<>|=]?)([A-Za-z?][\w\[\]μ]*)$/.exec(text);
  if (m === null) return undefined;
  const order = m[1] as ByteOrderChar;
  const body = m[2]!;
  if (Object.hasOwn(numpyCodes, body)) return { dtype: numpyCodes[body]!, order };
  // numpy takes a byte order before codes and datetimes, not before other names ('<float64' is refused).
  if (Object.hasOwn(numpyNames, body)) return order === '' ? { dtype: numpyNames[body]!, order } : undefined;
  if (Object.hasOwn(table, body)) return order === '' ? { dtype: body as DType, order } : undefined;
  const time = /^(?:(M8?|datetime64)|(m8?|timedelta64))(?:\[(1?)(\w+|μs)\])?$/.exec(body);
  if (time !== null) {
    const unit = time[4] === undefined || time[4] === 'generic' ? '' : time[4] === 'μs' ? 'us' : time[4];
    if (unit !== '' && !(dateTimeUnits as readonly string[]).includes(unit)) return undefined;
    const dtype = `${time[1] !== undefined ? 'datetime64' : 'timedelta64'}${unit === '' ? '' : `[${unit}]`}`;
    return { dtype: dtype as DType, order };
  }
  const strings = /^([SaU])0*([1-9]\d{0,9})$/.exec(body);
  if (strings !== null) {
    const dtype = `${strings[1] === 'U' ? 'U' : 'S'}${strings[2]}`;
    return infoOfName(dtype) === undefined ? undefined : { dtype: dtype as DType, order };
  }
  return undefined;
}

/** numpy's dtype.str for `dtype` in this machine's byte order: '<f8', '|u1', '<c16', '<M8[ns]', '|S5', '<U5'. */
export function numpyStr(dtype: DType): string {
  const info = dtypeInfo(dtype);
  const order = info.arrayType.BYTES_PER_ELEMENT === 1 ? '|' : littleEndian ? '<' : '>';
  if (info.kind === 'S' || info.kind === 'U') return `${order}${info.kind}${info.lanes}`;
  if (info.kind === 'M' || info.kind === 'm') return `${order}${info.kind}8${info.unit === '' ? '' : `[${info.unit}]`}`;
  return `${order}${info.kind}${info.itemsize}`;
}

/**
 * Parses a dtype option: a name ('float64', 'complex64', 'datetime64[ns]',
 * 'U5'), or any numpy spelling of one in native byte order ('<f8', 'd', 'e').
 */
export function parseDType(value: unknown, where: string): DType {
  if (typeof value === 'string') {
    if (infoOfName(value) !== undefined) return value as DType;
    const parsed = parseNumpyDType(value);
    // '<' is this machine's order only on little-endian machines, '>' only on big-endian ones.
    const foreign = parsed !== undefined && parsed.order === (littleEndian ? '>' : '<') && dtypeInfo(parsed.dtype).arrayType.BYTES_PER_ELEMENT > 1;
    if (parsed !== undefined && !foreign) return parsed.dtype;
  }
  throw new MemjobError(ErrorCodes.DTYPE, `${where}: expected "dtype" to be one of ${supportedDTypesText} (or a numpy spelling such as '<f8'), received ${describe(value)}`);
}

/** The dtype a TypedArray holds; Uint8Array reads as uint8 (bool, float16, complex, datetime and strings are only ever chosen explicitly). */
export function dtypeOfArray(array: TypedArray): DType | undefined {
  for (const info of Object.values(table)) {
    if (info.lanes === 1 && info.name !== 'bool' && info.name !== 'float16' && array instanceof info.arrayType) return info.name;
  }
  return undefined;
}

/** The TypedArray class called `name` ('Float64Array'...), for references that name their array's class; undefined for a class no dtype uses. */
export function arrayTypeNamed(name: string): DTypeInfo['arrayType'] | undefined {
  for (const info of Object.values(table)) {
    if (info.arrayType.name === name) return info.arrayType;
  }
  return undefined;
}

export const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
