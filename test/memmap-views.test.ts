import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { hasShareableMemory, memmap, type Memmap } from '../src/index.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir('views');
afterAll(() => scratch.remove());

function openRange(name: string, n: number): Memmap<'float64'> {
  const path = scratch.file(name);
  writeFileSync(path, new Float64Array(Array.from({ length: n }, (_, i) => i)));
  return memmap(path, { dtype: 'float64', mode: 'r+' });
}

describe('slices share the mapping', () => {
  it("the seed's small = large[2:5]: 3 elements, 24 bytes, writes seen both ways", () => {
    const large = openRange('seed.bin', 10);
    const small = large.slice(2, 5);
    expect(small.shape).toEqual([3]);
    expect(small.nbytes).toBe(24);
    expect(small.offset).toBe(16);
    expect(Array.from(small.data)).toEqual([2, 3, 4]);
    small.data[0] = 42;
    expect(large.data[2]).toBe(42);
    large.data[4] = -4;
    expect(small.data[2]).toBe(-4);
    // Once the parent is viewed, a new slice views the same ArrayBuffer (numpy's base chain).
    expect(large.slice(2, 5).data.buffer).toBe(large.data.buffer);
    large.close();
  });

  it('a slice taken before the parent is read maps its own window and still shares writes', () => {
    const large = openRange('lazy.bin', 10);
    const small = large.slice(7);
    small.data[0] = 70;
    expect(large.data[7]).toBe(70);
    large.close();
  });

  it('follows Python slice rules: negative indices, clamping, steps, empty results', () => {
    const mm = openRange('rules.bin', 10);
    expect(Array.from(mm.slice(-3).data)).toEqual([7, 8, 9]);
    expect(Array.from(mm.slice(undefined, -8).data)).toEqual([0, 1]);
    expect(Array.from(mm.slice(5, 100).data)).toEqual([5, 6, 7, 8, 9]);
    expect(mm.slice(8, 2).size).toBe(0);
    expect(Array.from(mm.slice(8, 2).data)).toEqual([]);
    const stepped = mm.slice(1, 9, 3);
    expect(stepped.shape).toEqual([3]);
    expect(stepped.strides).toEqual([24]);
    expect(Array.from(stepped.toArray())).toEqual([1, 4, 7]);
    expect(Array.from(mm.slice(undefined, undefined, -4).toArray())).toEqual([9, 5, 1]);
    mm.close();
  });

  it('a strided view refuses .data and reads and writes through get/set', () => {
    const mm = openRange('strided.bin', 10);
    const evens = mm.slice(0, undefined, 2);
    expect(evens.contiguous).toBe(false);
    expect(() => evens.data).toThrow(expect.objectContaining({ code: 'MEMJOB_ERR_NOT_CONTIGUOUS' }));
    expect(evens.get(2)).toBe(4);
    evens.set(2, 400);
    expect(mm.data[4]).toBe(400);
    expect(() => evens.get(5)).toThrow(expect.objectContaining({ code: 'MEMJOB_ERR_OUT_OF_RANGE' }));
    expect(evens.get(-1)).toBe(8);
    mm.close();
  });

  it('2-d slices keep rows whole and chunks() walks row blocks', () => {
    const path = scratch.file('matrix.bin');
    writeFileSync(path, new Float64Array(Array.from({ length: 20 }, (_, i) => i)));
    const mm = memmap(path, { dtype: 'float64', mode: 'r', shape: [5, 4] });
    const rows = mm.slice(1, 3);
    expect(rows.shape).toEqual([2, 4]);
    expect(Array.from(rows.data)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(rows.get(1, 3)).toBe(11);
    const blocks = [...mm.chunks({ maxBytes: 70 })];
    expect(blocks.map((b) => b.shape[0])).toEqual([2, 2, 1]);
    expect(blocks.flatMap((b) => Array.from(b.data))).toEqual(Array.from(mm.data));
    // A block smaller than one row still yields whole rows, one at a time.
    expect([...mm.chunks({ maxBytes: 1 })]).toHaveLength(5);
    expect(() => [...mm.chunks({ maxBytes: 0 })]).toThrow(expect.objectContaining({ code: 'MEMJOB_ERR_INVALID_ARG' }));
    mm.close();
  });

  it('toArray() is an owned copy that outlives the mapping', () => {
    const mm = openRange('copy.bin', 4);
    const copy = mm.toArray();
    copy[0] = 100;
    expect(mm.data[0]).toBe(0);
    expect(hasShareableMemory(copy)).toBe(false);
    mm.close();
    expect(Array.from(copy)).toEqual([100, 1, 2, 3]);
  });
});

describe('hasShareableMemory', () => {
  it('is true exactly for memory backed by a file mapping', () => {
    const mm = openRange('share.bin', 16);
    expect(hasShareableMemory(mm)).toBe(true);
    expect(hasShareableMemory(mm.slice(2, 4))).toBe(true);
    expect(hasShareableMemory(mm.data)).toBe(true);
    expect(hasShareableMemory(new Uint8Array(mm.data.buffer, 8, 8))).toBe(true);
    expect(hasShareableMemory(mm.data.buffer)).toBe(true);
    expect(hasShareableMemory(new Float64Array(16))).toBe(false);
    expect(hasShareableMemory(new SharedArrayBuffer(8))).toBe(false);
    expect(hasShareableMemory(Buffer.alloc(8))).toBe(false);
    expect(hasShareableMemory([1, 2, 3])).toBe(false);
    expect(hasShareableMemory(null)).toBe(false);
    const data = mm.data;
    mm.close();
    expect(hasShareableMemory(mm)).toBe(false);
    expect(hasShareableMemory(data)).toBe(false);
  });
});
