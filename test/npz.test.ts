import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  Memmap,
  MemjobError,
  NDArray,
  hasShareableMemory,
  loadNpz,
  loadNpzSync,
  memmap,
  saveNpz,
  saveNpzSync,
  type LoadNpzOptions,
} from '../src/index.js';
import { formatHeader } from '../src/format/npy-header.js';
import { centralDirectory, localHeader, type ZipEntryRecord } from '../src/format/zip-write.js';
import { asyncFailure, failure, numpyPython, scratchDir } from './helpers.js';

const scratch = scratchDir('npz');
afterAll(() => scratch.remove());

const python = numpyPython();
const requireNumpy = process.env.MEMJOB_REQUIRE_NUMPY === '1';
const skipNumpy = python === null && !requireNumpy;
const skipNote = skipNumpy ? ' (skipped: /usr/bin/python3 has no numpy; apt-get install python3-numpy)' : '';

function runPython(script: string, ...args: string[]): unknown {
  if (python === null) throw new Error('MEMJOB_REQUIRE_NUMPY=1, but /usr/bin/python3 cannot import numpy (apt-get install python3-numpy)');
  return JSON.parse(execFileSync(python, ['-c', script, ...args], { encoding: 'utf8' }));
}

type Loaded = NDArray | Memmap;

/** Elements in C order as strings (64-bit integers and floats alike), with dtype and shape: what the Python side prints too. */
function summary(array: Loaded): { dtype: string; shape: number[]; values: string[] } {
  const size = array.shape.reduce((a, b) => a * b, 1);
  const values: string[] = [];
  for (let i = 0; i < size; i++) {
    const index: number[] = [];
    for (let axis = array.shape.length - 1, rest = i; axis >= 0; axis--) {
      index.unshift(rest % array.shape[axis]!);
      rest = Math.floor(rest / array.shape[axis]!);
    }
    const v = array.get(...index);
    values.push(typeof v === 'boolean' ? String(Number(v)) : String(v));
  }
  return { dtype: array.dtype, shape: [...array.shape], values };
}

// Python's side of summary(): same strings for the same elements.
const pySummary = `
import json, sys
import numpy as np
def summary(a):
    a = np.asarray(a)
    flat = a.ravel(order='C').tolist()
    if a.dtype.kind == 'f':
        values = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in flat]
    else:
        values = [str(int(v)) for v in flat]
    return {'dtype': a.dtype.name, 'shape': list(a.shape), 'values': values}
`;

function closeAll(record: Record<string, Loaded>): void {
  for (const value of Object.values(record)) if (value instanceof Memmap) value.close();
}

/** Every way of loading `path` fails, with the same code. */
async function refused(path: string, options: LoadNpzOptions = {}): Promise<MemjobError> {
  const errors = [failure(() => loadNpzSync(path, options)), failure(() => loadNpzSync(path, { ...options, mmapMode: 'r' })), await asyncFailure(() => loadNpz(path, options))];
  for (const error of errors) expect(error.code).toBe(errors[0]!.code);
  return errors[0]!;
}

