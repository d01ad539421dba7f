/**
 * The restricted unpickler (src/format/pickle/) on pickles and joblib files written by Debian's python3
 * (numpy 1.24, joblib 1.2) with test/fixtures/pickle/make_fixtures.py, on three files of joblib's own
 * compatibility corpus, on malicious pickles, and on thousands of mutations of all of these.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError } from '../src/errors.js';
import { compressionOf, decompressJoblib } from '../src/format/joblib-compression.js';
import { isZfile, readZfile } from '../src/format/joblib-compat.js';
import { resolveJoblibGlobal } from '../src/format/pickle/joblib-globals.js';
import { bufferReader } from '../src/format/pickle/file-reader.js';
import { unpickle, type UnpickleOptions } from '../src/format/pickle/unpickler.js';

const dir = new URL('./fixtures/pickle/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, dir)));
const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as {
  values: Tagged;
  joblib: Record<string, { value: Tagged; offsets: Record<string, number> }>;
};

type Tagged = null | boolean | string | { [tag: string]: unknown };

/** The tagged JSON of make_fixtures.py → the JS value unpickle() must give. */
function untag(t: Tagged, offsets: Record<string, number> = {}, key?: unknown): unknown {
  if (t === null || typeof t !== 'object') return t;
  const [tag, v] = Object.entries(t)[0]!;
  const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
  switch (tag) {
    case 'int': {
      const n = BigInt(v as string);
      return n >= -(2n ** 53n) + 1n && n <= 2n ** 53n - 1n ? Number(n) : n;
    }
    case 'float':
      return v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v);
    case 'bytes':
      return hex(v as string);
    case 'list':
      return (v as Tagged[]).map((x) => untag(x, offsets));
    case 'set':
      return new Set((v as Tagged[]).map((x) => untag(x, offsets)));
    case 'map':
      return new Map((v as [Tagged, Tagged][]).map(([k, x]) => [untag(k, offsets), untag(x, offsets, k)]));
    case 'ndarray': {
      const a = v as { dtype: string; shape: number[]; order: string; hex: string };
      return { kind: 'ndarray', dtype: a.dtype, shape: a.shape, order: a.order, offset: offsets[key as string], nbytes: hex(a.hex).length, bytes: hex(a.hex) };
    }
  }
  throw new Error(`unknown tag ${tag}`);
}

function load(bytes: Uint8Array, options: Partial<UnpickleOptions> = {}): { value: unknown; end: number } {
  const reader = bufferReader(bytes);
  const value = unpickle(reader, { resolve: resolveJoblibGlobal, ...options });
  return { value, end: reader.position };
}

function failure(run: () => unknown): MemjobError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(MemjobError);
    return e as MemjobError;
  }
  throw new Error('expected a MemjobError, but the call returned');
}

const pickleOf = (...bytes: (number | number[])[]): Uint8Array => new Uint8Array(bytes.flat());

describe('plain pickles written by CPython', () => {
  for (const p of [0, 2, 4, 5]) {
    it(`reads every value kind at protocol ${p}`, () => {
      const bytes = fixture(`values_p${p}.pkl`);
      const { value, end } = load(bytes);
      expect(value).toEqual(untag(expected.values));
      expect(end).toBe(bytes.length);
      const v = value as Map<string, unknown>;
      // Exact big and negative ints (LONG1 two's complement, also beyond 8 bytes; protocol 0 writes them as text).
      expect((v.get('ints') as unknown[]).slice(9)).toEqual([-2147483649, 2n ** 53n, 2n ** 63n, -(2n ** 63n), -(2n ** 100n), 2n ** 64n + 5n]);
      expect(v.get('str')).toBe('h\u00e9llo w\u00f6rld \u2713 \u{1d11e} \\u0041 "q" \'s\'\n');
      // A tuple key stays a key (Map), next to int and str keys.
      expect([...(v.get('dict') as Map<unknown, unknown>).keys()]).toEqual([1, 2, [1, 2], 'k']);
      // Shared references stay shared.
      const shared = v.get('shared') as unknown[];
      expect(shared[0]).toBe(shared[1]);
    });

    it(`rebuilds a recursive list at protocol ${p}`, () => {
      const r = load(fixture(`recursive_p${p}.pkl`)).value as unknown[];
      expect(r).toHaveLength(2);
      expect(r[0]).toBe(r);
      expect(r[1]).toBe(1);
    });
  }
});

