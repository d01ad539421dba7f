/**
 * joblib's own compatibility corpus (test/fixtures/joblib-corpus/, from Debian's python3-joblib):
 * every pickle in it, read as joblib's test_numpy_pickle.py::test_joblib_pickle_across_python_versions
 * expects, in memory and (for the uncompressed ones, as ..._with_mmap) with mmapMode; and joblib 0.9's
 * side files, whose names come from the pickle, kept inside the pickle's folder.
 */
import { copyFileSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Memmap, NDArray, loadJoblib, loadJoblibSync } from '../src/index.js';
import { inspectFile } from '../src/format/inspect.js';
import { failure, scratchDir } from './helpers.js';

const dir = fileURLToPath(new URL('./fixtures/joblib-corpus/', import.meta.url));
const all = readdirSync(dir).sort();
// joblib's test reads the files with these endings; the rest are side files and this folder's README.
const pickles = all.filter((n) => ['.pkl', '.gz', '.gzip', '.bz2', 'lz4', '.xz', '.lzma'].some((e) => n.endsWith(e)));

/**
 * test_joblib_pickle_across_python_versions' expected_list: [np.arange(5, '<i8'), np.arange(5, '<f8'),
 * np.array([1, 'abc', {'a': 1, 'b': 2}], dtype='O'), np.arange(256, dtype=np.uint8).tobytes(),
 * np.matrix([0, 1, 2], '<i8'), "C'est l'\xe9t\xe9 !"]. memjob gives the object array as a JS Array, the
 * matrix as a 2-D NDArray, and Python 2's str (the bytes, in a py27 file) as a latin-1 JS string:
 * Python 3's joblib refuses py27 files outright, memjob reads them.
 */
function check(name: string, value: unknown): void {
  expect(Array.isArray(value), name).toBe(true);
  const [ints, floats, objects, bytes, matrix, text, ...rest] = value as unknown[];
  expect(rest, name).toEqual([]);
  const array = (v: unknown, dtype: string, shape: number[], values: number[]): void => {
    expect(v instanceof NDArray || v instanceof Memmap, name).toBe(true);
    const a = v as NDArray;
    expect([a.dtype, a.shape, Array.from(a.data as ArrayLike<number | bigint>, Number)], name).toEqual([dtype, shape, values]);
  };
  array(ints, 'int64', [5], [0, 1, 2, 3, 4]);
  array(floats, 'float64', [5], [0, 1, 2, 3, 4]);
  expect(objects, name).toEqual([1, 'abc', new Map([['a', 1], ['b', 2]])]);
  const all256 = Array.from({ length: 256 }, (_, i) => i);
  if (name.includes('_py27_')) expect(Array.from(Buffer.from(bytes as string, 'latin1')), name).toEqual(all256);
  else expect(Array.from(bytes as Uint8Array), name).toEqual(all256);
  array(matrix, 'int64', [1, 3], [0, 1, 2]);
  expect(text, name).toBe("C'est l'\u00e9t\u00e9 !");
}

