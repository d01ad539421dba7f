/**
 * Shared by test/dump-fuzz.test.ts (a few thousand cases in `npm test`) and
 * test/fuzz/dump-fuzz.ts (the long run): the seed files, the mutations that
 * corrupt them, and the verdict on what load() did with each result.
 *
 * Every case is a pure function of (run seed, case number), so any failure
 * can be rebuilt from the two numbers a failure message prints.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { Packr, Unpackr } from 'msgpackr';
import { ErrorCodes, Memmap, MemjobError, NDArray, dumpSync, load, loadSync, maxViewBytes, memmap, ndarray } from '../../src/index.js';
import { HEADER_BYTES, MAGIC, alignUp, encodeHeader } from '../../src/format/header.js';

// ---------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
}

/** mulberry32: small, fast, and good enough to drive a fuzzer reproducibly. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    range: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(items.length)]!;
    },
    bytes: (n) => {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    },
  };
}

/** The generator for one case: mixes the run seed and the case number, so cases are independent of each other. */
export function caseRng(seed: number, caseNo: number): Rng {
  let h = (seed ^ Math.imul(caseNo + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return mulberry32((h ^ (h >>> 16)) >>> 0);
}

export function randomSeed(): number {
  return (Math.floor(Math.random() * 2 ** 32) ^ Date.now()) >>> 0;
}

// ---------------------------------------------------------------------------
// Seed files
// ---------------------------------------------------------------------------

export type Method = 'gzip' | 'zlib' | 'brotli';

export interface Layout {
  structureOffset: number;
  structureLength: number;
  dataOffset: number;
  dataLength: number;
}

export interface SeedFile {
  name: string;
  /** null for a plain dump. */
  method: Method | null;
  /** The file as dumpSync wrote it. */
  bytes: Buffer;
  /** The uncompressed dump (equal to `bytes` for a plain seed). */
  plain: Buffer;
  layout: Layout;
}

function compress(bytes: Buffer, method: Method): Buffer {
  if (method === 'gzip') return zlib.gzipSync(bytes, { level: 3 });
  if (method === 'zlib') return zlib.deflateSync(bytes, { level: 3 });
  return zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } });
}

function decompress(bytes: Buffer, method: Method): Buffer {
  if (method === 'gzip') return zlib.gunzipSync(bytes);
  if (method === 'zlib') return zlib.inflateSync(bytes);
  return zlib.brotliDecompressSync(bytes);
}

export function readLayout(plain: Buffer): Layout {
  if (!MAGIC.equals(plain.subarray(0, MAGIC.length))) throw new Error('seed is not a memjob dump');
  return {
    structureOffset: Number(plain.readBigUInt64LE(24)),
    structureLength: Number(plain.readBigUInt64LE(32)),
    dataOffset: Number(plain.readBigUInt64LE(40)),
    dataLength: Number(plain.readBigUInt64LE(48)),
  };
}

/** The values dumped as seeds: every kind of node the format has. */
function seedValues(dir: string): { name: string; value: unknown; close?: () => void }[] {
  const shared = new Float64Array([1.5, -2.25, Math.PI, Number.NaN, Infinity, -0]);
  const sharedBytes = Buffer.from('shared buffer bytes, twice');
  const rich = {
    name: 'memjob fuzz seed',
    count: 42,
    ratio: -0.125,
    negZero: -0,
    big: 12345678901234567890123456789n,
    negBig: -42n,
    when: new Date(Date.UTC(2024, 1, 29, 12, 0, 0)),
    nothing: null,
    missing: undefined,
    flag: true,
    nested: { list: [1, 'two', [3, [4, { five: 5 }]]], empty: {}, emptyList: [] },
    map: new Map<unknown, unknown>([
      ['a', 1],
      [2, new Set([1, 'x', shared])],
      [shared, 'array as a key'],
    ]),
    set: new Set(['p', 'q', 7n]),
    f64: shared,
    again: shared,
    i32: new Int32Array([-1, 0, 1, 2 ** 31 - 1, -(2 ** 31)]),
    i64: new BigInt64Array([-1n, 0n, 2n ** 62n]),
    u8: new Uint8Array([0, 1, 2, 253, 254, 255, 7]),
    buffer: sharedBytes,
    bufferAgain: sharedBytes,
    nd: ndarray(new Float32Array(12).map((_, i) => i * 0.5), { shape: [3, 4], order: 'F' }),
  };
  const mmPath = join(dir, 'seed-memmap.bin');
  const mm = memmap(mmPath, { mode: 'w+', dtype: 'int16', shape: [4, 5] });
  mm.data.set(Int16Array.from({ length: 20 }, (_, i) => i * 7 - 50));
  const arrays = {
    u16: new Uint16Array([1, 2, 65535]),
    u32: new Uint32Array([4294967295, 0, 17]),
    u64: new BigUint64Array([2n ** 64n - 1n, 5n]),
    i8: new Int8Array([-128, 127, 0]),
    i16: new Int16Array(0),
    f32: new Float32Array([0.5, -1, 3.25]),
    clamped: new Uint8ClampedArray([0, 128, 255]),
    arrayBuffer: new Uint8Array([9, 8, 7, 6, 5]).buffer,
    dataView: new DataView(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer, 2, 5),
    bools: ndarray(new Uint8Array([1, 0, 1, 1, 0, 0]), { shape: [2, 3], dtype: 'bool' }),
    cube: ndarray(new Float64Array(24).fill(0.25), { shape: [2, 3, 4] }),
    scalar: ndarray(new Int32Array([5]), { shape: [] }),
    emptyNd: ndarray(new Float64Array(0), { shape: [0, 3] }),
    memmap: mm,
    list: [new Float64Array([1, 2]), new Float64Array([3, 4, 5]), 'end'],
  };
  const scalars = { a: 1, b: 'text', c: [true, false, null], d: -1.5e300, e: { f: ['g', { h: 'i' }] }, n: -0, u: undefined, z: 0n };
  return [
    { name: 'rich', value: rich },
    { name: 'arrays', value: arrays, close: () => mm.close() },
    { name: 'scalars', value: scalars },
    { name: 'bare-array', value: new Float64Array([1, 2, 3, 4, 5, 6, 7, 8]) },
  ];
}

