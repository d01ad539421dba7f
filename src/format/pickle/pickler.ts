/**
 * A writer of pickle protocol 4 opcodes: the inverse of unpickler.ts for the
 * values memjob writes. It knows opcodes, not JS values (joblib-dump.ts walks
 * the value). Opcodes are gathered into frames, as CPython's pickler does, so
 * a reader fetches them in few reads; `takeFrame()` closes the current frame
 * before raw bytes that must lie outside any frame (joblib's inline arrays).
 */

/** CPython's _FRAME_SIZE_TARGET: a frame is closed once it reaches this size. */
const FRAME_TARGET = 64 * 1024;
/** CPython does not frame fewer bytes than this (a FRAME opcode would cost more than it saves). */
const FRAME_MIN = 4;
/** CPython's batch size for APPENDS, SETITEMS and ADDITEMS. */
export const BATCH = 1000;

export const Op = {
  PROTO: 0x80,
  FRAME: 0x95,
  STOP: 0x2e,
  MARK: 0x28,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  BININT1: 0x4b,
  BININT: 0x4a,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINFLOAT: 0x47,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE: 0x58,
  BINUNICODE8: 0x8d,
  SHORT_BINBYTES: 0x43,
  BINBYTES: 0x42,
  BINBYTES8: 0x8e,
  EMPTY_LIST: 0x5d,
  APPENDS: 0x65,
  EMPTY_DICT: 0x7d,
  SETITEMS: 0x75,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  EMPTY_TUPLE: 0x29,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  TUPLE: 0x74,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  NEWOBJ: 0x81,
  REDUCE: 0x52,
  BUILD: 0x62,
} as const;

export class OpcodeWriter {
  #buffer = Buffer.allocUnsafe(FRAME_TARGET * 2);
  #length = 0;
  /** Bytes handed out so far (frames and raw blocks): the file offset of the current frame's FRAME opcode. */
  #flushed = 0;
  #memoSize = 0;

  constructor() {
    this.op(Op.PROTO, 4);
  }

  /** Bytes handed out by takeFrame() and counted by skip(): right after takeFrame(), the file offset of the next byte. */
  get offset(): number {
    return this.#flushed;
  }

  /** True when the pending opcodes have reached a frame's target size (the caller then takes the frame between values). */
  get frameFull(): boolean {
    return this.#length >= FRAME_TARGET;
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#buffer.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#length + n));
    this.#buffer.copy(bigger, 0, 0, this.#length);
    this.#buffer = bigger;
  }

