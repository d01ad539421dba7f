/**
 * Hostile files stay bounded (issue 12, item 3): each file below is built
 * here, as the attack described it, and then inspected or loaded in a fresh
 * child process (test/fixtures/hostile-child.ts) that reports how much its
 * peak resident memory grew and how long the operation took. Files are
 * shown within bounds (output, memory) or refused with a stable code,
 * quickly; a terminal never receives a control character from a file or a
 * file name; and msgpack extensions never run on a file's bytes.
 * The time checks are generous upper bounds against hangs (the issue's
 * target is 1 s; each figure is logged), not speed measurements.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { Packr, addExtension } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { MemjobError, dumpSync, load, loadSync } from '../src/index.js';
import { describe as describeValue } from '../src/errors.js';
import { ALIGNMENT, HEADER_BYTES, alignUp, encodeHeader } from '../src/format/header.js';
import { maxViewBytes } from '../src/native.js';
import { repoRoot, scratchDir } from './helpers.js';

const scratch = scratchDir('hostile');
afterAll(() => scratch.remove());

const MIB = 2 ** 20;
const MEMORY_BOUND_KIB = 256 * 1024;
const HANG_BOUND_MS = 5000;
const OUTPUT_BOUND = 1_000_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function child(args: string[]): Promise<Run> {
  const script = join(repoRoot, 'test', 'fixtures', 'hostile-child.ts');
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    proc.stderr.on('data', (d: Buffer) => err.push(d));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

interface Cost {
  growthKiB: number;
  ms: number;
}

/** `memjob ARGS` in a child: its exit code, output, and what it cost. */
async function memjob(args: string[]): Promise<Run & Cost> {
  const run = await child(['cli', ...args]);
  const match = /\nHOSTILE-COST (\{.*\})\n$/.exec(run.stderr);
  expect(match, run.stderr.slice(-2000)).not.toBeNull();
  const cost = JSON.parse(match![1]!) as Cost;
  // JSON.stringify: the file names hold escape sequences, which a log must not pass to the terminal either.
  console.log(`memjob ${args.slice(0, -1).join(' ')} ${JSON.stringify(args.at(-1)!.slice(scratch.dir.length + 1))}: exit ${run.code}, ${run.stdout.length} chars out, peak RSS +${Math.round(cost.growthKiB / 1024)} MiB, ${cost.ms} ms`);
  return { ...run, stderr: run.stderr.slice(0, match!.index), ...cost };
}

interface ApiResult extends Cost {
  code: string;
  message: string;
  messageLength: number;
}

/** load(), loadSync() or inspectFile() of `file` in a child process. */
async function api(op: 'load' | 'loadSync' | 'inspect', file: string): Promise<ApiResult> {
  const run = await child(['api', op, file]);
  expect(run.code, run.stderr).toBe(0);
  const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as ApiResult;
  console.log(`${op} ${JSON.stringify(file.slice(scratch.dir.length + 1))}: ${result.code}, peak RSS +${Math.round(result.growthKiB / 1024)} MiB, ${result.ms} ms`);
  return result;
}

function expectBounded(cost: Cost): void {
  expect(cost.growthKiB, `peak RSS grew by ${cost.growthKiB} KiB`).toBeLessThan(MEMORY_BOUND_KIB);
  expect(cost.ms).toBeLessThan(HANG_BOUND_MS);
}

type Reader = 'load' | 'loadSync' | 'inspect';

/** Each reader in `readers` refuses `file` with `code`, within the bounds, and its result passes `check`. */
async function expectRefused(file: string, code: string, check: (result: ApiResult) => void, readers: readonly Reader[] = ['load', 'loadSync', 'inspect']): Promise<void> {
  for (const op of readers) {
    const result = await api(op, file);
    expect(result.code, result.message).toBe(code);
    check(result);
    expectBounded(result);
  }
}

/** Writes `bytes` as a plain dump and as a gzip one: every reader refuses both with `code`. */
async function expectRefusedPlainAndGzip(name: string, bytes: Buffer, code: string, check: (result: ApiResult) => void): Promise<void> {
  for (const [file, content] of [
    [`${name}.mjdump`, bytes],
    [`${name}.mjdump.gz`, zlib.gzipSync(bytes)],
  ] as const) {
    writeFileSync(scratch.file(file), content);
    await expectRefused(scratch.file(file), code, check);
  }
}

