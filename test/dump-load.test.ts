import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, Memmap, NDArray, dump, dumpSync, hasShareableMemory, load, loadSync, memmap, ndarray } from '../src/index.js';
import { failure, runTsChild, scratchDir } from './helpers.js';

const scratch = scratchDir('dump');
afterAll(() => scratch.remove());

/** A value using every kind dump stores. */
function sample() {
  const shared = new Float64Array([0.5, 1.5, 2.5]);
  return {
    text: 'héllo ✓',
    numbers: [0, -0, 1.25, -7, 2 ** 53 - 1, 2 ** 60, NaN, Infinity, -Infinity],
    flags: [true, false, null, undefined],
    big: [123n, -(2n ** 100n)],
    when: new Date(Date.UTC(2026, 10, 23)),
    map: new Map<unknown, unknown>([['a', 1], [2, { nested: [1, 2] }]]),
    set: new Set(['x', 3]),
    empty: {},
    arrays: {
      f64: shared,
      again: shared,
      i8: new Int8Array([-128, 127]),
      u8c: new Uint8ClampedArray([0, 255]),
      i16: new Int16Array([-2, 2]),
      u16: new Uint16Array([65535]),
      i32: new Int32Array([-(2 ** 31)]),
      u32: new Uint32Array([2 ** 32 - 1]),
      i64: new BigInt64Array([-(2n ** 63n)]),
      u64: new BigUint64Array([2n ** 64n - 1n]),
      f32: new Float32Array([0.25]),
      buf: Buffer.from('bytes'),
      ab: new Uint8Array([9, 8, 7]).buffer,
      dv: new DataView(new Uint8Array([1, 2]).buffer),
      nothing: new Float64Array(0),
      grid: ndarray(Int32Array.from({ length: 6 }, (_, i) => i), { shape: [2, 3], order: 'F' }),
      flags: ndarray(new Uint8Array([1, 0, 1]), { dtype: 'bool' }),
      scalar: ndarray(new Float64Array([3.5]), { shape: [] }),
    },
  };
}

function expectSameValue(loaded: ReturnType<typeof sample>, original: ReturnType<typeof sample>): void {
  expect(loaded.text).toBe(original.text);
  expect(loaded.numbers).toEqual(original.numbers);
  expect(Object.is(loaded.numbers[1], -0)).toBe(true);
  expect(loaded.flags).toEqual(original.flags);
  expect(loaded.flags).toHaveLength(4);
  expect(loaded.big).toEqual(original.big);
  expect(loaded.when).toEqual(original.when);
  expect(loaded.map).toEqual(original.map);
  expect(loaded.set).toEqual(original.set);
  expect(loaded.empty).toEqual({});
  for (const [name, array] of Object.entries(original.arrays)) {
    const got = (loaded.arrays as Record<string, unknown>)[name];
    if (array instanceof NDArray) {
      expect(got, name).toBeInstanceOf(NDArray);
      const nd = got as NDArray;
      expect([nd.dtype, nd.shape, nd.order]).toEqual([array.dtype, array.shape, array.order]);
      expect(Array.from(nd.data as Iterable<number>)).toEqual(Array.from(array.data as Iterable<number>));
    } else if (array instanceof ArrayBuffer) {
      expect(got, name).toBeInstanceOf(ArrayBuffer);
      expect([...new Uint8Array(got as ArrayBuffer)]).toEqual([...new Uint8Array(array)]);
    } else if (array instanceof DataView) {
      expect(got, name).toBeInstanceOf(DataView);
      expect((got as DataView).getUint8(1)).toBe(2);
    } else {
      expect((got as object).constructor, name).toBe(array.constructor);
      expect(got, name).toEqual(array);
    }
  }
  // The same array dumped twice comes back as one array, as pickle keeps identity.
  expect(loaded.arrays.again).toBe(loaded.arrays.f64);
  expect(loaded.arrays.grid.get(1, 2)).toBe(5);
  expect(loaded.arrays.flags.get(0)).toBe(true);
}

