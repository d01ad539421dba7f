import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Memmap,
  MemjobError,
  NDArray,
  loadNpy,
  loadNpySync,
  memmap,
  ndarray,
  saveNpy,
  saveNpySync,
  type DType,
  type DTypeArrays,
  type LoadNpyOptions,
} from '../src/index.js';
import { asyncFailure, failure, numpyPython, scratchDir } from './helpers.js';

const scratch = scratchDir('npy');
afterAll(() => scratch.remove());

const fixtures = new URL('./fixtures/npy/', import.meta.url);

// ---- helpers ----

type Element = ReturnType<NDArray['get']>;
type Loaded = NDArray | Memmap;
/** The dtypes of one TypedArray slot per element (test/dtypes-extra.test.ts covers the others). */
const baseDTypes = ['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'float32', 'float64', 'bool'] as const;
type BaseDType = (typeof baseDTypes)[number];

function unravel(i: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const n = shape[axis]!;
    index[axis] = i % n;
    i = Math.floor(i / n);
  }
  return index;
}

/** Every element in C (row-major) order, read through get(), whatever the storage order. */
function elements(array: Loaded): Element[] {
  const size = array.shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: size }, (_, i) => array.get(...unravel(i, array.shape)));
}

/** A TypedArray's elements as a plain array, whatever its type. */
function list(data: ArrayLike<number | bigint>): (number | bigint)[] {
  return Array.from(data);
}

function mapped(value: Loaded): Memmap {
  expect(value).toBeInstanceOf(Memmap);
  return value as Memmap;
}

/** The same failure from loadNpySync, loadNpy, and both with mmapMode 'r'. */
async function loadFailures(path: string): Promise<MemjobError[]> {
  const options: LoadNpyOptions = { mmapMode: 'r' };
  return [
    failure(() => loadNpySync(path)),
    failure(() => loadNpySync(path, options)),
    await asyncFailure(() => loadNpy(path)),
    await asyncFailure(() => loadNpy(path, options)),
  ];
}

function close(value: Loaded): void {
  if (value instanceof Memmap) value.close();
}

/** Bytes of the file's header (what comes before the data), read from its length field. */
function headerLength(path: string): number {
  const bytes = readFileSync(path);
  return bytes[6] === 1 ? 10 + bytes.readUInt16LE(8) : 12 + bytes.readUInt32LE(8);
}

/** A .npy file with a hand-written header dict, padded like numpy's; `data` follows it. */
function npyBytes(dict: string, data: ArrayBufferView | number = 0, version = 1): Buffer {
  const lengthBytes = version === 1 ? 2 : 4;
  const unpadded = 8 + lengthBytes + Buffer.byteLength(dict, version === 3 ? 'utf8' : 'latin1') + 1;
  const text = `${dict}${' '.repeat((64 - (unpadded % 64)) % 64)}\n`;
  const header = Buffer.from(text, version === 3 ? 'utf8' : 'latin1');
  const prefix = Buffer.alloc(8 + lengthBytes);
  prefix.write('\x93NUMPY', 'latin1');
  prefix[6] = version;
  if (version === 1) prefix.writeUInt16LE(header.length, 8);
  else prefix.writeUInt32LE(header.length, 8);
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([prefix, header, body]);
}

let counter = 0;
function writeNpy(bytes: Uint8Array): string {
  const path = scratch.file(`case-${counter++}.npy`);
  writeFileSync(path, bytes);
  return path;
}

const leftovers = () => readdirSync(scratch.dir).filter((name) => name.includes('tmp'));

/** Distinct values per dtype, with the extremes first, so a swapped or misread byte shows. */
const samples: { [D in BaseDType]: (n: number) => DTypeArrays[D] } = {
  int8: (n) => Int8Array.from({ length: n }, (_, i) => [-128, 127][i] ?? i * 7 - 40),
  int16: (n) => Int16Array.from({ length: n }, (_, i) => [-32768, 32767][i] ?? i * 301 - 1000),
  int32: (n) => Int32Array.from({ length: n }, (_, i) => [-(2 ** 31), 2 ** 31 - 1][i] ?? i * 100_003 - 7),
  int64: (n) => BigInt64Array.from({ length: n }, (_, i) => [-(2n ** 63n), 2n ** 63n - 1n][i] ?? BigInt(i) * 1_234_567_890_123n - 5n),
  uint8: (n) => Uint8Array.from({ length: n }, (_, i) => [0, 255][i] ?? i * 19),
  uint16: (n) => Uint16Array.from({ length: n }, (_, i) => [0, 65535][i] ?? i * 1001),
  uint32: (n) => Uint32Array.from({ length: n }, (_, i) => [0, 2 ** 32 - 1][i] ?? i * 100_000_007),
  uint64: (n) => BigUint64Array.from({ length: n }, (_, i) => [0n, 2n ** 64n - 1n][i] ?? BigInt(i) * 9_876_543_210_987n),
  float32: (n) => Float32Array.from({ length: n }, (_, i) => [Number.NaN, -Infinity][i] ?? i * 0.1 - 0.35),
  float64: (n) => Float64Array.from({ length: n }, (_, i) => [Number.NaN, Infinity, -0][i] ?? i / 3 - 1),
  bool: (n) => Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0)),
};

function sample(dtype: BaseDType, shape: number[], order: 'C' | 'F' = 'C'): NDArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return ndarray(samples[dtype](n) as never, { dtype, shape, order });
}

const descrs: Record<BaseDType, string> = {
  int8: '|i1', int16: '<i2', int32: '<i4', int64: '<i8',
  uint8: '|u1', uint16: '<u2', uint32: '<u4', uint64: '<u8',
  float32: '<f4', float64: '<f8', bool: '|b1',
};