/** Writes the seed files into `dir` with dumpSync and reads them back. */
export function buildSeeds(dir: string): SeedFile[] {
  const seeds: SeedFile[] = [];
  const values = seedValues(dir);
  const dumpSeed = (name: string, value: unknown, method: Method | null): void => {
    const file = join(dir, `seed-${name}.bin`);
    dumpSync(value, file, method === null ? {} : { compress: method });
    const bytes = readFileSync(file);
    rmSync(file);
    const plain = method === null ? bytes : decompress(bytes, method);
    seeds.push({ name: method === null ? name : `${name}.${method}`, method, bytes, plain, layout: readLayout(plain) });
  };
  try {
    for (const { name, value } of values) dumpSeed(name, value, null);
    const rich = values[0]!.value;
    const arrays = values[1]!.value;
    dumpSeed('rich', rich, 'gzip');
    dumpSeed('arrays', arrays, 'brotli');
    dumpSeed('scalars', values[2]!.value, 'zlib');
  } finally {
    for (const v of values) v.close?.();
    rmSync(join(dir, 'seed-memmap.bin'), { force: true });
  }
  return seeds;
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

export interface FuzzCase {
  caseNo: number;
  seedName: string;
  /** What was done, step by step, with byte positions: enough to redo it by hand. */
  mutation: string;
  bytes: Buffer;
}

const U64_FIELDS = [
  { at: 24, name: 'structureOffset' },
  { at: 32, name: 'structureLength' },
  { at: 40, name: 'dataOffset' },
  { at: 48, name: 'dataLength' },
] as const;

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

function flipBytes(bytes: Buffer, rng: Rng, lo: number, hi: number, count: number, log: string[], label: string): void {
  if (hi <= lo) return;
  for (let i = 0; i < count; i++) {
    const at = rng.range(lo, hi - 1);
    const before = bytes[at]!;
    const after = rng.chance(0.5) ? before ^ (1 << rng.int(8)) : rng.chance(0.5) ? rng.pick([0x00, 0xff, 0x7f, 0x80, 0x40, 0x3f]) : rng.int(256);
    bytes[at] = after;
    log.push(`${label}@${at}:${hex(before)}->${hex(after)}`);
  }
}

function truncateAt(bytes: Buffer, rng: Rng, layout: Layout | null, log: string[]): Buffer {
  const size = bytes.length;
  const choices: number[] = [0, rng.range(1, 8), rng.range(8, 63), 63, 64, 65, size - 1, rng.int(size)];
  if (layout !== null) {
    const structureEnd = layout.structureOffset + layout.structureLength;
    choices.push(rng.range(layout.structureOffset, Math.max(layout.structureOffset, structureEnd - 1)), structureEnd, layout.dataOffset);
    if (layout.dataLength > 0) choices.push(rng.range(layout.dataOffset, layout.dataOffset + layout.dataLength - 1), layout.dataOffset + layout.dataLength - 1);
  }
  const length = Math.max(0, Math.min(size, rng.pick(choices)));
  log.push(`truncate:${size}->${length}`);
  return bytes.subarray(0, length);
}

function appendGarbage(bytes: Buffer, rng: Rng, log: string[]): Buffer {
  const kind = rng.int(4);
  let tail: Buffer;
  if (kind === 0) tail = rng.bytes(rng.range(1, 256));
  else if (kind === 1) tail = Buffer.alloc(rng.range(1, 4096));
  else if (kind === 2) tail = Buffer.from(bytes);
  else tail = Buffer.from(MAGIC);
  log.push(`append:${tail.length} bytes(kind ${kind})`);
  return Buffer.concat([bytes, tail]);
}

/** Values a lying u64 header field takes: around the truth, around the file's end, and impossible. */
function lyingU64(rng: Rng, current: number, size: number): bigint {
  const candidates: bigint[] = [
    0n, 1n, 8n, 63n, 64n, 65n, 127n, 128n,
    BigInt(current + 1), BigInt(Math.max(0, current - 1)), BigInt(current + 64), BigInt(Math.max(0, current - 64)),
    BigInt(current + rng.range(1, 63)), BigInt(current * 2), BigInt(size), BigInt(size + 1), BigInt(Math.max(0, size - 1)),
    BigInt(alignUp(size, 64)), BigInt(alignUp(size, 64) + 64),
    2n ** 31n, 2n ** 32n, 2n ** 32n + BigInt(current), 2n ** 40n, 2n ** 53n - 64n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n,
    BigInt(rng.int(2 ** 32)),
  ];
  return BigInt.asUintN(64, rng.pick(candidates));
}

function rewriteHeaderField(bytes: Buffer, rng: Rng, log: string[]): void {
  if (bytes.length < HEADER_BYTES) return;
  const which = rng.int(10);
  if (which < 6) {
    const field = rng.pick(U64_FIELDS);
    const current = Number(bytes.readBigUInt64LE(field.at));
    const value = lyingU64(rng, current, bytes.length);
    bytes.writeBigUInt64LE(value, field.at);
    log.push(`header.${field.name}:${current}->${value}`);
  } else if (which < 8) {
    const value = rng.pick([0, 1, 2, 3, 4, 7, 8, 16, 24, 32, 63, 64, 65, 128, 4096, 1 << 20, 1 << 21, 2 ** 31, 2 ** 32 - 1]);
    log.push(`header.alignment:${bytes.readUInt32LE(12)}->${value}`);
    bytes.writeUInt32LE(value, 12);
  } else if (which < 9) {
    const value = rng.pick([0, 32, 63, 65, 128, 2 ** 32 - 1]);
    log.push(`header.headerLength:${bytes.readUInt32LE(16)}->${value}`);
    bytes.writeUInt32LE(value, 16);
  } else {
    const at = rng.pick([8, 10, 20]);
    const value = at === 20 ? rng.int(2 ** 32) : rng.pick([0, 1, 2, 0xffff, rng.int(0x10000)]);
    log.push(`header@${at}:->${value}`);
    if (at === 20) bytes.writeUInt32LE(value, at);
    else bytes.writeUInt16LE(value, at);
  }
}

interface MsgpackToken {
  pos: number;
  kind: 'int' | 'count' | 'str';
  /** Bytes of the value after the type byte; 0 when the value is inside the type byte (fixint, fixarray, fixstr). */
  width: number;
}

/** Walks msgpack bytes token by token (containers only prefix their items), listing integers, counts and strings. */
export function scanMsgpack(buf: Buffer, start: number, end: number): MsgpackToken[] {
  const tokens: MsgpackToken[] = [];
  const uint = (at: number, width: number): number => {
    if (at + width > end) return Infinity;
    return width === 1 ? buf[at]! : width === 2 ? buf.readUInt16BE(at) : buf.readUInt32BE(at);
  };
  let p = start;
  while (p < end) {
    const b = buf[p]!;
    if (b <= 0x7f || b >= 0xe0) {
      tokens.push({ pos: p, kind: 'int', width: 0 });
      p += 1;
    } else if (b <= 0x9f) {
      tokens.push({ pos: p, kind: 'count', width: 0 });
      p += 1;
    } else if (b <= 0xbf) {
      tokens.push({ pos: p, kind: 'str', width: 0 });
      p += 1 + (b & 0x1f);
    } else if (b >= 0xcc && b <= 0xd3) {
      const width = 1 << (b & 0x03);
      tokens.push({ pos: p, kind: 'int', width });
      p += 1 + width;
    } else if (b === 0xdc || b === 0xdd || b === 0xde || b === 0xdf) {
      const width = b === 0xdc || b === 0xde ? 2 : 4;
      tokens.push({ pos: p, kind: 'count', width });
      p += 1 + width;
    } else if (b === 0xd9 || b === 0xda || b === 0xdb) {
      const width = 1 << (b - 0xd9);
      tokens.push({ pos: p, kind: 'str', width });
      p += 1 + width + uint(p + 1, width);
    } else if (b === 0xc4 || b === 0xc5 || b === 0xc6) {
      const width = 1 << (b - 0xc4);
      p += 1 + width + uint(p + 1, width);
    } else if (b === 0xc7 || b === 0xc8 || b === 0xc9) {
      const width = 1 << (b - 0xc7);
      p += 2 + width + uint(p + 1, width);
    } else if (b >= 0xd4 && b <= 0xd8) {
      p += 2 + (1 << (b - 0xd4));
    } else if (b === 0xca) p += 5;
    else if (b === 0xcb) p += 9;
    else p += 1; // nil, false, true, 0xc1
  }
  return tokens;
}

/** Rewrites one msgpack integer, count or string length in place (same width, so nothing shifts). */
function rewriteMsgpackToken(bytes: Buffer, layout: Layout, rng: Rng, log: string[]): void {
  const end = Math.min(bytes.length, layout.structureOffset + layout.structureLength);
  const tokens = scanMsgpack(bytes, layout.structureOffset, end);
  if (tokens.length === 0) return;
  // Integers (segment offsets and lengths, shape dims, segment indices, tags) most of the time.
  const ints = tokens.filter((t) => t.kind === 'int');
  const token = ints.length > 0 && rng.chance(0.75) ? rng.pick(ints) : rng.pick(tokens);
  const before = bytes.subarray(token.pos, token.pos + 1 + token.width).toString('hex');
  if (token.width === 0) {
    const b = bytes[token.pos]!;
    if (token.kind === 'int') bytes[token.pos] = rng.pick([0x00, 0x01, 0x07, 0x08, 0x3f, 0x40, 0x41, 0x7f, 0xff, 0xe0, rng.int(0x80), (b + 1) & 0x7f]);
    else bytes[token.pos] = (b & 0xf0) | (token.kind === 'str' ? rng.int(0x20) : rng.int(0x10)) | (token.kind === 'str' ? 0xa0 : 0);
  } else {
    const payload = bytes.subarray(token.pos + 1, token.pos + 1 + token.width);
    const style = rng.int(5);
    if (style === 0) payload.fill(0xff);
    else if (style === 1) payload.fill(0);
    else if (style === 2) {
      payload.fill(0);
      payload[0] = 0x80;
    } else if (style === 3) rng.bytes(payload.length).copy(payload);
    else {
      // off by one (or 64) in the last byte
      const last = payload.length - 1;
      payload[last] = (payload[last]! + rng.pick([1, 255, 64, 192])) & 0xff;
    }
  }
  log.push(`msgpack@${token.pos}(${token.kind}):${before}->${bytes.subarray(token.pos, token.pos + 1 + token.width).toString('hex')}`);
}

/** Inserts or deletes bytes inside the structure region without fixing the header, so everything after shifts. */
function spliceStructure(bytes: Buffer, layout: Layout, rng: Rng, log: string[]): Buffer {
  const lo = layout.structureOffset;
  const hi = Math.min(bytes.length, layout.structureOffset + layout.structureLength);
  if (hi <= lo) return bytes;
  const at = rng.range(lo, hi - 1);
  if (rng.chance(0.5)) {
    const n = rng.range(1, 16);
    log.push(`delete@${at}:${n}`);
    return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + n))]);
  }
  const insert = rng.chance(0.5) ? rng.bytes(rng.range(1, 16)) : rng.pick(rawFragments(rng));
  log.push(`insert@${at}:${insert.toString('hex')}`);
  return Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]);
}

