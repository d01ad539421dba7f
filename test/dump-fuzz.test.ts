/**
 * load() never trusts a file: every corrupt or truncated dump either loads as
 * some value or fails with MEMJOB_ERR_FORMAT saying what is wrong; never a
 * crash, a hang, another kind of error, or a huge allocation.
 *
 * The random part is deterministic: MEMJOB_FUZZ_SEED (default below) and the
 * case number in a failure message rebuild the file (test/fuzz/mutations.ts,
 * makeCase). For a long run: npx tsx test/fuzz/dump-fuzz.ts --cases 200000
 */
import { spawnSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemjobError, load, loadSync } from '../src/index.js';
import { ALIGNMENT, FORMAT_MAJOR, FORMAT_MINOR, HEADER_BYTES, MAGIC, alignUp, encodeHeader, type Header } from '../src/format/header.js';
import {
  MEMORY_LIMIT,
  buildSeeds,
  checkAsync,
  checkSync,
  makeCase,
  memoryInUse,
  silenceCompressedMmapWarnings,
  touchValue,
  type Outcome,
  type SeedFile,
} from './fuzz/mutations.js';
import { repoRoot, scratchDir } from './helpers.js';

const SEED = process.env.MEMJOB_FUZZ_SEED === undefined ? 0x6d656d6a : Number(process.env.MEMJOB_FUZZ_SEED) >>> 0;
const CASES = 3000;

const scratch = scratchDir('dump-fuzz');
let seeds: SeedFile[] = [];
let restoreWarnings: () => void = () => {};

beforeAll(() => {
  restoreWarnings = silenceCompressedMmapWarnings();
  seeds = buildSeeds(scratch.dir);
});
afterAll(() => {
  restoreWarnings();
  scratch.remove();
});

describe('fuzzed dump files', () => {
  it('the seeds themselves load, in memory and mapped', async () => {
    expect(seeds.length).toBeGreaterThanOrEqual(6);
    for (const seed of seeds) {
      const file = scratch.file(`check-${seed.name}`);
      writeFileSync(file, seed.bytes);
      for (const verdict of [checkSync(file, null), checkSync(file, 'r'), await checkAsync(file)]) {
        expect(verdict, `seed ${seed.name}`).toEqual({ ok: true, outcome: 'loaded' });
      }
      unlinkSync(file);
    }
  });

  it(`${CASES} mutated files load or fail with MEMJOB_ERR_FORMAT (seed ${SEED})`, async () => {
    const failures: string[] = [];
    const counts: Record<Outcome, number> = { loaded: 0, 'format-error': 0, 'too-large': 0 };
    let peak = memoryInUse();
    for (let caseNo = 0; caseNo < CASES; caseNo++) {
      const c = makeCase(seeds, SEED, caseNo);
      const file = scratch.file(`case-${caseNo}.bin`);
      writeFileSync(file, c.bytes);
      const where = `seed ${SEED} case ${caseNo} (${c.seedName}: ${c.mutation})`;
      const runs: [string, () => ReturnType<typeof checkSync> | Promise<ReturnType<typeof checkSync>>][] = [
        ['loadSync', () => checkSync(file, null)],
        ["loadSync mmapMode 'r'", () => checkSync(file, 'r')],
      ];
      // The streaming loader reads compressed files; plain ones take the async path in one case of four.
      const compressed = c.bytes.length < MAGIC.length || !MAGIC.equals(c.bytes.subarray(0, MAGIC.length));
      if (compressed || caseNo % 4 === 0) runs.push(['await load', () => checkAsync(file)]);
      for (const [how, run] of runs) {
        const verdict = await run();
        if (!verdict.ok) failures.push(`${where}: ${how} ${verdict.problem}; file bytes ${c.bytes.subarray(0, 160).toString('hex')}${c.bytes.length > 160 ? '...' : ''}`);
        else if (how === 'loadSync') counts[verdict.outcome]++;
      }
      unlinkSync(file);
      const used = memoryInUse();
      peak = Math.max(peak, used);
      if (used > MEMORY_LIMIT) failures.push(`${where}: memory in use reached ${used} bytes (rss + arrayBuffers), over ${MEMORY_LIMIT}`);
      if (failures.length >= 20) break;
    }
    console.log(`dump fuzz: seed ${SEED}, ${CASES} cases: ${JSON.stringify(counts)}, peak rss+arrayBuffers ${Math.round(peak / 2 ** 20)} MiB`);
    expect(failures, `${failures.length} failing case(s):\n${failures.join('\n\n')}`).toEqual([]);
    // The mutations must reach past the header checks often enough to mean something.
    expect(counts.loaded, 'some mutated files still load').toBeGreaterThan(CASES / 50);
    expect(counts['format-error'], 'most mutated files are refused').toBeGreaterThan(CASES / 2);
  });
});