// ---- numpy's own files ----

interface Expected {
  dtype: string;
  shape: number[];
  fortran: boolean;
  sum: number;
  first: number[] | null;
}

const expected = JSON.parse(readFileSync(new URL('expected.json', fixtures), 'utf8')) as Record<string, Expected>;
const dtypeOfDescr: Record<string, DType> = Object.fromEntries(
  Object.entries(descrs).flatMap(([dtype, descr]) => [[descr, dtype as DType], [descr.replace('<', '>'), dtype as DType]]),
);

function expectClose(actual: number, wanted: number): void {
  expect(Math.abs(actual - wanted)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(wanted)));
}

function checkAgainst(array: Loaded, want: Expected): void {
  expect(array.dtype).toBe(dtypeOfDescr[want.dtype]);
  expect(array.shape).toEqual(want.shape);
  expect(array.order).toBe(want.fortran ? 'F' : 'C');
  const values = elements(array).map((v) => Number(v));
  expect(values.slice(0, 4)).toEqual(want.first ?? []);
  expectClose(values.reduce((a, b) => a + b, 0), want.sum);
}

describe('files written by numpy (test/fixtures/npy)', () => {
  for (const [name, want] of Object.entries(expected)) {
    const file = new URL(`${name}.npy`, fixtures);

    it(`${name}: ${want.dtype} ${JSON.stringify(want.shape)} loads into memory (sync and async)`, async () => {
      for (const array of [loadNpySync(file), await loadNpy(file), loadNpySync(file, { mmapMode: null })]) {
        expect(array).toBeInstanceOf(NDArray);
        checkAgainst(array, want);
      }
    });

    it(`${name}: with mmapMode 'r'`, async () => {
      if (want.dtype.startsWith('>')) {
        for (const error of [failure(() => loadNpySync(file, { mmapMode: 'r' })), await asyncFailure(() => loadNpy(file, { mmapMode: 'r' }))]) {
          expect(error.code).toBe('MEMJOB_ERR_BYTE_ORDER');
          expect(error.message).toContain('big-endian');
          expect(error.message).toContain('without mmapMode');
        }
        return;
      }
      for (const array of [loadNpySync(file, { mmapMode: 'r' }), await loadNpy(file, { mmapMode: 'r' })]) {
        if (want.shape.includes(0)) {
          // An empty array cannot be mapped: it comes back in memory.
          expect(array).toBeInstanceOf(NDArray);
        } else {
          const mm = mapped(array);
          expect(mm.offset).toBe(128);
          expect(mm.readonly).toBe(true);
        }
        checkAgainst(array, want);
        close(array);
      }
    });
  }

  it('saving what was loaded gives back the same bytes numpy wrote (header padding included)', async () => {
    for (const name of Object.keys(expected)) {
      if (expected[name]!.dtype.startsWith('>')) continue;
      const original = readFileSync(new URL(`${name}.npy`, fixtures));
      const copy = scratch.file(`resaved-${name}.npy`);
      saveNpySync(copy, loadNpySync(new URL(`${name}.npy`, fixtures)));
      expect(readFileSync(copy).equals(original), name).toBe(true);
      const mm = loadNpySync(new URL(`${name}.npy`, fixtures), { mmapMode: 'r' });
      await saveNpy(copy, mm);
      close(mm);
      expect(readFileSync(copy).equals(original), `${name} from a Memmap`).toBe(true);
    }
  });

  it("big-endian data is byte-swapped in memory and saved back in this machine's order", () => {
    const array = loadNpySync(new URL('i2_be.npy', fixtures));
    expect(list(array.data)).toEqual([0, 1, 2, 3, 4, 5]);
    const copy = scratch.file('be-resaved.npy');
    saveNpySync(copy, array);
    expect(readFileSync(copy).toString('latin1', 0, 128)).toContain("'descr': '<i2'");
    expect(list(loadNpySync(copy).data)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

// ---- memjob to memjob ----

describe('round trips', () => {
  for (const dtype of baseDTypes) {
    it(`${dtype}: 1-d, 2-d C and F, 0-d and empty, sync and async, in memory and mapped`, async () => {
      const cases: NDArray[] = [
        sample(dtype, [7]),
        sample(dtype, [3, 4], 'C'),
        sample(dtype, [3, 4], 'F'),
        sample(dtype, [2, 3, 2], 'F'),
        sample(dtype, []),
        sample(dtype, [0, 3]),
        sample(dtype, [0]),
      ];
      for (const [i, source] of cases.entries()) {
        const path = scratch.file(`rt-${dtype}-${i}.npy`);
        if (i % 2 === 0) saveNpySync(path, source);
        else await saveNpy(path, source);
        const text = readFileSync(path).toString('latin1', 0, headerLength(path));
        expect(text).toContain(`'descr': '${descrs[dtype]}'`);
        expect(headerLength(path) % 64).toBe(0);
        expect(statSync(path).size).toBe(headerLength(path) + source.nbytes);

        const mappable = source.size > 0;
        const loads: [Loaded, boolean][] = [
          [loadNpySync(path), false],
          [await loadNpy(path), false],
          [loadNpySync(path, { mmapMode: 'r' }), mappable],
          [await loadNpy(path, { mmapMode: 'c' }), mappable],
        ];
        for (const [loaded, isMapped] of loads) {
          expect(loaded instanceof Memmap).toBe(isMapped);
          expect(loaded.dtype).toBe(dtype);
          expect(loaded.shape).toEqual(source.shape);
          // numpy's rule: 'F' only when the layout is not also C order.
          expect(loaded.order).toBe(source.order === 'F' && source.shape.filter((n) => n > 1).length > 1 ? 'F' : 'C');
          expect(elements(loaded)).toEqual(elements(source));
          close(loaded);
        }
      }
    });
  }

  it('a plain TypedArray is saved 1-d; a Uint8Array as |u1, a bool NDArray as |b1', () => {
    const path = scratch.file('plain.npy');
    saveNpySync(path, new Int16Array([5, -6, 7]));
    const loaded = loadNpySync(path);
    expect(loaded.shape).toEqual([3]);
    expect(loaded.data).toEqual(new Int16Array([5, -6, 7]));
    expect(readFileSync(path).toString('latin1', 10, 70)).toMatch(/^\{'descr': '<i2', 'fortran_order': False, 'shape': \(3,\), \} +$/);
    saveNpySync(path, Buffer.from([1, 2]));
    expect(readFileSync(path).toString('latin1')).toContain("'|u1'");
    saveNpySync(path, ndarray(new Uint8Array([1, 0]), { dtype: 'bool' }));
    expect(loadNpySync(path).get(0)).toBe(true);
  });

  it('32 axes (the most numpy 1.x loads) are written and read back; 33 are refused (test/npy-header-rules.test.ts)', async () => {
    const path = scratch.file('32-axes.npy');
    const shape = new Array<number>(32).fill(1);
    saveNpySync(path, ndarray(new Float64Array([7.5]), { shape }));
    expect(headerLength(path) % 64).toBe(0);
    const loaded = await loadNpy(path);
    expect(loaded.shape).toEqual(shape);
    expect(loaded.data[0]).toBe(7.5);
  });

  it('files of versions 2.0 and 3.0, Python 2 headers and loose spacing are read', () => {
    const data = new Int32Array([1, 2, 3, 4, 5, 6]);
    const v2 = writeNpy(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", data, 2));
    expect(elements(loadNpySync(v2))).toEqual([1, 2, 3, 4, 5, 6]);
    const v3 = writeNpy(npyBytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data, 3));
    expect(elements(loadNpySync(v3))).toEqual([1, 3, 5, 2, 4, 6]);
    const py2 = writeNpy(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (3L, 2L), }", data));
    expect(loadNpySync(py2).shape).toEqual([3, 2]);
    // Any key order, double quotes, no trailing comma, no padding, unaligned data, extra bytes after the data.
    const dict = Buffer.from(`{ "shape" : ( 6 , ) ,"fortran_order":False,'descr':"=i4"}\t\t`, 'latin1');
    const loose = Buffer.concat([
      Buffer.from('\x93NUMPY\x01\x00', 'latin1'),
      Buffer.from([dict.length, 0]),
      dict,
      Buffer.from(data.buffer),
      Buffer.from('trailing bytes are ignored'),
    ]);
    const loosePath = writeNpy(loose);
    expect(list(loadNpySync(loosePath).data)).toEqual([1, 2, 3, 4, 5, 6]);
    const mm = mapped(loadNpySync(loosePath, { mmapMode: 'r' }));
    expect(mm.offset).toBe(10 + dict.length);
    expect(mm.offset % 4).not.toBe(0); // data need not be aligned
    expect(list(mm.data)).toEqual([1, 2, 3, 4, 5, 6]);
    mm.close();
  });

  it('big-endian files of every multi-byte dtype are converted in memory', () => {
    for (const dtype of baseDTypes) {
      const source = samples[dtype](6);
      const swapped = Buffer.from(new Uint8Array(source.buffer).slice());
      const size = source.BYTES_PER_ELEMENT;
      if (size === 2) swapped.swap16();
      if (size === 4) swapped.swap32();
      if (size === 8) swapped.swap64();
      const descr = size === 1 ? descrs[dtype] : descrs[dtype].replace('<', '>');
      const path = writeNpy(npyBytes(`{'descr': '${descr}', 'fortran_order': True, 'shape': (2, 3), }`, swapped));
      const loaded = loadNpySync(path);
      expect(loaded.order).toBe('F');
      expect(loaded.data, dtype).toEqual(source);
      if (size > 1) expect(failure(() => loadNpySync(path, { mmapMode: 'c' })).code).toBe('MEMJOB_ERR_BYTE_ORDER');
      else close(loadNpySync(path, { mmapMode: 'r' })); // one-byte types have no byte order
    }
  });
});

// ---- Memmap as the source ----

describe('saving a Memmap', () => {
  function grid(name: string, order: 'C' | 'F'): Memmap<'int32'> {
    const mm = memmap(scratch.file(name), { mode: 'w+', dtype: 'int32', shape: [10, 4], order });
    for (let i = 0; i < 40; i++) mm.set(unravel(i, [10, 4]), i);
    return mm;
  }

  it('contiguous C and F memmaps and a contiguous slice are written as stored', async () => {
    for (const order of ['C', 'F'] as const) {
      const mm = grid(`grid-${order}.bin`, order);
      const path = scratch.file(`grid-${order}.npy`);
      await saveNpy(path, mm);
      expect(readFileSync(path).toString('latin1', 0, 128)).toContain(`'fortran_order': ${order === 'F' ? 'True' : 'False'}`);
      const loaded = loadNpySync(path);
      expect(loaded.order).toBe(order);
      expect(elements(loaded)).toEqual(elements(mm));
      expect(loaded.data).toEqual(mm.data);
      if (order === 'C') {
        saveNpySync(path, mm.slice(2, 5));
        expect(elements(loadNpySync(path))).toEqual(Array.from({ length: 12 }, (_, i) => i + 8));
      }
      mm.close();
    }
  });

  it('strided views (stepped, reversed, of F-order files) are written in C order', async () => {
    for (const order of ['C', 'F'] as const) {
      const mm = grid(`strided-${order}.bin`, order);
      for (const view of [mm.slice(1, 9, 3), mm.slice(undefined, undefined, -2), mm.slice(3, 4)]) {
        const path = scratch.file('strided.npy');
        await saveNpy(path, view);
        const loaded = loadNpySync(path);
        expect(loaded.shape).toEqual(view.shape);
        expect(list(loaded.data)).toEqual(list(view.toArray()));
        saveNpySync(path, view);
        expect(list(loadNpySync(path).data)).toEqual(list(view.toArray()));
      }
      mm.close();
    }
  });

  it("a strided view larger than one 64 MiB chunk is streamed in several", () => {
    const rows = 9_000_000; // 144 MB sparse file; every other row is 72 MB of elements
    const mm = memmap(scratch.file('tall.bin'), { mode: 'w+', dtype: 'float64', shape: [rows, 2] });
    const marks = [0, 2, 8_388_606, 8_388_608, 8_388_610, rows - 2];
    for (const row of marks) mm.set([row, 1], row + 0.5);
    mm.set([1, 0], -1); // an odd row, which the view skips
    const view = mm.slice(0, rows, 2);
    const path = scratch.file('tall.npy');
    saveNpySync(path, view);
    mm.close();
    expect(statSync(path).size).toBe(128 + (rows / 2) * 16);
    const loaded = mapped(loadNpySync(path, { mmapMode: 'r' }));
    expect(loaded.shape).toEqual([rows / 2, 2]);
    for (const row of marks) expect(loaded.get(row / 2, 1)).toBe(row + 0.5);
    expect(loaded.get(0, 0)).toBe(0);
    expect(loaded.get(1, 0)).toBe(0); // row 2 of the file: row 1 (holding -1) was skipped
    loaded.close();
  });

  it("a copy-on-write memmap is saved with its private changes", () => {
    const path = scratch.file('cow.npy');
    saveNpySync(path, new Float64Array([1, 2, 3]));
    const cow = mapped(loadNpySync(path, { mmapMode: 'c' }));
    cow.set(0, 100);
    const copy = scratch.file('cow-copy.npy');
    saveNpySync(copy, cow);
    cow.close();
    expect(list(loadNpySync(copy).data)).toEqual([100, 2, 3]);
    expect(list(loadNpySync(path).data)).toEqual([1, 2, 3]);
  });

  it('a Memmap over 4 GiB is written chunk by chunk', { timeout: 300_000 }, async () => {
    const n = 2 ** 29 + 16; // 4 GiB + 128 bytes of float64, a sparse file
    const big = memmap(scratch.file('big.bin'), { mode: 'w+', dtype: 'float64', shape: [n] });
    const marks = [0, 2 ** 29 - 1, 2 ** 29, n - 1];
    for (const i of marks) big.set(i, i + 0.25);
    const path = scratch.file('big.npy');
    await saveNpy(path, big);
    big.close();
    const stat = statSync(path);
    expect(stat.size).toBe(128 + n * 8);
    // Only the three 64 MiB chunks holding marks are written; the zero chunks are holes.
    expect(stat.blocks * 512).toBeLessThan(256 * 2 ** 20);
    const loaded = mapped(loadNpySync(path, { mmapMode: 'r' }));
    expect(loaded.shape).toEqual([n]);
    for (const i of marks) expect(loaded.get(i)).toBe(i + 0.25);
    expect(loaded.get(12345)).toBe(0);
    loaded.close();
    expect(failure(() => loadNpySync(path)).code).toBe('MEMJOB_ERR_VIEW_TOO_LARGE'); // too big for memory: map it
  });

  it('saveNpySync leaves zero chunks as holes, leading and trailing, and they read back as zeros', () => {
    const n = 3 * 2 ** 23; // three 64 MiB chunks of float64; only the middle one holds data
    const sparse = memmap(scratch.file('sparse.bin'), { mode: 'w+', dtype: 'float64', shape: [n] });
    const marks = [2 ** 23, 2 ** 24 - 1];
    for (const i of marks) sparse.set(i, -i);
    const path = scratch.file('sparse.npy');
    saveNpySync(path, sparse);
    sparse.close();
    const stat = statSync(path);
    expect(stat.size).toBe(128 + n * 8);
    expect(stat.blocks * 512).toBeLessThan(96 * 2 ** 20);
    const loaded = mapped(loadNpySync(path, { mmapMode: 'r' }));
    for (const i of marks) expect(loaded.get(i)).toBe(-i);
    for (const i of [0, 2 ** 23 - 1, 2 ** 24, n - 1]) expect(loaded.get(i)).toBe(0);
    loaded.close();
    // An in-memory array of zeros is one block: all hole, with the size set by ftruncate.
    saveNpySync(path, new Float64Array(2 ** 20));
    expect(statSync(path).size).toBe(128 + 2 ** 23);
    expect(statSync(path).blocks * 512).toBeLessThan(2 ** 20);
    expect(loadNpySync(path).shape).toEqual([2 ** 20]);
    expect(readFileSync(path).subarray(128).equals(Buffer.alloc(2 ** 23))).toBe(true);
  });

  it("a sparse memmap's holes are skipped unread, but never data: a 'c' page written in memory, or another file now at its path", () => {
    const n = 3 * 2 ** 23; // three 64 MiB chunks of float64
    const check = (path: string, marks: number[]) => {
      const loaded = mapped(loadNpySync(path, { mmapMode: 'r' }));
      for (const i of marks) expect(loaded.get(i), `element ${i}`).toBe(i + 0.5);
      for (const i of [1, 2 ** 23 + 1, n - 2]) expect(loaded.get(i)).toBe(0);
      loaded.close();
    };
    // 'c' (copy-on-write): its written page is in memory only, over a hole of the file.
    const source = scratch.file('cow.bin');
    memmap(source, { mode: 'w+', dtype: 'float64', shape: [n] }).close();
    const cow = memmap(source, { mode: 'c', dtype: 'float64', shape: [n] });
    cow.set(2 ** 23, 2 ** 23 + 0.5);
    const cowOut = scratch.file('cow.npy');
    saveNpySync(cowOut, cow);
    cow.close();
    check(cowOut, [2 ** 23]);
    // 'w+': after mapping, an empty sparse file is renamed over its path; the mapping still holds the first file's data.
    const first = scratch.file('replaced.bin');
    const shared = memmap(first, { mode: 'w+', dtype: 'float64', shape: [n] });
    for (const i of [0, n - 1]) shared.set(i, i + 0.5);
    const other = scratch.file('other.bin');
    memmap(other, { mode: 'w+', dtype: 'float64', shape: [n] }).close();
    renameSync(other, first);
    const sharedOut = scratch.file('replaced.npy');
    saveNpySync(sharedOut, shared);
    shared.close();
    check(sharedOut, [0, n - 1]);
  });
});

// ---- mmapMode ----

describe('mmapMode', () => {
  const fresh = (name: string) => {
    const path = scratch.file(name);
    saveNpySync(path, ndarray(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3], order: 'F' }));
    return path;
  };

  it("'r+' writes reach the file and persist on reopen", async () => {
    const path = fresh('rplus.npy');
    const mm = mapped(await loadNpy(path, { mmapMode: 'r+' }));
    expect(mm.mode).toBe('r+');
    expect(mm.order).toBe('F');
    mm.set([1, 2], 60);
    mm.flush();
    mm.close();
    expect(loadNpySync(path).get(1, 2)).toBe(60);
  });

  it("'c' writes are seen by the Memmap but never reach the file", () => {
    const path = fresh('cow-mode.npy');
    const mm = mapped(loadNpySync(path, { mmapMode: 'c' }));
    mm.set([0, 0], -1);
    expect(mm.get(0, 0)).toBe(-1);
    mm.close();
    expect(loadNpySync(path).get(0, 0)).toBe(1);
  });

  it("'w+' acts as 'r+': the data is kept, not zeroed, and writes persist", () => {
    const path = fresh('wplus.npy');
    const mm = mapped(loadNpySync(path, { mmapMode: 'w+' }));
    expect(mm.mode).toBe('r+');
    expect(elements(mm)).toEqual([1, 3, 5, 2, 4, 6]);
    mm.set([0, 1], 30);
    mm.close();
    expect(elements(loadNpySync(path))).toEqual([1, 30, 5, 2, 4, 6]);
  });

  it("'r' is read-only; 0-d files map one element; empty ones come back in memory", () => {
    const path = fresh('ronly.npy');
    const mm = mapped(loadNpySync(path, { mmapMode: 'r' }));
    expect(mm.readonly).toBe(true);
    mm.close();
    const scalar = scratch.file('scalar.npy');
    saveNpySync(scalar, ndarray(new BigInt64Array([-9n]), { shape: [] }));
    const one = mapped(loadNpySync(scalar, { mmapMode: 'r' }));
    expect(one.shape).toEqual([]);
    expect(one.get()).toBe(-9n);
    one.close();
    const empty = scratch.file('empty.npy');
    saveNpySync(empty, ndarray(new Float32Array(0), { shape: [4, 0] }));
    const none = loadNpySync(empty, { mmapMode: 'r+' });
    expect(none).toBeInstanceOf(NDArray);
    expect(none.shape).toEqual([4, 0]);
  });
});

// ---- bad files and bad arguments ----

describe('corrupt files are MEMJOB_ERR_FORMAT, never a crash or a big allocation', () => {
  const good = npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", new Float64Array([1, 2, 3]));

  async function expectFormat(bytes: Uint8Array, pattern: RegExp): Promise<void> {
    const path = writeNpy(bytes);
    for (const error of await loadFailures(path)) {
      expect(error.code, error.message).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).toMatch(pattern);
      expect(error.path).toBe(path);
    }
  }

  it('the test file itself is valid', () => {
    expect(list(loadNpySync(writeNpy(good)).data)).toEqual([1, 2, 3]);
  });

  it('bad magic, an empty file, a truncated prefix, an unknown version', async () => {
    await expectFormat(Buffer.from('NOT A NUMPY FILE AT ALL'), /magic/);
    await expectFormat(Buffer.alloc(0), /magic.*0 bytes/);
    await expectFormat(good.subarray(0, 9), /ends inside its prefix/);
    await expectFormat(good.subarray(0, 4), /ends inside its prefix/);
    for (const [major, minor] of [[4, 0], [1, 1], [0, 0]]) {
      const bytes = Buffer.from(good);
      bytes[6] = major!;
      bytes[7] = minor!;
      await expectFormat(bytes, new RegExp(`version ${major}\\.${minor} is unknown`));
    }
  });

  it('a truncated header and a lying header length', async () => {
    await expectFormat(good.subarray(0, 60), /header length field says 118 bytes/);
    const lying = Buffer.from(good);
    lying.writeUInt16LE(0xffff, 8);
    await expectFormat(lying, /header length field says 65535 bytes/);
    const lying2 = npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 24, 2);
    lying2.writeUInt32LE(0xffffffff, 8);
    await expectFormat(lying2, /header length field says 4294967295 bytes/);
    // A length that stops short of the dict's end leaves a malformed dict.
    const short = Buffer.from(good);
    short.writeUInt16LE(30, 8);
    await expectFormat(short, /malformed header dict/);
  });

  it('truncated data, and shapes far larger than the file (checked before allocating)', async () => {
    await expectFormat(good.subarray(0, good.length - 8), /needs 24 bytes of data after the 128-byte header, but the file holds only 16/);
    await expectFormat(good.subarray(0, 128), /needs 24 bytes.*holds only 0/);
    await expectFormat(npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }", 8), /needs 8796093022208 bytes/);
    await expectFormat(npyBytes("{'descr': '<u8', 'fortran_order': False, 'shape': (1152921504606846976, 1152921504606846976, 64), }", 8), /needs \d{30,} bytes/);
    await expectFormat(npyBytes("{'descr': '<u8', 'fortran_order': False, 'shape': (0, 1180591620717411303424), }", 8), /axis of 1180591620717411303424/);
  });

  it('malformed dicts', async () => {
    const dicts: [string, RegExp][] = [
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'extra': 1, }", /unexpected key 'extra'/],
      ["{'descr': '<f8', 'fortran_order': False, }", /no 'shape'/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'descr': 8, }", /'descr' to be a string/], // the last value wins
      ["{'descr': '<f8', 'fortran_order': False, 'shape': [3], }", /'shape' to be a tuple/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3), }", /'shape' to be a tuple.*found \(3\)/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': 3, }", /'shape' to be a tuple/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (,), }", /unexpected ","/],
      ["{'descr': '<f8', 'fortran_order': 0, 'shape': (3,), }", /'fortran_order' to be True or False, found 0/],
      ["{'descr': '<f8', 'fortran_order': false, 'shape': (3,), }", /unexpected name 'false'/],
      ["{'descr': 8, 'fortran_order': False, 'shape': (3,), }", /'descr' to be a string/],
      ["{'descr': '<f8, 'fortran_order': False, 'shape': (3,), }", /malformed header dict/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3,)", /expected '}'/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3,), } junk", /unexpected text after the dict/],
      ["{'descr': '<f8' 'fortran_order': False, 'shape': (3,), }", /expected '}'/],
      ["{descr: '<f8', 'fortran_order': False, 'shape': (3,), }", /unexpected name 'descr'/],
      ["{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': {}}", /unexpected key 'x'/],
      ["['descr', '<f8']", /expected '\{'/],
      ['{}', /no 'descr' or 'fortran_order' or 'shape'/],
      ["__import__('os').system('touch /tmp/memjob-pwned')", /unexpected name '__import__'/],
      [`{'descr': ${'['.repeat(9_000)}, 'fortran_order': False, 'shape': (3,), }`, /nested more than 32 deep/], // under 10,000 characters
    ];
    for (const [dict, pattern] of dicts) await expectFormat(npyBytes(dict, 24), pattern);
    expect(existsSync('/tmp/memjob-pwned')).toBe(false);
  });

  it('negative, fractional and non-integer shapes', async () => {
    for (const shape of ['(-1,)', '(3, -2)', '(1.5,)', '(3, 2.0)', '(1e3,)', "('3',)", '(True,)', '(None,)', '((3,),)']) {
      await expectFormat(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': ${shape}, }`, 48), /'shape' to be a tuple of non-negative integers/);
    }
  });

  it('a version 3.0 header that is not UTF-8', async () => {
    const bytes = npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", new Float64Array([1, 2, 3]), 3);
    bytes[20] = 0xff;
    await expectFormat(bytes, /not valid UTF-8/);
  });
});