describe("joblib's compatibility corpus (joblib 0.8.4 to 0.11)", () => {
  it('holds 42 pickles and 23 side files, and every pickle is read (none is refused)', () => {
    expect(pickles.length).toBe(42);
    expect(all.filter((n) => /_0\d\.npy(\.z)?$/.test(n)).length).toBe(23);
  });

  it('reads every pickle, each compression and format, as joblib.load gives it (sync)', () => {
    for (const name of pickles) check(name, loadJoblibSync(join(dir, name)));
  });

  it('reads every pickle with loadJoblib (async)', async () => {
    for (const name of pickles) check(name, await loadJoblib(join(dir, name)));
  });

  it("reads every uncompressed pickle with mmapMode: 'r' (0.9's side .npy files mapped, 0.10/0.11's unaligned arrays copied)", () => {
    const onWarning = (): void => {};
    process.on('warning', onWarning); // MEMJOB_JOBLIB_COPIED for the unaligned arrays, as joblib warns
    try {
      for (const name of pickles.filter((n) => n.endsWith('.pkl'))) {
        const value = loadJoblibSync(join(dir, name), { mmapMode: 'r' }) as unknown[];
        check(name, value);
        if (name.startsWith('joblib_0.9.2_')) expect(value[0], name).toBeInstanceOf(Memmap);
        for (const v of value) if (v instanceof Memmap) v.close();
      }
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('memjob inspect on the corpus', () => {
  it("names joblib 0.9's side files, mapped (.npy) or decompressed (.npy.z), and reads every pickle's structure", async () => {
    const plain = await inspectFile(join(dir, 'joblib_0.9.2_pickle_py33_np18.pkl'));
    expect(plain.arrays.map((a) => [a.path, a.dtype, a.shape, (a as { sideFile?: string }).sideFile, a.offset])).toEqual([
      ['value[0]', 'int64', [5], 'joblib_0.9.2_pickle_py33_np18.pkl_01.npy', 80],
      ['value[1]', 'float64', [5], 'joblib_0.9.2_pickle_py33_np18.pkl_02.npy', 80],
      ['value[4]', 'int64', [1, 3], 'joblib_0.9.2_pickle_py33_np18.pkl_04.npy', 80],
    ]);
    const z = await inspectFile(join(dir, 'joblib_0.9.4.dev0_compressed_cache_size_pickle_py35_np19.gz'));
    expect(z.format).toMatchObject({ type: 'joblib', compression: 'zfile' });
    expect(z.arrays.map((a) => [a.dtype, a.bytes, a.offset, (a as { sideFile?: string }).sideFile?.endsWith('.npy.z')])).toEqual([
      ['int64', 40, null, true],
      ['float64', 40, null, true],
      ['int64', 24, null, true],
    ]);
    for (const name of pickles) {
      const report = await inspectFile(join(dir, name));
      expect(report.format.type, name).toBe('joblib');
      expect(report.arrayCount, name).toBe(3);
    }
  });
});

describe('joblib 0.9 side files and Z-files are untrusted input', () => {
  const base = 'joblib_0.9.2_pickle_py33_np18.pkl';
  const side = `${base}_01.npy`;

  /** The 0.9.2 pickle with its first side file's name replaced by `name` (same length, so the pickle stays valid). */
  function withSideName(name: string): Buffer {
    expect(name.length).toBe(side.length);
    const bytes = readFileSync(join(dir, base));
    const at = bytes.indexOf(side);
    expect(at).toBeGreaterThan(0);
    return Buffer.concat([bytes.subarray(0, at), Buffer.from(name, 'latin1'), bytes.subarray(at + side.length)]);
  }

  it("refuses a side file named with '..', an absolute path, or a symlink out of the pickle's folder", () => {
    const scratch = scratchDir('joblib-side');
    const outside = scratchDir('joblib-outside');
    try {
      for (const n of ['01', '02', '03', '04']) copyFileSync(join(dir, `${base}_${n}.npy`), scratch.file(`${base}_${n}.npy`));
      const up = `../${'x'.repeat(side.length - 3)}`;
      const absolute = `/tmp/${'x'.repeat(side.length - 5)}`;
      for (const name of [up, absolute]) {
        const path = scratch.file(base);
        writeFileSync(path, withSideName(name));
        const error = failure(() => loadJoblibSync(path));
        expect([error.code, error.message], name).toEqual(['MEMJOB_ERR_FORMAT', expect.stringContaining('expected a side file name without folders')]);
      }
      // A symlink with the expected name that leads out of the folder.
      copyFileSync(join(dir, base), scratch.file(base));
      copyFileSync(join(dir, side), outside.file('elsewhere.npy'));
      const link = scratch.file(side);
      rmSync(link);
      symlinkSync(outside.file('elsewhere.npy'), link);
      const error = failure(() => loadJoblibSync(scratch.file(base)));
      expect([error.code, error.message]).toEqual(['MEMJOB_ERR_FORMAT', expect.stringContaining("in the pickle's folder, received a link")]);
      // A side file that is missing is an error of its own (ENOENT), not a value.
      rmSync(link);
      expect(failure(() => loadJoblibSync(scratch.file(base))).code).toBe('ENOENT');
    } finally {
      scratch.remove();
      outside.remove();
    }
  });

  it("refuses a Z-file whose length field exceeds maxDecompressedBytes before inflating, and one whose data does not match it", () => {
    const scratch = scratchDir('joblib-zfile');
    try {
      const zfile = (declared: number, data: Uint8Array): Buffer =>
        Buffer.concat([Buffer.from(`ZF0x${declared.toString(16)}`.padEnd(21, ' '), 'latin1'), deflateSync(data)]);
      const big = scratch.file('big.gz');
      writeFileSync(big, zfile(1 << 30, new Uint8Array(16)));
      const error = failure(() => loadJoblibSync(big, { maxDecompressedBytes: 1 << 20 }));
      expect([error.code, error.message]).toEqual(['MEMJOB_ERR_FORMAT', expect.stringContaining('at most 1048576 bytes (maxDecompressedBytes), received one of 1073741824')]);
      const liar = scratch.file('liar.gz');
      writeFileSync(liar, zfile(8, new Uint8Array(4096))); // says 8 bytes, inflates to 4 KiB
      expect(failure(() => loadJoblibSync(liar)).code).toBe('MEMJOB_ERR_FORMAT');
      const bad = scratch.file('bad.gz');
      writeFileSync(bad, Buffer.from('ZF0xzz'.padEnd(40, ' '), 'latin1'));
      expect(failure(() => loadJoblibSync(bad)).message).toContain('Z-file length');
    } finally {
      scratch.remove();
    }
  });
});