/** A value nested `depth` objects deep, each under one key of `keyLength` characters, holding `bottom`. */
function deepValue(depth: number, keyLength: number, bottom: unknown): unknown {
  let value = bottom;
  for (let i = 0; i < depth; i++) value = { [String(i % 10).repeat(keyLength)]: value };
  return value;
}

const packr = new Packr({ useRecords: false });

/**
 * A dump written by hand up to where its data starts: the header (saying
 * `structureLength` and `dataLength`), then `structure` (raw msgpack) padded
 * to the data offset. The data, or a structure longer than given, is for the caller to append.
 */
function rawDump(structure: Buffer, dataLength = 0, structureLength = structure.length): Buffer {
  const dataOffset = alignUp(HEADER_BYTES + structureLength, ALIGNMENT);
  const header = encodeHeader({ major: 1, minor: 0, alignment: ALIGNMENT, structureOffset: HEADER_BYTES, structureLength, dataOffset, dataLength });
  const padding = structureLength === structure.length ? dataOffset - HEADER_BYTES - structure.length : 0;
  return Buffer.concat([header, structure, Buffer.alloc(padding)]);
}

// gzip members are concatenated: one member of 64 MiB of zeros, repeated, is gigabytes in a few MB.
let zerosMember: Buffer | undefined;
function gzipZeros(bytes: number): Buffer[] {
  zerosMember ??= zlib.gzipSync(Buffer.alloc(64 * MIB), { level: 9 });
  expect(bytes % (64 * MIB)).toBe(0);
  return Array.from({ length: bytes / (64 * MIB) }, () => zerosMember!);
}

describe('inspect shows hostile structures within bounds', () => {
  // The files: 999 nested objects, 1000-character keys, 12,000 empty arrays (~1 MB).
  const files = {
    'typed arrays': () => deepValue(998, 1000, Array.from({ length: 12_000 }, () => new Float64Array(0))),
    'empty lists': () => deepValue(998, 1000, Array.from({ length: 12_000 }, () => [])),
    // 129 KB that printed 100 MB: every array's full path, every row padded to the longest.
    'wide and deep': () => deepValue(100, 1000, Array.from({ length: 1000 }, () => new Uint8Array(0))),
  };

  for (const [name, build] of Object.entries(files)) {
    it(`${name}: text and --json, bounded output, memory and time`, async () => {
      const file = scratch.file(`${name.replaceAll(' ', '-')}.mjdump`);
      dumpSync(build(), file);
      const text = await memjob(['inspect', file]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout.length).toBeLessThan(OUTPUT_BOUND);
      expectBounded(text);
      expect(text.stdout).toContain('(key truncated to 200 of 1,000 characters)');
      expect(text.stdout).toContain('nested deeper than --max-depth');
      for (const line of text.stdout.split('\n')) expect(line.length).toBeLessThan(1000);

      const json = await memjob(['inspect', '--json', file]);
      expect(json.code, json.stderr).toBe(0);
      expect(json.stdout.length).toBeLessThan(OUTPUT_BOUND);
      expectBounded(json);
      const report = JSON.parse(json.stdout) as { arrayCount: number; arrays: { path: string }[] };
      for (const a of report.arrays) expect(a.path.length).toBeLessThanOrEqual(251);
      if (name === 'typed arrays') {
        expect(report.arrayCount).toBe(12_000);
        expect(report.arrays).toHaveLength(1000);
        expect(text.stdout).toContain('... 11,000 more arrays not listed (--max-arrays)');
        expect(report.arrays[999]!.path).toMatch(/^value\["7+"…\].*….*\[999\]$/);
      }
    });
  }

  it('raised limits are still bounded: rows in all, then the output itself', async () => {
    const file = scratch.file('raised.mjdump');
    dumpSync(deepValue(998, 1000, Array.from({ length: 12_000 }, () => [])), file);
    const run = await memjob(['inspect', '--max-depth', '100000', '--max-entries', '100000', file]);
    expect(run.code, run.stderr).toBe(0);
    expectBounded(run);
    expect(run.stdout.length).toBeLessThan(1.1 * MIB);
    expect(run.stdout).toMatch(/\.\.\. output cut at 1\.0 MiB: [\d,]+ more lines/);

    const wide = scratch.file('wide.mjdump');
    dumpSync({ items: Array.from({ length: 12_000 }, () => []) }, wide);
    const rows = await memjob(['inspect', '--max-entries', '100000', wide]);
    expect(rows.stdout).toMatch(/\.\.\. 11,00\d more entries, past --max-rows rows in all/);
  });
});