describe('joblib.dump files (joblib 1.2, compress=0)', () => {
  for (const [name, exp] of Object.entries(expected.joblib)) {
    it(`${name}: values, and each array's bytes where joblib maps them`, () => {
      const bytes = fixture(name);
      const { value, end } = load(bytes);
      expect(value).toEqual(untag(exp.value, exp.offsets));
      expect(end).toBe(bytes.length);
      const m = value as Map<string, { offset: number; bytes: Uint8Array }>;
      for (const key of ['a', 'd']) {
        const a = m.get(key)!;
        expect(a.offset % 16, 'joblib >= 1.2 aligns array data to 16 bytes').toBe(0);
        expect(Buffer.from(bytes.subarray(a.offset, a.offset + a.bytes.length)).equals(Buffer.from(a.bytes))).toBe(true);
      }
    });
  }
});

describe("joblib's compatibility corpus", () => {
  it('joblib 0.9.2 (arrays in side files) reads to the end', () => {
    const bytes = fixture('joblib_0.9.2_pickle_py33_np18.pkl');
    const { value, end } = load(bytes);
    const side = (n: number, subclass?: 'matrix') => ({
      kind: 'ndarray-file',
      filename: `joblib_0.9.2_pickle_py33_np18.pkl_0${n}.npy`,
      compressed: false,
      ...(subclass ? { subclass } : {}),
    });
    const all = new Uint8Array(256).map((_, i) => i);
    expect(value).toEqual([side(1), side(2), side(3), all, side(4, 'matrix'), "C'est l'\u00e9t\u00e9 !"]);
    expect(end).toBe(bytes.length);
  });

  for (const name of ['joblib_0.10.0_pickle_py27_np17.pkl', 'joblib_0.11.0_pickle_py36_np111.pkl']) {
    it(`${name}: its object array (a numpy pickle nested after the wrapper) comes back as a JS Array of its items`, () => {
      const bytes = fixture(name);
      const { value, end } = load(bytes);
      expect((value as unknown[])[2]).toEqual([1, 'abc', new Map([['a', 1], ['b', 2]])]);
      expect(end).toBe(bytes.length);
    });
  }

  it('reads the arrays before the object array, with their py2/py3 offsets', () => {
    // Count the NumpyArrayWrapper BUILDs by wrapping the allowlist: the two int64/float64 arrays come first.
    for (const name of ['joblib_0.10.0_pickle_py27_np17.pkl', 'joblib_0.11.0_pickle_py36_np111.pkl']) {
      const built: unknown[] = [];
      const resolve: UnpickleOptions['resolve'] = (module, global) => {
        const h = resolveJoblibGlobal(module, global);
        if (global !== 'NumpyArrayWrapper') return h;
        return { call: h.call, build: (o, s, r) => (built.push(h.build!(o, s, r)), built.at(-1)) };
      };
      load(fixture(name), { resolve });
      const arange = (type: string) => ({ kind: 'ndarray', dtype: `<${type}8`, shape: [5], order: 'C' });
      expect(built.slice(0, 2)).toMatchObject([arange('i'), arange('f')]);
      const [ints, floats] = built as { bytes: Uint8Array }[];
      expect([...new BigInt64Array(ints!.bytes.slice().buffer)]).toEqual([0n, 1n, 2n, 3n, 4n]);
      expect([...new Float64Array(floats!.bytes.slice().buffer)]).toEqual([0, 1, 2, 3, 4]);
    }
  });
});

