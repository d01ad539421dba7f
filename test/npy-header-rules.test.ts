/**
 * The .npy header follows numpy's own rules: the cases of numpy 1.24's
 * lib/tests/test_format.py (test_read_array_header_1_0/2_0, test_bad_header,
 * test_huge_header, test_header_growth_axis, test_python2_python3_interoperability
 * and max_header_size), header spellings checked against what real numpy
 * accepts, the dimension limits, linear-time refusal of hostile headers, and
 * two fixes: empty big-endian arrays with mmapMode, and signalling NaNs kept
 * bit for bit when a strided Memmap is saved.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Memmap, MemjobError, NDArray, loadNpy, loadNpySync, memmap, ndarray, saveNpy, saveNpySync } from '../src/index.js';
import { formatHeader } from '../src/format/npy-header.js';
import { inspectFile } from '../src/format/inspect.js';
import { parsePyLiteral, type PyValue } from '../src/format/py-literal.js';
import { failure, numpyPython, scratchDir } from './helpers.js';

const scratch = scratchDir('npy-header-rules');
afterAll(() => scratch.remove());

const python = numpyPython();
const skipNumpy = python === null && process.env.MEMJOB_REQUIRE_NUMPY !== '1';
const skipNote = skipNumpy ? ' (skipped: /usr/bin/python3 has no numpy; apt-get install python3-numpy)' : '';

/** Runs a Python program with numpy, arguments after it, and returns its stdout. */
function py(program: string, ...args: string[]): string {
  if (python === null) throw new Error('MEMJOB_REQUIRE_NUMPY=1, but /usr/bin/python3 cannot import numpy');
  return execFileSync(python, ['-c', program, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
}

let counter = 0;
function writeFile(bytes: Uint8Array): string {
  const path = scratch.file(`case-${counter++}.npy`);
  writeFileSync(path, bytes);
  return path;
}

/** A .npy file with this header text, padded as numpy pads it (to 64 bytes, ending in '\n'), then `dataBytes` zeros. */
function npyBytes(dict: string, dataBytes: number, version = 1): Buffer {
  const lengthBytes = version === 1 ? 2 : 4;
  const encoding = version === 3 ? 'utf8' : 'latin1';
  const unpadded = 8 + lengthBytes + Buffer.byteLength(dict, encoding) + 1;
  const header = Buffer.from(`${dict}${' '.repeat((64 - (unpadded % 64)) % 64)}\n`, encoding);
  const prefix = Buffer.alloc(8 + lengthBytes);
  prefix.write('\x93NUMPY', 'latin1');
  prefix[6] = version;
  if (version === 1) prefix.writeUInt16LE(header.length, 8);
  else prefix.writeUInt32LE(header.length, 8);
  return Buffer.concat([prefix, header, Buffer.alloc(dataBytes)]);
}

const formatFailure = (path: string, options = {}): MemjobError => {
  const error = failure(() => loadNpySync(path, options));
  expect(error.code, error.message).toBe('MEMJOB_ERR_FORMAT');
  return error;
};

describe("numpy's test_format.py, ported", () => {
  it.skipIf(skipNumpy)(`test_read_array_header_1_0 and _2_0: numpy's versions 1.0 and 2.0 read, data aligned to 64${skipNote}`, async () => {
    const paths = [1, 2].map((major) => scratch.file(`ones-v${major}.npy`));
    py(
      'import sys, numpy as np\nfrom numpy.lib import format\n' +
        'for major, path in zip((1, 2), sys.argv[1:]):\n' +
        '    with open(path, "wb") as f: format.write_array(f, np.ones((3, 6), dtype=float), version=(major, 0))',
      ...paths,
    );
    for (const [i, path] of paths.entries()) {
      const bytes = readFileSync(path);
      expect(bytes[6]).toBe(i + 1);
      for (const array of [loadNpySync(path), await loadNpy(path)]) {
        expect([array.dtype, array.shape, array.order]).toEqual(['float64', [3, 6], 'C']);
        expect(Array.from(array.data as Float64Array)).toEqual(new Array(18).fill(1));
      }
      const mapped = loadNpySync(path, { mmapMode: 'r' }) as Memmap;
      expect(mapped.offset % 64).toBe(0); // numpy's s.tell() % ARRAY_ALIGN == 0
      mapped.close();
    }
  });

  it('test_bad_header: a header shorter than its length field, or without the exact keys', () => {
    const magic = Buffer.from('\x93NUMPY\x01\x00', 'latin1');
    for (const tail of ['', '1', '\x01\x00']) {
      expect(formatFailure(writeFile(Buffer.concat([magic, Buffer.from(tail, 'latin1')]))).message).toMatch(/prefix|header length/);
    }
    // numpy's own bytes: {"shape": (1, 2), "descr": "x"}, no 'fortran_order'.
    const noOrder = Buffer.from("\x93NUMPY\x01\x006\x00{'descr': 'x', 'shape': (1, 2), }                    \n", 'latin1');
    expect(formatFailure(writeFile(noOrder)).message).toMatch(/no 'fortran_order'/);
  });

  it.skipIf(skipNumpy)(`test_bad_header: numpy's write_array_header_1_0 with an extra key${skipNote}`, () => {
    const path = scratch.file('extrakey.npy');
    py(
      'import sys\nfrom numpy.lib import format\n' +
        'with open(sys.argv[1], "wb") as f: format.write_array_header_1_0(f, {"shape": (1, 2), "fortran_order": False, "descr": "x", "extrakey": -1})',
      path,
    );
    expect(formatFailure(path).message).toMatch(/unexpected key 'extrakey'/);
  });

  it.skipIf(skipNumpy)(`test_huge_header: a 2.0 header over 10,000 characters needs maxHeaderSize, as numpy's max_header_size${skipNote}`, async () => {
    const path = scratch.file('huge-header.npy');
    py('import sys, warnings, numpy as np\nwarnings.simplefilter("ignore")\nnp.save(sys.argv[1], np.array(1, dtype="i," * 10000 + "i"))', path);
    for (const options of [{}, { maxHeaderSize: 20_000 }]) {
      const error = formatFailure(path, options);
      expect(error.message).toMatch(/the header is \d+ characters, more than maxHeaderSize \((10000|20000)\)/);
      expect(error.message).toContain('{ maxHeaderSize }');
      const asyncError = await loadNpy(path, options).then(() => undefined, (e: unknown) => e as MemjobError);
      expect(asyncError?.code).toBe('MEMJOB_ERR_FORMAT');
      await expect(inspectFile(path, options)).rejects.toMatchObject({ code: 'MEMJOB_ERR_FORMAT' });
    }
    // Allowed, the header is read: a structured dtype, which memjob does not support.
    expect(failure(() => loadNpySync(path, { maxHeaderSize: 180_000 })).code).toBe('MEMJOB_ERR_DTYPE');
    await expect(inspectFile(path, { maxHeaderSize: 180_000 })).rejects.toMatchObject({ code: 'MEMJOB_ERR_DTYPE' });
  });

  it('memjob inspect takes --max-header-size, as loadNpy takes maxHeaderSize', () => {
    const path = writeFile(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }${' '.repeat(12_000)}`, 16, 2));
    const inspect = (...extra: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)), 'inspect', '--json', ...extra, path], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    const refused = inspect();
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/header is 120\d\d characters, more than maxHeaderSize \(10000\)[^]*--max-header-size/);
    expect(refused.stderr).toContain('MEMJOB_ERR_FORMAT');
    const allowed = inspect('--max-header-size', '20000');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect((JSON.parse(allowed.stdout) as { arrays: { shape: number[] }[] }).arrays[0]!.shape).toEqual([2]);
  });

  it.skipIf(skipNumpy)(`max_header_size counts characters: exactly at the limit is read, one more is not${skipNote}`, () => {
    const dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }";
    const withLength = (characters: number, version: number): Buffer => {
      // The last character before '\n' is in a comment: one character, two bytes in UTF-8.
      const text = Buffer.from(`${dict}${' '.repeat(characters - dict.length - 3)}#é\n`, version === 3 ? 'utf8' : 'latin1');
      const prefix = Buffer.from(`\x93NUMPY${String.fromCharCode(version)}\x00\0\0\0\0`, 'latin1');
      prefix.writeUInt32LE(text.length, 8);
      return Buffer.concat([prefix, text]);
    };
    const paths = [10_000, 10_001].flatMap((n) => [2, 3].map((version) => writeFile(withLength(n, version))));
    const numpySays = JSON.parse(
      py(
        'import sys, json, numpy as np\nout = []\nfor p in sys.argv[1:]:\n' +
          '    try: np.load(p); out.append("ok")\n    except ValueError as e: out.append(str(e).split("(")[1].split(")")[0])\nprint(json.dumps(out))',
        ...paths,
      ),
    ) as string[];
    expect(numpySays).toEqual(['ok', 'ok', '10001', '10001']);
    expect(loadNpySync(paths[0]!).shape).toEqual([0]);
    expect(loadNpySync(paths[1]!).shape).toEqual([0]); // 10,001 UTF-8 bytes, 10,000 characters
    for (const path of paths.slice(2)) expect(formatFailure(path).message).toMatch(/header is 10001 characters, more than maxHeaderSize \(10000\)/);
    for (const path of paths.slice(2)) expect(loadNpySync(path, { maxHeaderSize: 10_001 }).shape).toEqual([0]);
  });

  it('maxHeaderSize is checked as an option', async () => {
    const path = writeFile(npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8));
    for (const bad of [-1, 1.5, '100', Number.NaN, null]) {
      expect(failure(() => loadNpySync(path, { maxHeaderSize: bad as never })).message).toMatch(/expected "maxHeaderSize" to be a non-negative integer/);
      await expect(loadNpy(path, { maxHeaderSize: bad as never })).rejects.toMatchObject({ code: 'MEMJOB_ERR_INVALID_ARG' });
    }
    expect(loadNpySync(path, { maxHeaderSize: Infinity }).shape).toEqual([1]);
    expect(formatFailure(path, { maxHeaderSize: 50 }).message).toMatch(/header is 118 characters, more than maxHeaderSize \(50\)/);
  });

  it.skipIf(skipNumpy)(`test_header_growth_axis: headers written as numpy writes them, padded for the growing axis${skipNote}`, () => {
    const shapes = Array.from({ length: 16 }, (_, i) => 10 ** i).flatMap((n) => [
      { shape: [n, 2], fortran: false },
      { shape: [2, n], fortran: true },
    ]);
    const numpyHeaders = JSON.parse(
      py(
        'import io, sys, json\nfrom numpy.lib import format\nout = []\n' +
          'for shape, fortran in json.loads(sys.argv[1]):\n' +
          '    f = io.BytesIO(); format.write_array_header_1_0(f, {"shape": tuple(shape), "fortran_order": fortran, "descr": "<f8"}); out.append(f.getvalue().hex())\n' +
          'print(json.dumps(out))',
        JSON.stringify(shapes.map((s) => [s.shape, s.fortran])),
      ),
    ) as string[];
    for (const [i, { shape, fortran }] of shapes.entries()) {
      expect(Buffer.from(formatHeader('<f8', fortran, shape)).toString('hex'), JSON.stringify(shape)).toBe(numpyHeaders[i]);
    }
  });

  it("test_python2_python3_interoperability: numpy's win64python2.npy, shape (2L,)", () => {
    const array = loadNpySync(new URL('./fixtures/npy/win64python2.npy', import.meta.url));
    expect([array.dtype, array.shape, Array.from(array.data as Float64Array)]).toEqual(['float64', [2], [1, 1]]);
  });
});