// --- structure-aware mutation: decode the tree, change it, encode it again ---

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, structuredClone: false, int64AsType: 'number' });

const DTYPE_NAMES = ['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'float32', 'float64', 'bool'];
const KIND_NAMES = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'BigInt64Array', 'BigUint64Array', 'Float32Array', 'Float64Array', 'Buffer', 'ArrayBuffer', 'DataView', 'NDArray', 'Memmap',
];

function interestingNumber(rng: Rng): unknown {
  return rng.pick<unknown>([
    0, 1, -1, 2, 5, 7, 8, 9, 63, 64, 65, 127, 128, 255, 256, 4096, 65535, 65536,
    2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 64, 2 ** 40, 2 ** 48, 2 ** 53 - 64, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e300,
    -64, -(2 ** 31), -(2 ** 53), 0.5, 1.5, 64.5, Number.NaN, Infinity, -Infinity,
    2n ** 63n - 1n, 2n ** 64n - 1n, -(2n ** 63n), 2n ** 53n + 1n,
  ]);
}

function interestingValue(rng: Rng): unknown {
  switch (rng.int(8)) {
    case 0:
    case 1:
      return interestingNumber(rng);
    case 2:
      return rng.pick([...DTYPE_NAMES, 'float16', 'complex64', 'object', '<f8', '']);
    case 3:
      return rng.pick([...KIND_NAMES, 'SharedArrayBuffer', 'Object', 'Function']);
    case 4:
      return rng.pick(['C', 'F', 'c', 'A', '__proto__', 'constructor', 'prototype', 'toString', 'x'.repeat(rng.pick([0, 1, 31, 32, 300]))]);
    case 5:
      return rng.pick<unknown>([null, true, false, [], [8], [1], [2, 'a'], [3, 'k'], [6, '1'.repeat(rng.pick([1, 20, 400]))], [6, 'x'], [5, 'now']]);
    case 6:
      // A descriptor, plausible or not.
      return [8, rng.pick(KIND_NAMES), rng.pick(DTYPE_NAMES), rng.chance(0.7) ? [rng.pick([0, 1, 2, 3, 4, 8, 2 ** 31, 2 ** 53 - 1])] : [interestingNumber(rng), interestingNumber(rng)], rng.pick(['C', 'F']), rng.pick([0, 1, 2, 3, -1, 1e9])];
    default:
      // A shape.
      return Array.from({ length: rng.pick([0, 1, 2, 3, 33, 64, 65]) }, () => (rng.chance(0.8) ? rng.pick([0, 1, 2, 3, 4]) : interestingNumber(rng)));
  }
}

