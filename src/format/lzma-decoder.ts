/**
 * An LZMA decoder (Igor Pavlov's LzmaSpec.cpp, the format's reference, transcribed) for the two
 * containers joblib writes: the raw 'alone' format (.lzma: props, dictionary size, size, then one
 * LZMA stream) and xz with its LZMA2 filter (lzma-xz.ts). Written here because the npm decoders either
 * allocate whatever a stream decodes to (@napi-rs/lzma) or need an install script (lzma-native,
 * node-liblzma); native-notes/joblib-compression.md has the measurements. The output itself is the
 * dictionary (the whole file is decoded into memory anyway), so a match is a copy within it, and it
 * grows only through BoundedOutput, which refuses to pass the caller's limit.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import type { BoundedOutput } from './lz4-frame.js';

export function lzmaError(what: string, at: number): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `expected ${what} at byte ${at}, received something else`);
}

const STATES = 12;
const PROB_INIT = 1024;

/** The range decoder over src[pos, end): every read past `end` is an error, never a zero. */
class RangeDecoder {
  range = 0xffffffff;
  code = 0;

  constructor(
    readonly src: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {
    if (end - pos < 5 || src[pos] !== 0) throw lzmaError('a range coder start (0x00 and 4 bytes)', pos);
    this.code = ((src[pos + 1]! << 24) | (src[pos + 2]! << 16) | (src[pos + 3]! << 8) | src[pos + 4]!) >>> 0;
    this.pos = pos + 5;
    if (this.code === this.range) throw lzmaError('a range coder start below its range', pos);
  }

  finishedOk(): boolean {
    return this.code === 0;
  }

  #next(): number {
    if (this.pos >= this.end) throw lzmaError('more compressed data', this.pos);
    return this.src[this.pos++]!;
  }

  bit(probs: Uint16Array, i: number): number {
    const p = probs[i]!;
    const bound = (this.range >>> 11) * p;
    let bit: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      bit = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = p - (p >>> 5);
      bit = 1;
    }
    if (this.range < 0x1000000) {
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) >>> 0) | this.#next();
      this.code >>>= 0;
    }
    return bit;
  }

  direct(count: number): number {
    let result = 0;
    for (; count > 0; count--) {
      this.range >>>= 1;
      let bit = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        bit = 1;
      }
      result = result * 2 + bit;
      if (this.range < 0x1000000) {
        this.range = (this.range * 256) >>> 0;
        this.code = (((this.code * 256) >>> 0) | this.#next()) >>> 0;
      }
    }
    return result;
  }

  tree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(probs, base + m);
    return m - (1 << bits);
  }

  reverse(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    let symbol = 0;
    for (let i = 0; i < bits; i++) {
      const bit = this.bit(probs, base + m);
      m = (m << 1) | bit;
      symbol |= bit << i;
    }
    return symbol;
  }
}

class LengthDecoder {
  readonly probs = new Uint16Array(2 + 16 * 8 + 16 * 8 + 256);

  reset(): void {
    this.probs.fill(PROB_INIT);
  }

  decode(rc: RangeDecoder, posState: number): number {
    const p = this.probs;
    if (rc.bit(p, 0) === 0) return rc.tree(p, 2 + posState * 8 - 1, 3);
    if (rc.bit(p, 1) === 0) return 8 + rc.tree(p, 2 + 128 + posState * 8 - 1, 3);
    return 16 + rc.tree(p, 2 + 256 - 1, 8);
  }
}

export interface LzmaProps {
  lc: number;
  lp: number;
  pb: number;
}

/** Reads the lc/lp/pb byte. */
export function lzmaProps(byte: number, at: number): LzmaProps {
  if (byte >= 9 * 5 * 5) throw lzmaError('an LZMA properties byte below 225', at);
  return { lc: byte % 9, lp: Math.floor(byte / 9) % 5, pb: Math.floor(byte / 45) };
}

/**
 * One LZMA decoder whose state survives across LZMA2 chunks. `dictStart` is where the current
 * dictionary begins in the output (a match may not reach before it); `dictSize` bounds distances.
 */