// ---------------------------------------------------------------------------
// Hand-written files with precise messages
// ---------------------------------------------------------------------------

const packr = new Packr({ useRecords: false });

interface Crafted {
  segments?: unknown;
  tree?: unknown;
  /** Raw msgpack for the structure, instead of packing [segments, tree]. */
  structure?: Buffer;
  data?: Uint8Array;
  header?: Partial<Header>;
  /** Applied to the finished bytes. */
  patch?: (bytes: Buffer) => void;
}

/** Builds a dump by hand: header (from the constants in src/format/header.ts), msgpack structure, aligned data. */
function craft({ segments = [], tree = null, structure, data = new Uint8Array(0), header = {}, patch }: Crafted): Buffer {
  const packed = structure ?? packr.pack([segments, tree]);
  const dataOffset = alignUp(HEADER_BYTES + packed.length, ALIGNMENT);
  const out = Buffer.alloc(dataOffset + data.length);
  encodeHeader({
    major: FORMAT_MAJOR,
    minor: FORMAT_MINOR,
    alignment: ALIGNMENT,
    structureOffset: HEADER_BYTES,
    structureLength: packed.length,
    dataOffset,
    dataLength: data.length,
    ...header,
  }).copy(out);
  packed.copy(out, HEADER_BYTES);
  out.set(data, dataOffset);
  patch?.(out);
  return out;
}

let fileCount = 0;
function write(bytes: Buffer): string {
  const file = scratch.file(`crafted-${fileCount++}.bin`);
  writeFileSync(file, bytes);
  return file;
}

/** The MemjobError every load of `bytes` throws (sync, sync mapped, and async must agree on the code). */
async function formatFailure(bytes: Buffer): Promise<MemjobError> {
  const file = write(bytes);
  const errors: unknown[] = [];
  for (const attempt of [() => loadSync(file), () => loadSync(file, { mmapMode: 'r' }), () => load(file)]) {
    try {
      touchValue(await attempt());
      errors.push(new Error('loaded without an error'));
    } catch (error) {
      errors.push(error);
    }
  }
  for (const error of errors) {
    expect(error).toBeInstanceOf(MemjobError);
    expect((error as MemjobError).code, (error as Error).message).toBe('MEMJOB_ERR_FORMAT');
    expect((error as MemjobError).message).toContain(file);
  }
  return errors[0] as MemjobError;
}

const f64 = (values: number[]): Uint8Array => new Uint8Array(new Float64Array(values).buffer);
/** A Float64Array descriptor node: [ARRAY_DATA, kind, dtype, shape, order, segment]. */
const desc = (segment: number, length: number, kind = 'Float64Array', dtype = 'float64', order = 'C'): unknown[] => [8, kind, dtype, [length], order, segment];

