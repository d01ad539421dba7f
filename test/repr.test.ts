// String(memmap), template strings and console.log show numpy's repr, with
// numpy's conventions (expected strings are numpy 2's output for the same
// arrays, with 'array(' spelled as memjob's 'ndarray(' and 'memmap(').
import { closeSync, ftruncateSync, openSync, writeFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { memmap, ndarray } from '../src/index.js';
import { runTsChild, scratchDir } from './helpers.js';

const scratch = scratchDir('repr');
afterAll(() => scratch.remove());

const range = (n: number, scale = 1) => Float64Array.from({ length: n }, (_, i) => i * scale);

describe('NDArray', () => {
  it('floats: shortest digits, one width, positional or scientific as numpy chooses', () => {
    expect(String(ndarray(new Float64Array([0, 1, 2])))).toBe('ndarray([0., 1., 2.], dtype=float64)');
    expect(String(ndarray(new Float64Array([0.5, 1.25, -3])))).toBe('ndarray([ 0.5 ,  1.25, -3.  ], dtype=float64)');
    expect(String(ndarray(new Float64Array([NaN, Infinity, -Infinity, 1.5])))).toBe('ndarray([ nan,  inf, -inf,  1.5], dtype=float64)');
    expect(String(ndarray(new Float64Array([1e-5, 1, 1e10])))).toBe('ndarray([1.e-05, 1.e+00, 1.e+10], dtype=float64)');
    expect(String(ndarray(new Float32Array([0.1, 0.2, 1 / 3])))).toBe('ndarray([0.1       , 0.2       , 0.33333334], dtype=float32)');
    expect(String(ndarray(range(12, 1 / 7), { shape: [3, 4] }))).toBe(
      'ndarray([[0.        , 0.14285714, 0.28571429, 0.42857143],\n' +
        '         [0.57142857, 0.71428571, 0.85714286, 1.        ],\n' +
        '         [1.14285714, 1.28571429, 1.42857143, 1.57142857]], dtype=float64)',
    );
  });

  it('integers and booleans; long rows wrap at 75 columns under the first element', () => {
    expect(String(ndarray(new Uint8Array([1, 0, 1]), { dtype: 'bool' }))).toBe('ndarray([ True, False,  True], dtype=bool)');
    expect(String(ndarray(new BigInt64Array([1n, -2n, 2n ** 62n])))).toBe(
      'ndarray([                  1,                  -2, 4611686018427387904],\n        dtype=int64)',
    );
    const wrapped = String(ndarray(Int32Array.from({ length: 40 }, (_, i) => i)));
    expect(wrapped).toBe(
      'ndarray([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,\n' +
        '         16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,\n' +
        '         32, 33, 34, 35, 36, 37, 38, 39], dtype=int32)',
    );
    for (const line of wrapped.split('\n')) expect(line.length).toBeLessThanOrEqual(75);
  });

  it('more than 1000 elements: 3 at each end of each long axis, and the shape', () => {
    expect(String(ndarray(range(10_000)))).toBe(
      'ndarray([0.000e+00, 1.000e+00, 2.000e+00, ..., 9.997e+03, 9.998e+03,\n' + '         9.999e+03], shape=(10000,), dtype=float64)',
    );
    expect(String(ndarray(Int32Array.from({ length: 10_000 }, (_, i) => i)))).toBe(
      'ndarray([   0,    1,    2, ..., 9997, 9998, 9999],\n        shape=(10000,), dtype=int32)',
    );
    expect(String(ndarray(range(3000), { shape: [1000, 3] }))).toBe(
      [
        'ndarray([[0.000e+00, 1.000e+00, 2.000e+00],',
        '         [3.000e+00, 4.000e+00, 5.000e+00],',
        '         [6.000e+00, 7.000e+00, 8.000e+00],',
        '         ...,',
        '         [2.991e+03, 2.992e+03, 2.993e+03],',
        '         [2.994e+03, 2.995e+03, 2.996e+03],',
        '         [2.997e+03, 2.998e+03, 2.999e+03]],',
        '        shape=(1000, 3), dtype=float64)',
      ].join('\n'),
    );
  });

  it('3-d arrays, F order (shown by index, not storage), 0-d and empty arrays', () => {
    expect(String(ndarray(range(24), { shape: [2, 3, 4] }))).toBe(
      [
        'ndarray([[[ 0.,  1.,  2.,  3.],',
        '          [ 4.,  5.,  6.,  7.],',
        '          [ 8.,  9., 10., 11.]],',
        '',
        '         [[12., 13., 14., 15.],',
        '          [16., 17., 18., 19.],',
        '          [20., 21., 22., 23.]]], dtype=float64)',
      ].join('\n'),
    );
    expect(String(ndarray(range(6), { shape: [2, 3], order: 'F' }))).toBe('ndarray([[0., 2., 4.],\n         [1., 3., 5.]], dtype=float64)');
    expect(String(ndarray(new Float64Array([7]), { shape: [] }))).toBe('ndarray(7., dtype=float64)');
    expect(String(ndarray(new Float64Array(0)))).toBe('ndarray([], dtype=float64)');
    expect(String(ndarray(new Float64Array(0), { shape: [0, 3] }))).toBe('ndarray([], shape=(0, 3), dtype=float64)');
  });

  it('util.inspect, console.log and template strings show the same text', async () => {
    const a = ndarray(new Int16Array([3, -4]));
    expect(inspect(a)).toBe('ndarray([ 3, -4], dtype=int16)');
    expect(`${a}`).toBe('ndarray([ 3, -4], dtype=int16)');
    expect(inspect({ a })).toBe('{ a: ndarray([ 3, -4], dtype=int16) }');
    const printed = await runTsChild('repr-print.ts');
    expect(printed.stderr).toBe('');
    expect(printed.stdout).toBe("ndarray([1., 2.], dtype=float64)\n{ weights: ndarray([1., 2.], dtype=float64) }\n");
  });
});

describe('Memmap', () => {
  // As numpy: the extras go on a line of their own (under the first '[') when
  // the last line would pass 75 columns, which depends on the scratch path.
  const extrasLine = (text: string) => {
    const [elements = '', ...rest] = text.split(/,\n {7}(?=(?:shape|dtype)=)/);
    const lastLine = elements.split('\n').at(-1)!;
    return { text: rest.length > 0 ? `${elements}, ${rest.join('')}` : text, wrapped: rest.length > 0, lastLine };
  };

  it('shows its mode and file (and a non-zero offset); a slice shows its own elements', () => {
    const path = scratch.file('small.f64');
    writeFileSync(path, range(10, 0.5));
    const mm = memmap(path, { dtype: 'float64', mode: 'r' });
    const cases: [string, string][] = [
      [String(mm), `memmap([0. , 0.5, 1. , 1.5, 2. , 2.5, 3. , 3.5, 4. , 4.5], dtype=float64, mode='r', file='${path}')`],
      [`${mm.slice(1, 3)}`, `memmap([0.5, 1. ], dtype=float64, mode='r', offset=8, file='${path}')`],
    ];
    const shifted = memmap(path, { dtype: 'float64', mode: 'c', offset: 64, shape: [2] });
    cases.push([String(shifted), `memmap([4. , 4.5], dtype=float64, mode='c', offset=64, file='${path}')`]);
    shifted.close();
    mm.close();
    cases.push([String(mm), `memmap(<closed>, shape=(10,), dtype=float64, mode='r', file='${path}')`]);
    for (const [shown, expected] of cases) {
      const { text, wrapped, lastLine } = extrasLine(shown);
      expect(text).toBe(expected);
      // Wrapped exactly when one line would be too long.
      expect(wrapped).toBe(expected.length > 75);
      if (wrapped) expect(lastLine.length).toBeLessThanOrEqual(75);
    }
    expect(inspect(mm)).toBe(String(mm));
  });

  it('a 1 GiB file: reads only the pages of the elements shown', () => {
    for (const [shape, pages] of [[[2 ** 27], 2], [[2 ** 14, 2 ** 13], 12]] as const) {
      const path = scratch.file(`sparse-1g-${shape.length}d.f64`);
      const fd = openSync(path, 'w+', 0o600);
      ftruncateSync(fd, 2 ** 30); // sparse: nothing on disk, nothing in memory
      closeSync(fd);
      const mm = memmap(path, { dtype: 'float64', mode: 'r', shape: [...shape] });
      mm.advise('random'); // no read-ahead, so resident pages are the pages read
      expect(mm.residency().residentPages).toBe(0);
      const text = String(mm);
      expect(text).toContain('0., 0., 0., ..., 0., 0., 0.');
      expect(text).toContain(`shape=(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`);
      // The first and last 3 of each row shown: at most 2 pages per row, of 262144.
      expect(mm.residency().residentPages).toBeLessThanOrEqual(pages);
      mm.close();
    }
  });
});
