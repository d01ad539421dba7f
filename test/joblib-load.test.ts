/**
 * loadJoblibSync on files written by Debian's joblib 1.2 (test/fixtures/pickle/,
 * made by make_fixtures.py there): values and inline arrays as joblib.load
 * gives them, and malicious pickles refused without running anything.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Memmap, MemjobError, NDArray, hasShareableMemory, load, loadJoblib, loadJoblibSync, loadSync } from '../src/index.js';
import { failure, repoRoot, runCommand, scratchDir } from './helpers.js';
import { inspectFile } from '../src/format/inspect.js';
import { renderReport } from '../src/cli/inspect.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

  it("maps an uncompressed file's arrays where they lie with mmapMode, as joblib.load(f, mmap_mode='r') does", () => {
    const offsets = (expected.joblib['joblib_1.2_p4.pkl'] as unknown as { offsets: Record<string, number> }).offsets;
    const value = loadJoblibSync(fixture('joblib_1.2_p4.pkl'), { mmapMode: 'r' }) as Map<string, unknown>;
    const plain = loadJoblibSync(fixture('joblib_1.2_p4.pkl')) as Map<string, unknown>;
    for (const key of ['a', 'd']) {
      const mapped = value.get(key) as Memmap;
      expect(mapped, key).toBeInstanceOf(Memmap);
      expect(mapped.offset).toBe(offsets[key]); // where joblib maps it
      expect(mapped.mode).toBe('r');
      expect(hasShareableMemory(mapped)).toBe(true);
      const copy = plain.get(key) as NDArray;
      expect([mapped.shape, mapped.order, Array.from(mapped.data as never)]).toEqual([copy.shape, copy.order, Array.from(copy.data as never)]); // the storage, in file order
      mapped.close();
    }
    expect(value.get('b')).toEqual([1, 'x', null]);
  });

  it('maps an array at an offset not aligned for its type (joblib < 1.2), as numpy does; reads a compressed file into memory with a warning', async () => {
    const scratch = scratchDir('joblib-mmap');
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => warnings.push(String(warning.code));
    process.on('warning', onWarning);
    try {
      // One padding byte fewer before the first array: every array after it starts one byte earlier, off its 8-byte alignment.
      const whole = readFileSync(fixture('joblib_1.2_p4.pkl'));
      const first = (expected.joblib['joblib_1.2_p4.pkl'] as unknown as { offsets: Record<string, number> }).offsets['a']!;
      let pad = 0;
      while (whole[first - 1 - pad] === 0xff) pad++;
      expect(whole[first - 1 - pad]).toBe(pad);
      const shifted = Buffer.concat([whole.subarray(0, first - 1 - pad), Buffer.from([pad - 1]), whole.subarray(first - pad, first - 1), whole.subarray(first)]);
      const path = scratch.file('shifted.pkl');
      writeFileSync(path, shifted);
      const value = loadJoblibSync(path, { mmapMode: 'r' }) as Map<string, unknown>;
      const a = value.get('a') as Memmap;
      expect(a).toBeInstanceOf(Memmap);
      expect(a.offset % 8).not.toBe(0);
      expect(Array.from(a.data as Float64Array)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      a.close();
      const zlib = loadJoblibSync(fixture('joblib_1.2_zlib.pkl'), { mmapMode: 'r' }) as Map<string, unknown>;
      expect(zlib.get('a')).toBeInstanceOf(NDArray);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings).not.toContain('MEMJOB_JOBLIB_COPIED');
      expect(warnings).toContain('MEMJOB_COMPRESSED_MMAP');
    } finally {
      process.off('warning', onWarning);
      scratch.remove();
    }
  });

  it('reads a file through a small window: long protocol-0 lines and strings across window edges, arrays read straight into their buffers', async () => {
    const scratch = scratchDir('joblib-window');
    try {
      const path = scratch.file('p0.pkl');
      // Protocol 0 writes text lines (readLine); the strings and arrays are longer than the 64 KiB window.
      execFileSync('/usr/bin/python3', ['-c', `
import joblib, numpy as np, sys
v = {'text': 'x' * 200000 + 'end', 'n': 12345678901234567890, 'a': np.arange(50000, dtype='<f8'), 'b': np.arange(7, dtype='>i4')}
for p, f in ((0, sys.argv[1]), (4, sys.argv[2])):
    joblib.dump(v, f, protocol=p)
`, path, scratch.file('p4.pkl')]);
      for (const file of [path, scratch.file('p4.pkl')]) {
        for (const value of [loadJoblibSync(file), await loadJoblib(file)] as Map<string, unknown>[]) {
          expect((value.get('text') as string).length).toBe(200003);
          expect((value.get('text') as string).endsWith('end')).toBe(true);
          expect(value.get('n')).toBe(12345678901234567890n);
          const a = value.get('a') as NDArray<'float64'>;
          expect([a.get(0), a.get(49999), a.size]).toEqual([0, 49999, 50000]);
          expect(Array.from((value.get('b') as NDArray<'int32'>).data)).toEqual([0, 1, 2, 3, 4, 5, 6]); // big-endian, swapped
        }
        const mapped = loadJoblibSync(file, { mmapMode: 'r' }) as Map<string, unknown>;
        expect(mapped.get('a')).toBeInstanceOf(Memmap);
        expect((mapped.get('a') as Memmap<'float64'>).get(49999)).toBe(49999);
        (mapped.get('a') as Memmap).close();
      }
      // copyreg._reconstructor (protocols 0 and 1) builds only allowlisted wrappers, never a plain class.
      const sneaky = scratch.file('sneaky.pkl');
      writeFileSync(sneaky, 'ccopyreg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR.');
      expect(failure(() => loadJoblibSync(sneaky)).message).toMatch(/expected an allowlisted class for copyreg._reconstructor/);
    } finally {
      scratch.remove();
    }
  });

  it("reads Python's datetime basics: datetime and date as Dates (aware ones moved to UTC), timedelta and time as records", () => {
    const scratch = scratchDir('joblib-datetime');
    try {
      const files = [0, 2, 4].map((p) => scratch.file(`dt${p}.pkl`));
      execFileSync('/usr/bin/python3', ['-c', `
import joblib, sys, datetime as d
v = [d.datetime(2024, 5, 6, 7, 8, 9, 123456), d.date(2024, 1, 2), d.timedelta(days=-1, seconds=5, microseconds=7), d.time(1, 2, 3, 4),
     d.datetime(2024, 5, 6, 7, 8, 9, tzinfo=d.timezone.utc), d.datetime(2024, 5, 6, 7, 8, 9, tzinfo=d.timezone(d.timedelta(hours=2)))]
for p, f in zip((0, 2, 4), sys.argv[1:]):
    joblib.dump(v, f, protocol=p)
`, ...files]);
      for (const file of files) {
        expect(loadJoblibSync(file), file).toEqual([
          new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123)),
          new Date(Date.UTC(2024, 0, 2)),
          { kind: 'timedelta', days: -1, seconds: 5, microseconds: 7 },
          { kind: 'time', hour: 1, minute: 2, second: 3, microsecond: 4 },
          new Date(Date.UTC(2024, 4, 6, 7, 8, 9)),
          new Date(Date.UTC(2024, 4, 6, 5, 8, 9)),
        ]);
      }
    } finally {
      scratch.remove();
    }
  });

  it('a protocol 0 pickle of 400,000 one-opcode lines loads without reading a window per line, from a file and compressed', () => {
    // Protocol 0 writes an opcode per line. Each line once read (or copied) a fresh 64 KiB window,
    // about 15 µs a line: a guard against that, not a timing.
    const n = 400_000;
    const parts = ['(lp0\n'];
    for (let i = 0; i < n; i++) parts.push(`I${i}\na`);
    parts.push('.');
    const pickle = Buffer.from(parts.join(''), 'latin1');
    const scratch = scratchDir('joblib-protocol0');
    try {
      const plain = scratch.file('lines.pkl');
      const zipped = scratch.file('lines.pkl.gz');
      writeFileSync(plain, pickle);
      writeFileSync(zipped, gzipSync(pickle));
      for (const file of [plain, zipped]) {
        const started = performance.now();
        const value = loadJoblibSync(file) as number[];
        expect(performance.now() - started, file).toBeLessThan(3000); // about 0.4 s here; 6 s before
        expect(value.length).toBe(n);
        expect([value[0], value[n - 1]]).toEqual([0, n - 1]);
      }
    } finally {
      scratch.remove();
    }
  });

  it('load() and loadSync() do not read a joblib file, and say to use loadJoblibSync', async () => {
    const error = failure(() => loadSync(fixture('joblib_1.2_p4.pkl')));
    expect(error.code).toBe('MEMJOB_ERR_FORMAT');
    expect(error.message).toContain('Python pickle (protocol 4)');
    expect(error.message).toContain('loadJoblibSync()');
    const asyncError = (await load(fixture('joblib_1.2_p2.pkl')).catch((e: unknown) => e)) as MemjobError;
    expect(asyncError.code).toBe('MEMJOB_ERR_FORMAT');
    expect(asyncError.message).toContain('loadJoblibSync()');
    // Compressed joblib files too: zlib and gzip once their first bytes inflate to a pickle, the
    // other compressions by their magic bytes (memjob's own dumps never use them).
    const hints: [string, string][] = [
      ['joblib_1.2_zlib.pkl', 'zlib-compressed Python pickle'],
      ['joblib_1.2_gzip.pkl', 'gzip-compressed Python pickle'],
      ['joblib_1.2_xz.pkl', 'xz-compressed file'],
      ['joblib_1.2_bz2.pkl', 'bz2-compressed file'],
      ['joblib_1.2_lz4.pkl', 'lz4-compressed file'],
      ['joblib_1.2_lzma.pkl', 'lzma-compressed file'],
    ];
    for (const [name, lookalike] of hints) {
      for (const error of [failure(() => loadSync(fixture(name))), (await load(fixture(name)).catch((e: unknown) => e)) as MemjobError]) {
        expect(error.code, name).toBe('MEMJOB_ERR_FORMAT');
        expect(error.message, name).toContain(`it starts like a ${lookalike}`);
        expect(error.message, name).toContain('read it with loadJoblibSync()');
      }
    }
    // A memjob dump compressed with gzip but broken gets no such hint: its content is no pickle.
    const notJoblib = join(tmpdir(), `memjob-not-joblib-${process.pid}.mjdump.gz`);
    writeFileSync(notJoblib, gzipSync(Buffer.from('not a dump and not a pickle')));
    try {
      const error = failure(() => loadSync(notJoblib));
      expect(error.code).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).not.toContain('loadJoblibSync');
    } finally {
      rmSync(notJoblib, { force: true });
    }
  });

  it('memjob inspect shows a joblib file\'s structure, dtypes, shapes and offsets without reading its arrays, and refuses a malicious one', async () => {
    const report = await inspectFile(fileURLToPath(fixture('joblib_1.2_p4.pkl')));
    expect(report.format).toMatchObject({ type: 'joblib', protocol: 4 });
    const offsets = (expected.joblib['joblib_1.2_p4.pkl'] as unknown as { offsets: Record<string, number> }).offsets;
    expect(report.arrays.map((a) => [a.path, a.dtype, a.shape, a.order, a.offset, a.bytes])).toEqual([
      ['value.get("a")', 'float64', [10], 'C', offsets['a'], 80],
      ['value.get("d")', 'int64', [2, 3], 'F', offsets['d'], 48],
    ]);
    const text = renderReport(report).join('\n');
    expect(text).toContain('joblib / Python pickle, protocol 4');
    expect(text).toContain(`"a": NDArray float64 '<f8' [10] C, 80 B at offset ${offsets['a']}`);
    expect(text).toContain('"b": array (3 items)');
    const cli = await runCommand(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'inspect', fileURLToPath(fixture('evil_system_p4.pkl'))]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('MEMJOB_ERR_UNSAFE_PICKLE');
    expect(cli.stderr).toContain('posix.system');
  });

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

  it('loadJoblib (async) gives what loadJoblibSync gives: plain, gzip, and mapped; and its bomb limit', async () => {
    for (const name of ['joblib_1.2_p5.pkl', 'joblib_1.2_gzip.pkl']) {
      const [sync, viaAsync] = [loadJoblibSync(fixture(name)) as Map<string, unknown>, (await loadJoblib(fixture(name))) as Map<string, unknown>];
      expect(viaAsync.get('b')).toEqual(sync.get('b'));
      expect(Array.from((viaAsync.get('a') as NDArray).data as Float64Array)).toEqual(Array.from((sync.get('a') as NDArray).data as Float64Array));
    }
    const mapped = (await loadJoblib(fixture('joblib_1.2_p4.pkl'), { mmapMode: 'r' })) as Map<string, unknown>;
    expect(mapped.get('a')).toBeInstanceOf(Memmap);
    (mapped.get('a') as Memmap).close();
    (mapped.get('d') as Memmap).close();
    const scratch = scratchDir('joblib-async-bomb');
    try {
      const bomb = scratch.file('bomb.pkl');
      writeFileSync(bomb, deflateSync(new Uint8Array(8 * 1024 * 1024)));
      const error = (await loadJoblib(bomb, { maxDecompressedBytes: 65536 }).catch((e: unknown) => e)) as MemjobError;
      expect(error.code).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).toContain('at most 65536 bytes');
      expect(((await loadJoblib(fixture('evil_system_p4.pkl')).catch((e: unknown) => e)) as MemjobError).code).toBe('MEMJOB_ERR_UNSAFE_PICKLE');
    } finally {
      scratch.remove();
    }
  });

  it('stops a decompression bomb at maxDecompressedBytes, and refuses a broken xz stream', () => {
    const scratch = scratchDir('joblib-bomb');
    try {
      const bomb = scratch.file('bomb.pkl');
      writeFileSync(bomb, deflateSync(new Uint8Array(16 * 1024 * 1024))); // 16 KiB that inflate to 16 MiB
      const error = failure(() => loadJoblibSync(bomb, { maxDecompressedBytes: 1024 * 1024 }));
      expect(error.code).toBe('MEMJOB_ERR_FORMAT');
      expect(error.message).toContain('at most 1048576 bytes');
      const xz = scratch.file('x.pkl.xz');
      writeFileSync(xz, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]));
      const broken = failure(() => loadJoblibSync(xz));
      expect(broken.code).toBe('MEMJOB_ERR_FORMAT');
      expect(broken.message).toContain('expected a whole xz stream');
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
