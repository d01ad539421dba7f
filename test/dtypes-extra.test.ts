// numpy's dtypes beyond integers, float32/64 and bool: float16, complex,
// datetime64/timedelta64 and fixed-width strings, in .npy (both ways with
// real numpy), dumps and memmap; and every descr spelling numpy accepts.
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Memmap,
  NDArray,
  Value,
  dump,
  dumpSync,
  float16ToNumber,
  load,
  loadNpy,
  loadNpySync,
  loadNpzSync,
  loadJoblibSync,
  loadSync,
  memmap,
  ndarray,
  numberToFloat16,
  saveNpy,
  saveNpySync,
  saveNpzSync,
  stringArray,
  type DType,
} from '../src/index.js';
import { float16ToNumberPortable, numberToFloat16Portable } from '../src/memmap/float16.js';
import { failure, scratchDir } from './helpers.js';
import { CANON_PY, NAT, elements, hex, py, samples, skipNote, skipNumpy, unravel, type Canon } from './numpy-canon.js';

const scratch = scratchDir('dtypes-extra');
afterAll(() => scratch.remove());

describe('descr spellings: every string numpy.dtype() takes for a supported dtype', () => {
  const spellings = [
    '<d', 'd', '=d', '<q', 'q', '<b', 'b', 'B', '|u1', 'h', 'H', '>h', 'i', 'I', '>i4', 'l', 'L', '>u8', 'p', 'f', 'e', '<e', '>e',
    '?', '|b1', 'float64', 'int32', 'uint8', 'bool', 'float16', 'half', 'double', 'single', 'longlong', 'int', 'float', 'complex',
    'c8', '<c16', 'F', 'D', '>c8', 'M8', 'M', '<M8[ns]', 'M8[D]', '>M8[s]', 'm8[us]', '<m8', 'datetime64', 'datetime64[ms]',
    'timedelta64[h]', '<M8[1ns]', 'M8[Y]', 'M8[as]', '|S5', 'S5', 'a5', 'c', '<U5', '>U3', 'U1', '|U2',
  ];
  it.skipIf(skipNumpy)(`files numpy writes with each descr load as numpy loads them${skipNote}`, () => {
    const dir = scratch.file('spellings');
    const seen = py<{ str: string; values: Canon[] }[]>(
      `${CANON_PY}
dir, spellings = json.load(sys.stdin)
import os; os.mkdir(dir)
out = []
for i, s in enumerate(spellings):
    d = np.dtype(s)
    k = d.kind
    if k in 'iu': a = np.array([np.iinfo(d).min, np.iinfo(d).max, 7]).astype(d)
    elif k == 'b': a = np.array([True, False, True], d)
    elif k == 'f': a = np.array([-0.0, 1/3, 1.5e4], d)
    elif k == 'c': a = np.array([1+2j, -0.5-1e-3j, complex(3, -0.0)], d)
    elif k in 'Mm': a = np.array([-2**63, 0, 1234567], 'i8').view(d.newbyteorder('=')).astype(d)
    elif k == 'S': a = np.array([b'ab', b'', b'a\\x00bcdef']).astype(d)
    else: a = np.array(['ab', '', '\\u00e9\\U0001F600']).astype(d)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }" % s
    header += ' ' * ((64 - (10 + len(header) + 1) % 64) % 64) + '\\n'
    path = '%s/%d.npy' % (dir, i)
    with open(path, 'wb') as fh:
        fh.write(b'\\x93NUMPY\\x01\\x00' + len(header).to_bytes(2, 'little') + header.encode('latin1') + a.tobytes())
    b = np.load(path)
    out.append({'str': b.dtype.str, 'values': canon(b)})
print(json.dumps(out))
`,
      [dir, spellings],
    );
    spellings.forEach((spelling, i) => {
      const loaded = loadNpySync(`${dir}/${i}.npy`);
      const got = seen[i]!;
      // numpy keeps the file's byte order; memjob converts to this machine's and names the dtype.
      const kind = got.str.slice(1).replace(/\d.*$/, '');
      const expected =
        kind === 'M' || kind === 'm'
          ? `${kind === 'M' ? 'datetime64' : 'timedelta64'}${got.str.slice(3)}`
          : kind === 'S' || kind === 'U'
            ? got.str.slice(1)
            : ({ i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64', u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64',
                f2: 'float16', f4: 'float32', f8: 'float64', c8: 'complex64', c16: 'complex128', b1: 'bool' } as Record<string, string>)[got.str.slice(1)];
      expect(loaded.dtype, spelling).toBe(expected);
      expect(elements(loaded), spelling).toEqual(got.values);
    });
  });

  it('numpy spellings are accepted as dtype options too, in native byte order only', () => {
    const path = scratch.file('spelled.bin');
    writeFileSync(path, Buffer.alloc(64));
    for (const [spelling, dtype] of [['<M8[ns]', 'datetime64[ns]'], ['c8', 'complex64'], ['e', 'float16'], ['<U2', 'U2'], ['a4', 'S4'], ['m8', 'timedelta64']]) {
      const mm = memmap(path, { mode: 'r', dtype: spelling as DType });
      expect(mm.dtype).toBe(dtype);
      mm.close();
    }
    for (const bad of ['>f2', '>c8', '>M8[ns]', 'M8[2ns]', 'S0', 'U', 'O', 'f16', 'float64[2]']) {
      expect(failure(() => memmap(path, { mode: 'r', dtype: bad as DType })).code, bad).toBe('MEMJOB_ERR_DTYPE');
    }
    // A shared Value holds one number per slot: the new dtypes are refused there.
    for (const bad of ['float16', 'complex64', 'datetime64[ns]', 'U3']) {
      expect(failure(() => new Value(bad as DType, 0 as never)).code, bad).toBe('MEMJOB_ERR_DTYPE');
    }
  });
});