describe('hand-written corrupt dumps', () => {
  it('a well-formed hand-written dump loads (the builder is right)', () => {
    const file = write(craft({ segments: [[0, 32]], tree: [1, desc(0, 4), 'x'], data: f64([1, 2, 3, 4]) }));
    expect(loadSync(file)).toEqual([new Float64Array([1, 2, 3, 4]), 'x']);
    expect(loadSync(file, { mmapMode: 'r' })).toEqual([new Float64Array([1, 2, 3, 4]), 'x']);
  });

  it('bad magic', async () => {
    const error = await formatFailure(craft({ tree: 1, patch: (b) => (b[1] = 0x58) }));
    expect(error.message).toMatch(/does not start with the memjob magic bytes/);
  });

  it('version 2.0 names the version', async () => {
    const error = await formatFailure(craft({ tree: 1, header: { major: 2, minor: 0 } }));
    expect(error.message).toMatch(/format version 2\.0 is not one this memjob reads/);
  });

  it('a header promising more bytes than the file has is truncated', async () => {
    const bytes = craft({ segments: [[0, 32]], tree: desc(0, 4), data: f64([1, 2, 3, 4]) });
    const error = await formatFailure(bytes.subarray(0, bytes.length - 8));
    expect(error.message).toMatch(/truncated: the header promises \d+ bytes, the file holds \d+/);
    const lying = await formatFailure(craft({ tree: 1, header: { dataLength: 2 ** 40 } }));
    expect(lying.message).toMatch(/truncated/);
  });

  it('a header field beyond 2^53 is impossibly large', async () => {
    const error = await formatFailure(craft({ tree: 1, patch: (b) => b.writeBigUInt64LE(2n ** 64n - 1n, 48) }));
    expect(error.message).toMatch(/data length 18446744073709551615 is impossibly large/);
  });

  it('an alignment that is not a power of two, and an unaligned data offset', async () => {
    expect((await formatFailure(craft({ tree: 1, header: { alignment: 3 } }))).message).toMatch(/alignment 3 is not a power of two/);
    const error = await formatFailure(craft({ tree: 1, patch: (b) => b.writeBigUInt64LE(100n, 40) }));
    expect(error.message).toMatch(/data offset 100 is not a multiple of the alignment 64/);
  });

  it('a structure that is not msgpack', async () => {
    const error = await formatFailure(craft({ structure: Buffer.from([0xc1, 0xc1, 0xc1]) }));
    expect(error.message).toMatch(/its structure cannot be decoded/);
  });

  it('a segment whose offset is not 64-aligned', async () => {
    const error = await formatFailure(craft({ segments: [[8, 32]], tree: desc(0, 4), data: new Uint8Array(64) }));
    expect(error.message).toMatch(/segment 0 starts at 8, not a multiple of 64/);
  });

  it('a segment running past the data region', async () => {
    const error = await formatFailure(craft({ segments: [[0, 128]], tree: desc(0, 16), data: new Uint8Array(64) }));
    expect(error.message).toMatch(/segment 0 \(0 \+ 128 bytes\) runs past the data region of 64 bytes/);
  });

  it('overlapping segments', async () => {
    const error = await formatFailure(
      craft({ segments: [[0, 96], [64, 32]], tree: [1, desc(0, 12), desc(1, 4)], data: new Uint8Array(128) }),
    );
    expect(error.message).toMatch(/segments 0 and 1 overlap/);
  });

  it('a segment claimed by two different arrays', async () => {
    const error = await formatFailure(craft({ segments: [[0, 32]], tree: [1, desc(0, 4), [8, 'Uint8Array', 'uint8', [32], 'C', 0]], data: new Uint8Array(32) }));
    expect(error.message).toMatch(/segment 0 is claimed by two different arrays/);
  });

  it('a descriptor with an unknown dtype', async () => {
    const error = await formatFailure(craft({ segments: [[0, 32]], tree: [8, 'NDArray', 'float128', [2], 'C', 0], data: new Uint8Array(32) }));
    expect(error.message).toMatch(/unknown dtype "float128" \(string\)/);
  });

  it('a typed array kind that cannot hold the dtype', async () => {
    const error = await formatFailure(craft({ segments: [[0, 32]], tree: desc(0, 8, 'Float64Array', 'int32'), data: new Uint8Array(32) }));
    expect(error.message).toMatch(/a Float64Array cannot hold dtype int32/);
  });

  it('a shape whose bytes do not match the segment', async () => {
    const error = await formatFailure(craft({ segments: [[0, 32]], tree: desc(0, 5), data: new Uint8Array(32) }));
    expect(error.message).toMatch(/an array of shape \[5\] float64 needs 40 bytes, its segment holds 32/);
    const huge = await formatFailure(craft({ segments: [[0, 32]], tree: [8, 'NDArray', 'float64', [2 ** 40, 2 ** 40], 'C', 0], data: new Uint8Array(32) }));
    expect(huge.message).toMatch(/impossibly large/);
  });

  it('nesting deeper than the format allows', async () => {
    let tree: unknown = 1;
    for (let i = 0; i < 1200; i++) tree = [1, tree];
    const error = await formatFailure(craft({ tree }));
    expect(error.message).toMatch(/nesting deeper than 1000 levels/);
  });

  it("an object key '__proto__' does not change Object.prototype", () => {
    // [OBJECT, '__proto__', [OBJECT, 'polluted', true]] at the top and inside a Map and an array.
    const evil = [2, '__proto__', [2, 'polluted', true], 'constructor', [2, 'prototype', [2, 'polluted', true]]];
    const file = write(craft({ tree: [1, evil, [3, 'k', evil], [2, 'inner', evil]] }));
    for (const mmapMode of [null, 'r'] as const) {
      const value = loadSync(file, { mmapMode }) as [Record<string, unknown>, Map<string, Record<string, unknown>>, Record<string, Record<string, unknown>>];
      const [top, map, nested] = value;
      for (const object of [top, map.get('k')!, nested.inner!]) {
        expect(Object.getPrototypeOf(object)).toBe(Object.prototype);
        expect(Object.hasOwn(object, '__proto__')).toBe(true);
        expect(Object.getOwnPropertyDescriptor(object, '__proto__')?.value).toEqual({ polluted: true });
        expect((object as { polluted?: unknown }).polluted).toBeUndefined();
      }
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
      expect((Object.prototype as { polluted?: unknown }).polluted).toBeUndefined();
    }
  });

  it("a msgpack map or record with a '__proto__' key is refused without pollution", async () => {
    const str = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const map = Buffer.concat([Buffer.from([0x92, 0x90, 0x81]), str('__proto__'), Buffer.from([0x81]), str('polluted'), Buffer.from([0xc3])]);
    expect((await formatFailure(craft({ structure: map }))).message).toMatch(/unexpected an instance of Map in the structure/);
    const record = Buffer.concat([Buffer.from([0x92, 0x90, 0xd4, 0x72, 0x00, 0x91]), str('__proto__'), Buffer.from([0x81]), str('polluted'), Buffer.from([0xc3])]);
    await formatFailure(craft({ structure: record }));
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('msgpack extensions a writer never produces are refused as FORMAT errors', async () => {
    const str = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const trees = [
      Buffer.from([0xd6, 0xff, 0, 0, 0, 1]), // timestamp -> Date
      Buffer.from([0xd4, 0x42, 0x05]), // bigint
      Buffer.from([0xd4, 0x73, 0x00, 0x91, 0x01]), // Set
      Buffer.from([0xc7, 0x03, 0x74, 0x01, 0x01, 0x02]), // Uint8Array
      Buffer.concat([Buffer.from([0xd4, 0x65, 0x00, 0x93]), str('TypeError'), str('boom'), Buffer.from([0xc0])]), // Error
    ];
    for (const tree of trees) {
      const error = await formatFailure(craft({ structure: Buffer.concat([Buffer.from([0x92, 0x90]), tree]) }));
      expect(error.message).toMatch(/unexpected .* in the structure/);
    }
  });

  // A msgpack record (ext 0x72, which msgpackr decodes even with useRecords: false)
  // makes a plain object whose constructor.name is an object without a usable
  // toString: describe() in src/errors.ts then throws a TypeError while building
  // the message, and load reports MEMJOB_ERR_INTERNAL instead of a FORMAT error.
  it('a msgpack record whose constructor.name is not a string is a FORMAT error', async () => {
    const str = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const record = (id: number, key: string): Buffer => Buffer.concat([Buffer.from([0xd4, 0x72, id, 0x91]), str(key)]);
    // [[], {constructor: {name: {toString: 1}}}]
    const tree = Buffer.concat([record(0, 'constructor'), record(1, 'name'), record(2, 'toString'), Buffer.from([0x01])]);
    const error = await formatFailure(craft({ structure: Buffer.concat([Buffer.from([0x92, 0x90]), tree]) }));
    expect(error.message).toMatch(/unexpected .* in the structure/);
  });

  // msgpackr decodes arrays nested a few thousand deep; the structure checks stop
  // at 1000 levels, but describe() in src/errors.ts, which builds the message for
  // an unknown tag or a bad segment entry, recurses without a limit and, while it
  // is not yet optimized (a fresh process), overflows the stack first: load then
  // reports the RangeError as MEMJOB_ERR_INTERNAL ("system call failed").
  // A fresh child process per file, because a warm describe() has smaller frames.
  it('an array nested thousands deep where a tag or a segment belongs is a FORMAT error (fresh process)', () => {
    const deep = (depth: number): Buffer => Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0x00])]);
    const files = {
      // [[], [<3000-deep array>]]: the tree's tag is an array
      tag: write(craft({ structure: Buffer.concat([Buffer.from([0x92, 0x90, 0x91]), deep(3000)]) })),
      // [[[<3000-deep array>, 8]], null]: a segment's offset is an array
      segment: write(craft({ structure: Buffer.concat([Buffer.from([0x92, 0x91, 0x92]), deep(3000), Buffer.from([0x08, 0xc0])]) })),
    };
    const child = `
      const { loadSync } = await import(process.argv[1]);
      try { loadSync(process.argv[2]); console.log(JSON.stringify({ code: 'loaded' })); }
      catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message.slice(0, 300) })); }`;
    for (const [name, file] of Object.entries(files)) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child, `${repoRoot}src/index.ts`, file], {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(run.status, `${name}: ${run.stderr}`).toBe(0);
      const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as { code: string; message?: string };
      expect(result.code, `${name}: ${result.message}`).toBe('MEMJOB_ERR_FORMAT');
    }
  });

  // loadSync decompresses a compressed file whole (decompressSync in
  // src/format/load.ts) before reading its header, so content past what the
  // header promises still costs memory: here 0.25 MB of gzip that promises a
  // 128-byte dump but inflates to 256 MiB makes loadSync hold about twice that.
  // (await load streams, and stops reading where the dump ends.) Measured in a
  // fresh child process, as the growth of its peak resident memory.
  it('a small compressed file that inflates far past what its header promises is not inflated whole', () => {
    const head = craft({ tree: 1 }); // 128 bytes, promising nothing after them
    const zeros = zlib.gzipSync(Buffer.alloc(64 * 2 ** 20), { level: 9 }); // a gzip member: 64 MiB of zeros in ~64 KB
    const bomb = Buffer.concat([zlib.gzipSync(head), zeros, zeros, zeros, zeros]);
    expect(bomb.length).toBeLessThan(2 ** 20);
    const file = write(bomb);
    const child = `
      const { load, loadSync } = await import(process.argv[1]);
      const attempt = async (fn) => {
        const before = process.resourceUsage().maxRSS;
        let code = 'loaded';
        try { await fn(); } catch (error) { code = error.code; }
        return { code, growthKiB: process.resourceUsage().maxRSS - before };
      };
      const results = { async: await attempt(() => load(process.argv[2])), sync: await attempt(() => loadSync(process.argv[2])) };
      console.log(JSON.stringify(results));`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child, `${repoRoot}src/index.ts`, file], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const results = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<'async' | 'sync', { code: string; growthKiB: number }>;
    for (const [how, { code, growthKiB }] of Object.entries(results)) {
      expect(['loaded', 'MEMJOB_ERR_FORMAT'], `${how}: ${code}`).toContain(code);
      expect(growthKiB * 1024, `${how} load of a ${bomb.length}-byte file grew the peak resident memory by ${growthKiB} KiB`).toBeLessThan(64 * 2 ** 20);
    }
  });

  it('a corrupt compressed file', async () => {
    const plain = craft({ segments: [[0, 32]], tree: desc(0, 4), data: f64([1, 2, 3, 4]) });
    const gz = zlib.gzipSync(plain);
    const error = await formatFailure(gz.subarray(0, gz.length - 12));
    expect(error.message).toMatch(/gzip|truncated/);
    const garbled = Buffer.from(gz);
    garbled[12] = garbled[12]! ^ 0xff;
    await formatFailure(garbled);
    const notDump = await formatFailure(zlib.brotliCompressSync(Buffer.from('hello, not a dump')));
    expect(notDump.message).toMatch(/does not start with the memjob magic bytes, nor does it decompress as brotli/);
  });

  it('a compressed file whose header promises huge arrays allocates nothing like them', async () => {
    const cases = [
      // A 3 GiB Memmap (Memmap descriptors may exceed one ArrayBuffer) in a data region said to be 4 GiB.
      { segments: [[0, 3 * 2 ** 30]], tree: [8, 'Memmap', 'uint8', [3 * 2 ** 30], 'C', 0], dataLength: 4 * 2 ** 30 },
      // A 60 MiB Float64Array: small enough to be allocated before it is read.
      { segments: [[0, 60 * 2 ** 20]], tree: desc(0, (60 * 2 ** 20) / 8), dataLength: 60 * 2 ** 20 },
      // A structure said to be 2^40 bytes.
      { segments: [], tree: 1, structureLength: 2 ** 40, dataLength: 0 },
    ];
    for (const { segments, tree, dataLength, structureLength } of cases) {
      const structure = packr.pack([segments, tree]);
      const dataOffset = alignUp(HEADER_BYTES + (structureLength ?? structure.length), ALIGNMENT);
      const plain = Buffer.concat([
        encodeHeader({ major: 1, minor: 0, alignment: 64, structureOffset: 64, structureLength: structureLength ?? structure.length, dataOffset, dataLength }),
        structure,
        Buffer.alloc(4096),
      ]);
      for (const compressed of [zlib.gzipSync(plain), zlib.brotliCompressSync(plain)]) {
        const before = memoryInUse();
        const error = await formatFailure(compressed);
        expect(error.message).toMatch(/truncated|does not lie between|structure is \d+ bytes, more than the \d+ memjob reads/);
        expect(memoryInUse() - before).toBeLessThan(256 * 2 ** 20);
      }
    }
  });
});
