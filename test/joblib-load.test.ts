/**
 * loadJoblibSync on files written by Debian's joblib 1.2 (test/fixtures/pickle/,
 * made by make_fixtures.py there): values and inline arrays as joblib.load
 * gives them, and malicious pickles refused without running anything.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { NDArray, loadJoblibSync } from '../src/index.js';
import { failure, scratchDir } from './helpers.js';

const fixture = (name: string) => new URL(`./fixtures/pickle/${name}`, import.meta.url);

describe('loadJoblibSync', () => {
  const expected = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as {
    joblib: Record<string, { value: { map: [string, { ndarray?: { dtype: string; shape: number[]; order: string; hex: string } }][] } }>;
  };
  for (const protocol of [2, 3, 4, 5]) {
    const name = `joblib_1.2_p${protocol}.pkl`;
    it(`reads a joblib 1.2 file of protocol ${protocol} as joblib.load does: arrays as NDArrays with numpy's bytes, dicts as Maps`, () => {
      const value = loadJoblibSync(fixture(name)) as Map<string, unknown>;
      expect(value).toBeInstanceOf(Map);
      expect([...value.keys()]).toEqual(['a', 'b', 'c', 'd']);
      expect(value.get('b')).toEqual([1, 'x', null]);
      expect(value.get('c')).toBe(2.5); // np.float32(2.5)
      for (const [key, tagged] of expected.joblib[name]!.value.map) {
        if (tagged.ndarray === undefined) continue;
        const array = value.get(key) as NDArray;
        expect(array, key).toBeInstanceOf(NDArray);
        expect(array.shape).toEqual(tagged.ndarray.shape);
        expect(array.order).toBe(tagged.ndarray.order);
        const data = array.data as unknown as { buffer: ArrayBuffer; byteOffset: number; byteLength: number };
        expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')).toBe(tagged.ndarray.hex);
      }
      expect((value.get('a') as NDArray).dtype).toBe('float64');
      expect((value.get('d') as NDArray).dtype).toBe('int64');
    });
  }

  it('refuses a pickle that would run os.system, naming the global, and runs nothing', () => {
    for (const name of ['evil_system_p0.pkl', 'evil_system_p2.pkl', 'evil_system_p4.pkl', 'evil_eval_p2.pkl', 'evil_popen_p4.pkl']) {
      const error = failure(() => loadJoblibSync(fixture(name)));
      expect(error.code, name).toBe('MEMJOB_ERR_UNSAFE_PICKLE');
      expect(error.message).toMatch(/posix\.system|builtins\.eval|subprocess\.Popen/);
    }
  });

  for (const method of ['zlib', 'gzip']) {
    it(`reads a ${method}-compressed joblib file (compress=('${method}', 3)) as the uncompressed one`, () => {
      const packed = loadJoblibSync(fixture(`joblib_1.2_${method}.pkl`)) as Map<string, unknown>;
      const plain = loadJoblibSync(fixture('joblib_1.2_p4.pkl')) as Map<string, unknown>;
      expect(packed.get('b')).toEqual(plain.get('b'));
      for (const key of ['a', 'd']) {
        const [x, y] = [packed.get(key) as NDArray, plain.get(key) as NDArray];
        expect([x.shape, x.order, x.dtype, Array.from(x.data as never)]).toEqual([y.shape, y.order, y.dtype, Array.from(y.data as never)]);
      }
    });
  }

  it('stops a decompression bomb at maxDecompressedBytes, and names the formats it does not read yet', () => {
    const scratch = scratchDir('joblib-bomb');
    try {
      const bomb = scratch.file('bomb.pkl');
      writeFileSync(bomb, deflateSync(new Uint8Array(16 * 1024 * 1024))); // 16 KiB that inflate to 16 MiB
      const error = failure(() => loadJoblibSync(bomb, { maxDecompressedBytes: 1024 * 1024 }));
      expect(error.code).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).toContain('at most 1048576 bytes');
      const xz = scratch.file('x.pkl.xz');
      writeFileSync(xz, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]));
      expect(failure(() => loadJoblibSync(xz)).message).toContain('compressed with xz');
    } finally {
      scratch.remove();
    }
  });

  it('refuses a broken gzip stream and a truncated file with FORMAT', () => {
    const scratch = scratchDir('joblib-load');
    try {
      const gz = scratch.file('x.pkl.gz');
      writeFileSync(gz, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
      const error = failure(() => loadJoblibSync(gz));
      expect(error.code).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).toContain('gzip');
      const cut = scratch.file('cut.pkl');
      const whole = readFileSync(fixture('joblib_1.2_p4.pkl'));
      writeFileSync(cut, whole.subarray(0, whole.length >> 1));
      expect(failure(() => loadJoblibSync(cut)).code).toBe('MEMJOB_ERR_FORMAT');
    } finally {
      scratch.remove();
    }
  });
});