function nudge(value: number, rng: Rng): number {
  return rng.pick([value + 1, value - 1, value + 64, value - 64, value * 2, value * 64, value + 2 ** 32, -value, value + 0.5, value + 8, value + 2 ** 53]);
}

/** A location in the decoded structure: item `index` of `parent`. */
interface Slot {
  parent: unknown[];
  index: number;
}

function slotsOf(root: unknown[]): Slot[] {
  const slots: Slot[] = [];
  const walk = (node: unknown[], depth: number): void => {
    if (depth > 64) return;
    node.forEach((child, index) => {
      slots.push({ parent: node, index });
      if (Array.isArray(child)) walk(child, depth + 1);
    });
  };
  walk(root, 0);
  return slots;
}

const clone = (value: unknown): unknown => (Array.isArray(value) ? value.map(clone) : value);

const RAW_MARK = '\u0001memjob-raw\u0001';

/** msgpack fragments a writer of this format never produces: records, extensions, lying containers, deep nesting. */
function rawFragments(rng: Rng): Buffer[] {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from(b.length < 32 ? [0xa0 | b.length] : [0xd9, b.length]), b]);
  };
  const keys = ['constructor', 'name', 'toString', 'valueOf', '__proto__', 'polluted', 'length', 'a'];
  let recordId = rng.int(8);
  const record = (depth: number): Buffer => {
    const n = rng.range(1, 3);
    // Often the chain constructor -> name -> toString that describe() reads from an object.
    const picked = Array.from({ length: n }, () => (rng.chance(0.5) ? (['constructor', 'name', 'toString'][depth] ?? 'a') : rng.pick(keys)));
    const parts: Buffer[] = [Buffer.from([0xd4, 0x72, recordId++ & 0x3f, 0x90 | n]), ...picked.map(str)];
    for (let i = 0; i < n; i++) {
      const r = rng.chance(0.4) ? 0 : rng.int(5);
      parts.push(r === 0 && depth < 2 ? record(depth + 1) : r === 1 ? str(rng.pick(['x', 'Map', 'Object'])) : r === 2 ? Buffer.from([0x92, 0x01, 0x02]) : Buffer.from([rng.int(0x80)]));
    }
    return Buffer.concat(parts);
  };
  const nest = (n: number, open: number[], leaf: number[]): Buffer => {
    const out = Buffer.alloc(n * open.length + leaf.length);
    for (let i = 0; i < n; i++) out.set(open, i * open.length);
    out.set(leaf, n * open.length);
    return out;
  };
  return [
    record(0),
    Buffer.from([0xd4, 0x42, rng.int(256)]), // bigint extension
    Buffer.concat([Buffer.from([0xc7, 24, 0x42]), rng.bytes(24)]),
    Buffer.from([0xd6, 0xff, 0, 0, 0, 1]), // timestamp
    Buffer.from([0xd7, 0xff, ...rng.bytes(8)]),
    Buffer.from([0xd4, 0x73, 0x00, 0x92, 0x01, 0x02]), // Set
    Buffer.from([0xc7, 3, 0x74, rng.int(20), 1, 2]), // typed array
    Buffer.concat([Buffer.from([0xd4, 0x65, 0x00, 0x93]), str(rng.pick(['TypeError', 'constructor', '__proto__', 'X'])), str('boom'), Buffer.from([0xc0])]), // Error
    Buffer.concat([Buffer.from([0xd4, 0x78, 0x00, 0x92]), str(rng.pick(['(a', 'a+', '(a+)+$'])), str(rng.pick(['g', 'zz']))]), // RegExp
    Buffer.from([0xd6, 0x69, 0, 0, 0, 1, 0x90]), // structured-clone id
    Buffer.from([0xd6, 0x70, 0, 0, 0, 1]), // structured-clone pointer
    Buffer.from([0xd6, 0x62, ...rng.bytes(4)]), // bundled strings
    Buffer.from([0xd4, rng.int(256), rng.int(256)]), // any fixext1
    Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 2^32-1 items, none present
    Buffer.from([0xdd, 0x10, 0x00, 0x00, 0x00]),
    Buffer.from([0xdf, 0x7f, 0xff, 0xff, 0xff]), // map32
    Buffer.from([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41]), // str32
    Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff]), // bin32
    Buffer.from([0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01]), // ext32
    Buffer.from([0xcf, ...rng.bytes(8)]), // uint64
    Buffer.from([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]), // int64 min
    Buffer.from([0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1]), // NaN
    Buffer.from([0xca, 0x7f, 0x80, 0, 0]), // float32 Infinity
    Buffer.from([0xa3, 0xff, 0xfe, 0xc0]), // invalid UTF-8
    Buffer.from([0xc1]), // never-used type byte
    Buffer.concat([Buffer.from([0x81]), str('__proto__'), Buffer.from([0x81]), str('polluted'), Buffer.from([0xc3])]), // map with a __proto__ key
    Buffer.concat([Buffer.from([0x93, 0x02]), str('__proto__'), Buffer.from([0x93, 0x02]), str('polluted'), Buffer.from([0xc3])]), // object node with a __proto__ key
    nest(rng.pick([999, 1000, 1001, 2000]), [0x92, 0x01], [0xc0]), // [1, [1, [1, ...]]]
    nest(rng.pick([1001, 2500, 3000, 5000, 200_000]), [0x91], [0x00]), // [[[...]]]
  ];
}

