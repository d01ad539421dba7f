/**
 * NDArray: a TypedArray with a dtype, a shape and an order, numpy's ndarray
 * without the arithmetic. It is what load() and loadNpy() return for an
 * array that carries a shape, and what users pass to dump() and saveNpy()
 * when a flat TypedArray is not enough. The data may live in ordinary memory
 * or in a file mapping (then hasShareableMemory(ndarray) is true).
 */
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import {
  dtypeInfo,
  dtypeOfArray,
  parseDType,
  type DType,
  type DTypeArrays,
  type DTypeInfo,
  type DTypeOfArray,
  type DTypeScalar,
  type StringDType,
  type TypedArray,
} from './dtype.js';
import { decodeStrings, readElement, widthOf, writeElement } from './elements.js';
import { contiguousStrides, elementOffset, parseOrder, parseShape, sizeOf, type Order } from './layout.js';
import { arrayRepr, inspectCustom } from './repr.js';

export interface NDArrayOptions<D extends DType = DType> {
  /** Default: one axis holding every element of `data`. */
  shape?: number | readonly number[];
  /** Storage order of `data`: 'C' row-major (default) or 'F' column-major. */
  order?: Order;
  /**
   * Default: the dtype the TypedArray holds. Give 'bool' to read a Uint8Array
   * as booleans, 'float16' for a Uint16Array of half-precision bits,
   * 'complex64'/'complex128' for interleaved [re, im] floats,
   * 'datetime64[unit]'/'timedelta64[unit]' for a BigInt64Array, 'S<n>'/'U<n>'
   * for a Uint8Array/Uint32Array of n bytes/code points per element.
   */
  dtype?: D;
}