describe.skipIf(skipNumpy)(`files written by numpy${skipNote}`, () => {
  let expected: Record<string, Record<string, ReturnType<typeof summary>>>;
  beforeAll(() => {
    expected = runPython(
      `${pySummary}
folder = sys.argv[1]
arrays = {
    'ints': np.arange(12, dtype='<i4').reshape(3, 4),
    'fortran': np.asfortranarray(np.arange(6, dtype='<f8').reshape(2, 3) / 4),
    'flags': np.array([True, False, True]),
    'big': (np.arange(5) * 1.5).astype('>f8'),
    'big16': np.array([1, -2, 300], dtype='>i2'),
    'empty': np.zeros((0, 3), dtype='<f4'),
    'u64': np.array([0, 2**64 - 1, 2**53 + 1], dtype='<u8'),
    '../escape': np.array([7], dtype='u1'),
    'dir/inner': np.array([8], dtype='u1'),
    'ünïcode': np.array([9], dtype='u1'),
}
np.savez(folder + '/plain.npz', **arrays)
np.savez_compressed(folder + '/compressed.npz', **arrays)
np.savez(folder + '/positional.npz', np.arange(3, dtype='<i8'), np.ones(2, dtype='<f4'))
np.savez(folder + '/empty.npz')
out = {}
for name in ['plain', 'compressed', 'positional', 'empty']:
    with np.load(folder + '/' + name + '.npz') as f:
        out[name] = {key: summary(f[key]) for key in f.files}
print(json.dumps(out))
`,
      scratch.dir,
    ) as typeof expected;
  });

  it('reads np.savez and np.savez_compressed archives, sync and async, with the keys numpy gives', async () => {
    for (const name of ['plain', 'compressed', 'positional', 'empty']) {
      const path = scratch.file(`${name}.npz`);
      for (const record of [loadNpzSync(path), await loadNpz(path)]) {
        expect(Object.getPrototypeOf(record)).toBe(null);
        expect(Object.keys(record)).toEqual(Object.keys(expected[name]!));
        for (const [key, array] of Object.entries(record)) {
          expect(array).not.toBeInstanceOf(Memmap);
          expect(summary(array), `${name} ${key}`).toEqual(expected[name]![key]);
        }
      }
    }
    // Member names are only keys: nothing was written next to the archives.
    expect(readdirSync(scratch.dir).sort()).toEqual(['compressed.npz', 'empty.npz', 'plain.npz', 'positional.npz']);
  });

  it("maps np.savez's members where they lie in the archive, zero-copy", async () => {
    const path = scratch.file('plain.npz');
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
    process.on('warning', onWarning);
    try {
      for (const record of [loadNpzSync(path, { mmapMode: 'r' }), await loadNpz(path, { mmapMode: 'c' })]) {
        for (const key of ['ints', 'fortran', 'flags', 'u64', '../escape']) {
          expect(record[key], key).toBeInstanceOf(Memmap);
          expect(hasShareableMemory(record[key])).toBe(true);
          expect(summary(record[key]!)).toEqual(expected.plain![key]);
        }
        // The other byte order and empty arrays cannot be mapped: read into memory (the former with a warning).
        for (const key of ['big', 'big16', 'empty']) {
          expect(record[key], key).not.toBeInstanceOf(Memmap);
          expect(hasShareableMemory(record[key])).toBe(false);
          expect(summary(record[key]!)).toEqual(expected.plain![key]);
        }
        // The mapped bytes are the archive's own: a Memmap of the same file region sees the same elements.
        const ints = record.ints as Memmap;
        const direct = memmap(path, { mode: 'r', dtype: 'int32', shape: [12], offset: ints.offset });
        expect(Array.from(direct.data)).toEqual(Array.from(ints.data as Int32Array));
        direct.close();
        closeAll(record);
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((c) => c === 'MEMJOB_NPZ_COPIED')).toHaveLength(2);
    } finally {
      process.off('warning', onWarning);
    }
    // Deflated members are inflated whatever mmapMode says.
    const compressed = loadNpzSync(scratch.file('compressed.npz'), { mmapMode: 'r' });
    for (const array of Object.values(compressed)) expect(array).not.toBeInstanceOf(Memmap);
  });
});