function encodeTree(structure: unknown, raw: Buffer | null): Buffer {
  let packed = packr.pack(structure);
  if (raw !== null) {
    const mark = packr.pack(RAW_MARK);
    const at = packed.indexOf(mark);
    if (at >= 0) packed = Buffer.concat([packed.subarray(0, at), raw, packed.subarray(at + mark.length)]);
  }
  return packed;
}

/** A whole dump around `structure`, with the seed's data region copied after it. */
export function assemble(structure: Buffer, data: Buffer, alignment = 64): Buffer {
  const dataOffset = alignUp(HEADER_BYTES + structure.length, alignment);
  const out = Buffer.alloc(dataOffset + data.length);
  encodeHeader({ major: 1, minor: 0, alignment, structureOffset: HEADER_BYTES, structureLength: structure.length, dataOffset, dataLength: data.length }).copy(out);
  structure.copy(out, HEADER_BYTES);
  data.copy(out, dataOffset);
  return out;
}

function mutateTree(plain: Buffer, layout: Layout, rng: Rng, log: string[]): Buffer {
  const decoded = unpackr.unpack(plain.subarray(layout.structureOffset, layout.structureOffset + layout.structureLength)) as unknown;
  if (!Array.isArray(decoded)) return plain;
  const root: unknown[] = decoded;
  let raw: Buffer | null = null;
  const ops = rng.range(1, 3);
  for (let i = 0; i < ops; i++) {
    const slots = slotsOf(root);
    if (slots.length === 0) break;
    const numeric = slots.filter((s) => typeof s.parent[s.index] === 'number');
    const slot = numeric.length > 0 && rng.chance(0.4) ? rng.pick(numeric) : rng.pick(slots);
    const current = slot.parent[slot.index];
    const where = `[${slots.indexOf(slot)}]`;
    const op = rng.int(20);
    if (op < 7) {
      const value = interestingValue(rng);
      slot.parent[slot.index] = value;
      log.push(`tree${where}:replace ${describeShort(current)} -> ${describeShort(value)}`);
    } else if (op < 11 && typeof current === 'number') {
      const value = nudge(current, rng);
      slot.parent[slot.index] = value;
      log.push(`tree${where}:nudge ${current} -> ${value}`);
    } else if (op < 13) {
      slot.parent.splice(slot.index, 1);
      log.push(`tree${where}:delete ${describeShort(current)}`);
    } else if (op < 14) {
      const value = interestingValue(rng);
      slot.parent.splice(slot.index, 0, value);
      log.push(`tree${where}:insert ${describeShort(value)}`);
    } else if (op < 15) {
      const other = rng.pick(slots);
      const value = other.parent[other.index];
      other.parent[other.index] = current;
      slot.parent[slot.index] = value;
      log.push(`tree${where}:swap with [${slots.indexOf(other)}]`);
    } else if (op < 17) {
      const other = rng.pick(slots);
      const value = clone(other.parent[other.index]);
      slot.parent[slot.index] = value;
      log.push(`tree${where}:copy of [${slots.indexOf(other)}] ${describeShort(value)}`);
    } else if (raw === null) {
      raw = rng.pick(rawFragments(rng));
      slot.parent[slot.index] = RAW_MARK;
      log.push(`tree${where}:raw ${raw.subarray(0, 48).toString('hex')}${raw.length > 48 ? `...(${raw.length} bytes)` : ''}`);
    }
  }
  const data = plain.subarray(layout.dataOffset, layout.dataOffset + layout.dataLength);
  return assemble(encodeTree(root, raw), data);
}