export class NDArray<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly order: Order;
  /** The elements, in `order`, with no copy of what was passed in (complex and string elements take several slots each). */
  readonly data: DTypeArrays[D];
  /** Looked up once: a parametrised dtype ('U5', 'datetime64[ns]') is parsed from its name. */
  readonly #info: DTypeInfo<D>;

  constructor(data: DTypeArrays[D], options: NDArrayOptions<D> = {}) {
    const where = 'NDArray';
    const found = ArrayBuffer.isView(data) ? dtypeOfArray(data as never) : undefined;
    if (found === undefined) throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "data" to be a TypedArray, received ${describe(data)}`);
    const dtype = (options.dtype === undefined ? found : parseDType(options.dtype, where)) as D;
    if (!(data instanceof dtypeInfo(dtype).arrayType)) {
      throw new MemjobError(
        ErrorCodes.DTYPE,
        `${where}: dtype '${dtype}' needs a ${dtypeInfo(dtype).arrayType.name}, received ${describe(data)}`,
      );
    }
    this.#info = dtypeInfo(dtype);
    const { lanes } = this.#info;
    if (data.length % lanes !== 0) {
      throw new MemjobError(
        ErrorCodes.SHAPE,
        `${where}: expected "data" to hold a whole number of ${dtype} elements (${lanes} slots each), received ${data.length} slots`,
      );
    }
    const shape = options.shape === undefined ? [data.length / lanes] : parseShape(options.shape, where);
    if (sizeOf(shape) * lanes !== data.length) {
      throw new MemjobError(
        ErrorCodes.SHAPE,
        `${where}: shape [${shape.join(', ')}] holds ${sizeOf(shape)} elements, but "data" has ${data.length / lanes}`,
      );
    }
    this.dtype = dtype;
    this.shape = Object.freeze(shape);
    this.order = parseOrder(options.order ?? 'C', where);
    this.data = data;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length / this.#info.lanes;
  }

  get itemsize(): number {
    return this.#info.itemsize;
  }

  get nbytes(): number {
    return this.data.byteLength;
  }

  /** Byte strides, as numpy reports them. */
  get strides(): number[] {
    return contiguousStrides(this.shape, this.itemsize, this.order);
  }

  /** The element at `index`, one integer per axis, negative counting from the end. */
  get(...index: number[]): DTypeScalar<D> {
    return readElement(this.#info, this.data, this.#position(index, 'NDArray.get')) as DTypeScalar<D>;
  }

  set(index: number | readonly number[], value: DTypeScalar<D>): void {
    const at = this.#position(typeof index === 'number' ? [index] : [...index], 'NDArray.set');
    writeElement(this.#info, this.data, at, value, 'NDArray.set');
  }

  /** The elements of an 'S<n>' or 'U<n>' array as strings, in storage order (`order`), trailing NULs stripped as numpy does. */
  toStrings(): string[] {
    if (this.#info.kind !== 'S' && this.#info.kind !== 'U') {
      throw new MemjobError(ErrorCodes.DTYPE, `NDArray.toStrings: expected an array of dtype 'S<n>' or 'U<n>', received dtype '${this.dtype}'`);
    }
    return decodeStrings(this.#info, this.data);
  }

  /** numpy's repr: `ndarray([[0., 1., 2.], [3., 4., 5.]], dtype=float64)`, elements in index order whatever `order`. */
  toString(): string {
    return arrayRepr({ name: 'ndarray', dtype: this.dtype, shape: this.shape, read: (index) => this.get(...index) });
  }

  [inspectCustom](): string {
    return this.toString();
  }

  /** The first TypedArray slot of the element at `index`. */
  #position(index: readonly number[], where: string): number {
    return elementOffset(this.shape, this.strides, index, where) / this.#info.arrayType.BYTES_PER_ELEMENT;
  }
}

/**
 * Wraps a TypedArray as an NDArray: `ndarray(new Float64Array(6), { shape: [2, 3] })`
 * is an `NDArray<'float64'>`; the dtype comes from the array's type unless
 * `dtype` is given (`{ dtype: 'bool' }` over a Uint8Array).
 */
export function ndarray<T extends TypedArray>(data: T, options?: NDArrayOptions<DTypeOfArray<T>>): NDArray<DTypeOfArray<T>>;
export function ndarray<D extends DType>(data: DTypeArrays[D], options: NDArrayOptions<D> & { dtype: D }): NDArray<D>;
export function ndarray<D extends DType>(data: DTypeArrays[D], options: NDArrayOptions<D> = {}): NDArray<D> {
  return new NDArray(data, options);
}

export interface StringArrayOptions {
  /** 'U' (default) or 'S', or with a width ('U5', 'S5'); without one, the longest string's length (as numpy). */
  dtype?: 'S' | 'U' | StringDType;
  shape?: number | readonly number[];
  order?: Order;
}

/**
 * An NDArray of fixed-width strings from JS strings, as
 * `np.array(values, dtype='U')`: `stringArray(['a', 'bc'])` is a 'U2' array.
 * 'S' stores one byte per character, so it takes only U+0000 to U+00FF;
 * a string longer than the width is an error, never truncated.
 */
export function stringArray(values: readonly string[], options: StringArrayOptions = {}): NDArray<StringDType> {
  const where = 'stringArray';
  if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) throw invalidArg(where, 'values', 'an array of strings', values);
  const requested = options.dtype ?? 'U';
  const dtype = (requested === 'S' || requested === 'U' ? `${requested}${widthOf(values)}` : parseDType(requested, where)) as StringDType;
  const info = dtypeInfo(dtype);
  if (info.kind !== 'S' && info.kind !== 'U') throw invalidArg(where, 'dtype', "'S', 'U', 'S<n>' or 'U<n>'", requested);
  const data = new info.arrayType(values.length * info.lanes);
  values.forEach((value, i) => writeElement(info, data, i * info.lanes, value, where));
  return new NDArray<StringDType>(data as DTypeArrays[StringDType], { dtype, shape: options.shape ?? values.length, order: options.order ?? 'C' });
}
