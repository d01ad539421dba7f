import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { memmap } from '../src/index.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir('modes');
afterAll(() => scratch.remove());

/** A fresh file holding float64 values 0..n-1. */
function float64File(name: string, n: number): string {
  const path = scratch.file(name);
  writeFileSync(path, new Float64Array(Array.from({ length: n }, (_, i) => i)));
  return path;
}

function reopen(path: string): Float64Array {
  return new Float64Array(new Uint8Array(readFileSync(path)).buffer);
}

describe('memmap modes, checked through a fresh read of the file', () => {
  it("'r+' writes reach the file", () => {
    const path = float64File('rplus.bin', 8);
    const mm = memmap(path, { dtype: 'float64', mode: 'r+' });
    expect(mm.readonly).toBe(false);
    mm.data[3] = 99.5;
    mm.flush();
    mm.close();
    expect(reopen(path)[3]).toBe(99.5);
  });

  it("'w+' creates the file with the shape's size, zeroed, and writes persist", () => {
    const path = scratch.file('wplus.bin');
    const mm = memmap(path, { dtype: 'int32', mode: 'w+', shape: [4, 5] });
    expect(statSync(path).size).toBe(80);
    expect(Array.from(mm.data)).toEqual(new Array(20).fill(0));
    mm.data[19] = -7;
    mm.close();
    const back = new Int32Array(new Uint8Array(readFileSync(path)).buffer);
    expect(back[19]).toBe(-7);
  });

  it("'w+' overwrites an existing file", () => {
    const path = float64File('wplus-over.bin', 100);
    const mm = memmap(path, { dtype: 'float64', mode: 'w+', shape: 3 });
    expect(Array.from(mm.data)).toEqual([0, 0, 0]);
    mm.close();
    expect(statSync(path).size).toBe(24);
  });

  it("'c' writes are visible through the memmap and its views, never in the file", () => {
    const path = float64File('copy.bin', 8);
    const mm = memmap(path, { dtype: 'float64', mode: 'c' });
    expect(mm.readonly).toBe(false);
    mm.data[2] = -1;
    expect(mm.data[2]).toBe(-1);
    // A slice made later sees the copy-on-write page, as in numpy.
    expect(mm.slice(2, 3).data[0]).toBe(-1);
    mm.slice(5, 6).data[0] = -5;
    expect(mm.data[5]).toBe(-5);
    mm.flush();
    mm.close();
    expect(Array.from(reopen(path))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("'r' reports itself read-only and reads the file", () => {
    const path = float64File('ro.bin', 8);
    const mm = memmap(path, { dtype: 'float64', mode: 'r' });
    expect(mm.readonly).toBe(true);
    expect(Array.from(mm.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    mm.close();
  });

  it("accepts numpy's long mode names and defaults to 'r+' and uint8", () => {
    const path = float64File('names.bin', 2);
    const a = memmap(path, { mode: 'readonly' });
    expect(a.mode).toBe('r');
    expect(a.dtype).toBe('uint8');
    expect(a.shape).toEqual([16]);
    const b = memmap(path);
    expect(b.mode).toBe('r+');
    a.close();
    b.close();
  });

  it('a 2-d Fortran-order memmap reads column-major bytes', () => {
    const path = float64File('fortran.bin', 6);
    const mm = memmap(path, { dtype: 'float64', mode: 'r', shape: [2, 3], order: 'F' });
    expect(mm.strides).toEqual([8, 16]);
    expect(mm.get(1, 0)).toBe(1);
    expect(mm.get(0, 1)).toBe(2);
    expect(Array.from(mm.toArray())).toEqual([0, 2, 4, 1, 3, 5]);
    mm.close();
  });

  it('maps every dtype, with 64-bit integers as BigInt arrays and bool as bytes', () => {
    const path = scratch.file('dtypes.bin');
    writeFileSync(path, Buffer.alloc(64, 1));
    const expectations = {
      int8: Int8Array, int16: Int16Array, int32: Int32Array, int64: BigInt64Array,
      uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, uint64: BigUint64Array,
      float32: Float32Array, float64: Float64Array, bool: Uint8Array,
    } as const;
    for (const [dtype, type] of Object.entries(expectations)) {
      const mm = memmap(path, { dtype: dtype as keyof typeof expectations, mode: 'r' });
      expect(mm.data).toBeInstanceOf(type);
      expect(mm.nbytes).toBe(64);
      mm.close();
    }
    const flags = memmap(path, { dtype: 'bool', mode: 'r' });
    expect(flags.get(0)).toBe(true);
    flags.close();
    const big = memmap(path, { dtype: 'uint64', mode: 'r' });
    expect(big.get(0)).toBe(0x0101010101010101n);
    big.close();
  });
});