describe('float16', () => {
  it.skipIf(skipNumpy)(`float16ToNumber and numberToFloat16 give numpy's values and bits${skipNote}`, () => {
    // Every bit pattern, one way.
    const decoded = py<string[]>(`${CANON_PY}
print(json.dumps(canon(np.arange(65536, dtype='<u2').view('<f2').astype('f8'))))`);
    // Mismatches collected, then checked once: 65,536 expect() calls would take seconds.
    const wrong: string[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      for (const decode of [float16ToNumber, float16ToNumberPortable]) {
        if (hex(decode(bits)) !== decoded[bits]) wrong.push(`${decode.name}(0x${bits.toString(16)}) = ${decode(bits)}, numpy ${decoded[bits]}`);
      }
    }
    expect(decoded).toHaveLength(65536);
    // The other way: edges, every exact halfway point between neighbours (ties to even), and pseudo-random doubles.
    const values = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e10, Infinity, -Infinity, Number.NaN, 2 ** -24, 2 ** -25,
      2 ** -25 * 1.0000001, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 6.1e-5, 0.1, 1 / 3, 1e-300, -5e-324, Number.MAX_VALUE];
    for (let bits = 0; bits < 0x7c00; bits += 17) values.push((float16ToNumberPortable(bits) + float16ToNumberPortable(bits + 1)) / 2);
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 2000; i++) values.push((random() - 0.5) * 2 ** Math.floor(random() * 50 - 30));
    const bits = py<number[]>(
      `${CANON_PY}
values = [struct.unpack('>d', bytes.fromhex(h))[0] if h != 'nan' else float('nan') for h in json.load(sys.stdin)]
print(json.dumps([int(v) for v in np.array(values, 'f8').astype('f2').view('u2')]))`,
      values.map(hex),
    );
    expect(values.length).toBeGreaterThan(3000);
    values.forEach((v, i) => {
      for (const encode of [numberToFloat16, numberToFloat16Portable]) {
        if (encode(v) !== bits[i]) wrong.push(`${encode.name}(${v}) = 0x${encode(v).toString(16)}, numpy 0x${bits[i]!.toString(16)}`);
      }
    });
    expect(wrong).toEqual([]);
  });

  it('get() and set() convert; data keeps the bits', () => {
    const a = ndarray(new Uint16Array(3), { dtype: 'float16' });
    a.set(0, 0.1);
    a.set(1, -65504);
    a.set(2, 1e-8);
    expect([a.get(0), a.get(1), a.get(2)]).toEqual([float16ToNumber(0x2e66), -65504, 0]);
    expect([...a.data]).toEqual([0x2e66, 0xfbff, 0]);
    expect(failure(() => a.set(0, '1' as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
  });
});

describe('.npy with real numpy', () => {
  it.skipIf(skipNumpy)(`numpy loads what memjob writes, byte for byte what np.save writes${skipNote}`, async () => {
    const arrays = samples();
    const paths: string[] = [];
    for (const array of Object.values(arrays)) {
      const path = scratch.file(`out-${paths.length}.npy`);
      if (paths.length % 2 === 0) saveNpySync(path, array);
      else await saveNpy(path, array);
      paths.push(path);
    }
    const list = scratch.file('list.npy');
    saveNpySync(list, ['x', 'yz', '']);
    const seen = py<{ str: string; shape: number[]; fortran: boolean; identical: boolean; values: Canon[] }[]>(
      `${CANON_PY}
import io
out = []
for path in json.load(sys.stdin):
    a = np.load(path)
    buf = io.BytesIO(); np.save(buf, a)
    out.append({'str': a.dtype.str, 'shape': list(a.shape), 'fortran': bool(a.flags.f_contiguous and not a.flags.c_contiguous),
                'identical': buf.getvalue() == open(path, 'rb').read(), 'values': canon(a)})
print(json.dumps(out))`,
      [...paths, list],
    );
    Object.values(arrays).forEach((array, i) => {
      const got = seen[i]!;
      expect(got.identical, array.dtype).toBe(true);
      expect(got.shape, array.dtype).toEqual(array.shape);
      expect(got.fortran, array.dtype).toBe(array.order === 'F' && array.ndim > 1);
      expect(got.values, array.dtype).toEqual(elements(array));
    });
    expect(seen.at(-1)).toMatchObject({ str: '<U2', identical: true, values: ['x', 'yz', ''] });
  });

  it.skipIf(skipNumpy)(`memjob loads what numpy writes: little- and big-endian, C and F, in memory and mapped${skipNote}`, async () => {
    const dir = scratch.file('from-numpy');
    const written = py<{ name: string; str: string; shape: number[]; values: Canon[] }[]>(
      `${CANON_PY}
import os
dir = json.load(sys.stdin); os.mkdir(dir)
arrays = {
  'f2': np.array([[0.1, -0.0, 65504], [np.inf, 6e-8, 1e-5]], '<f2'),
  'f2be': np.array([0.1, -2.5, np.nan], '>f2'),
  'c8': np.array([1+2j, -3.5+0.25j, complex(np.inf, -1)], '<c8'),
  'c8be': np.array([[1+2j, -3j], [0.5, 7-7j]], '>c8').T,
  'c16': np.array([1e300-1e-300j, 2j], '<c16'),
  'c16be': np.array([1e300-1e-300j, 2j], '>c16'),
  'M8ns': np.array(['2020-01-01T00:00:00.123456789', 'NaT', '1969-12-31'], 'M8[ns]'),
  'M8D': np.array(['2020-01-01', 'NaT', '1600-02-29'], 'M8[D]').reshape(3, 1),
  'M8Dbe': np.array(['2020-01-01', 'NaT'], '>M8[D]'),
  'M8': np.array(['NaT', 'NaT'], 'M8'),
  'm8s': np.array([1, -2, 'NaT'], 'm8[s]'),
  'm8us': np.asfortranarray(np.arange(6, dtype='i8').reshape(2, 3).view('m8[us]')),
  'S3': np.array([b'ab', b'', b'a\\x00c', b'\\xff'], 'S3'),
  'U4': np.array([['ab', ''], ['\\u00e9t\\u00e9', '\\U0001F600\\x00a']], '<U4'),
  'U4be': np.array(['ab', '\\U0001F600'], '>U4'),
}
out = []
for name, a in arrays.items():
    np.save('%s/%s.npy' % (dir, name), a)
    out.append({'name': name, 'str': a.dtype.str, 'shape': list(a.shape), 'values': canon(a)})
print(json.dumps(out))`,
      dir,
    );
    for (const { name, str, shape, values } of written) {
      const path = `${dir}/${name}.npy`;
      const swapped = str.startsWith('>');
      const loads: (NDArray | Memmap)[] = [loadNpySync(path), await loadNpy(path)];
      // Big-endian data cannot be mapped on this machine (MEMJOB_ERR_BYTE_ORDER, as for the other dtypes).
      if (!swapped) loads.push(loadNpySync(path, { mmapMode: 'r' }));
      else expect(failure(() => loadNpySync(path, { mmapMode: 'r' })).code).toBe('MEMJOB_ERR_BYTE_ORDER');
      for (const array of loads) {
        expect(array.shape, name).toEqual(shape);
        expect(elements(array), name).toEqual(values);
        if (array instanceof Memmap) {
          expect(array).toBeInstanceOf(Memmap);
          array.close();
        }
      }
    }
    const strings = loadNpySync(`${dir}/U4.npy`);
    expect(strings.dtype).toBe('U4');
    expect(strings.toStrings()).toEqual(['ab', '', 'été', '😀\0a']);
    expect(loadNpySync(`${dir}/S3.npy`).toStrings()).toEqual(['ab', '', 'a\0c', '\xff']);
  });
});

describe('dumps', () => {
  it('every new dtype round trips through dump/load, in memory and mapped', async () => {
    const arrays = samples();
    const path = scratch.file('all.mjdump');
    dumpSync(arrays, path);
    const asyncPath = scratch.file('all-async.mjdump');
    await dump(arrays, asyncPath);
    for (const loaded of [loadSync<Record<string, NDArray>>(path), await load<Record<string, NDArray>>(asyncPath), loadSync<Record<string, NDArray>>(path, { mmapMode: 'r' })]) {
      for (const [name, array] of Object.entries(arrays)) {
        const got = loaded[name]!;
        expect(got).toBeInstanceOf(NDArray);
        expect(got.dtype, name).toBe(array.dtype);
        expect(got.shape, name).toEqual(array.shape);
        expect(got.order, name).toBe(array.order);
        expect(elements(got), name).toEqual(elements(array));
      }
    }
  });

  it('a Memmap of complex, float16, datetime or strings dumps and loads back mapped (mmapMode r)', () => {
    const cases: [DType, (m: Memmap) => void][] = [
      ['complex128', (m) => m.set([1, 2], [1.5, -2])],
      ['float16', (m) => m.set([0, 1], 0.5)],
      ['datetime64[ms]', (m) => m.set([2, 0], NAT)],
      ['U3', (m) => m.set([1, 1], 'a😀c')],
    ];
    for (const [dtype, fill] of cases) {
      const mm = memmap(scratch.file(`dump-${dtype}.bin`), { mode: 'w+', dtype, shape: [3, 3] });
      fill(mm);
      const path = scratch.file(`memmap-${dtype}.mjdump`);
      dumpSync({ mm, strided: mm.slice(2, undefined, -2) }, path);
      const back = loadSync<{ mm: Memmap; strided: Memmap }>(path, { mmapMode: 'r' });
      expect(back.mm).toBeInstanceOf(Memmap);
      expect(back.mm.dtype).toBe(dtype);
      expect(elements(back.mm)).toEqual(elements(mm));
      expect(elements(back.strided)).toEqual(elements(mm.slice(2, undefined, -2)));
      back.mm.close();
      back.strided.close();
      mm.close();
    }
  });
});

describe('.npz', () => {
  it.skipIf(skipNumpy)(`np.load reads them from memjob's .npz, stored and deflated; memjob maps them back${skipNote}`, () => {
    const arrays = samples();
    for (const compress of [false, true]) {
      const file = scratch.file(`extra-${compress}.npz`);
      saveNpzSync(file, arrays, { compress });
      const seen = py<Record<string, Canon[]>>(`${CANON_PY}\nz = np.load(json.load(sys.stdin))\nprint(json.dumps({k: canon(z[k]) for k in z.files}))`, file);
      const back = loadNpzSync(file, { mmapMode: 'r' });
      for (const [key, array] of Object.entries(arrays)) {
        expect(seen[key], key).toEqual(elements(array));
        expect(back[key]!.dtype, key).toBe(array.dtype);
        expect(elements(back[key]!), key).toEqual(elements(array));
        expect(back[key] instanceof Memmap, key).toBe(!compress);
      }
      for (const array of Object.values(back)) if (array instanceof Memmap) array.close();
    }
  });
});

describe('joblib files', () => {
  it.skipIf(skipNumpy)(`joblib.dump's arrays of every new dtype load, in memory and mapped${skipNote}`, () => {
    const file = scratch.file('extra.joblib');
    const want = py<Record<string, Canon[]>>(
      `${CANON_PY}
import joblib
arrays = {'f2': np.array([0.1, -np.inf], 'f2'), 'c8': np.array([1+2j, -3j], 'c8'), 'c16': np.array([[1e300-1j], [2j]]),
          'M8': np.array(['2020-01-01T00:00:00.5', 'NaT'], 'M8[ms]'), 'm8': np.array([7, 'NaT'], 'm8[s]'),
          'S3': np.array([b'ab', b'\\xffz']), 'U3': np.array(['\\u00e9t\\u00e9', '\\U0001F600'])}
joblib.dump(arrays, json.load(sys.stdin))
print(json.dumps({k: canon(a) for k, a in arrays.items()}))`,
      file,
    );
    for (const options of [{}, { mmapMode: 'r' as const }]) {
      const loaded = loadJoblibSync(file, options) as Record<string, NDArray | Memmap> | Map<string, NDArray | Memmap>;
      const entries = loaded instanceof Map ? [...loaded.entries()] : Object.entries(loaded);
      expect(entries.map(([key]) => key)).toEqual(Object.keys(want));
      for (const [key, array] of entries) {
        expect(array, key).toBeInstanceOf(options.mmapMode === undefined ? NDArray : Memmap);
        expect(elements(array), key).toEqual(want[key]);
        if (array instanceof Memmap) array.close();
      }
    }
  });
});

describe('memmap', () => {
  it.skipIf(skipNumpy)(`complex, float16, datetime and string memmaps read and write what np.memmap sees${skipNote}`, () => {
    const file = scratch.file('c16.bin');
    const mm = memmap(file, { mode: 'w+', dtype: 'complex128', shape: [4, 3] });
    for (let i = 0; i < 12; i++) mm.set(unravel(i, [4, 3]), [i, -i / 2]);
    expect(mm.data.length).toBe(24);
    const strided = mm.slice(3, undefined, -2);
    expect(strided.contiguous).toBe(false);
    expect([...strided.toArray()]).toEqual([9, -4.5, 10, -5, 11, -5.5, 3, -1.5, 4, -2, 5, -2.5]);
    expect(strided.get(1, 2)).toEqual([5, -2.5]);
    mm.flush();
    const half = memmap(scratch.file('f2.bin'), { mode: 'w+', dtype: 'float16', shape: [3] });
    half.set(0, 1 / 3);
    half.set(2, -Infinity);
    const time = memmap(scratch.file('M8.bin'), { mode: 'w+', dtype: 'datetime64[s]', shape: [2] });
    time.set(0, 1_600_000_000n);
    time.set(1, NAT);
    const text = memmap(scratch.file('U3.bin'), { mode: 'w+', dtype: 'U3', shape: [2] });
    text.set(0, 'é😀');
    expect(failure(() => text.set(1, 'abcd')).code).toBe('MEMJOB_ERR_OUT_OF_RANGE');
    for (const m of [half, time, text]) m.flush();
    const seen = py<Canon[][]>(
      `${CANON_PY}
args = json.load(sys.stdin)
print(json.dumps([canon(np.memmap(p, dtype=d, mode='r', shape=tuple(s))) for p, d, s in args]))`,
      [[file, '<c16', [4, 3]], [half.filename, '<f2', [3]], [time.filename, '<M8[s]', [2]], [text.filename, '<U3', [2]]],
    );
    expect(seen).toEqual([elements(mm), elements(half), elements(time), elements(text)]);
    expect(text.get(0)).toBe('é😀');
    for (const m of [mm, half, time, text]) m.close();
  });
});

describe('datetime repr', () => {
  it.skipIf(skipNumpy)(`datetimes print as numpy's datetime_as_string, for every unit${skipNote}`, () => {
    const values = [0n, -1n, 1n, 59n, 123_456_789n, -987_654_321n, 10n ** 12n + 5n, -(10n ** 15n), 2n ** 62n, -(2n ** 63n) + 1n];
    const units = ['Y', 'M', 'W', 'D', 'h', 'm', 's', 'ms', 'us', 'ns', 'ps', 'fs', 'as'];
    // numpy's own day arithmetic overflows int64 past ±2^62 weeks or days (it prints wrapped dates), so those are left out.
    const cases = units.flatMap((unit) => values.filter((v) => !'WD'.includes(unit) || (v < 2n ** 53n && v > -(2n ** 53n))).map((v) => [v, unit] as const));
    const want = py<string[]>(
      `${CANON_PY}
print(json.dumps([str(np.datetime_as_string(np.array(int(v), 'i8').view('M8[%s]' % u))) for v, u in json.load(sys.stdin)]))`,
      cases.map(([v, unit]) => [String(v), unit]),
    );
    const wrong: string[] = [];
    cases.forEach(([value, unit], i) => {
      const text = /\['([^']*)'\]/.exec(String(ndarray(new BigInt64Array([value]), { dtype: `datetime64[${unit}]` as DType })))?.[1];
      if (text !== want[i]) wrong.push(`${value} ${unit}: ${text}, numpy ${want[i]}`);
    });
    expect(cases.length).toBeGreaterThan(120);
    expect(wrong).toEqual([]);
  });
});