describe('malicious pickles', () => {
  const marker = '/tmp/memjob-pickle-pwned';
  const cases: [string, string][] = [
    ['evil_system_p0.pkl', 'posix.system'],
    ['evil_system_p2.pkl', 'posix.system'],
    ['evil_system_p4.pkl', 'posix.system'],
    ['evil_eval_p2.pkl', 'builtins.eval'],
    ['evil_popen_p4.pkl', 'subprocess.Popen'],
    ['evil_nested_p4.pkl', 'posix.system'],
  ];
  for (const [name, global] of cases) {
    it(`${name}: refuses ${global} at its GLOBAL, before building anything from it`, () => {
      const asked: string[] = [];
      const resolve: UnpickleOptions['resolve'] = (module, n) => (asked.push(`${module}.${n}`), resolveJoblibGlobal(module, n));
      const e = failure(() => load(fixture(name), { resolve }));
      expect(e.code).toBe(ErrorCodes.UNSAFE_PICKLE);
      expect(e.message).toContain(`expected only numpy/joblib array globals and Python builtins, received ${global}`);
      expect(asked.at(-1)).toBe(global);
      expect(existsSync(marker)).toBe(false);
    });
  }

  it('refuses persistent ids and the extension registry', () => {
    expect(failure(() => load(pickleOf(0x80, 2, 0x82, 1, 0x2e))).code).toBe(ErrorCodes.UNSAFE_PICKLE); // EXT1
    expect(failure(() => load(pickleOf(0x50, [...Buffer.from('x\n')], 0x2e))).code).toBe(ErrorCodes.UNSAFE_PICKLE); // PERSID
    expect(failure(() => load(pickleOf(0x80, 5, 0x97, 0x2e))).message).toMatch(/out-of-band/); // NEXT_BUFFER
  });

  it('never calls or builds a global that is only a reference', () => {
    // numpy.ndarray is allowed as an argument, not as something to call.
    const p = pickleOf(0x80, 2, 0x63, [...Buffer.from('numpy\nndarray\n')], 0x29, 0x52, 0x2e);
    const e = failure(() => load(p));
    expect(e.code).toBe(ErrorCodes.UNSAFE_PICKLE);
    expect(e.message).toContain('numpy.ndarray only as a reference');
  });
});

describe('opcodes CPython rarely writes', () => {
  const text = (t: string): number[] => [...Buffer.from(t, 'latin1')];
  const complex = (re: number, im: number) => ({ kind: 'complex', re, im });

  it('INST, OBJ and NEWOBJ_EX call allowlisted globals only', () => {
    // Protocol 0 INST with Python 2's __builtin__, renamed builtins as CPython's fix_imports does.
    expect(load(pickleOf(text('(F1.5\nF2.0\ni__builtin__\ncomplex\n.'))).value).toEqual(complex(1.5, 2));
    expect(load(pickleOf(text('(cbuiltins\ncomplex\nF1.5\no.'))).value).toEqual(complex(1.5, 0));
    const ex = pickleOf(0x80, 4, text('cbuiltins\ncomplex\n'), 0x47, [0x3f, 0xf0, 0, 0, 0, 0, 0, 0], 0x85, 0x7d, 0x92, 0x2e);
    expect(load(ex).value).toEqual(complex(1, 0));
    const e = failure(() => load(pickleOf(text('(S\'touch x\'\niposix\nsystem\n.'))));
    expect(e.code).toBe(ErrorCodes.UNSAFE_PICKLE);
    expect(e.message).toContain('received posix.system');
  });

  it('POP, POP_MARK, DUP, LONG4 and protocol 0 STRING escapes', () => {
    expect(load(pickleOf(0x80, 2, 0x4b, 1, 0x4b, 2, 0x28, 0x4b, 3, 0x31, 0x30, 0x32, 0x86, 0x2e)).value).toEqual([1, 1]);
    expect(load(pickleOf(0x8b, [3, 0, 0, 0], [0xff, 0xff, 0x7f], 0x2e)).value).toBe(0x7fffff);
    expect(load(pickleOf(0x8b, [2, 0, 0, 0], [0x00, 0x80], 0x2e)).value).toBe(-32768);
    expect(load(pickleOf(text("S'a\\x00\\xe9\\n\\'\\101'\n.")))).toMatchObject({ value: "a\x00\u00e9\n'A" });
  });
});

