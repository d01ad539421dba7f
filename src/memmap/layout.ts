/**
 * Shapes, strides and slices: the arithmetic numpy does for an ndarray's
 * layout, in bytes. Kept free of files and mappings so it can serve Memmap
 * and in-memory arrays alike.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';

export type Order = 'C' | 'F';
export type Shape = readonly number[];

/** A shape option: a non-negative integer or an array of them. */
export function parseShape(value: unknown, where: string): number[] {
  const dims = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new MemjobError(
      ErrorCodes.SHAPE,
      `${where}: expected "shape" to be a non-negative integer or an array of them, received ${describe(value)}`,
    );
  }
  return [...dims] as number[];
}

export function parseOrder(value: unknown, where: string): Order {
  if (value === 'C' || value === 'F') return value;
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "order" to be 'C' or 'F', received ${describe(value)}`);
}

export function sizeOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Byte strides of a contiguous array in C (row-major) or F (column-major) order. */
export function contiguousStrides(shape: Shape, itemsize: number, order: Order): number[] {
  const strides = new Array<number>(shape.length);
  let step = itemsize;
  const axes = shape.map((_, i) => i);
  if (order === 'C') axes.reverse();
  for (const axis of axes) {
    strides[axis] = step;
    step *= Math.max(shape[axis] ?? 1, 1);
  }
  return strides;
}

/** Which contiguous order the layout has, if any (a 1-d or single-element array is both; 'C' is reported). */
export function contiguity(shape: Shape, strides: readonly number[], itemsize: number): Order | null {
  if (sizeOf(shape) <= 1) return 'C';
  const same = (s: number[]) => shape.every((n, i) => n <= 1 || s[i] === strides[i]);
  if (same(contiguousStrides(shape, itemsize, 'C'))) return 'C';
  if (same(contiguousStrides(shape, itemsize, 'F'))) return 'F';
  return null;
}

/**
 * The bytes an array's elements span, relative to its first element: `low`
 * is <= 0 (negative strides reach backwards), `high` is one past the last byte.
 */
export function extent(shape: Shape, strides: readonly number[], itemsize: number): { low: number; high: number } {
  if (sizeOf(shape) === 0) return { low: 0, high: 0 };
  let low = 0;
  let high = itemsize;
  shape.forEach((n, i) => {
    const reach = (n - 1) * (strides[i] ?? 0);
    if (reach < 0) low += reach;
    else high += reach;
  });
  return { low, high };
}

export interface SliceRange {
  start: number;
  step: number;
  length: number;
}

/** Python's slice semantics on an axis of `length`: negative indices count from the end, bounds clamp. */
export function normalizeSlice(
  length: number,
  start: number | undefined,
  end: number | undefined,
  step: number | undefined,
  where: string,
): SliceRange {
  const s = step ?? 1;
  for (const [name, v] of [['start', start], ['end', end], ['step', step]] as const) {
    if (v !== undefined && !Number.isSafeInteger(v)) {
      throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "${name}" to be an integer, received ${describe(v)}`);
    }
  }
  if (s === 0) throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "step" to be a non-zero integer, received 0 (number)`);
  const clamp = (v: number | undefined, fallback: number, lo: number, hi: number) => {
    if (v === undefined) return fallback;
    const i = v < 0 ? v + length : v;
    return Math.min(Math.max(i, lo), hi);
  };
  const first = s > 0 ? clamp(start, 0, 0, length) : clamp(start, length - 1, -1, length - 1);
  const stop = s > 0 ? clamp(end, length, 0, length) : clamp(end, -1, -1, length - 1);
  const count = s > 0 ? Math.ceil((stop - first) / s) : Math.ceil((first - stop) / -s);
  return { start: first, step: s, length: Math.max(0, count) };
}

/** Index of one element: checks bounds (negative indices count from the end) and returns its byte offset. */
export function elementOffset(shape: Shape, strides: readonly number[], index: readonly number[], where: string): number {
  if (index.length !== shape.length) {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${where}: expected ${shape.length} indices for shape [${shape.join(', ')}], received ${describe([...index])}`,
    );
  }
  let offset = 0;
  index.forEach((raw, axis) => {
    const n = shape[axis] ?? 0;
    const i = raw < 0 ? raw + n : raw;
    if (!Number.isSafeInteger(raw) || i < 0 || i >= n) {
      throw new MemjobError(
        ErrorCodes.OUT_OF_RANGE,
        `${where}: index ${describe(raw)} is out of range for axis ${axis} with size ${n}`,
      );
    }
    offset += i * (strides[axis] ?? 0);
  });
  return offset;
}
