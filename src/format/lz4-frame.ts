/**
 * A decoder of the LZ4 frame format (lz4/doc/lz4_Frame_format.md, what Python's lz4.frame and so
 * joblib's compress='lz4' write), written here because no npm package decodes a frame into a
 * bounded output: lz4-napi's decompressFrameSync allocates whatever the stream asks for. Blocks are
 * decoded straight into one growing output, so linked blocks reach back into earlier ones, and every
 * length, offset and block size is checked before it is used. Checksums are read but not verified
 * (a corrupt block is still caught when its sequences do not fit).
 */
import { ErrorCodes, MemjobError } from '../errors.js';

const FRAME_MAGIC = 0x184d2204;
const BLOCK_MAX = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

function broken(what: string, at: number): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `expected ${what} at byte ${at}, received something else`);
}

/** Output that grows by doubling up to `limit` bytes and never past it. */
export class BoundedOutput {
  buffer: Uint8Array;
  length = 0;

  constructor(
    readonly limit: number,
    initial: number,
    private readonly onLimit: () => Error,
  ) {
    this.buffer = new Uint8Array(Math.min(limit, Math.max(initial, 1 << 16)));
  }

  limitError(): Error {
    return this.onLimit();
  }

  /** Room for `n` more bytes, or the limit's error. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.buffer.length) return;
    if (need > this.limit) throw this.onLimit();
    const grown = new Uint8Array(Math.min(this.limit, Math.max(need, this.buffer.length * 2)));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  push(chunk: Uint8Array): void {
    this.reserve(chunk.length);
    this.buffer.set(chunk, this.length);
    this.length += chunk.length;
  }

  writeByte(byte: number): void {
    if (this.length === this.buffer.length) this.reserve(1);
    this.buffer[this.length++] = byte;
  }

  result(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

function u32(src: Uint8Array, at: number): number {
  if (at + 4 > src.length) throw broken('4 more bytes', at);
  return (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) >>> 0;
}

/**
 * Decodes every frame of `src` into `out`, yielding after each block so that an async caller can
 * let other work run between blocks.
 */
export function* decodeLz4Frames(src: Uint8Array, out: BoundedOutput): Generator<void, void, void> {
  let at = 0;
  while (at < src.length) {
    const magic = u32(src, at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      at += 8 + u32(src, at + 4); // a skippable frame
      if (at > src.length) throw broken('the end of a skippable frame', src.length);
      continue;
    }
    if (magic !== FRAME_MAGIC) throw broken('the lz4 frame magic number 0x184D2204', at);
    if (at + 7 > src.length) throw broken('a frame descriptor', at + 4);
    const flags = src[at + 4]!;
    const bd = src[at + 5]!;
    if (flags >> 6 !== 1 || (flags & 0x02) !== 0 || (bd & 0x8f) !== 0 || (bd >> 4) < 4) throw broken('frame descriptor flags of version 01', at + 4);
    const blockMax = BLOCK_MAX[bd >> 4]!;
    const blockChecksum = (flags & 0x10) !== 0;
    const contentChecksum = (flags & 0x04) !== 0;
    if ((flags & 0x01) !== 0) throw broken('a frame without a dictionary id (no dictionary was given)', at + 4);
    at += 6 + ((flags & 0x08) !== 0 ? 8 : 0) + 1; // descriptor, content size, header checksum
    const frameStart = out.length;
    for (;;) {
      const word = u32(src, at);
      at += 4;
      if (word === 0) break; // EndMark
      const size = word & 0x7fffffff;
      if (size > blockMax || at + size > src.length) throw broken(`a block of at most ${Math.min(blockMax, src.length - at)} bytes`, at - 4);
      if (word >>> 31 === 1) out.push(src.subarray(at, at + size));
      else decodeBlock(src, at, at + size, out, frameStart, blockMax);
      at += size + (blockChecksum ? 4 : 0);
      yield;
    }
    at += contentChecksum ? 4 : 0;
    if (at > src.length) throw broken('the content checksum', src.length);
  }
}

/** One LZ4 block (a run of literal/match sequences) appended to `out`. */
function decodeBlock(src: Uint8Array, start: number, end: number, out: BoundedOutput, frameStart: number, blockMax: number): void {
  // Room for the largest block, or for what the limit leaves: past it, the limit is the error.
  const room = Math.min(blockMax, out.limit - out.length);
  out.reserve(room);
  const blockEnd = out.length + room;
  const dst = out.buffer;
  let op = out.length;
  let ip = start;
  const overflow = (): Error => (room < blockMax ? out.limitError() : broken(`a block that decodes to at most ${blockMax} bytes`, ip));
  for (;;) {
    if (ip >= end) throw broken('a sequence token', ip);
    const token = src[ip++]!;
    let literals = token >> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= end) throw broken('a literal length byte', ip);
        b = src[ip++]!;
        literals += b;
      } while (b === 255);
    }
    if (ip + literals > end) throw broken(`${literals} literal bytes`, ip);
    if (op + literals > blockEnd) throw overflow();
    // Short runs by hand: a subarray per sequence costs more than the copy.
    if (literals > 32) {
      dst.set(src.subarray(ip, ip + literals), op);
      ip += literals;
      op += literals;
    } else {
      for (const stop = ip + literals; ip < stop; ) dst[op++] = src[ip++]!;
    }
    if (ip === end) break; // the last sequence has literals only
    if (ip + 2 > end) throw broken('a match offset', ip);
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op - frameStart) throw broken(`a match offset from 1 to ${op - frameStart}`, ip - 2);
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= end) throw broken('a match length byte', ip);
        b = src[ip++]!;
        length += b;
      } while (b === 255);
    }
    if (op + length > blockEnd) throw overflow();
    let from = op - offset;
    if (offset >= length && length > 32) {
      dst.copyWithin(op, from, from + length);
      op += length;
    } else {
      for (const stop = op + length; op < stop; ) dst[op++] = dst[from++]!; // also right when overlapping: repeats the last `offset` bytes
    }
  }
  out.length = op;
}