describe('hostile structure', () => {
  it('checks length fields against the bytes left before allocating', () => {
    const bomb8 = pickleOf(0x80, 4, 0x8e, [0, 0, 0, 0, 0, 0, 0x10, 0], 0x2e); // BINBYTES8 of 2^52 bytes
    const e8 = failure(() => load(bomb8));
    expect(e8.code).toBe(ErrorCodes.FORMAT);
    expect(e8.message).toMatch(/^expected a BINBYTES8 length within the 1 bytes left \(opcode BINBYTES8\) at offset 2 of the pickle, received length/);
    const e4 = failure(() => load(pickleOf(0x58, [0xff, 0xff, 0xff, 0x7f], 0x2e))); // BINUNICODE 2^31-1
    expect(e4.message).toMatch(/BINUNICODE length within the 1 bytes left.*received length 2147483647/);
    expect(failure(() => load(pickleOf(0x8b, [0xff, 0xff, 0xff, 0xff], 0x2e))).message).toMatch(/received length -1/); // LONG4 -1
  });

  it('bounds nesting, marks, memo and values without recursion', () => {
    const deep = pickleOf(0x4e, new Array(200_000).fill(0x85), 0x2e); // None in 200,000 nested 1-tuples
    expect(failure(() => load(deep)).message).toMatch(/containers nested at most 1000 deep/);
    expect(load(pickleOf(0x4e, new Array(500).fill(0x85), 0x2e), { maxNesting: 600 }).value).toBeInstanceOf(Array);
    expect(failure(() => load(pickleOf(new Array(100_000).fill(0x28)))).message).toMatch(/at most 1000 open MARKs/);
    const memo = pickleOf(0x4e, new Array(20).fill(0x94), 0x2e);
    expect(failure(() => load(memo, { maxMemo: 10 })).message).toMatch(/at most 10 memo entries/);
    expect(failure(() => load(pickleOf(new Array(50).fill(0x4e), 0x2e), { maxStack: 40 })).message).toMatch(/at most 40 values on the stack/);
    expect(failure(() => load(pickleOf(new Array(50).fill(0x4e), 0x2e), { maxItems: 40 })).message).toMatch(/at most 40 values in the pickle/);
  });

  it('names what it expected and what it received, with the offset', () => {
    expect(failure(() => load(pickleOf(0x80, 2, 0xff))).message).toBe('expected a pickle opcode at offset 2 of the pickle, received byte 0xff');
    expect(failure(() => load(pickleOf(0x80, 2, 0x4e))).message).toMatch(/expected an opcode \(the pickle ends with STOP\) at offset 3/);
    expect(failure(() => load(pickleOf(0x80, 9))).message).toMatch(/expected a pickle protocol from 0 to 5 .* received protocol 9/);
    expect(failure(() => load(pickleOf(0x80, 2, 0x61, 0x2e))).message).toMatch(/expected a value on the stack \(opcode APPEND\) at offset 2/);
    expect(failure(() => load(pickleOf(0x80, 2, 0x68, 7, 0x2e))).message).toMatch(/memo index stored before .* received index 7, never stored/);
    expect(failure(() => load(pickleOf(0x4b, 1, 0x4e, 0x61, 0x2e))).message).toMatch(/expected a list to add to \(opcode APPEND\) at offset 3 .* received 1 \(number\)/);
    expect(failure(() => load(pickleOf(0x75, 0x2e))).message).toMatch(/expected a MARK before \(opcode SETITEMS\)/);
  });
});

