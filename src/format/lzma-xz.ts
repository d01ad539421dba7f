/**
 * The .xz container (tukaani's xz-file-format-1.1.0.txt) around LZMA2 (the filter Python's lzma
 * module writes): stream header, blocks, index, footer, concatenated streams and stream padding.
 * Only the LZMA2 filter is decoded: a block with another filter (BCJ, delta), which Python writes
 * only when asked to, is refused. Each block's CRC32 or CRC64 check (Python writes CRC64) is verified;
 * SHA-256 checks are skipped. The index is checked against what the blocks decoded to.
 */
import type { BoundedOutput } from './lz4-frame.js';
import { LzmaDecoder, lzmaError, lzmaProps } from './lzma-decoder.js';

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

/** CRC tables, built on first use: CRC32 (IEEE, reflected) and CRC64 (ECMA-182, reflected, as hi/lo halves). */
let crcTables: { crc32: Uint32Array; lo: Uint32Array; hi: Uint32Array } | undefined;

function tables(): NonNullable<typeof crcTables> {
  if (crcTables !== undefined) return crcTables;
  const crc32 = new Uint32Array(256);
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    let l = i;
    let h = 0;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      const carry = l & 1;
      l = (l >>> 1) | ((h & 1) << 31);
      h >>>= 1;
      if (carry) {
        l ^= 0xd7870f42;
        h ^= 0xc96c5795;
      }
    }
    crc32[i] = c >>> 0;
    lo[i] = l >>> 0;
    hi[i] = h >>> 0;
  }
  return (crcTables = { crc32, lo, hi });
}

/** Whether `data`'s xz check of type `type` equals the stored one at src[at] (true for the types not verified). */
function checkMatches(type: number, data: Uint8Array, src: Uint8Array, at: number): boolean {
  const t = tables();
  const stored = (i: number): number => (src[at + i]! | (src[at + i + 1]! << 8) | (src[at + i + 2]! << 16) | (src[at + i + 3]! << 24)) >>> 0;
  if (type === 1) {
    let c = 0xffffffff;
    for (let i = 0; i < data.length; i++) c = t.crc32[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0 === stored(0);
  }
  if (type === 4) {
    let l = 0xffffffff;
    let h = 0xffffffff;
    for (let i = 0; i < data.length; i++) {
      const x = (l ^ data[i]!) & 0xff;
      l = ((l >>> 8) | (h << 24)) ^ t.lo[x]!;
      h = (h >>> 8) ^ t.hi[x]!;
    }
    return (l ^ 0xffffffff) >>> 0 === stored(0) && (h ^ 0xffffffff) >>> 0 === stored(4);
  }
  return true;
}

/** A multibyte integer of the xz format (7 bits a byte, at most 9 bytes). */
function varint(src: Uint8Array, at: number, end: number): [number, number] {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= end) throw lzmaError('a multibyte integer', at + i);
    const b = src[at + i]!;
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) {
      if (b === 0 && i > 0) throw lzmaError('a multibyte integer without a trailing zero byte', at + i);
      if (!Number.isSafeInteger(value)) throw lzmaError('a multibyte integer below 2^53', at);
      return [value, at + i + 1];
    }
  }
  throw lzmaError('a multibyte integer of at most 9 bytes', at);
}

/** LZMA2's dictionary size byte (40 means 4 GiB - 1). */
function dictSizeOf(byte: number, at: number): number {
  if (byte > 40) throw lzmaError('an LZMA2 dictionary size byte of at most 40', at);
  return byte === 40 ? 0xffffffff : (2 | (byte & 1)) * 2 ** (Math.floor(byte / 2) + 11);
}

/** Every stream of an .xz file, yielding after each LZMA2 chunk. */
export function* decodeXz(src: Uint8Array, out: BoundedOutput): Generator<void, void, void> {
  let at = 0;
  do {
    at = yield* decodeStream(src, at, out);
    // Stream padding: zero bytes in groups of four, then maybe another stream.
    while (at < src.length && src[at] === 0) at++;
    if (at % 4 !== 0) throw lzmaError('stream padding in groups of 4 bytes', at);
  } while (at < src.length);
}

