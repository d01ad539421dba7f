/**
 * NDArray: a TypedArray with a dtype, a shape and an order, numpy's ndarray
 * without the arithmetic. It is what load() and loadNpy() return for an
 * array that carries a shape, and what users pass to dump() and saveNpy()
 * when a flat TypedArray is not enough. The data may live in ordinary memory
 * or in a file mapping (then hasShareableMemory(ndarray) is true).
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import {
  dtypeInfo,
  dtypeOfArray,
  parseDType,
  type DType,
  type DTypeArrays,
  type DTypeOfArray,
  type DTypeScalar,
  type TypedArray,
} from './dtype.js';
import { contiguousStrides, elementOffset, parseOrder, parseShape, sizeOf, type Order } from './layout.js';
import { arrayRepr, inspectCustom } from './repr.js';

export interface NDArrayOptions<D extends DType = DType> {
  /** Default: the data's length, as a 1-d array. */
  shape?: number | readonly number[];
  /** Storage order of `data`: 'C' row-major (default) or 'F' column-major. */
  order?: Order;
  /** Default: the dtype the TypedArray holds. Give 'bool' to read a Uint8Array as booleans. */
  dtype?: D;
}

export class NDArray<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly order: Order;
  /** The elements, in `order`, with no copy of what was passed in. */
  readonly data: DTypeArrays[D];

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
    const shape = options.shape === undefined ? [data.length] : parseShape(options.shape, where);
    if (sizeOf(shape) !== data.length) {
      throw new MemjobError(
        ErrorCodes.SHAPE,
        `${where}: shape [${shape.join(', ')}] holds ${sizeOf(shape)} elements, but "data" has ${data.length}`,
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
    return this.data.length;
  }

  get itemsize(): number {
    return dtypeInfo(this.dtype).itemsize;
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
    const value = this.data[this.#position(index, 'NDArray.get')]!;
    return (this.dtype === 'bool' ? value !== 0 : value) as DTypeScalar<D>;
  }

  set(index: number | readonly number[], value: DTypeScalar<D>): void {
    const at = this.#position(typeof index === 'number' ? [index] : [...index], 'NDArray.set');
    (this.data as unknown as (number | bigint)[])[at] = typeof value === 'boolean' ? Number(value) : (value as number | bigint);
  }

  /** numpy's repr: `ndarray([[0., 1., 2.], [3., 4., 5.]], dtype=float64)`, elements in index order whatever `order`. */
  toString(): string {
    return arrayRepr({ name: 'ndarray', dtype: this.dtype, shape: this.shape, read: (index) => this.get(...index) });
  }

  [inspectCustom](): string {
    return this.toString();
  }

  #position(index: readonly number[], where: string): number {
    return elementOffset(this.shape, this.strides, index, where) / this.itemsize;
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
