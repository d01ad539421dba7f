/**
 * dumpJoblib/dumpJoblibSync checked by the real thing: Debian's joblib 1.2
 * (/usr/bin/python3) loads every file memjob writes, plainly and with
 * mmap_mode='r', and reports what it sees as JSON.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { MemjobError, NDArray, dumpJoblib, dumpJoblibSync, loadJoblibSync, memmap, type Memmap } from '../src/index.js';
import { failure, scratchDir } from './helpers.js';

const scratch = scratchDir('joblib-dump');
afterAll(() => scratch.remove());

// Loads each file with joblib and prints a tagged description: arrays with
// class, dtype, shape, order flags, values and (mapped) their file offset.
const describePy = `
import json, sys, math, joblib, numpy as np
def tag(v, seen):
    if isinstance(v, np.ndarray):
        return {'ndarray': {'cls': type(v).__name__, 'dtype': v.dtype.str, 'shape': list(v.shape),
                'f': bool(v.flags['F_CONTIGUOUS'] and not v.flags['C_CONTIGUOUS']),
                'values': [str(x) for x in v.ravel(order='C').tolist()],
                'offset': int(v.offset) if isinstance(v, np.memmap) else None}}
    if id(v) in seen: return {'ref': seen[id(v)]}
    if isinstance(v, (list, dict, set)): seen[id(v)] = len(seen)
    if v is None or isinstance(v, (bool, str)): return v
    if isinstance(v, int): return {'int': str(v)}
    if isinstance(v, float): return {'float': repr(v)}
    if isinstance(v, bytes): return {'bytes': v.hex()}
    if isinstance(v, list): return [tag(x, seen) for x in v]
    if isinstance(v, tuple): return {'tuple': [tag(x, seen) for x in v]}
    if isinstance(v, set): return {'set': sorted(repr(x) for x in v)}
    if isinstance(v, dict): return {'dict': [[tag(k, seen), tag(x, seen)] for k, x in v.items()]}
    return {'other': repr(v)}
out = {}
for f in sys.argv[2:]:
    out[f] = tag(joblib.load(f, mmap_mode=sys.argv[1] or None), {})
print(json.dumps(out))
`;

function joblibSees(files: string[], mmapMode: 'r' | '' = ''): Record<string, unknown> {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', describePy, mmapMode, ...files], { encoding: 'utf8' }));
}

const nd = (cls: string, dtype: string, shape: number[], values: string[], f = false, offset: number | null = null) => ({
  ndarray: { cls, dtype, shape, f, values, offset },
});

function sample(): Record<string, unknown> {
  const shared = { x: 1 };
  const cycle: unknown[] = ['head'];
  cycle.push(cycle);
  return {
    matrix: new NDArray(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] }),
    fortran: new NDArray(new Int32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3], order: 'F' }),
    typed: new Float32Array([1.5, -2]),
    bools: new NDArray(new Uint8Array([1, 0, 1]), { dtype: 'bool' }),
    bytes: new Uint8Array([0, 1, 255]),
    text: 'héllo, 世界 🎉',
    lone: 'a\ud800b\udfffc',
    numbers: [0, 255, 256, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, 2.5, -0, Number.NaN, Number.POSITIVE_INFINITY],
    bigints: [12345678901234567890n, -(2n ** 100n), -5n, 0n],
    flags: [true, false, null, undefined],
    map: new Map<unknown, unknown>([[1, 'one'], [[1, 'x'], 'tuple key'], [null, 'none'], ['big', new BigInt64Array([1n, -1n])]]),
    set: new Set([1, 'a', 2.5]),
    shared: [shared, shared],
    cycle,
    long: 'x'.repeat(70_000),
    when: new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123)),
  };
}

describe('dumpJoblibSync and dumpJoblib', () => {
  it('writes values joblib.load reads back as Python values: dicts, lists, tuples (Array keys), sets, bytes, ints, floats, arrays', async () => {
    const plain = scratch.file('plain.pkl');
    const viaAsync = scratch.file('async.pkl');
    expect(dumpJoblibSync(sample(), plain)).toEqual([plain]);
    expect(await dumpJoblib(sample(), viaAsync)).toEqual([viaAsync]);
    expect(readFileSync(viaAsync).equals(readFileSync(plain))).toBe(true);

    const seen = joblibSees([plain])[plain] as { dict: [string, unknown][] };
    const get = (key: string) => seen.dict.find(([k]) => k === key)![1];
    expect(get('matrix')).toEqual(nd('ndarray', '<f8', [2, 3], ['1.0', '2.0', '3.0', '4.0', '5.0', '6.0']));
    expect(get('fortran')).toEqual(nd('ndarray', '<i4', [2, 3], ['1', '3', '5', '2', '4', '6'], true));
    expect(get('typed')).toEqual(nd('ndarray', '<f4', [2], ['1.5', '-2.0']));
    expect(get('bools')).toEqual(nd('ndarray', '|b1', [3], ['True', 'False', 'True']));
    expect(get('bytes')).toEqual({ bytes: '0001ff' });
    expect(get('text')).toBe('héllo, 世界 🎉');
    expect(get('lone')).toBe('a\ud800b\udfffc'); // kept, as pickle's surrogatepass
    expect(get('numbers')).toEqual([
      ...['0', '255', '256', '-1', '2147483648', '-2147483649', '9007199254740991'].map((n) => ({ int: n })),
      { float: '2.5' },
      { float: '-0.0' },
      { float: 'nan' },
      { float: 'inf' },
    ]);
    expect(get('bigints')).toEqual([{ int: '12345678901234567890' }, { int: String(-(2n ** 100n)) }, { int: '-5' }, { int: '0' }]);
    expect(get('flags')).toEqual([true, false, null, null]);
    expect(get('map')).toEqual({
      dict: [
        [{ int: '1' }, 'one'],
        [{ tuple: [{ int: '1' }, 'x'] }, 'tuple key'],
        [null, 'none'],
        ['big', nd('ndarray', '<i8', [2], ['1', '-1'])],
      ],
    });
    expect(get('set')).toEqual({ set: ["'a'", '1', '2.5'] });
    // The same object twice is one Python object; a list that holds itself stays a cycle.
    expect(get('shared')).toEqual([{ dict: [['x', { int: '1' }]] }, { ref: expect.any(Number) }]);
    expect(get('cycle')).toEqual(['head', { ref: expect.any(Number) }]);
    expect(get('long')).toBe('x'.repeat(70_000));
    expect(get('when')).toEqual({ other: 'datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.timezone.utc)' });
  });

  it("aligns every array to 16 bytes, so joblib.load(f, mmap_mode='r') maps each one where it lies", () => {
    const file = scratch.file('mapped.pkl');
    const arrays = Array.from({ length: 5 }, (_, i) => new NDArray(Float64Array.from({ length: i + 1 }, (_, j) => j + i / 10)));
    dumpJoblibSync({ arrays, odd: new Int8Array([1, 2, 3]), after: 'x'.repeat(5) }, file);
    const seen = joblibSees([file], 'r')[file] as { dict: [string, unknown][] };
    const mapped = seen.dict[0]![1] as { ndarray: { cls: string; offset: number; values: string[] } }[];
    for (const [i, entry] of mapped.entries()) {
      expect(entry.ndarray.cls).toBe('memmap');
      expect(entry.ndarray.offset % 16).toBe(0);
      expect(entry.ndarray.values.map(Number)).toEqual([...arrays[i]!.data]);
      // The bytes really are at that offset of the file.
      const bytes = readFileSync(file).subarray(entry.ndarray.offset, entry.ndarray.offset + 8 * (i + 1));
      expect([...new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))]).toEqual([...arrays[i]!.data]);
    }
    expect((seen.dict[1]![1] as { ndarray: { cls: string } }).ndarray.cls).toBe('memmap');
    // memjob maps them the same way.
    const back = loadJoblibSync(file, { mmapMode: 'r' }) as Map<string, unknown>;
    expect((back.get('arrays') as Memmap[]).map((m) => m.constructor.name)).toEqual(Array(5).fill('Memmap'));
  });

  it('writes Memmaps from their mapping: contiguous, F-ordered and strided views', () => {
    const source = scratch.file('source.bin');
    const m = memmap(source, { mode: 'w+', dtype: 'int16', shape: [4, 3] });
    for (let i = 0; i < 12; i++) m.set([Math.floor(i / 3), i % 3], i);
    const f = memmap(scratch.file('f.bin'), { mode: 'w+', dtype: 'float64', shape: [2, 3], order: 'F' });
    for (let i = 0; i < 6; i++) f.set([i % 2, Math.floor(i / 2)], i);
    const file = scratch.file('memmaps.pkl');
    dumpJoblibSync([m, m.slice(undefined, undefined, -2), f], file);
    const seen = joblibSees([file])[file] as unknown[];
    expect(seen[0]).toEqual(nd('ndarray', '<i2', [4, 3], Array.from({ length: 12 }, (_, i) => String(i))));
    expect(seen[1]).toEqual(nd('ndarray', '<i2', [2, 3], ['9', '10', '11', '3', '4', '5']));
    expect(seen[2]).toEqual(nd('ndarray', '<f8', [2, 3], ['0.0', '2.0', '4.0', '1.0', '3.0', '5.0'], true));
    for (const x of [m, f]) x.close();
  });

  it('compresses as joblib.dump does: compress level, method, [method, level], and the filename extension', async () => {
    const value = { a: new NDArray(new Float64Array(1000).fill(7)), s: 'same' };
    const cases: [string, Parameters<typeof dumpJoblibSync>[2], string][] = [
      ['level.pkl', { compress: 3 }, '78'], // zlib
      ['true.pkl', { compress: true }, '78'],
      ['gzip.pkl', { compress: 'gzip' }, '1f8b'],
      ['pair.pkl', { compress: ['gzip', 9] }, '1f8b'],
      ['by-name.pkl.gz', {}, '1f8b'], // the extension picks gzip, even at level 0
      ['by-name.pkl.z', { compress: 0 }, '78'],
      ['pair-wins.pkl.gz', { compress: ['zlib', 1] }, '78'],
      ['none.pkl', { compress: false }, '8004'],
    ];
    for (const [name, options, magic] of cases) {
      dumpJoblibSync(value, scratch.file(name), options);
      expect(readFileSync(scratch.file(name)).subarray(0, magic.length / 2).toString('hex'), name).toBe(magic);
    }
    await dumpJoblib(value, scratch.file('async.pkl.gz'));
    // lz4, xz and lzma through joblib-compression.ts (Python's joblib reads lz4 with python3-lz4).
    const others: [string, Parameters<typeof dumpJoblibSync>[2], string][] = [
      ['l.pkl.lz4', {}, '04224d18'],
      ['x.pkl', { compress: ['xz', 1] }, 'fd377a585a00'],
      ['m.pkl.lzma', { compress: true }, '5d00'],
    ];
    for (const [name, options, magic] of others) {
      dumpJoblibSync(value, scratch.file(name), options);
      expect(readFileSync(scratch.file(name)).subarray(0, magic.length / 2).toString('hex'), name).toBe(magic);
    }
    await dumpJoblib(value, scratch.file('async.pkl.xz'));
    const files = [...cases.map(([name]) => scratch.file(name)), scratch.file('async.pkl.gz'), ...others.map(([name]) => scratch.file(name)), scratch.file('async.pkl.xz')];
    const seen = joblibSees(files);
    for (const file of files) expect(seen[file], file).toEqual(seen[files[0]!]);
    expect(loadJoblibSync(scratch.file('pair.pkl'))).toEqual(loadJoblibSync(scratch.file('none.pkl')));
  });

  it('refuses what Python could not load, naming where, and leaves no file behind', async () => {
    const dir = scratch.file('refused');
    execFileSync('mkdir', ['-p', dir]);
    const target = `${dir}/out.pkl`;
    const cases: [unknown, RegExp][] = [
      [{ f: () => 1 }, /cannot store value\.f in a joblib file: .*function/],
      [{ d: new Date(Date.UTC(10000, 0, 1)) }, /value\.d in a joblib file: .*years 1 to 9999/],
      [[new (class Point {})()], /value\[0\] in a joblib file: .*Point/],
      [new Map([[{ a: 1 }, 1]]), /as a dict key or set member/],
      [new Set([new NDArray(new Float64Array(1))]), /as a dict key or set member/],
      [{ s: Symbol('x') }, /symbol/],
    ];
    for (const [value, message] of cases) {
      const error = failure(() => dumpJoblibSync(value, target));
      expect(error.code).toBe('MEMJOB_ERR_UNSUPPORTED_VALUE');
      expect(error.message).toMatch(message);
      await expect(dumpJoblib(value, target)).rejects.toMatchObject({ code: 'MEMJOB_ERR_UNSUPPORTED_VALUE' });
    }
    let deep: unknown = 1;
    for (let i = 0; i < 2000; i++) deep = [deep];
    expect(failure(() => dumpJoblibSync(deep, target)).message).toMatch(/nesting deeper than 900 levels/);
    expect(failure(() => dumpJoblibSync(1, target, { compress: 'bz2' })).message).toMatch(/cannot write them/);
    for (const compress of [10, 'brotli', ['zlib'], -1]) {
      const error = failure(() => dumpJoblibSync(1, target, { compress } as never));
      expect(error.code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect(error.message).toMatch(/expected "compress" to be true or false, a level from 0 to 9/);
    }
    expect(readdirSync(dir)).toEqual([]);
    // An existing file is replaced whole or not at all.
    writeFileSync(target, 'old');
    expect(() => dumpJoblibSync({ f: () => 1 }, target)).toThrow(MemjobError);
    expect(readFileSync(target, 'utf8')).toBe('old');
  });

  it('round-trips through loadJoblibSync', () => {
    const file = scratch.file('round.pkl');
    const value = sample();
    dumpJoblibSync(value, file);
    const back = loadJoblibSync(file) as Map<string, unknown>;
    expect(back.get('text')).toBe(value.text);
    expect(back.get('lone')).toBe('a\ud800b\udfffc');
    expect(back.get('when')).toEqual(value.when);
    expect(back.get('bigints')).toEqual([12345678901234567890n, -(2n ** 100n), -5, 0]);
    expect(back.get('bytes')).toEqual(new Uint8Array([0, 1, 255]));
    expect((back.get('fortran') as NDArray).order).toBe('F');
    expect([...(back.get('matrix') as NDArray).data]).toEqual([1, 2, 3, 4, 5, 6]);
    const shared = back.get('shared') as unknown[];
    expect(shared[0]).toBe(shared[1]);
    const cycle = back.get('cycle') as unknown[];
    expect(cycle[1]).toBe(cycle);
  });
});
