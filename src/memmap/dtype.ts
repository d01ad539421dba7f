/**
 * The dtypes memjob maps: numpy's names, each with the TypedArray that views it.
 * 64-bit integers are BigInt64Array/BigUint64Array; bool is stored as one byte
 * (numpy's layout) and viewed as a Uint8Array.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';

export interface DTypeArrays {
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  float32: Float32Array;
  float64: Float64Array;
  bool: Uint8Array;
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
/** What one element reads as: a number, or a bigint for the 64-bit integer dtypes. */
export type DTypeScalar<D extends DType> = D extends 'int64' | 'uint64' ? bigint : D extends 'bool' ? boolean : number;

interface TypedArrayConstructor<T> {
  new (length: number): T;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

export interface DTypeInfo<D extends DType = DType> {
  readonly name: D;
  readonly itemsize: number;
  readonly arrayType: TypedArrayConstructor<DTypeArrays[D]>;
  /** numpy's type character, combined with byte order in .npy descr strings: '<f8'. */
  readonly kind: 'i' | 'u' | 'f' | 'b';
}

const table: { [D in DType]: DTypeInfo<D> } = {
  int8: { name: 'int8', itemsize: 1, arrayType: Int8Array, kind: 'i' },
  int16: { name: 'int16', itemsize: 2, arrayType: Int16Array, kind: 'i' },
  int32: { name: 'int32', itemsize: 4, arrayType: Int32Array, kind: 'i' },
  int64: { name: 'int64', itemsize: 8, arrayType: BigInt64Array, kind: 'i' },
  uint8: { name: 'uint8', itemsize: 1, arrayType: Uint8Array, kind: 'u' },
  uint16: { name: 'uint16', itemsize: 2, arrayType: Uint16Array, kind: 'u' },
  uint32: { name: 'uint32', itemsize: 4, arrayType: Uint32Array, kind: 'u' },
  uint64: { name: 'uint64', itemsize: 8, arrayType: BigUint64Array, kind: 'u' },
  float32: { name: 'float32', itemsize: 4, arrayType: Float32Array, kind: 'f' },
  float64: { name: 'float64', itemsize: 8, arrayType: Float64Array, kind: 'f' },
  bool: { name: 'bool', itemsize: 1, arrayType: Uint8Array, kind: 'b' },
};

export const dtypeNames: readonly DType[] = Object.freeze(Object.keys(table) as DType[]);

// numpy spellings people type out of habit: np.float64, 'f8', 'double', '<i4'.
const aliases: Record<string, DType> = {
  i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64',
  u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64',
  f4: 'float32', f8: 'float64', b1: 'bool', '?': 'bool',
  byte: 'int8', ubyte: 'uint8', short: 'int16', ushort: 'uint16',
  intc: 'int32', uintc: 'uint32', single: 'float32', double: 'float64', bool_: 'bool',
};

export function dtypeInfo<D extends DType>(dtype: D): DTypeInfo<D> {
  return table[dtype];
}

/** Parses a dtype option: a name from the table, or a numpy spelling of one in native byte order. */
export function parseDType(value: unknown, where: string): DType {
  if (typeof value === 'string') {
    if (Object.hasOwn(table, value)) return value as DType;
    // '<f8' and '=f8' are native order on the little-endian machines Node runs on; '|u1' has none.
    const bare = /^[<=|]/.test(value) ? value.slice(1) : value;
    const alias = Object.hasOwn(aliases, bare) ? aliases[bare] : undefined;
    if (alias !== undefined && !(value.startsWith('<') && !littleEndian)) return alias;
  }
  throw new MemjobError(
    ErrorCodes.DTYPE,
    `${where}: expected "dtype" to be one of ${dtypeNames.join(', ')}, received ${describe(value)}`,
  );
}

/** The dtype a TypedArray holds; Uint8Array reads as uint8 (bool is only ever chosen explicitly). */
export function dtypeOfArray(array: TypedArray): DType | undefined {
  for (const info of Object.values(table)) {
    if (info.name !== 'bool' && array instanceof info.arrayType) return info.name;
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