describe('dump and load round trips', () => {
  it('every supported kind of value, sync and async, in memory', async () => {
    const value = sample();
    const file = scratch.file('all.dump');
    expect(dumpSync(value, file)).toEqual([file]);
    const fromSync = loadSync(file) as ReturnType<typeof sample>;
    expectSameValue(fromSync, value);
    expect(hasShareableMemory(fromSync.arrays.f64)).toBe(false);

    const fileAsync = scratch.file('all-async.dump');
    expect(await dump(value, fileAsync)).toEqual([fileAsync]);
    expect(readFileSync(fileAsync).equals(readFileSync(file))).toBe(true);
    expectSameValue((await load(fileAsync)) as ReturnType<typeof sample>, value);
  });

  it('with mmapMode every array is a view on the file itself, of the same type', async () => {
    const value = sample();
    const file = scratch.file('mapped.dump');
    await dump(value, file);
    const loaded = (await load(file, { mmapMode: 'r' })) as ReturnType<typeof sample>;
    expectSameValue(loaded, value);
    for (const name of ['f64', 'i8', 'u64', 'buf', 'grid'] as const) {
      expect(hasShareableMemory(loaded.arrays[name]), name).toBe(true);
    }
    expect(Buffer.isBuffer(loaded.arrays.buf)).toBe(true);
    // 64-byte alignment: every array starts on a multiple of 64 in the file.
    const f64 = loaded.arrays.f64;
    const bytes = readFileSync(file);
    const at = bytes.indexOf(Buffer.from(new Float64Array([0.5, 1.5, 2.5]).buffer));
    expect(at % 64).toBe(0);
    expect(f64.byteOffset).toBe(0);
  });

  it("'r+' writes reach the file, 'c' and 'r' writes do not, and 'w+' loads like 'r+' without zeroing", () => {
    const file = scratch.file('modes.dump');
    dumpSync({ x: new Float64Array([1, 2, 3]) }, file);
    const before = readFileSync(file);

    const copy = loadSync(file, { mmapMode: 'c' }) as { x: Float64Array };
    copy.x[0] = 100;
    const readOnly = loadSync(file, { mmapMode: 'r' }) as { x: Float64Array };
    readOnly.x[1] = 200; // lands in a private page
    expect(readFileSync(file).equals(before)).toBe(true);

    const asWrite = loadSync(file, { mmapMode: 'w+' }) as { x: Float64Array };
    expect([...asWrite.x]).toEqual([1, 2, 3]);
    const writable = loadSync(file, { mmapMode: 'r+' }) as { x: Float64Array };
    writable.x[2] = 42;
    expect([...(loadSync(file) as { x: Float64Array }).x]).toEqual([1, 2, 42]);
    expect(asWrite.x[2]).toBe(42); // both shared mappings see the same page
  });

  it('a dumped Memmap loads as a Memmap with mmapMode and as an NDArray without; strided views are written in C order', () => {
    const source = memmap(scratch.file('source.bin'), { mode: 'w+', dtype: 'float32', shape: [4, 3] });
    source.data.set(Array.from({ length: 12 }, (_, i) => i));
    const file = scratch.file('memmap.dump');
    dumpSync({ whole: source, everyOther: source.slice(0, 4, 2) }, file);
    source.close();

    const mapped = loadSync(file, { mmapMode: 'r' }) as { whole: Memmap; everyOther: Memmap };
    expect(mapped.whole).toBeInstanceOf(Memmap);
    expect(mapped.whole.filename).toBe(file);
    expect(mapped.whole.shape).toEqual([4, 3]);
    expect([...mapped.everyOther.toArray()]).toEqual([0, 1, 2, 6, 7, 8]);
    mapped.whole.close(); // closing one Memmap leaves the others usable
    expect(mapped.everyOther.get(1, 2)).toBe(8);

    const inMemory = loadSync(file) as { whole: NDArray<'float32'> };
    expect(inMemory.whole).toBeInstanceOf(NDArray);
    expect(inMemory.whole.get(3, 2)).toBe(11);
  });

  it('an F-ordered Memmap keeps its order', () => {
    const source = memmap(scratch.file('fortran.bin'), { mode: 'w+', dtype: 'int16', shape: [2, 3], order: 'F' });
    source.data.set([1, 2, 3, 4, 5, 6]);
    const file = scratch.file('fortran.dump');
    dumpSync(source, file);
    const loaded = loadSync(file, { mmapMode: 'r' }) as Memmap<'int16'>;
    expect(loaded.order).toBe('F');
    expect(loaded.get(1, 0)).toBe(2);
    expect(loaded.get(0, 1)).toBe(3);
    source.close();
  });

  it("keys like '__proto__' and 'constructor' come back as own data, never as prototypes", () => {
    const file = scratch.file('proto.dump');
    const value = JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c"}') as Record<string, unknown>;
    dumpSync(value, file);
    const loaded = loadSync(file) as Record<string, unknown>;
    expect(Object.getPrototypeOf(loaded)).toBe(Object.prototype);
    expect(Object.hasOwn(loaded, '__proto__')).toBe(true);
    expect((loaded as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(loaded.constructor).toBe('c');
  });
});

describe('dump refuses what it cannot store, and writes nothing', () => {
  const target = scratch.file('refused.dump');
  const cases: [string, unknown, string][] = [
    ['a function', { model: { fit() {} } }, 'value.model.fit'],
    ['a symbol', { s: [1, Symbol('x')] }, 'value.s[1]'],
    ['a class instance', { when: { at: new (class Point { x = 1 })() } }, 'value.when.at'],
    ['a Map value', { m: new Map([['k', () => 1]]) }, 'value.m.get("k")'],
    ['a SharedArrayBuffer', { shared: new SharedArrayBuffer(8) }, 'value.shared'],
  ];
  for (const [what, value, path] of cases) {
    it(`${what} is named by its path`, async () => {
      const error = failure(() => dumpSync(value, target));
      expect(error.code).toBe('MEMJOB_ERR_UNSUPPORTED_VALUE');
      expect(error.message).toContain(path);
      await expect(dump(value, target)).rejects.toMatchObject({ code: 'MEMJOB_ERR_UNSUPPORTED_VALUE' });
      expect(existsSync(target)).toBe(false);
    });
  }

  it('a cycle is refused', () => {
    const value: Record<string, unknown> = { a: [1] };
    (value.a as unknown[]).push(value);
    const error = failure(() => dumpSync(value, target));
    expect(error.code).toBe('MEMJOB_ERR_UNSUPPORTED_VALUE');
    expect(error.message).toContain('value.a[1]');
    expect(error.message).toContain('circular');
  });

  it('leaves no temp files and an existing target unchanged', () => {
    writeFileSync(target, 'old');
    failure(() => dumpSync({ f: () => 1 }, target));
    expect(readFileSync(target, 'utf8')).toBe('old');
    expect(readdirSync(scratch.dir).filter((name) => name.includes('memjob-tmp'))).toEqual([]);
  });

  it('bad options and filenames get MEMJOB_ERR_INVALID_ARG', async () => {
    expect(failure(() => dumpSync(1, '')).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => dumpSync(1, target, { compress: 'lz4' as never })).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => dumpSync(1, target, { compress: 12 })).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => loadSync(target, { mmapMode: 'w' as never })).code).toBe('MEMJOB_ERR_INVALID_ARG');
    await expect(load(42 as never)).rejects.toMatchObject({ code: 'MEMJOB_ERR_INVALID_ARG' });
  });

  it('a FIFO is refused at once instead of waiting for a writer', () => {
    const fifo = scratch.file('pipe');
    execFileSync('mkfifo', [fifo]);
    expect(failure(() => loadSync(fifo)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => loadSync(fifo, { mmapMode: 'r+' })).code).toBe('MEMJOB_ERR_INVALID_ARG');
  });

  it('files that are not dumps get MEMJOB_ERR_FORMAT; OS errors keep their codes', () => {
    const text = scratch.file('notes.txt');
    writeFileSync(text, 'just some text, not a dump at all');
    const error = failure(() => loadSync(text));
    expect(error.code).toBe('MEMJOB_ERR_FORMAT');
    expect(error.message).toContain(text);
    expect(failure(() => loadSync(scratch.file('missing.dump'))).code).toBe('ENOENT');
    expect(failure(() => loadSync(scratch.dir)).code).toBe('EISDIR');
  });
});