function describeShort(value: unknown): string {
  try {
    const text = JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    if (text === undefined) return String(value);
    return text.length > 60 ? `${text.slice(0, 60)}...` : text;
  } catch {
    return String(value);
  }
}

/** One mutation of an uncompressed dump. */
function mutatePlain(plain: Buffer, rng: Rng, log: string[]): Buffer {
  const layout = readLayout(plain);
  const structureEnd = layout.structureOffset + layout.structureLength;
  const kind = rng.int(100);
  let bytes: Buffer = Buffer.from(plain);
  if (kind < 12) {
    flipBytes(bytes, rng, 0, bytes.length, rng.pick([1, 1, 2, 3, 8]), log, 'flip');
  } else if (kind < 22) {
    flipBytes(bytes, rng, 0, HEADER_BYTES, rng.pick([1, 1, 2, 4]), log, 'flip-header');
  } else if (kind < 34) {
    flipBytes(bytes, rng, layout.structureOffset, structureEnd, rng.pick([1, 1, 2, 3, 6]), log, 'flip-structure');
  } else if (kind < 44) {
    bytes = truncateAt(bytes, rng, layout, log);
  } else if (kind < 56) {
    rewriteHeaderField(bytes, rng, log);
    if (rng.chance(0.25)) rewriteHeaderField(bytes, rng, log);
  } else if (kind < 66) {
    rewriteMsgpackToken(bytes, layout, rng, log);
    if (rng.chance(0.3)) rewriteMsgpackToken(bytes, layout, rng, log);
  } else if (kind < 86) {
    bytes = mutateTree(plain, layout, rng, log);
  } else if (kind < 91) {
    bytes = appendGarbage(bytes, rng, log);
  } else if (kind < 96) {
    bytes = spliceStructure(bytes, layout, rng, log);
  } else {
    // Two at once: a tree change and a lying header, or flips and a truncation.
    bytes = rng.chance(0.5) ? mutateTree(plain, layout, rng, log) : bytes;
    if (rng.chance(0.5)) rewriteHeaderField(bytes, rng, log);
    else flipBytes(bytes, rng, 0, bytes.length, 2, log, 'flip');
    if (rng.chance(0.5)) bytes = truncateAt(bytes, rng, readLayoutOrNull(bytes), log);
  }
  return bytes;
}

