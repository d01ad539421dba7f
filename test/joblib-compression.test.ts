/**
 * Every compression joblib writes (bz2, xz, lzma 'alone', lz4 frames, and zlib/gzip), read from files
 * written by Debian's joblib 1.2 (test/fixtures/pickle/make_fixtures.py) and written by
 * compressJoblib() for Python's joblib.load to read; decompression bombs stopped at the limit, and
 * broken streams refused with MEMJOB_ERR_FORMAT.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemjobError, NDArray, loadJoblib, loadJoblibSync } from '../src/index.js';
import { compressJoblib, compressionOf, decompressJoblib, type JoblibCompression } from '../src/format/joblib-compression.js';
import { inspectFile } from '../src/format/inspect.js';
import { renderReport } from '../src/cli/inspect.js';
import { dumpSync } from '../src/index.js';
import { failure, scratchDir } from './helpers.js';

const fixture = (name: string) => new URL(`./fixtures/pickle/${name}`, import.meta.url);
const METHODS: JoblibCompression[] = ['bz2', 'xz', 'lzma', 'lz4', 'zlib', 'gzip'];
const PYTHON = '/usr/bin/python3';

function same(packed: Map<string, unknown>, plain: Map<string, unknown>): void {
  expect([...packed.keys()]).toEqual([...plain.keys()]);
  expect(packed.get('b')).toEqual(plain.get('b'));
  expect(packed.get('c')).toBe(plain.get('c'));
  for (const key of ['a', 'd']) {
    const [x, y] = [packed.get(key) as NDArray, plain.get(key) as NDArray];
    expect(x).toBeInstanceOf(NDArray);
    expect([x.shape, x.order, x.dtype, Array.from(x.data as never)]).toEqual([y.shape, y.order, y.dtype, Array.from(y.data as never)]);
  }
}

describe('joblib compressions', () => {
  const plain = loadJoblibSync(fixture('joblib_1.2_p4.pkl')) as Map<string, unknown>;

  for (const method of METHODS) {
    it(`reads a file of joblib.dump(v, f, compress=('${method}', 3)) as the uncompressed one, sync and async`, async () => {
      const bytes = readFileSync(fixture(`joblib_1.2_${method}.pkl`));
      expect(compressionOf(bytes)).toBe(method);
      same(loadJoblibSync(fixture(`joblib_1.2_${method}.pkl`)) as Map<string, unknown>, plain);
      same((await loadJoblib(fixture(`joblib_1.2_${method}.pkl`))) as Map<string, unknown>, plain);
    });
  }

  it('stops a decompression bomb of each method at maxDecompressedBytes, sync and async', async () => {
    // 4 MiB of zeros, compressed: bz2 by Python (memjob has no bz2 writer), the others by compressJoblib.
    const zeros = new Uint8Array(4 << 20);
    const bz2 = execFileSync(PYTHON, ['-c', 'import bz2, sys; sys.stdout.buffer.write(bz2.compress(bytes(4 << 20), 9))'], { maxBuffer: 1 << 20 });
    const bombs: [JoblibCompression, Uint8Array][] = [['bz2', bz2], ...(['xz', 'lzma', 'lz4', 'zlib', 'gzip'] as const).map((m): [JoblibCompression, Uint8Array] => [m, compressJoblib(m, zeros, 6)])];
    const scratch = scratchDir('joblib-bombs');
    try {
      for (const [method, bomb] of bombs) {
        expect(bomb.length, method).toBeLessThan(zeros.length / 100);
        const file = scratch.file(`bomb.${method}`);
        writeFileSync(file, bomb);
        const error = failure(() => loadJoblibSync(file, { maxDecompressedBytes: 1 << 20 }));
        expect([error.code, error.message], method).toEqual(['MEMJOB_ERR_FORMAT', expect.stringContaining(`a ${method} stream that decompresses to at most 1048576 bytes`)]);
        const viaAsync = (await loadJoblib(file, { maxDecompressedBytes: 1 << 20 }).catch((e: unknown) => e)) as MemjobError;
        expect(viaAsync.message, method).toContain('at most 1048576 bytes');
        // Under the limit, the same stream decompresses whole.
        expect(decompressJoblib(method, bomb, 4 << 20).length, method).toBe(zeros.length);
      }
    } finally {
      scratch.remove();
    }
  });

  it('refuses truncated and corrupted streams with MEMJOB_ERR_FORMAT', () => {
    const scratch = scratchDir('joblib-broken');
    try {
      for (const method of METHODS) {
        const whole = readFileSync(fixture(`joblib_1.2_${method}.pkl`));
        const cut = scratch.file(`cut.${method}`);
        writeFileSync(cut, whole.subarray(0, whole.length - 9));
        expect(failure(() => loadJoblibSync(cut)).code, method).toBe('MEMJOB_ERR_FORMAT');
        // A flipped byte in the middle: a checksum error, a broken structure, or a pickle that no longer parses.
        const flipped = Buffer.from(whole);
        flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0x55;
        const bad = scratch.file(`bad.${method}`);
        writeFileSync(bad, flipped);
        try {
          loadJoblibSync(bad);
        } catch (error) {
          expect((error as MemjobError).code, method).toMatch(/^MEMJOB_ERR_(FORMAT|UNSAFE_PICKLE|DTYPE)$/);
        }
        // Trailing garbage after the stream's end.
        const trailing = scratch.file(`trailing.${method}`);
        writeFileSync(trailing, Buffer.concat([whole, Buffer.from('garbage!')]));
        if (method !== 'zlib' && method !== 'gzip') expect(failure(() => loadJoblibSync(trailing)).code, method).toBe('MEMJOB_ERR_FORMAT');
      }
    } finally {
      scratch.remove();
    }
  });

  it('memjob inspect shows a compressed joblib file as the plain one, offsets in the decompressed pickle; a gzip memjob dump stays a dump', async () => {
    const plainReport = await inspectFile(fileURLToPath(fixture('joblib_1.2_p4.pkl')));
    const rows = (r: typeof plainReport) => r.arrays.map((a) => [a.path, a.dtype, a.shape, a.order, a.offset, a.bytes]);
    for (const method of METHODS) {
      const report = await inspectFile(fileURLToPath(fixture(`joblib_1.2_${method}.pkl`)));
      expect(report.format, method).toMatchObject({ type: 'joblib', protocol: 4, compression: method, pickleBytes: 546 });
      expect(rows(report), method).toEqual(rows(plainReport));
      const text = renderReport(report).join('\n');
      expect(text).toContain(`protocol 4, compressed with ${method}`);
      expect(text).toContain('546 B decompressed');
      expect(text).toContain('offset (decompressed)');
    }
    const scratch = scratchDir('joblib-inspect');
    try {
      const dump = scratch.file('dump.gz');
      dumpSync({ a: new Float64Array(4) }, dump, { compress: 'gzip' });
      expect((await inspectFile(dump)).format.type).toBe('memjob-dump');
    } finally {
      scratch.remove();
    }
  });

  it("writes every method with a writer so that Python's joblib.load reads it; refuses bz2 by name", () => {
    const pickle = readFileSync(fixture('joblib_1.2_p4.pkl'));
    const scratch = scratchDir('joblib-write');
    try {
      const files: string[] = [];
      for (const method of ['zlib', 'gzip', 'xz', 'lzma', 'lz4'] as const) {
        const packed = compressJoblib(method, pickle, 3);
        expect(compressionOf(packed)).toBe(method);
        expect(Buffer.from(decompressJoblib(method, packed, pickle.length)).equals(pickle), method).toBe(true);
        files.push(scratch.file(`w.${method}`));
        writeFileSync(files.at(-1)!, packed);
      }
      // joblib's lz4 needs Python's lz4 module: Debian's python3-lz4.
      const script = 'import sys, joblib, numpy as np\nfor f in sys.argv[1:]:\n    v = joblib.load(f)\n    print(v["a"].sum(), v["d"].tolist(), v["b"])';
      const out = execFileSync(PYTHON, ['-c', script, ...files], { encoding: 'utf8' }).trim().split('\n');
      expect(out).toEqual(Array(5).fill("45.0 [[0, 1, 2], [3, 4, 5]] [1, 'x', None]"));
      const error = failure(() => compressJoblib('bz2', pickle, 3));
      expect(error.code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect(error.message).toContain('bz2');
    } finally {
      scratch.remove();
    }
  });
});