describe('unsupported dtypes are MEMJOB_ERR_DTYPE, naming the descr', () => {
  // float128, complex256, a unit multiple, zero-width strings, a name numpy refuses with a byte order.
  const cases = ['|O', '|V8', '<i16', '<f16', '<c32', '<M8[2ns]', '|S0', '<U0', '<float64', "[('a', '<i4'), ('b', '<f8')]"];
  for (const descr of cases) {
    it(descr, async () => {
      const value = descr.startsWith('[') ? descr : `'${descr}'`;
      const path = writeNpy(npyBytes(`{'descr': ${value}, 'fortran_order': False, 'shape': (2,), }`, 64));
      for (const error of await loadFailures(path)) {
        expect(error.code).toBe('MEMJOB_ERR_DTYPE');
        expect(error.message).toContain(descr);
        expect(error.message).toContain('float64');
      }
    });
  }
});

describe('system errors and bad arguments', () => {
  it('a missing file keeps ENOENT and the path; a folder is EISDIR', async () => {
    const missing = scratch.file('missing.npy');
    for (const error of await loadFailures(missing)) {
      expect(error.code).toBe('ENOENT');
      expect(error.path).toBe(missing);
      expect(error.syscall).toBe('open');
    }
    for (const error of await loadFailures(scratch.dir)) expect(error.code).toBe('EISDIR');
  });

  it('saving into a missing folder is ENOENT; over a folder fails and leaves it alone', async () => {
    const nowhere = scratch.file('no-such-folder/x.npy');
    expect(failure(() => saveNpySync(nowhere, new Float64Array(2))).code).toBe('ENOENT');
    expect((await asyncFailure(() => saveNpy(nowhere, new Float64Array(2)))).path).toBe(nowhere);
    const folder = scratch.file('a-folder');
    mkdirSync(folder);
    writeFileSync(`${folder}/inside`, 'keep');
    expect(failure(() => saveNpySync(folder, new Float64Array(2))).path).toBe(folder);
    await asyncFailure(() => saveNpy(folder, new Float64Array(2)));
    expect(readFileSync(`${folder}/inside`, 'utf8')).toBe('keep');
    expect(leftovers()).toEqual([]);
  });

  it('saving replaces the target atomically and leaves no temp file; a failure midway keeps the old file', () => {
    const path = scratch.file('atomic.npy');
    saveNpySync(path, new Int8Array([1]));
    saveNpySync(path, new Int8Array([2, 3]));
    expect(list(loadNpySync(path).data)).toEqual([2, 3]);
    expect(leftovers()).toEqual([]);
    // One row of 4 GiB + 8 bytes (a sparse file) is more than one view can hold:
    // the save fails after the temp file was created and written to.
    const wide = memmap(scratch.file('wide.bin'), { mode: 'w+', dtype: 'float64', shape: [1, 2 ** 29 + 1] });
    expect(failure(() => saveNpySync(path, wide)).code).toBe('MEMJOB_ERR_VIEW_TOO_LARGE');
    wide.close();
    expect(list(loadNpySync(path).data)).toEqual([2, 3]);
    expect(leftovers()).toEqual([]);
  });

  it('arguments are checked before any file is created', async () => {
    const path = scratch.file('never.npy');
    for (const bad of [[1, 2, 3], new DataView(new ArrayBuffer(8)), new Uint8ClampedArray(2), null, 'abc']) {
      expect(failure(() => saveNpySync(path, bad as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    }
    expect(failure(() => saveNpySync('', new Float64Array(1))).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect((await asyncFailure(() => saveNpy(path, {} as never))).message).toContain('a TypedArray, an NDArray, a Memmap or an array of strings');
    const mm = memmap(scratch.file('closed.bin'), { mode: 'w+', dtype: 'int16', shape: [4] });
    mm.close();
    expect(failure(() => saveNpySync(path, mm)).code).toBe('MEMJOB_ERR_CLOSED');
    expect(existsSync(path)).toBe(false);
    const valid = writeNpy(npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8));
    const error = failure(() => loadNpySync(valid, { mmapMode: 'rw' as never }));
    expect(error.code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(error.message).toContain('"rw"');
    expect(failure(() => loadNpySync(valid, 'r' as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => loadNpySync(42 as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(leftovers()).toEqual([]);
  });
});

// ---- real numpy ----

const python = numpyPython();
const requireNumpy = process.env.MEMJOB_REQUIRE_NUMPY === '1';
const skipNumpy = python === null && !requireNumpy;
const skipNote = skipNumpy ? ' (skipped: /usr/bin/python3 has no numpy; apt-get install python3-numpy)' : '';

/** The interpreter, or a failure that says numpy is required (MEMJOB_REQUIRE_NUMPY=1). */
function numpy(): string {
  if (python === null) {
    throw new Error('MEMJOB_REQUIRE_NUMPY=1, but /usr/bin/python3 cannot import numpy: numpy is required for these tests (apt-get install python3-numpy)');
  }
  return python;
}

// Prints, for each file, what numpy sees: loaded with mmap_mode='r' when it
// can, plus whether np.save of that array gives back the same bytes. Values
// are strings so 64-bit integers and NaN survive JSON.
const summarize = `
import io, json, sys
import numpy as np
out = []
for path in json.loads(sys.argv[1]):
    try:
        a = np.load(path, mmap_mode='r'); mapped = True
    except Exception:
        a = np.load(path); mapped = False
    flat = np.asarray(a).ravel(order='C').tolist()
    kind = a.dtype.kind
    values = [str(int(v)) if kind in 'iub' else repr(float(v)) for v in flat]
    buf = io.BytesIO()
    np.save(buf, a)
    with open(path, 'rb') as f:
        identical = f.read() == buf.getvalue()
    out.append({'descr': a.dtype.str, 'shape': list(a.shape), 'fortran': bool(np.isfortran(a)),
                'mapped': mapped, 'identical': identical, 'values': values})
print(json.dumps(out))
`;

const writeWithNumpy = `
import sys
import numpy as np
d = sys.argv[1]
np.save(d + '/i4_f.npy', np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)))
np.save(d + '/f8_2d.npy', np.linspace(-1, 1, 6).reshape(2, 3))
np.save(d + '/f8_be.npy', np.arange(5, dtype='>f8') / 4)
np.save(d + '/u8_be_f.npy', np.asfortranarray(np.array([[0, 1, 2**64 - 1], [7, 8, 2**63]], dtype='>u8')))
np.save(d + '/b1.npy', np.array([True, False, True, True]))
np.save(d + '/i8_0d.npy', np.int64(-5))
np.save(d + '/f4_empty.npy', np.zeros((2, 0), dtype=np.float32))
for version in [(2, 0), (3, 0)]:
    with open(d + '/v%d.npy' % version[0], 'wb') as f:
        np.lib.format.write_array(f, np.arange(6, dtype=np.int16).reshape(2, 3), version=version)
np.save(d + '/f2.npy', np.zeros(3, dtype=np.float16))
np.save(d + '/c16.npy', np.zeros(2, dtype=np.complex128))
np.save(d + '/struct.npy', np.zeros(2, dtype=[('a', '<i4'), ('b', '<f8')]))
np.save(d + '/obj.npy', np.array([1, 'a'], dtype=object), allow_pickle=True)
`;

interface NumpySummary {
  descr: string;
  shape: number[];
  fortran: boolean;
  mapped: boolean;
  identical: boolean;
  values: string[];
}

function runSummarize(interpreter: string, paths: string[]): NumpySummary[] {
  const stdout = execFileSync(interpreter, ['-c', summarize, JSON.stringify(paths)], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(stdout) as NumpySummary[];
}

/** memjob's elements as the summarize script prints them. */
function asPython(array: Loaded): string[] {
  return elements(array).map((v) => {
    if (typeof v === 'boolean') return v ? '1' : '0';
    if (typeof v === 'bigint' || ['float32', 'float64'].indexOf(array.dtype) < 0) return String(v);
    return Number.isNaN(v) ? 'nan' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : Object.is(v, -0) ? '-0.0' : String(v);
  });
}

function fromPython(values: string[]): number[] {
  return values.map((s) => (s === 'nan' ? Number.NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s)));
}

describe('real numpy (/usr/bin/python3)', () => {
  it.skipIf(skipNumpy)(`numpy loads what memjob writes, every dtype, C, F, 0-d, empty, a strided view${skipNote}`, () => {
    const interpreter = numpy();
    const written: { path: string; source: Loaded; fortran: boolean }[] = [];
    for (const dtype of baseDTypes) {
      const shapes: [number[], 'C' | 'F'][] = [[[3, 4], 'C'], [[3, 4], 'F'], [[2, 3, 2], 'F'], [[], 'C'], [[0, 3], 'C']];
      for (const [i, [shape, order]] of shapes.entries()) {
        const path = scratch.file(`to-numpy-${dtype}-${i}.npy`);
        const source = sample(dtype, shape, order);
        saveNpySync(path, source);
        written.push({ path, source, fortran: order === 'F' });
      }
    }
    const plain = scratch.file('to-numpy-plain.npy');
    saveNpySync(plain, new Float32Array([0.5, -2, 1e-5]));
    written.push({ path: plain, source: ndarray(new Float32Array([0.5, -2, 1e-5])), fortran: false });
    const mm = memmap(scratch.file('to-numpy-grid.bin'), { mode: 'w+', dtype: 'uint16', shape: [9, 5], order: 'F' });
    for (let i = 0; i < 45; i++) mm.set(unravel(i, [9, 5]), i * 1000);
    const view = mm.slice(8, 0, -3);
    const strided = scratch.file('to-numpy-strided.npy');
    saveNpySync(strided, view);
    written.push({ path: strided, source: view, fortran: false });

    const seen = runSummarize(interpreter, written.map((w) => w.path));
    for (const [i, { path, source, fortran }] of written.entries()) {
      const got = seen[i]!;
      expect(got.descr, path).toBe(descrs[source.dtype as BaseDType]);
      expect(got.shape, path).toEqual(source.shape);
      expect(got.fortran, path).toBe(fortran);
      if (source.size > 0) expect(got.mapped, path).toBe(true); // an empty file numpy may read instead
      expect(got.identical, `${path}: numpy's own np.save gives different bytes`).toBe(true);
      if (['float32', 'float64'].includes(source.dtype)) expect(fromPython(got.values), path).toEqual(fromPython(asPython(source)));
      else expect(got.values, path).toEqual(asPython(source));
    }
    mm.close();
  });

  it.skipIf(skipNumpy)(`memjob loads what numpy writes (C, F, big-endian, 0-d, empty, versions 2.0 and 3.0)${skipNote}`, async () => {
    const interpreter = numpy();
    const dir = scratch.file('from-numpy');
    mkdirSync(dir);
    execFileSync(interpreter, ['-c', writeWithNumpy, dir], { timeout: 120_000 });
    const readable = ['i4_f', 'f8_2d', 'f8_be', 'u8_be_f', 'b1', 'i8_0d', 'f4_empty', 'v2', 'v3'];
    const seen = runSummarize(interpreter, readable.map((name) => `${dir}/${name}.npy`));
    for (const [i, name] of readable.entries()) {
      const want = seen[i]!;
      const path = `${dir}/${name}.npy`;
      const results: Loaded[] = [loadNpySync(path), await loadNpy(path)];
      if (want.descr.startsWith('>')) expect(failure(() => loadNpySync(path, { mmapMode: 'r' })).code).toBe('MEMJOB_ERR_BYTE_ORDER');
      else results.push(loadNpySync(path, { mmapMode: 'r' }));
      for (const array of results) {
        expect(array.dtype, name).toBe(dtypeOfDescr[want.descr]);
        expect(array.shape, name).toEqual(want.shape);
        expect(array.order === 'F', name).toBe(want.fortran);
        if (array.dtype.startsWith('float')) expect(fromPython(asPython(array)), name).toEqual(fromPython(want.values));
        else expect(asPython(array), name).toEqual(want.values);
        close(array);
      }
    }
    expect(elements(loadNpySync(`${dir}/u8_be_f.npy`))).toEqual([0n, 1n, 2n ** 64n - 1n, 7n, 8n, 2n ** 63n]);
    expect(loadNpySync(`${dir}/f2.npy`).dtype).toBe('float16');
    expect(loadNpySync(`${dir}/c16.npy`).dtype).toBe('complex128');
    for (const [name, descr] of [['struct', "('a', '<i4')"], ['obj', '|O']]) {
      const error = failure(() => loadNpySync(`${dir}/${name}.npy`));
      expect(error.code, name).toBe('MEMJOB_ERR_DTYPE');
      expect(error.message, name).toContain(descr);
    }
  });
});