function readLayoutOrNull(bytes: Buffer): Layout | null {
  try {
    const layout = readLayout(bytes);
    return Object.values(layout).every((v) => Number.isSafeInteger(v) && v <= bytes.length) ? layout : null;
  } catch {
    return null;
  }
}

/** One mutation of a compressed dump: of its compressed bytes, or of its content, compressed again. */
function mutateCompressed(seed: SeedFile & { method: Method }, rng: Rng, log: string[]): Buffer {
  const kind = rng.int(10);
  if (kind < 3) {
    const bytes = Buffer.from(seed.bytes);
    const headerish = rng.chance(0.3);
    flipBytes(bytes, rng, 0, headerish ? Math.min(16, bytes.length) : bytes.length, rng.pick([1, 1, 2, 4]), log, 'flip-compressed');
    return bytes;
  }
  if (kind < 5) return truncateAt(Buffer.from(seed.bytes), rng, null, log);
  if (kind < 6) return appendGarbage(Buffer.from(seed.bytes), rng, log);
  const inner = mutatePlain(seed.plain, rng, log);
  log.push(`recompress:${seed.method}`);
  return compress(inner, seed.method);
}

/** Case `caseNo` of the run seeded with `seed`. */
export function makeCase(seeds: readonly SeedFile[], seed: number, caseNo: number): FuzzCase {
  const rng = caseRng(seed, caseNo);
  const chosen = rng.pick(seeds);
  const log: string[] = [];
  const bytes = chosen.method === null ? mutatePlain(chosen.plain, rng, log) : mutateCompressed(chosen as SeedFile & { method: Method }, rng, log);
  return { caseNo, seedName: chosen.name, mutation: log.join('; ') || '(none)', bytes };
}

// ---------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------

export type Outcome = 'loaded' | 'format-error' | 'too-large';

export type Verdict = { ok: true; outcome: Outcome; message?: string } | { ok: false; problem: string };