describe('fuzzing: mutations of every fixture', () => {
  const CASES = 2000;
  const SEED = 0x5eed1e;
  const seeds = readdirSync(dir)
    .filter((n) => n.endsWith('.pkl'))
    .map((n) => ({ name: n, bytes: fixture(n) }));

  function rng(seed: number): (n: number) => number {
    let s = seed >>> 0;
    return (n) => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = Math.imul(s ^ (s >>> 15), s | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
  }

  function mutate(bytes: Uint8Array, caseNo: number): Uint8Array {
    const r = rng(SEED ^ Math.imul(caseNo + 1, 0x9e3779b1));
    let b = Array.from(bytes);
    for (let k = 1 + r(3); k > 0; k--) {
      const at = r(b.length + 1);
      switch (r(5)) {
        case 0: if (b.length > 0) b[at % b.length]! ^= 1 << r(8); break; // bit flip
        case 1: b = b.slice(0, at); break; // truncation
        case 2: b.splice(at, 0, 0xff, 0xff, 0xff, 0x7f); break; // a length field of 2^31 - 1
        case 3: b.splice(at, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0); break; // the same as an 8-byte length
        default: if (b.length > 0) b[at % b.length] = r(256); break; // random byte
      }
    }
    return new Uint8Array(b);
  }

  it(`${CASES} seeded mutations give a value or a MemjobError FORMAT/UNSAFE_PICKLE/DTYPE (seed ${SEED})`, () => {
    const allowed = new Set<string>([ErrorCodes.FORMAT, ErrorCodes.UNSAFE_PICKLE, ErrorCodes.DTYPE]);
    const outcomes: Record<string, number> = {};
    let slowest = 0;
    for (let caseNo = 0; caseNo < CASES; caseNo++) {
      const seed = seeds[caseNo % seeds.length]!;
      const input = mutate(seed.bytes, caseNo);
      const t0 = performance.now();
      let outcome = 'value';
      try {
        load(input);
      } catch (e) {
        if (!(e instanceof MemjobError) || !allowed.has(e.code)) {
          throw new Error(`case ${caseNo} (seed ${SEED}, from ${seed.name}) threw ${String(e)}`, { cause: e });
        }
        outcome = e.code;
      }
      slowest = Math.max(slowest, performance.now() - t0);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    // A guard against hangs and quadratic blow-ups, not a speed measurement (benchmarks live in bench/).
    expect(slowest).toBeLessThan(250);
    expect(outcomes[ErrorCodes.FORMAT]).toBeGreaterThan(100);
    expect(outcomes.value).toBeGreaterThan(10);
  });

  // Compressed files (bz2, xz, lzma, lz4 of joblib 1.2, and joblib 0.9's Z-file): the mutation hits the
  // compressed stream, which is decompressed under a 1 MiB limit, then unpickled.
  const compressed = ['joblib_1.2_bz2.pkl', 'joblib_1.2_xz.pkl', 'joblib_1.2_lzma.pkl', 'joblib_1.2_lz4.pkl']
    .map((n) => ({ name: n, bytes: fixture(n) }))
    .concat([{ name: 'joblib_0.9.4.dev0_compressed_cache_size_pickle_py35_np19.gz', bytes: new Uint8Array(readFileSync(new URL('../joblib-corpus/joblib_0.9.4.dev0_compressed_cache_size_pickle_py35_np19.gz', dir))) }]);
  const COMPRESSED_CASES = 600;

  it(`${COMPRESSED_CASES} seeded mutations of compressed files give a value or MemjobError FORMAT/UNSAFE_PICKLE/DTYPE`, () => {
    const allowed = new Set<string>([ErrorCodes.FORMAT, ErrorCodes.UNSAFE_PICKLE, ErrorCodes.DTYPE]);
    const outcomes: Record<string, number> = {};
    for (let caseNo = 0; caseNo < COMPRESSED_CASES; caseNo++) {
      const seed = compressed[caseNo % compressed.length]!;
      const input = mutate(seed.bytes, caseNo + CASES);
      let outcome = 'value';
      try {
        const method = compressionOf(input);
        const plain = method !== undefined ? decompressJoblib(method, input, 1 << 20) : isZfile(input) ? readZfile(input, 1 << 20) : input;
        load(plain);
      } catch (e) {
        if (!(e instanceof MemjobError) || !allowed.has(e.code)) {
          throw new Error(`case ${caseNo} (seed ${SEED}, from ${seed.name}) threw ${String(e)}`, { cause: e });
        }
        outcome = e.code;
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    expect(outcomes[ErrorCodes.FORMAT]).toBeGreaterThan(100);
    // Few survive: bz2 and xz check CRCs; the survivors are lzma/lz4 mutations (no checksum verified) and Z-file headers.
    expect(outcomes.value).toBeGreaterThan(0);
  });
});