describe('strings, complex and datetimes through the API', () => {
  it('stringArray() picks the width as numpy does and refuses what does not fit', () => {
    expect(stringArray(['a', 'bcd']).dtype).toBe('U3');
    expect(stringArray(['😀']).dtype).toBe('U1');
    expect(stringArray([], { dtype: 'S' }).dtype).toBe('S1');
    const bytes = stringArray(['\xe9'], { dtype: 'S' });
    expect([...bytes.data]).toEqual([0xe9]);
    expect(failure(() => stringArray(['abc'], { dtype: 'U2' })).message).toMatch(/at most 2 characters for dtype 'U2', received 3/);
    expect(failure(() => stringArray(['😀'], { dtype: 'S4' })).code).toBe('MEMJOB_ERR_DTYPE');
    expect(failure(() => stringArray([1] as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => saveNpySync(scratch.file('x.npy'), ['a', 2] as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => ndarray(new Float64Array(2)).toStrings()).code).toBe('MEMJOB_ERR_DTYPE');
  });

  it('complex elements are [re, im] over two slots; the data length must be even', () => {
    const z = ndarray(new Float32Array([1, 2, 3, 4]), { dtype: 'complex64' });
    expect(z.size).toBe(2);
    expect(z.shape).toEqual([2]);
    expect(z.nbytes).toBe(16);
    expect(z.get(1)).toEqual([3, 4]);
    z.set(0, [-1, 0.5]);
    expect([...z.data]).toEqual([-1, 0.5, 3, 4]);
    expect(failure(() => z.set(0, 1 as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => ndarray(new Float64Array(3), { dtype: 'complex128' })).code).toBe('MEMJOB_ERR_SHAPE');
    expect(failure(() => ndarray(new Float64Array(2), { dtype: 'complex64' as never })).code).toBe('MEMJOB_ERR_DTYPE');
    expect(String(ndarray(new Float64Array([1, 2, 3.5, -4]), { dtype: 'complex128' }))).toBe('ndarray([1. +2.j, 3.5-4.j], dtype=complex128)');
  });

  it('datetimes are bigint counts of their unit, NaT is -2^63, and the repr quotes the dtype as numpy does', () => {
    const t = ndarray(new BigInt64Array([0n, NAT]), { dtype: 'datetime64[ns]' });
    expect(t.get(1)).toBe(NAT);
    expect(failure(() => t.set(0, 1 as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(String(t)).toBe("ndarray(['1970-01-01T00:00:00.000000000',                           'NaT'],\n        dtype='datetime64[ns]')");
    expect(String(ndarray(new BigInt64Array([1n, NAT, -20n]), { dtype: 'timedelta64[s]' }))).toBe("ndarray([    1, 'NaT',   -20], dtype='timedelta64[s]')");
    expect(String(ndarray(new BigInt64Array([NAT]), { dtype: 'datetime64' }))).toBe("ndarray(['NaT'], dtype=datetime64)");
    expect(String(stringArray(['a', 'bc']))).toBe("ndarray(['a', 'bc'], dtype='<U2')");
    expect(String(ndarray(Uint16Array.from([0.5, 0.1], numberToFloat16), { dtype: 'float16' }))).toBe('ndarray([0.5, 0.1], dtype=float16)');
  });
});