/** The only acceptable failures: MEMJOB_ERR_FORMAT saying what is wrong, or an array too large for memory. */
export function judgeError(error: unknown): Verdict {
  if (error instanceof MemjobError) {
    if (error.code === ErrorCodes.FORMAT && /is not a valid memjob dump: \S/.test(error.message)) return { ok: true, outcome: 'format-error', message: error.message };
    if (error.code === ErrorCodes.VIEW_TOO_LARGE && /more than one ArrayBuffer can hold/.test(error.message)) return { ok: true, outcome: 'too-large', message: error.message };
  }
  return { ok: false, problem: `threw ${describeError(error)}` };
}

export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return `a non-Error: ${String(error)}`;
  const code = (error as { code?: unknown }).code;
  let text = `${error.constructor.name}${code === undefined ? '' : ` [${String(code)}]`}: ${error.message}`;
  const cause = error.cause;
  if (cause instanceof Error) text += ` (cause: ${cause.constructor.name}: ${cause.message}${cause.stack ? `\n${cause.stack.split('\n').slice(1, 4).join('\n')}` : ''})`;
  return text;
}

/**
 * Reads every byte of every array in a loaded value (proving that mapped
 * arrays lie inside the file: a byte past its end would raise SIGBUS) and
 * closes any Memmap. Returns the bytes' sum.
 */
export function touchValue(value: unknown): number {
  const seen = new Set<unknown>();
  let sum = 0;
  const bytes = (buffer: ArrayBufferLike, offset: number, length: number): void => {
    const view = new Uint8Array(buffer, offset, length);
    for (let i = 0; i < view.length; i++) sum += view[i]!;
  };
  const visit = (node: unknown, depth: number): void => {
    if (node === null || typeof node !== 'object' || seen.has(node) || depth > 2000) return;
    seen.add(node);
    if (node instanceof ArrayBuffer) bytes(node, 0, node.byteLength);
    else if (ArrayBuffer.isView(node)) bytes(node.buffer, node.byteOffset, node.byteLength);
    else if (node instanceof NDArray) visit(node.data, depth + 1);
    else if (node instanceof Memmap) {
      try {
        if (node.size > 0 && node.contiguous && node.nbytes <= maxViewBytes) visit(node.data, depth + 1);
      } finally {
        node.close();
      }
    } else if (node instanceof Map) {
      for (const [k, v] of node) {
        visit(k, depth + 1);
        visit(v, depth + 1);
      }
    } else if (node instanceof Set) for (const item of node) visit(item, depth + 1);
    else if (Array.isArray(node)) for (const item of node) visit(item, depth + 1);
    else if (!(node instanceof Date)) for (const key of Object.keys(node)) visit((node as Record<string, unknown>)[key], depth + 1);
  };
  visit(value, 0);
  return sum;
}

/** A sync load that takes longer than this is reported as a hang. */
export const HANG_MS = 5000;

export function checkSync(file: string, mmapMode: 'r' | null): Verdict {
  const started = performance.now();
  let verdict: Verdict;
  try {
    const value = mmapMode === null ? loadSync(file) : loadSync(file, { mmapMode });
    touchValue(value);
    verdict = { ok: true, outcome: 'loaded' };
  } catch (error) {
    verdict = judgeError(error);
  }
  const took = performance.now() - started;
  if (verdict.ok && took > HANG_MS) return { ok: false, problem: `took ${Math.round(took)} ms (outcome ${verdict.outcome})` };
  return verdict;
}

export async function checkAsync(file: string, timeoutMs = HANG_MS * 2): Promise<Verdict> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Verdict>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, problem: `await load() did not settle within ${timeoutMs} ms` }), timeoutMs);
  });
  const attempt = (async (): Promise<Verdict> => {
    try {
      touchValue(await load(file));
      return { ok: true, outcome: 'loaded' };
    } catch (error) {
      return judgeError(error);
    }
  })();
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Memory the process holds: resident pages plus ArrayBuffer memory (which may not be resident yet). */
export function memoryInUse(): number {
  const { rss, arrayBuffers } = process.memoryUsage();
  return rss + arrayBuffers;
}

export const MEMORY_LIMIT = 1024 * 1024 * 1024;

/**
 * Keeps load's "arrays were read into memory instead" warning for
 * compressed files out of the output (it is expected thousands of times
 * here). Returns the function that restores process.emitWarning.
 */
export function silenceCompressedMmapWarnings(): () => void {
  const original = process.emitWarning;
  const filtered = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    const options = rest[0];
    if (typeof options === 'object' && options !== null && (options as { code?: unknown }).code === 'MEMJOB_COMPRESSED_MMAP') return;
    (original as (...args: unknown[]) => void).call(this, warning, ...rest);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
  return () => {
    process.emitWarning = original;
  };
}