  op(...bytes: number[]): void {
    this.#reserve(bytes.length);
    for (const b of bytes) this.#buffer[this.#length++] = b;
  }

  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  #uint32(n: number): void {
    this.#reserve(4);
    this.#buffer.writeUInt32LE(n, this.#length);
    this.#length += 4;
  }

  #uint64(n: number): void {
    this.#reserve(8);
    this.#buffer.writeBigUInt64LE(BigInt(n), this.#length);
    this.#length += 8;
  }

  /**
   * The pending opcodes as one frame (FRAME + length + opcodes), or as they
   * are when too few to frame; the writer then starts a new frame. The PROTO
   * opcode at the very start stays outside the first frame, as CPython writes it.
   */
  takeFrame(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let start = 0;
    if (this.#flushed === 0 && this.#length >= 2) {
      out.push(Buffer.from(this.#buffer.subarray(0, 2)));
      start = 2;
    }
    const body = this.#buffer.subarray(start, this.#length);
    if (body.length >= FRAME_MIN) {
      const header = Buffer.allocUnsafe(9);
      header[0] = Op.FRAME;
      header.writeBigUInt64LE(BigInt(body.length), 1);
      out.push(header);
    }
    if (body.length > 0) out.push(Buffer.from(body));
    for (const part of out) this.#flushed += part.length;
    this.#length = 0;
    return out;
  }

  /** Counts bytes the caller writes itself between frames (an array's padding and data). */
  skip(bytes: number): void {
    this.#flushed += bytes;
  }

  /** MEMOIZE: the top of the stack becomes memo entry `memoSize - 1`. */
  memoize(): number {
    this.op(Op.MEMOIZE);
    return this.#memoSize++;
  }

  get(index: number): void {
    if (index < 256) this.op(Op.BINGET, index);
    else {
      this.op(Op.LONG_BINGET);
      this.#uint32(index);
    }
  }

  none(): void {
    this.op(Op.NONE);
  }

  bool(value: boolean): void {
    this.op(value ? Op.NEWTRUE : Op.NEWFALSE);
  }

  /** An int: BININT1/BININT where it fits, as CPython chooses, else LONG1/LONG4 (two's complement, little-endian). */
  int(value: bigint): void {
    if (value >= 0n && value < 256n) {
      this.op(Op.BININT1, Number(value));
      return;
    }
    if (value >= -(2n ** 31n) && value < 2n ** 31n) {
      this.#reserve(5);
      this.#buffer[this.#length++] = Op.BININT;
      this.#buffer.writeInt32LE(Number(value), this.#length);
      this.#length += 4;
      return;
    }
    const bytes = twosComplement(value);
    if (bytes.length < 256) this.op(Op.LONG1, bytes.length);
    else {
      this.op(Op.LONG4);
      this.#uint32(bytes.length);
    }
    this.raw(bytes);
  }

  float(value: number): void {
    this.#reserve(9);
    this.#buffer[this.#length++] = Op.BINFLOAT;
    this.#buffer.writeDoubleBE(value, this.#length);
    this.#length += 8;
  }

  string(value: string): void {
    const bytes = utf8SurrogatePass(value);
    if (bytes.length < 256) this.op(Op.SHORT_BINUNICODE, bytes.length);
    else if (bytes.length < 2 ** 32) {
      this.op(Op.BINUNICODE);
      this.#uint32(bytes.length);
    } else {
      this.op(Op.BINUNICODE8);
      this.#uint64(bytes.length);
    }
    this.raw(bytes);
  }

  bytes(value: Uint8Array): void {
    if (value.length < 256) this.op(Op.SHORT_BINBYTES, value.length);
    else if (value.length < 2 ** 32) {
      this.op(Op.BINBYTES);
      this.#uint32(value.length);
    } else {
      this.op(Op.BINBYTES8);
      this.#uint64(value.length);
    }
    this.raw(value);
  }

  /** A module-level name: module and name strings, then STACK_GLOBAL (protocol 4's GLOBAL). */
  global(module: string, name: string): void {
    this.string(module);
    this.string(name);
    this.op(Op.STACK_GLOBAL);
  }

  /** TUPLE1-3 for short tuples (their items already on the stack), else MARK ... TUPLE written by the caller. */
  static tupleOp(length: number): number | undefined {
    return [Op.EMPTY_TUPLE, Op.TUPLE1, Op.TUPLE2, Op.TUPLE3][length];
  }
}

/** The smallest two's-complement little-endian bytes of `value` (pickle's encode_long). */
function twosComplement(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    // Done once the rest is all sign and the last byte's top bit already shows that sign.
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Uint8Array.from(out);
}

/**
 * UTF-8 with lone surrogates written as their 3-byte form, as Python's
 * pickle writes str with 'surrogatepass' (TextEncoder would replace them
 * with U+FFFD and change the string).
 */
function utf8SurrogatePass(value: string): Uint8Array {
  if (!/[\ud800-\udfff]/.test(value)) return Buffer.from(value, 'utf8');
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    const next = value.charCodeAt(i + 1);
    if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++; // a proper pair: left to Buffer.from
      continue;
    }
    parts.push(Buffer.from(value.slice(start, i), 'utf8'), Uint8Array.of(0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)));
    start = i + 1;
  }
  parts.push(Buffer.from(value.slice(start), 'utf8'));
  return Buffer.concat(parts);
}