function* decodeStream(src: Uint8Array, start: number, out: BoundedOutput): Generator<void, number, void> {
  if (src.length - start < 12 || !MAGIC.every((b, i) => src[start + i] === b)) throw lzmaError('the xz magic bytes', start);
  if (src[start + 6] !== 0 || (src[start + 7]! & 0xf0) !== 0) throw lzmaError('xz stream flags', start + 6);
  const checkType = src[start + 7]! & 0x0f;
  const checkSize = CHECK_SIZES[checkType]!;
  let at = start + 12;
  const sizes: number[] = [];
  for (;;) {
    if (at >= src.length) throw lzmaError('a block header or the index', at);
    if (src[at] === 0) break; // the index indicator
    const blockStart = at;
    const produced = out.length;
    at = yield* decodeBlock(src, at, out);
    sizes.push(out.length - produced);
    while ((at - blockStart) % 4 !== 0) if (src[at++] !== 0) throw lzmaError('block padding', at - 1);
    if (at + checkSize > src.length) throw lzmaError('the block check', at);
    if (!checkMatches(checkType, out.buffer.subarray(produced, out.length), src, at)) throw lzmaError(`a block whose ${checkType === 1 ? 'CRC32' : 'CRC64'} matches its data`, at);
    at += checkSize;
  }
  // The index: a record (unpadded size, uncompressed size) per block; the uncompressed sizes must match.
  const indexStart = at;
  let count: number;
  [count, at] = varint(src, at + 1, src.length);
  if (count !== sizes.length) throw lzmaError(`an index of ${sizes.length} records`, indexStart);
  for (let i = 0; i < count; i++) {
    let uncompressed: number;
    [, at] = varint(src, at, src.length);
    [uncompressed, at] = varint(src, at, src.length);
    if (uncompressed !== sizes[i]) throw lzmaError(`an index that says block ${i} holds ${sizes[i]} bytes`, at);
  }
  while ((at - indexStart) % 4 !== 0) if (src[at++] !== 0) throw lzmaError('index padding', at - 1);
  at += 4; // the index CRC32
  // The footer: CRC32, backward size, flags (as the header's), 'YZ'.
  if (at + 12 > src.length || src[at + 10] !== 0x59 || src[at + 11] !== 0x5a) throw lzmaError('the xz stream footer', at);
  if (src[at + 8] !== src[start + 6] || src[at + 9] !== src[start + 7]) throw lzmaError('footer flags equal to the header flags', at + 8);
  return at + 12;
}

/** One block: its header (a single LZMA2 filter), then LZMA2 chunks up to the end marker. */
function* decodeBlock(src: Uint8Array, start: number, out: BoundedOutput): Generator<void, number, void> {
  const headerSize = (src[start]! + 1) * 4;
  const headerEnd = start + headerSize;
  if (headerEnd > src.length) throw lzmaError('a whole block header', start);
  const flags = src[start + 1]!;
  if ((flags & 0x3c) !== 0) throw lzmaError('block flags without reserved bits', start + 1);
  if ((flags & 0x03) !== 0) throw lzmaError('a block with the LZMA2 filter only (no BCJ or delta filter)', start + 1);
  let at = start + 2;
  let declared: number | null = null;
  if (flags & 0x40) [, at] = varint(src, at, headerEnd - 4); // compressed size
  if (flags & 0x80) [declared, at] = varint(src, at, headerEnd - 4);
  let id: number;
  let propsSize: number;
  [id, at] = varint(src, at, headerEnd - 4);
  [propsSize, at] = varint(src, at, headerEnd - 4);
  if (id !== 0x21 || propsSize !== 1 || at >= headerEnd - 4) throw lzmaError('the LZMA2 filter (id 0x21, one property byte)', at);
  const dictSize = dictSizeOf(src[at]!, at);
  const produced = out.length;
  const end = yield* decodeLzma2(src, headerEnd, out, dictSize);
  if (declared !== null && out.length - produced !== declared) throw lzmaError(`a block of ${declared} bytes, as its header says`, end);
  return end;
}

/** LZMA2 chunks from `at` to their end marker (0x00); returns the offset after it. */
export function* decodeLzma2(src: Uint8Array, at: number, out: BoundedOutput, dictSize: number): Generator<void, number, void> {
  const decoder = new LzmaDecoder(out, dictSize);
  let needDict = true;
  let needProps = true;
  for (;;) {
    if (at >= src.length) throw lzmaError('an LZMA2 chunk', at);
    const control = src[at]!;
    if (control === 0) return at + 1;
    if (control === 1 || control === 2) {
      // An uncompressed chunk (1: after a dictionary reset).
      if (at + 3 > src.length) throw lzmaError('an uncompressed chunk size', at);
      if (control === 1) decoder.dictStart = out.length;
      else if (needDict) throw lzmaError('a dictionary reset first', at);
      needDict = false;
      const size = ((src[at + 1]! << 8) | src[at + 2]!) + 1;
      if (at + 3 + size > src.length) throw lzmaError(`${size} bytes of an uncompressed chunk`, at + 3);
      out.push(src.subarray(at + 3, at + 3 + size));
      at += 3 + size;
    } else if (control >= 0x80) {
      if (at + 5 > src.length) throw lzmaError('an LZMA chunk header', at);
      const reset = (control >> 5) & 3;
      const size = (control & 0x1f) * 65536 + ((src[at + 1]! << 8) | src[at + 2]!) + 1;
      const packed = ((src[at + 3]! << 8) | src[at + 4]!) + 1;
      at += 5;
      if (reset === 3) {
        decoder.dictStart = out.length;
        needDict = false;
      } else if (needDict) throw lzmaError('a dictionary reset first', at - 5);
      if (reset >= 2) {
        const props = lzmaProps(src[at]!, at);
        if (props.lc + props.lp > 4) throw lzmaError('LZMA2 properties with lc + lp at most 4', at);
        decoder.setProps(props);
        needProps = false;
        at++;
      } else if (needProps) throw lzmaError('LZMA2 properties first', at - 5);
      if (reset >= 1) decoder.resetState();
      if (at + packed > src.length) throw lzmaError(`${packed} bytes of an LZMA chunk`, at);
      if (size > out.limit - out.length) throw out.limitError();
      const end = decoder.decode(src, at, at + packed, size, false);
      if (end !== at + packed) throw lzmaError(`an LZMA chunk of ${packed} bytes`, end);
      at = end;
    } else {
      throw lzmaError('an LZMA2 control byte (0, 1, 2 or 0x80 and above)', at);
    }
    yield;
  }
}