export class LzmaDecoder {
  #lc = 0;
  #lp = 0;
  #pb = 0;
  #literals = new Uint16Array(0x300);
  readonly #isMatch = new Uint16Array(STATES << 4);
  readonly #isRep = new Uint16Array(STATES);
  readonly #isRepG0 = new Uint16Array(STATES);
  readonly #isRepG1 = new Uint16Array(STATES);
  readonly #isRepG2 = new Uint16Array(STATES);
  readonly #isRep0Long = new Uint16Array(STATES << 4);
  readonly #posSlot = new Uint16Array(4 << 6);
  readonly #posDecoders = new Uint16Array(1 + 114);
  readonly #align = new Uint16Array(16);
  readonly #len = new LengthDecoder();
  readonly #repLen = new LengthDecoder();
  #state = 0;
  #reps = [0, 0, 0, 0];
  dictStart = 0;

  constructor(
    readonly out: BoundedOutput,
    readonly dictSize: number,
  ) {}

  setProps({ lc, lp, pb }: LzmaProps): void {
    [this.#lc, this.#lp, this.#pb] = [lc, lp, pb];
    const size = 0x300 << (lc + lp);
    if (this.#literals.length !== size) this.#literals = new Uint16Array(size);
  }

  resetState(): void {
    for (const p of [this.#literals, this.#isMatch, this.#isRep, this.#isRepG0, this.#isRepG1, this.#isRepG2, this.#isRep0Long, this.#posSlot, this.#posDecoders, this.#align]) {
      p.fill(PROB_INIT);
    }
    this.#len.reset();
    this.#repLen.reset();
    this.#state = 0;
    this.#reps = [0, 0, 0, 0];
  }

  /**
   * Decodes from src[start, end) into the output: exactly `size` bytes when `size` is known (then an
   * end marker is allowed only when `markerAllowed`), or up to the end marker when it is not.
   * Returns where the range decoder stopped.
   */
  decode(src: Uint8Array, start: number, end: number, size: number | null, markerAllowed: boolean): number {
    const rc = new RangeDecoder(src, start, end);
    const out = this.out;
    let buf = out.buffer;
    let pos = out.length;
    const stop = size === null ? Infinity : pos + size;
    const pbMask = (1 << this.#pb) - 1;
    const lpMask = (1 << this.#lp) - 1;
    const lc = this.#lc;
    let state = this.#state;
    let [rep0, rep1, rep2, rep3] = this.#reps as [number, number, number, number];
    const room = (n: number): void => {
      if (pos + n <= buf.length) return;
      out.length = pos;
      out.reserve(n);
      buf = out.buffer;
    };
    try {
      for (;;) {
        if (pos === stop && !markerAllowed) {
          if (!rc.finishedOk()) throw lzmaError('the end of the range coder data with the size reached', rc.pos);
          break;
        }
        if (pos === stop && rc.finishedOk()) break;
        const posState = (pos - this.dictStart) & pbMask;
        if (rc.bit(this.#isMatch, (state << 4) + posState) === 0) {
          if (pos === stop) throw lzmaError('the end of the data (the size is reached)', rc.pos);
          room(1);
          const prev = pos > this.dictStart ? buf[pos - 1]! : 0;
          const base = 0x300 * ((((pos - this.dictStart) & lpMask) << lc) + (prev >> (8 - lc)));
          let symbol = 1;
          if (state >= 7) {
            let match = buf[pos - rep0 - 1]!;
            do {
              const matchBit = (match >> 7) & 1;
              match <<= 1;
              const bit = rc.bit(this.#literals, base + ((1 + matchBit) << 8) + symbol);
              symbol = (symbol << 1) | bit;
              if (matchBit !== bit) break;
            } while (symbol < 0x100);
          }
          while (symbol < 0x100) symbol = (symbol << 1) | rc.bit(this.#literals, base + symbol);
          buf[pos++] = symbol - 0x100;
          state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
          continue;
        }
        let len: number;
        if (rc.bit(this.#isRep, state) !== 0) {
          if (pos === stop) throw lzmaError('the end of the data (the size is reached)', rc.pos);
          if (pos === this.dictStart) throw lzmaError('a literal first (a match in an empty dictionary)', rc.pos);
          if (rc.bit(this.#isRepG0, state) === 0) {
            if (rc.bit(this.#isRep0Long, (state << 4) + posState) === 0) {
              if (rep0 >= pos - this.dictStart) throw lzmaError(`a match distance below ${pos - this.dictStart}`, rc.pos);
              state = state < 7 ? 9 : 11;
              room(1);
              buf[pos] = buf[pos - rep0 - 1]!;
              pos++;
              continue;
            }
          } else {
            let dist: number;
            if (rc.bit(this.#isRepG1, state) === 0) dist = rep1;
            else {
              if (rc.bit(this.#isRepG2, state) === 0) dist = rep2;
              else {
                dist = rep3;
                rep3 = rep2;
              }
              rep2 = rep1;
            }
            rep1 = rep0;
            rep0 = dist;
          }
          if (rep0 >= pos - this.dictStart) throw lzmaError(`a match distance below ${pos - this.dictStart}`, rc.pos);
          len = this.#repLen.decode(rc, posState);
          state = state < 7 ? 8 : 11;
        } else {
          rep3 = rep2;
          rep2 = rep1;
          rep1 = rep0;
          len = this.#len.decode(rc, posState);
          state = state < 7 ? 7 : 10;
          rep0 = this.#distance(rc, len);
          if (rep0 === 0xffffffff) {
            if (!rc.finishedOk() || (size !== null && !markerAllowed)) throw lzmaError('no end marker here', rc.pos);
            if (size !== null && pos !== stop) throw lzmaError(`${stop - pos} more bytes before the end marker`, rc.pos);
            break;
          }
          if (pos === stop) throw lzmaError('the end of the data (the size is reached)', rc.pos);
          if (rep0 >= this.dictSize || rep0 >= pos - this.dictStart) throw lzmaError(`a match distance below ${Math.min(this.dictSize, pos - this.dictStart)}`, rc.pos);
        }
        len += 2;
        if (len > stop - pos) throw lzmaError(`a match of at most ${stop - pos} bytes (the size)`, rc.pos);
        room(len);
        let from = pos - rep0 - 1;
        for (const last = pos + len; pos < last; ) buf[pos++] = buf[from++]!;
      }
    } finally {
      out.length = pos;
      this.#state = state;
      this.#reps = [rep0, rep1, rep2, rep3];
    }
    return rc.pos;
  }

  #distance(rc: RangeDecoder, len: number): number {
    const slot = rc.tree(this.#posSlot, (Math.min(len, 3) << 6) - 1, 6);
    if (slot < 4) return slot;
    const bits = (slot >>> 1) - 1;
    let dist = (2 | (slot & 1)) * 2 ** bits;
    if (slot < 14) dist += rc.reverse(this.#posDecoders, dist - slot - 1, bits);
    else dist += rc.direct(bits - 4) * 16 + rc.reverse(this.#align, -1, 4);
    return dist;
  }
}

/** The 'alone' format: props, dictionary size, uncompressed size (all ones: unknown, end marker), one LZMA stream. */
export function* decodeLzmaAlone(src: Uint8Array, out: BoundedOutput): Generator<void, void, void> {
  if (src.length < 13) throw lzmaError('a 13-byte .lzma header', 0);
  const props = lzmaProps(src[0]!, 0);
  const dictSize = Math.max(4096, (src[1]! | (src[2]! << 8) | (src[3]! << 16) | (src[4]! << 24)) >>> 0);
  let size: number | null = 0;
  let unknown = true;
  for (let i = 12; i >= 5; i--) {
    if (src[i] !== 0xff) unknown = false;
    size = size * 256 + src[i]!;
  }
  if (unknown) size = null;
  else if (size > out.limit - out.length) throw out.limitError();
  const decoder = new LzmaDecoder(out, dictSize);
  decoder.setProps(props);
  decoder.resetState();
  decoder.dictStart = out.length;
  const end = decoder.decode(src, 13, src.length, size, true);
  if (end !== src.length) throw lzmaError(`the end of the data (${src.length - end} bytes follow the stream)`, end);
  yield;
}