// Header spellings: each written to a file, loaded by numpy and by memjob; both must agree.
const D = "'descr': '<f8', 'fortran_order': False";
const spellings: [string, number][] = [
  [`{${D}, 'shape': (0x6,), }`, 1], [`{${D}, 'shape': (0o6, 0b10), }`, 1], [`{${D}, 'shape': (1_0,), }`, 1],
  // Not (-6,): np.load of a real file reads it (fromfile's negative count means "all", then the shape acts as -1),
  // while numpy's mmap_mode and in-memory paths refuse it, as memjob does.
  [`{${D}, 'shape': (+6,), }`, 1], [`{${D}, 'shape': (-(0),), }`, 1], [`{${D}, 'shape': (- -6,), }`, 1], [`{${D}, 'shape': (-0x0,), }`, 1],
  [`{${D}, 'shape': (6L,), }`, 1], [`{${D}, 'shape': (6 L, 2L), }`, 2], [`{${D}, 'shape': (6L,), }`, 3], [`{${D}, 'shape': (6l,), }`, 1],
  [`{${D}, 'shape': (0x6L,), }`, 1], [`{${D}, 'shape': (6\\\nL,), }`, 1], [`{${D}, 'shape': (6 #c\nL,), }`, 1],
  [`{${D}, 'shape': (6), }`, 1], [`{${D}, 'shape': [6], }`, 1], [`{${D}, 'shape': (2,3,) }`, 1], [`{${D}, 'shape': ((6),) }`, 1],
  [`{${D}, 'shape': (True,), }`, 1], [`{${D}, 'shape': (6.0,), }`, 1], [`{${D}, 'shape': (06,), }`, 1], [`{${D}, 'shape': (00,), }`, 1],
  [`{${D}, 'shape': (1+0j,), }`, 1], [`{${D}, 'shape': (6_,), }`, 1], [`{${D}, 'shape': (6,,), }`, 1],
  ["{'descr': '\\x3cf8', 'fortran_order': False, 'shape': (6,)}", 1], ["{'descr': '\\u003cf8', 'fortran_order': False, 'shape': (6,)}", 3],
  ["{'descr': '\\74f8', 'fortran_order': False, 'shape': (6,)}", 1], ["{'descr': '<' \"f8\", 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': r'<f8', 'fortran_order': False, 'shape': (6,)}", 1], ["{'descr': u'<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': '''<f8''', \"fortran_order\": False, \"shape\": (6,)}", 1], ["{'descr': b'<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': f'<f8', 'fortran_order': False, 'shape': (6,)}", 1], ["{'descr': '<f\\\n8', 'fortran_order': False, 'shape': (6,)}", 1],
  [`{${D}, 'shape': (6,), 'shape': (3,)}`, 1], ["{'descr': '<i4', 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': {1: (2, [3])}, 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': ..., 'descr': set(), 'descr': -1-2j, 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  ["{'descr': {[1]: 2}, 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}", 1],
  [`{${D},\n 'shape': (6,),\n }`, 1], [` \n{${D}, 'shape': (6,)}`, 1], [`\n  {${D}, 'shape': (6,)}`, 1], [`\f{${D}, 'shape': (6,)}`, 1],
  [`{${D}, # a comment\n 'shape': (6,)}`, 1], [`({${D}, 'shape': (6,)})`, 1], [`{${D}, 'shape': (6,)},`, 1],
  [`{${D}, 'shape': (6,), 'extra': 1}`, 1], ["{'descr': '<f8', 'shape': (6,)}", 1], [`{${D}, 'shape': (6,), 1: 2}`, 1],
  [`{${D}, 'shape': (6,)}\x0b`, 1], [`{${D}, 'shape': (6,)}\0`, 1], [`{${D}, 'fortran_order': (True), 'shape': (2, 3)}`, 1],
  [`{${D}, 'shape': (6,), **{}}`, 1], [`{${D}, 'shape': (3+3,)}`, 1], [`{${D}, 'shape': (6,)}\\`, 1],
  [`{${'1: 2, '.repeat(40)}${D}, 'shape': (6,)}`, 1], [`{${D}, 'shape': (${'1, '.repeat(32)}), }`, 1],
];

describe('header spellings: memjob accepts exactly what numpy 1.24 accepts', () => {
  it.skipIf(skipNumpy)(`${spellings.length} hand-made headers, each loaded by numpy and by memjob${skipNote}`, () => {
    const paths = spellings.map(([dict, version]) => writeFile(npyBytes(dict, 128, version)));
    const numpySays = JSON.parse(
      py(
        'import sys, json, numpy as np\nout = []\nfor p in sys.argv[1:]:\n' +
          '    try:\n        a = np.load(p); out.append([list(a.shape), bool(a.flags.f_contiguous and not a.flags.c_contiguous)])\n' +
          '    except Exception as e: out.append(type(e).__name__)\nprint(json.dumps(out))',
        ...paths,
      ),
    ) as ([number[], boolean] | string)[];
    for (const [i, path] of paths.entries()) {
      const label = JSON.stringify(spellings[i]);
      const want = numpySays[i]!;
      if (typeof want === 'string') {
        const error = failure(() => loadNpySync(path));
        expect(error.code, `${label}: numpy refuses it (${want})`).toBe('MEMJOB_ERR_FORMAT');
        expect(error.message.length, label).toBeLessThan(1000);
      } else {
        const array = loadNpySync(path);
        expect([array.shape, array.order === 'F' && array.shape.filter((n) => n > 1).length > 1], label).toEqual(want);
      }
    }
    // What numpy accepts is not a formality: the repeated key's last value is the one used.
    expect(numpySays.filter((want) => typeof want !== 'string').length).toBeGreaterThan(30);
  });

  it.skipIf(skipNumpy)(`fuzzed literals: the parser's value equals ast.literal_eval's (numpy's safe_eval), 400 cases${skipNote}`, () => {
    const cases = JSON.parse(py(FUZZ, '20261128', '400')) as { text: string; version: number; value: unknown }[];
    let accepted = 0;
    for (const c of cases) {
      let mine: unknown = null;
      try {
        mine = canonical(parsePyLiteral(c.text, { python2Longs: c.version < 3, maxDepth: 32, maxValues: 1000, fail: (pos, reason) => new MemjobError('MEMJOB_ERR_FORMAT', `${pos}: ${reason}`) }));
      } catch (error) {
        if (!(error instanceof MemjobError)) throw error;
        // The one known difference: a bare top-level tuple ('{...},'), which numpy refuses as "not a dictionary" anyway.
        if (Array.isArray(c.value) && c.value[0] === 'tuple' && error.message.includes('unexpected text after the')) continue;
      }
      expect(mine, JSON.stringify(c.text)).toEqual(c.value);
      if (mine !== null) accepted++;
    }
    expect(accepted).toBeGreaterThan(100);
  });
});

/** A value as the FUZZ program's canon() writes it: dict keys deduplicated, the last value kept in the first key's place. */
function canonical(v: PyValue): unknown {
  switch (v.type) {
    case 'bool': return ['bool', v.value];
    case 'int': return ['int', String(v.value)];
    case 'float': return ['num'];
    case 'str': case 'bytes': return [v.type, v.value];
    case 'none': case 'ellipsis': return [v.type];
    case 'tuple': case 'list': return [v.type, v.items.map(canonical)];
    case 'set': return ['set'];
    case 'dict': {
      const entries = new Map<string, [unknown, unknown]>();
      for (const [k, x] of v.entries) {
        const key = canonical(k);
        const id = JSON.stringify(key);
        entries.set(id, [entries.get(id)?.[0] ?? key, canonical(x)]);
      }
      return ['dict', [...entries.values()]];
    }
  }
}

// Mutations of header-like literals; each is given to numpy's _filter_header (versions 1 and 2) and ast.literal_eval.
const FUZZ = `
import ast, json, random, sys
from numpy.lib.format import _filter_header
rnd = random.Random(int(sys.argv[1]))
bases = ["{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", "{'descr': '<i4', 'fortran_order': True, 'shape': (2L, 3L), }",
         '{"descr": "|b1", "fortran_order": False, "shape": (), }', "{'shape': (0x10,), 'descr': u'\\\\x3cu2', 'fortran_order': False}",
         "{'descr': [('a', '<i4'), ('b', '<f8', (2,))], 'fortran_order': False, 'shape': (1_0,)}",
         "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), 'x': {1: 2.5, 'y': {3, 4j}}, 'z': (None, ..., b'q')}"]
pieces = [' ', '\\n', '\\t', '\\\\\\n', '#c\\n', 'L', ' L', ',', '(', ')', '0x', '0o', '0b', '_', '+', '-', "'", '"', 'j', '.', 'e', '1', '0', '9',
          'b', 'r', 'u', 'R', 'f', '\\\\x3c', '\\\\', '\\\\t', '\\\\777', '\\\\u00e9', '{', '}', ':', '[', ']', '...', 'set()', 'True', 'None',
          '\\f', "'''", '"""', '\\u00e9', '\\v', '1+2j', '-(3)', ' 1_', '00', '08']
def canon(v):
    if isinstance(v, bool): return ['bool', v]
    if isinstance(v, int): return ['int', str(v)]
    if isinstance(v, (float, complex)): return ['num']
    if isinstance(v, str): return ['str', v]
    if isinstance(v, bytes): return ['bytes', v.decode('latin1')]
    if v is None: return ['none']
    if v is Ellipsis: return ['ellipsis']
    if isinstance(v, (tuple, list)): return [type(v).__name__, [canon(x) for x in v]]
    if isinstance(v, (set, frozenset)): return ['set']
    return ['dict', [[canon(k), canon(x)] for k, x in v.items()]]
out = []
for i in range(int(sys.argv[2])):
    version = rnd.choice([1, 1, 3])
    t = rnd.choice(bases)
    for _ in range(rnd.randint(1, 3)):
        p, op = rnd.randrange(len(t) + 1), rnd.random()
        t = t[:p] + rnd.choice(pieces) + t[p:] if op < 0.6 else t[:p] + t[p + 1:] if op < 0.8 else t[:p] + rnd.choice(pieces) + t[p + 1:]
    t += ' ' * rnd.randint(0, 3) + '\\n'
    try: r = canon(ast.literal_eval(_filter_header(t) if version < 3 else t))
    except Exception: r = None
    out.append({'text': t, 'version': version, 'value': r})
print(json.dumps(out))
`;

describe('dimension limits', () => {
  it('64 axes are read (numpy 2), 65 are MEMJOB_ERR_FORMAT', () => {
    const axes = (n: number) => `{'descr': '<f8', 'fortran_order': False, 'shape': (${'1, '.repeat(n)}), }`;
    expect(loadNpySync(writeFile(npyBytes(axes(64), 8))).shape).toEqual(new Array(64).fill(1));
    expect(formatFailure(writeFile(npyBytes(axes(65), 8))).message).toMatch(/'shape' has 65 axes, more than the 64/);
  });

  it.skipIf(skipNumpy)(`saving refuses more than 32 axes, the most numpy 1.24 loads; 32 axes load in numpy${skipNote}`, async () => {
    const path = scratch.file('axes.npy');
    const array = (n: number) => ndarray(new Float64Array([2.5]), { shape: new Array<number>(n).fill(1) });
    for (const save of [() => saveNpySync(path, array(33)), () => saveNpy(path, array(33))]) {
      const error = await Promise.resolve().then(save).then(() => undefined, (e: unknown) => e as MemjobError);
      expect(error?.code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect(error?.message).toMatch(/at most 32 dimensions, the most numpy 1\.x can load, received an array of 33/);
    }
    saveNpySync(path, array(32));
    const thirtyThree = writeFile(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': (${'1,'.repeat(33)}), }`, 8));
    const said = py(
      'import sys, numpy as np\nprint(np.load(sys.argv[1]).shape == (1,) * 32)\ntry: np.load(sys.argv[2])\nexcept ValueError as e: print(e)',
      path,
      thirtyThree,
    );
    expect(said).toMatch(/^True\nmaximum supported dimension for an ndarray is 32, found 33/);
  });
});

describe('hostile headers are refused in linear time with short messages', () => {
  it('1,000,000 axes with maxHeaderSize raised: MEMJOB_ERR_FORMAT', async () => {
    const path = writeFile(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': (${'1, '.repeat(1_000_000)}), }`, 8, 2));
    const error = formatFailure(path, { maxHeaderSize: 4_000_000 });
    expect(error.message.length).toBeLessThan(1000);
    await expect(loadNpy(path, { maxHeaderSize: Infinity })).rejects.toMatchObject({ code: 'MEMJOB_ERR_FORMAT' });
    expect(formatFailure(path).message).toMatch(/header is \d{7} characters, more than maxHeaderSize \(10000\)/);
  });

  it('a 4,000,000-digit axis: a message shorter than 1,000 characters, with or without maxHeaderSize', () => {
    for (const digits of ['9', '0x9']) {
      const axis = digits === '9' ? '9'.repeat(4_000_000) : `0x${'f'.repeat(4_000_000)}`;
      const path = writeFile(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': (0, ${axis}), }`, 8, 2));
      for (const options of [{}, { maxHeaderSize: Infinity }]) {
        const error = formatFailure(path, options);
        expect(error.message.length, error.message.slice(0, 200)).toBeLessThan(1000);
      }
      expect(formatFailure(path, { maxHeaderSize: Infinity }).message).toMatch(/an integer of 4000000 digits/);
    }
    // Up to Python's 4,300 digits an axis is read; it is then too large to index.
    const path = writeFile(npyBytes(`{'descr': '<f8', 'fortran_order': False, 'shape': (0, ${'9'.repeat(4300)}), }`, 8));
    const error = formatFailure(path);
    expect(error.message).toMatch(/an axis of 9{40}\.\.\. \(4300 characters\) elements is more than memjob can index/);
    expect(error.message.length).toBeLessThan(1000);
  });

  it('deep nesting, long strings, names and escapes: refused with short messages', () => {
    const dicts = [
      `{'descr': ${'('.repeat(1_000_000)}`,
      `{'descr': '<f8', 'fortran_order': False, 'shape': (${'x'.repeat(1_000_000)},), }`,
      `{'descr': '<f8', 'fortran_order': ${'T'.repeat(1_000_000)}, 'shape': (1,), }`,
      `{'descr': '<f8', 'fortran_order': False, 'shape': (${'1'.repeat(1_000_000)}.5,), }`,
      `{'${'k'.repeat(1_000_000)}': 1, 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }`,
      `{'descr': '<f8', 'fortran_order': False, 'shape': (${'\\x41'.repeat(300_000)}), }`,
    ];
    for (const dict of dicts) {
      const error = formatFailure(writeFile(npyBytes(dict, 8, 2)), { maxHeaderSize: Infinity });
      expect(error.message.length, error.message.slice(0, 200)).toBeLessThan(1000);
    }
  });
});

describe('fixes', () => {
  it.skipIf(skipNumpy)(`an empty big-endian array with mmapMode comes back in memory, as docs/npy.md says${skipNote}`, async () => {
    const [empty, full] = [scratch.file('empty-be.npy'), scratch.file('full-be.npy')];
    py("import sys, numpy as np\nnp.save(sys.argv[1], np.zeros(0, '>f8'))\nnp.save(sys.argv[2], np.zeros(3, '>f8'))", empty, full);
    for (const mmapMode of ['r', 'r+', 'c', 'w+'] as const) {
      for (const array of [loadNpySync(empty, { mmapMode }), await loadNpy(empty, { mmapMode })]) {
        expect(array).toBeInstanceOf(NDArray);
        expect([array.dtype, array.shape, array.size]).toEqual(['float64', [0], 0]);
      }
    }
    expect(failure(() => loadNpySync(full, { mmapMode: 'r' })).code).toBe('MEMJOB_ERR_BYTE_ORDER');
  });

  it('signalling NaNs keep their bits when a reversed or strided float32/float64 Memmap is saved', async () => {
    const patterns32 = [0x7f800001, 0xff800001, 0x7fa00000, 0x7fc00000, 0x3f800000, 0x7f800000];
    const mm32 = memmap(scratch.file('snan32.bin'), { mode: 'w+', dtype: 'float32', shape: [6] });
    new Uint32Array(mm32.data.buffer, mm32.data.byteOffset, 6).set(patterns32);
    const patterns64 = [0x7ff0000000000001n, 0xfff0000000000001n, 0x7ff4000000000000n, 0x3ff0000000000000n];
    const mm64 = memmap(scratch.file('snan64.bin'), { mode: 'w+', dtype: 'float64', shape: [2, 2] });
    new BigUint64Array(mm64.data.buffer, mm64.data.byteOffset, 4).set(patterns64);
    const cases = [
      { view: mm32.slice(undefined, undefined, -1), words: [...patterns32].reverse(), Word: Uint32Array },
      { view: mm32.slice(0, 6, 2), words: [patterns32[0]!, patterns32[2]!, patterns32[4]!], Word: Uint32Array },
      { view: mm64.slice(undefined, undefined, -1), words: [patterns64[2]!, patterns64[3]!, patterns64[0]!, patterns64[1]!], Word: BigUint64Array },
    ] as const;
    for (const [i, { view, words, Word }] of cases.entries()) {
      expect(view.contiguous).toBe(false);
      for (const save of [saveNpySync, saveNpy]) {
        const path = scratch.file(`snan-${i}-${save.name}.npy`);
        await save(path, view);
        const bytes = readFileSync(path);
        const dataOffset = 10 + bytes.readUInt16LE(8);
        const saved = new Word(bytes.buffer.slice(bytes.byteOffset + dataOffset, bytes.byteOffset + bytes.length));
        expect(Array.from(saved as ArrayLike<number | bigint>).map((w) => w.toString(16)), `${i} ${save.name}`).toEqual(words.map((w) => w.toString(16)));
      }
    }
    mm32.close();
    mm64.close();
  });
});