describe('atomic writes', () => {
  it('a process killed mid-dump leaves the old file under the target name', async () => {
    const file = scratch.file('atomic.dump');
    dumpSync({ version: 'old' }, file);
    // The child dumps 768 MiB and SIGKILLs itself as soon as its temp file has grown past 64 MiB.
    const result = await runTsChild('dump-and-die.ts', [file, String(768 * 1024 * 1024)]);
    expect(result.signal, result.stderr).toBe('SIGKILL');
    expect(loadSync(file)).toEqual({ version: 'old' });
    const leftovers = readdirSync(scratch.dir).filter((name) => name.includes('atomic.dump.') && name.endsWith('.memjob-tmp'));
    expect(leftovers.length).toBe(1); // the partial file is beside the target, never under its name
    expect(statSync(`${scratch.dir}/${leftovers[0]}`).mode & 0o777).toBe(0o600);
  });
});

describe('compression', () => {
  const value = { x: Float64Array.from({ length: 20_000 }, (_, i) => i % 7), label: 'zipped' };

  it('every option form round-trips and really compresses', async () => {
    const plain = scratch.file('plain.dump');
    dumpSync(value, plain);
    const options = [true, 1, 9, 'gzip', 'zlib', 'brotli', ['gzip', 6], ['brotli', 2]] as const;
    for (const compress of options) {
      const file = scratch.file(`c-${JSON.stringify(compress).replace(/\W/g, '')}.dump`);
      await dump(value, file, { compress });
      expect(statSync(file).size, JSON.stringify(compress)).toBeLessThan(statSync(plain).size / 10);
      expect(await load(file)).toEqual(value);
      expect(loadSync(file)).toEqual(value);
      dumpSync(value, file, { compress });
      expect(loadSync(file)).toEqual(value);
    }
  });

  it('the extension picks the method, and load detects it by content whatever the name', () => {
    for (const [ext, magic] of [['gz', '1f8b'], ['z', '78'], ['br', '']] as const) {
      const file = scratch.file(`named.dump.${ext}`);
      dumpSync(value, file);
      const head = readFileSync(file).subarray(0, 2).toString('hex');
      if (magic) expect(head.startsWith(magic)).toBe(true);
      else expect(head).not.toBe('934d'); // brotli: no signature, but not the plain format either
      expect(loadSync(file)).toEqual(value);
    }
    // As joblib: compress 0 with a compressing extension still compresses.
    const zero = scratch.file('zero.dump.gz');
    dumpSync(value, zero, { compress: 0 });
    expect(readFileSync(zero).subarray(0, 2).toString('hex')).toBe('1f8b');
    const disguised = scratch.file('disguised.bin');
    dumpSync(value, disguised, { compress: 'brotli' });
    expect(loadSync(disguised)).toEqual(value);
  });

  it('mmapMode on a compressed file emits one warning and loads into memory', async () => {
    const file = scratch.file('warn.dump.gz');
    await dump(value, file);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const loaded = (await load(file, { mmapMode: 'r' })) as typeof value;
      await new Promise((resolve) => setImmediate(resolve));
      expect(loaded).toEqual(value);
      expect(hasShareableMemory(loaded.x)).toBe(false);
      expect(warnings.map((w) => (w as Error & { code?: string }).code)).toEqual(['MEMJOB_COMPRESSED_MMAP']);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('mmapMode on a file that is not a dump at all is MEMJOB_ERR_FORMAT, without a warning that it is compressed', async () => {
    const file = scratch.file('not-a-dump.txt');
    writeFileSync(file, 'cpu  10 20 30 40 50\n'.repeat(20));
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await expect(load(file, { mmapMode: 'r' })).rejects.toMatchObject({ code: ErrorCodes.FORMAT });
      expect(() => loadSync(file, { mmapMode: 'r' })).toThrow(expect.objectContaining({ code: ErrorCodes.FORMAT }));
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a truncated compressed file gets MEMJOB_ERR_FORMAT', async () => {
    const file = scratch.file('cut.dump.gz');
    await dump(value, file);
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length / 2));
    expect(failure(() => loadSync(file)).code).toBe('MEMJOB_ERR_FORMAT');
    await expect(load(file)).rejects.toMatchObject({ code: 'MEMJOB_ERR_FORMAT' });
  });
});

describe('memory', () => {
  it('dumping a 1 GiB memmap, plain or compressed, needs no memory that grows with its size', async () => {
    const result = await runTsChild('dump-memory.ts', [scratch.dir, String(1024 ** 3)]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as Record<string, number>;
    // RssAnon: the process's own (anonymous) memory; the mapped file's page cache is not counted.
    for (const [what, growth] of Object.entries(report)) {
      expect(growth, `${what}: anonymous memory grew by ${(growth / 2 ** 20).toFixed(0)} MiB`).toBeLessThan(160 * 2 ** 20);
    }
  });
});