describe('terminal control characters are shown escaped', () => {
  const hostileKeys = ['\x1b]0;PWNED\x07\x1b[31m', '\x1b[1A\x1b[2K\r', 'c1-\x9b31m', 'bidi-\u202egnp.exe', 'del-\x7f'];
  const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/;

  it('keys, previews and the file name in inspect; the error line of a bad file', async () => {
    const value = Object.fromEntries(hostileKeys.map((key) => [key, key]));
    const file = scratch.file('evil-\x1b[31m-name.mjdump');
    dumpSync({ ...value, nested: { [hostileKeys[0]!]: new Float64Array(2) } }, file);
    const run = await memjob(['inspect', file]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toMatch(raw);
    expect(run.stdout).toContain('\\x1b]0;PWNED\\x07\\x1b[31m');
    expect(run.stdout).toContain('\\x1b[1A\\x1b[2K\\r');
    expect(run.stdout).toContain('c1-\\x9b31m');
    expect(run.stdout).toContain('bidi-\\u202egnp.exe');
    expect(run.stdout).toMatch(/^file\s+.*evil-\\x1b\[31m-name\.mjdump$/m);

    // --json: valid JSON holding the same characters, none of them raw.
    const json = await memjob(['inspect', '--json', file]);
    expect(json.stdout).not.toMatch(raw);
    const report = JSON.parse(json.stdout) as { path: string; tree: { entries: { key: string }[] } };
    expect(report.tree.entries.map((e) => e.key)).toEqual([...hostileKeys, 'nested']);
    expect(report.path).toBe(file);

    const broken = scratch.file('broken-\x1b]0;PWNED\x07.mjdump');
    writeFileSync(broken, Buffer.from('\x93MEMJOB\0 truncated'));
    const failed = await memjob(['inspect', broken]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('MEMJOB_ERR_FORMAT');
    expect(failed.stderr).not.toMatch(raw);
    expect(failed.stderr).toContain('broken-\\x1b]0;PWNED\\x07.mjdump');
  });
});

describe('compressed dumps: declared sizes are checked before inflating', () => {
  it('a 3 MB gzip whose header declares a 3 GiB structure: MEMJOB_ERR_FORMAT at once, in load, loadSync and inspect', async () => {
    const structureLength = 3 * 2 ** 30;
    const file = scratch.file('structure-3gib.mjdump.gz');
    writeFileSync(file, Buffer.concat([zlib.gzipSync(rawDump(Buffer.alloc(0), 0, structureLength)), ...gzipZeros(structureLength)]));
    await expectRefused(file, 'MEMJOB_ERR_FORMAT', (result) =>
      expect(result.message).toContain(`the structure is ${structureLength} bytes, more than the 1073741824 memjob reads`),
    );
    const cli = await memjob(['inspect', file]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('MEMJOB_ERR_FORMAT');
    expectBounded(cli);
  });

  it('a structure under the limit that is not msgpack is refused at its first bytes, not after inflating it', async () => {
    const structureLength = 2 ** 30 - 64 * MIB; // 960 MiB of zeros, said to be the structure
    const file = scratch.file('structure-zeros.mjdump.gz');
    // The header in a first member, the structure's 960 MiB of zeros in the next ones.
    writeFileSync(file, Buffer.concat([zlib.gzipSync(rawDump(Buffer.alloc(0), 0, structureLength)), ...gzipZeros(structureLength), zlib.gzipSync(Buffer.alloc(64))]));
    await expectRefused(file, 'MEMJOB_ERR_FORMAT', (result) =>
      expect(result.message).toMatch(/its structure cannot be decoded: \d+ bytes follow the value's end at byte 1/),
    );
  });

  it('a list of more values than a structure may hold is refused, not decoded (plain and gzip)', async () => {
    const count = 2 ** 26 + 1; // one-byte zeros: 64 MiB, or 64 KB of gzip
    const list = Buffer.alloc(8 + count);
    list.set([0x92, 0x90, 0xdd], 0);
    list.writeUInt32BE(count, 3);
    const plain = Buffer.concat([rawDump(list.subarray(0, 8), 0, list.length), list.subarray(8), Buffer.alloc(alignUp(HEADER_BYTES + list.length, ALIGNMENT) - HEADER_BYTES - list.length)]);
    await expectRefusedPlainAndGzip('values', plain, 'MEMJOB_ERR_FORMAT', (result) => expect(result.message).toContain(`it holds more than ${2 ** 26} values`));
  });

  it('a gzip holding a Memmap too large for one view is refused before inflating, with advice for a compressed file', async () => {
    const bytes = alignUp(maxViewBytes + 1, 64 * MIB);
    const structure = packr.pack([[[0, bytes]], [8, 'Memmap', 'uint8', [bytes], 'C', 0]]);
    const file = scratch.file('huge-memmap.mjdump.gz');
    const head = rawDump(structure, bytes);
    writeFileSync(file, Buffer.concat([zlib.gzipSync(head), ...gzipZeros(bytes)]));
    await expectRefused(
      file,
      'MEMJOB_ERR_VIEW_TOO_LARGE',
      (result) => {
        expect(result.message).toContain('decompress it to a plain dump');
        expect(result.message).toContain('gunzip');
      },
      ['load', 'loadSync'],
    );
    // inspect describes it: nothing is inflated past the structure.
    const shown = await api('inspect', file);
    expect(shown.code).toBe('ok');
    expectBounded(shown);
  });
});

describe('msgpack extensions never run on a file', () => {
  const withTree = (tree: Buffer): Buffer => rawDump(Buffer.concat([Buffer.from([0x92, 0x90]), tree]));

  it("msgpackr's BigInt extension: an 8 MB one is refused at once, with a short message", async () => {
    const payload = Buffer.alloc(8 * MIB, 0x7f);
    const ext = Buffer.concat([Buffer.from([0xc9]), Buffer.from([0, 0, 0, 0]), Buffer.from([0x42]), payload]);
    ext.writeUInt32BE(payload.length, 1);
    await expectRefusedPlainAndGzip('bigint', withTree(ext), 'MEMJOB_ERR_FORMAT', (result) => {
      expect(result.message).toMatch(/unexpected msgpack extension \(format byte 0xc9\) at byte 2 in the structure/);
      expect(result.messageLength).toBeLessThan(500);
    });
  });

  it('an extension another module registered with addExtension is never called', async () => {
    const calls: string[] = [];
    addExtension({ type: 0x10, Class: class Registered {}, pack: () => Buffer.alloc(0), unpack: (data: Buffer) => calls.push(data.toString()) });
    const file = scratch.file('registered.mjdump');
    writeFileSync(file, withTree(Buffer.from([0xd4, 0x10, 0x21])));
    for (const attempt of [() => loadSync(file), () => load(file), () => loadSync(file, { mmapMode: 'r' })]) {
      const error = await Promise.resolve()
        .then(attempt)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(MemjobError);
      expect((error as MemjobError).code).toBe('MEMJOB_ERR_FORMAT');
    }
    expect(calls).toEqual([]);
  });

  it('long values in messages are cut: strings, bigints, unknown tags', async () => {
    expect(describeValue(2n ** 27_000_000n).length).toBeLessThan(80);
    expect(describeValue(-(2n ** 200n))).toBe('-0x1000000000000000... (bigint of 204 bits)');
    expect(describeValue(123n)).toBe('123 (bigint)');
    const file = scratch.file('long-tag.mjdump');
    writeFileSync(file, rawDump(packr.pack([[], ['t'.repeat(8 * MIB)]])));
    const result = await api('loadSync', file);
    expect(result.code).toBe('MEMJOB_ERR_FORMAT');
    expect(result.messageLength).toBeLessThan(500);
    expectBounded(result);
  });
});