describe.skipIf(skipNumpy)(`files written by memjob, read by numpy${skipNote}`, () => {
  it('saveNpz writes what np.savez writes, byte for byte, and np.load reads both kinds', async () => {
    const backing = scratch.file('backing.bin');
    const source = memmap(backing, { mode: 'w+', dtype: 'float32', shape: [4, 3] });
    source.data.set([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5]);
    const arrays = {
      ints: new NDArray(new Int32Array(Array.from({ length: 12 }, (_, i) => i - 6)), { shape: [3, 4] }),
      fortran: new NDArray(new Float64Array([0, 0.25, 0.5, 0.75, 1, 1.25]), { shape: [2, 3], order: 'F' }),
      u64: new BigUint64Array([0n, 2n ** 64n - 1n]),
      strided: source.slice(0, 4, 2),
      flags: new NDArray(new Uint8Array([1, 0, 1]), { dtype: 'bool' }),
      '../escape': new Uint8Array([7]),
    };
    saveNpzSync(scratch.file('mine.npz'), arrays);
    await saveNpz(scratch.file('mine-async.npz'), arrays);
    saveNpzSync(scratch.file('mine-compressed.npz'), arrays, { compress: true });
    await saveNpz(scratch.file('mine-compressed-async.npz'), arrays, { compress: true });
    saveNpzSync(scratch.file('mine-positional.npz'), [new Float64Array([1, 2]), new Int16Array([3])]);
    await saveNpz(scratch.file('mine-empty.npz'), {});
    source.close();

    const seen = runPython(
      `${pySummary}
import os
folder = sys.argv[1]
out = {}
for name in ['mine', 'mine-async', 'mine-compressed', 'mine-compressed-async', 'mine-positional', 'mine-empty']:
    with np.load(os.path.join(folder, name + '.npz')) as f:
        out[name] = {key: summary(f[key]) for key in f.files}
        out[name + ':fortran'] = bool(np.isfortran(f['fortran'])) if 'fortran' in f.files else None
with np.load(os.path.join(folder, 'mine.npz')) as f:
    arrays = {key: f[key] for key in f.files}
np.savez(os.path.join(folder, 'theirs.npz'), **arrays)
np.savez(os.path.join(folder, 'theirs-positional.npz'), np.array([1, 2], dtype='<f8'), np.array([3], dtype='<i2'))
np.savez(os.path.join(folder, 'theirs-empty.npz'))
same = lambda a, b: open(os.path.join(folder, a), 'rb').read() == open(os.path.join(folder, b), 'rb').read()
out['identical'] = [same('mine.npz', 'theirs.npz'), same('mine-async.npz', 'theirs.npz'),
                    same('mine-positional.npz', 'theirs-positional.npz'), same('mine-empty.npz', 'theirs-empty.npz')]
print(json.dumps(out))
`,
      scratch.dir,
    ) as Record<string, unknown>;
    const reloaded = loadNpzSync(scratch.file('mine.npz'));
    const want = Object.fromEntries(Object.entries(reloaded).map(([k, v]) => [k, summary(v)]));
    expect(Object.keys(want)).toEqual(Object.keys(arrays));
    expect(want.strided!.values).toEqual(['0', '0.5', '1', '3', '3.5', '4']);
    for (const name of ['mine', 'mine-async', 'mine-compressed', 'mine-compressed-async']) {
      expect(seen[name], name).toEqual(want);
      expect(seen[`${name}:fortran`]).toBe(true);
    }
    expect(seen['mine-positional']).toEqual({
      arr_0: { dtype: 'float64', shape: [2], values: ['1', '2'] },
      arr_1: { dtype: 'int16', shape: [1], values: ['3'] },
    });
    expect(seen['mine-empty']).toEqual({});
    expect(seen.identical).toEqual([true, true, true, true]);
  });
});

// ---- hostile archives: hand-made with the writer's records ----

function npyBytes(array: Float64Array | Uint8Array, descr: string): Buffer {
  return Buffer.concat([formatHeader(descr, false, [array.length]), new Uint8Array(array.buffer, array.byteOffset, array.byteLength)]);
}

/** An archive of the given members (name, npy bytes, stored or deflated), as saveNpz lays it out. */
function archive(members: { name: string; bytes: Uint8Array; deflate?: boolean }[]): Buffer {
  const parts: Buffer[] = [];
  const records: ZipEntryRecord[] = [];
  let at = 0;
  for (const { name, bytes, deflate } of members) {
    const data = deflate === true ? deflateRawSync(bytes) : Buffer.from(bytes);
    const record: ZipEntryRecord = { name, method: deflate === true ? 8 : 0, crc32: crc32(bytes), compressedSize: data.length, uncompressedSize: bytes.length, headerOffset: at };
    const header = localHeader(record);
    parts.push(header, data);
    records.push(record);
    at += header.length + data.length;
  }
  parts.push(centralDirectory(records, at));
  return Buffer.concat(parts);
}

function centralEntryAt(file: Buffer, index = 0): number {
  let at = file.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  for (let i = 0; i < index; i++) at = file.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), at + 1);
  return at;
}

