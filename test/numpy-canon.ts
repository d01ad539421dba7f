// Shared by test/dtypes-extra.test.ts: real numpy through /usr/bin/python3,
// and one printable form of every element on both sides, so values are
// compared exactly (floats by their float64 bits).
import { execFileSync } from 'node:child_process';
import { ndarray, numberToFloat16, stringArray, type Memmap, type NDArray } from '../src/index.js';
import { numpyPython } from './helpers.js';

const python = numpyPython();
export const skipNumpy = python === null && process.env.MEMJOB_REQUIRE_NUMPY !== '1';
export const skipNote = skipNumpy ? ' (skipped: /usr/bin/python3 has no numpy; apt-get install python3-numpy)' : '';

/** Runs a Python script with JSON on stdin and returns the JSON it prints. */
export function py<T>(script: string, input: unknown = null): T {
  if (python === null) throw new Error('MEMJOB_REQUIRE_NUMPY=1, but /usr/bin/python3 cannot import numpy');
  const stdout = execFileSync(python, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as T;
}

// Every element in a form both sides can print exactly: floats as the hex of
// their float64 bits ('nan' for any NaN), integers and datetimes as decimal.
export const CANON_PY = `
import json, struct, sys, warnings
import numpy as np
warnings.simplefilter('ignore')  # casts to float16 overflow on purpose
def f(x):
    x = float(x)
    return 'nan' if x != x else struct.pack('>d', x).hex()
def canon(a):
    k = a.dtype.kind
    flat = a.ravel(order='C')
    if k in 'Mm': return [str(int(v)) for v in flat.astype(a.dtype.newbyteorder('=')).view('i8')]
    if k == 'c': return [[f(v.real), f(v.imag)] for v in flat]
    if k == 'f': return [f(v) for v in flat]
    if k == 'S': return [v.decode('latin1') for v in flat]
    if k == 'b': return ['True' if v else 'False' for v in flat]
    return [str(v) for v in flat]
`;

export type Canon = string | string[];
const view = new DataView(new ArrayBuffer(8));
export function hex(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  view.setFloat64(0, x);
  return view.getBigUint64(0).toString(16).padStart(16, '0');
}
export function canon(value: unknown): Canon {
  if (Array.isArray(value)) return value.map((v) => hex(v as number));
  if (typeof value === 'number') return hex(value);
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  return String(value);
}
export function unravel(i: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    index[axis] = i % shape[axis]!;
    i = Math.floor(i / shape[axis]!);
  }
  return index;
}
/** Elements in C order through get(), canonical; integer dtypes print as integers, not float bits. */
export function elements(array: NDArray | Memmap): Canon[] {
  return Array.from({ length: array.size }, (_, i) => {
    const v = array.get(...unravel(i, array.shape));
    return typeof v === 'number' && /int/.test(array.dtype) ? String(v) : canon(v);
  });
}

export const NAT = -(2n ** 63n);
const units = ['Y', 'M', 'W', 'D', 'h', 'm', 's', 'ms', 'us', 'ns', 'ps', 'fs', 'as'] as const;

/** One array of every new dtype, built through the public API. */
export function samples(): Record<string, NDArray> {
  const half = (values: number[], shape: number[], order: 'C' | 'F' = 'C') =>
    ndarray(Uint16Array.from(values, numberToFloat16), { dtype: 'float16', shape, order });
  const out: Record<string, NDArray> = {
    f2: half([0, -0, 1.5, 65504, -Infinity, Number.NaN], [2, 3]),
    f2F: half([1e-7, 0.1, 1 / 3, -2.5, 6e-8, 70000], [3, 2], 'F'),
    c8: ndarray(new Float32Array([1, 2, -0.5, 0.25, Infinity, Number.NaN]), { dtype: 'complex64' }),
    c16F: ndarray(new Float64Array([1, -1, 2.5, 0, 1e300, -1e-300, 0, 7]), { dtype: 'complex128', shape: [2, 2], order: 'F' }),
    M8: ndarray(new BigInt64Array([NAT, NAT]), { dtype: 'datetime64' }),
    m8: ndarray(new BigInt64Array([NAT, 3n]), { dtype: 'timedelta64' }),
    S5: stringArray(['ab', '', 'abcde', 'a\0b', '\xe9\xff'], { dtype: 'S5' }),
    U5: stringArray(['ab', '', 'héllo', '😀x', 'a\0b'], { dtype: 'U5' }),
    U2x2: stringArray(['a', 'bc', 'd', ''], { shape: [2, 2], order: 'F' }),
  };
  for (const unit of units) {
    out[`M8[${unit}]`] = ndarray(new BigInt64Array([NAT, 0n, -1n, 1_600_000_000n]), { dtype: `datetime64[${unit}]` });
    out[`m8[${unit}]`] = ndarray(new BigInt64Array([2n ** 62n, NAT, -5n]), { dtype: `timedelta64[${unit}]`, shape: [3, 1] });
  }
  return out;
}