describe('hostile archives are refused with MEMJOB_ERR_FORMAT', () => {
  const values = new Float64Array([1.5, -2, 3]);
  const good = archive([{ name: 'x.npy', bytes: npyBytes(values, '<f8') }]);
  const write = (name: string, bytes: Uint8Array): string => (writeFileSync(scratch.file(name), bytes), scratch.file(name));

  it('reads the hand-made archive itself', () => {
    expect(Array.from(loadNpzSync(write('good.npz', good)).x!.data as Float64Array)).toEqual([1.5, -2, 3]);
  });

  it('refuses every truncation of an archive', async () => {
    for (let length = 0; length < good.length; length += 7) {
      const error = await refused(write('cut.npz', good.subarray(0, length)));
      expect(error.code, `cut at ${length}`).toBe(ErrorCodes.FORMAT);
    }
  });

  it('refuses a central directory past the end of the file, and member sizes that lie', async () => {
    const past = Buffer.from(good);
    past.writeUInt32LE(good.length + 1000, good.length - 6); // the end record's directory offset
    expect((await refused(write('past.npz', past))).message).toMatch(/expected a zip archive .* in which yauzl reports: unexpected EOF/);

    const entry = centralEntryAt(good);
    const longer = Buffer.from(good);
    longer.writeUInt32LE(1_000_000, entry + 20);
    longer.writeUInt32LE(1_000_000, entry + 24);
    expect((await refused(write('longer.npz', longer))).code).toBe(ErrorCodes.FORMAT);

    const shorter = Buffer.from(good);
    shorter.writeUInt32LE(100, entry + 20);
    shorter.writeUInt32LE(100, entry + 24);
    const error = await refused(write('shorter.npz', shorter));
    expect(error.code).toBe(ErrorCodes.FORMAT);
    expect(error.message).toMatch(/member 'x\.npy'/);
    expect(error.path).toBe(scratch.file('shorter.npz'));
  });

  it('bounds inflating: a deflate bomb, a declared size over the budget, a stream longer than declared', async () => {
    const zeros = npyBytes(new Uint8Array(4 * 1024 ** 2), '|u1');
    const bomb = archive([{ name: 'x.npy', bytes: zeros, deflate: true }]);
    expect(bomb.length).toBeLessThan(10_000);
    const path = write('bomb.npz', bomb);
    expect(loadNpzSync(path).x!.shape).toEqual([4 * 1024 ** 2]); // honest, within the default budget
    const over = await refused(path, { maxDecompressedBytes: 1024 ** 2 });
    expect(over.code).toBe(ErrorCodes.FORMAT);
    expect(over.message).toMatch(/maxDecompressedBytes/);

    // The directory says 200 bytes; the stream inflates to 4 MiB: stopped at 200.
    const lying = Buffer.from(bomb);
    const entry = centralEntryAt(lying);
    lying.writeUInt32LE(200, entry + 24);
    const error = await refused(write('lying.npz', lying));
    expect(error.code).toBe(ErrorCodes.FORMAT);
    expect(error.message).toMatch(/more bytes than it declares/);
  });

  it('refuses overlapping members (one stream listed many times), encrypted members, other methods', async () => {
    const one = archive([{ name: 'x.npy', bytes: npyBytes(values, '<f8') }]);
    const entry = one.subarray(centralEntryAt(one), one.length - 22);
    const record = { name: 'x.npy', method: 0 as const, crc32: entry.readUInt32LE(16), compressedSize: entry.readUInt32LE(20), uncompressedSize: entry.readUInt32LE(24), headerOffset: 0 };
    const directoryOffset = centralEntryAt(one);
    const overlapped = Buffer.concat([one.subarray(0, directoryOffset), centralDirectory([record, { ...record, name: 'y.npy' }], directoryOffset)]);
    expect((await refused(write('overlap.npz', overlapped))).message).toMatch(/overlap/);

    const encrypted = Buffer.from(good);
    encrypted.writeUInt16LE(1, centralEntryAt(good) + 8);
    expect((await refused(write('encrypted.npz', encrypted))).message).toMatch(/encrypted/);

    const unnamed = archive([{ name: '', bytes: npyBytes(values, '<f8') }]);
    expect((await refused(write('unnamed.npz', unnamed))).message).toMatch(/empty name/);

    const bzip2 = Buffer.from(good);
    bzip2.writeUInt16LE(12, centralEntryAt(good) + 10);
    expect((await refused(write('bzip2.npz', bzip2))).message).toMatch(/compression method 12/);
  });

  it('refuses a member that is not a .npy array, a header over maxHeaderSize, a bad CRC', async () => {
    const text = archive([{ name: 'readme.txt', bytes: Buffer.from('hello') }]);
    expect((await refused(write('text.npz', text))).message).toMatch(/member 'readme\.txt'.*magic string/);
    expect((await refused(write('good.npz', good), { maxHeaderSize: 100 })).message).toMatch(/maxHeaderSize \(100\)/);

    const corrupt = Buffer.from(good);
    corrupt[centralEntryAt(good) - 1]! ^= 0xff; // the member's last data byte
    const path = write('corrupt.npz', corrupt);
    expect(failure(() => loadNpzSync(path)).message).toMatch(/CRC-32/);
    // Mapped members are not read, so not checked: numpy's CRC check also needs a full read.
    const mapped = loadNpzSync(path, { mmapMode: 'r' });
    expect(mapped.x).toBeInstanceOf(Memmap);
    closeAll(mapped);
  });

  it('keeps the last member of a name that appears twice, as numpy', async () => {
    const twice = archive([
      { name: 'x.npy', bytes: npyBytes(new Float64Array([1]), '<f8') },
      { name: 'x.npy', bytes: npyBytes(new Float64Array([2]), '<f8') },
    ]);
    const path = write('twice.npz', twice);
    expect(Array.from(loadNpzSync(path).x!.data as Float64Array)).toEqual([2]);
    expect(Array.from((await loadNpz(path)).x!.data as Float64Array)).toEqual([2]);
    if (!skipNumpy) expect(runPython(`import json, sys, numpy as np; print(json.dumps(np.load(sys.argv[1])['x'].tolist()))`, path)).toEqual([2]);
  });

  it('survives random byte mutations: a valid record or a MemjobError, never anything else', async () => {
    const both = archive([
      { name: 'a.npy', bytes: npyBytes(values, '<f8') },
      { name: 'b.npy', bytes: npyBytes(new Uint8Array(300).fill(3), '|u1'), deflate: true },
    ]);
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const path = scratch.file('fuzz.npz');
    for (let round = 0; round < 200; round++) {
      const bytes = Buffer.from(both);
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      writeFileSync(path, bytes);
      for (const options of [{}, { mmapMode: 'r' as const }]) {
        try {
          closeAll(loadNpzSync(path, options));
        } catch (error) {
          expect(error, `round ${round}`).toBeInstanceOf(MemjobError);
        }
      }
    }
  });
});

describe('arguments', () => {
  it('refuses bad options and arrays before touching any file', async () => {
    const path = scratch.file('args.npz');
    saveNpzSync(path, { kept: new Uint8Array([1]) });
    const before = readFileSync(path);
    expect(failure(() => loadNpzSync(path, { mmapMode: 'r+' as never })).message).toMatch(/CRC/);
    expect(failure(() => loadNpzSync(path, { maxDecompressedBytes: -1 })).code).toBe(ErrorCodes.INVALID_ARG);
    expect(failure(() => saveNpzSync(path, new Float64Array(2) as never)).code).toBe(ErrorCodes.INVALID_ARG);
    expect(failure(() => saveNpzSync(path, { 'a\0b': new Uint8Array(1) })).code).toBe(ErrorCodes.INVALID_ARG);
    expect(failure(() => saveNpzSync(path, { ok: new Uint8Array(1), bad: [1, 2] as never })).message).toMatch(/"bad"/);
    expect((await asyncFailure(() => saveNpz(path, { x: new Uint8Array(1) }, { compress: 'yes' as never }))).code).toBe(ErrorCodes.INVALID_ARG);
    expect(readFileSync(path)).toEqual(before);
    expect(readdirSync(scratch.dir).filter((f) => f.includes('memjob-tmp'))).toEqual([]);
  });
});
