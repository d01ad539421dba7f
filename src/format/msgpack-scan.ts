/**
 * A check of a structure's raw msgpack bytes before msgpackr decodes them.
 * msgpackr keeps one extension table for the whole process: its built-in
 * extensions (BigInt 0x42, records 0x72, Error, RegExp, typed arrays, ...)
 * and any that other code registers with addExtension() would run on a
 * file's bytes, and no Unpackr option turns that table off. memjob's
 * structures are plain msgpack (nil, booleans, numbers, strings, lists),
 * so every extension is refused here, as are the bytes msgpack never uses,
 * trailing bytes, nesting deeper than the format allows, and lists that
 * claim more items than the bytes left could hold. Bytes may arrive in
 * pieces (a decompressing stream): a bad file is refused at its first bad
 * byte, before the rest is inflated.
 */
import { StructureError } from './structure.js';

/** Levels of msgpack lists: the structure's 1000 levels of value, plus [segments, tree] and a descriptor's shape. */
const MAX_NESTING = 1008;
/**
 * Values in one structure. Each becomes a JS value (and decoding copies the
 * lists): 2^25 one-byte values took 4.3 s and 1.2 GB of memory to load, and
 * past the heap's limit V8 aborts the whole process rather than throwing.
 * 2^26 stays under Node's default heap; larger data belongs in typed arrays,
 * which are never in the structure. dump refuses to write more.
 */
export const MAX_STRUCTURE_VALUES = 2 ** 26;

const TOO_MANY_VALUES = `it holds more than ${MAX_STRUCTURE_VALUES} values (store large data in typed arrays)`;

type Pending = { kind: 'header'; format: number; need: number; got: number; value: number } | { kind: 'skip'; left: number };

export class MsgpackScanner {
  /** Items still to come in each open list or map, innermost last. */
  readonly #open: number[] = [];
  /** Items of the open lists not yet begun: each still needs at least one byte. */
  #owed = 0;
  #values = 0;
  #pending: Pending | undefined;
  #done = false;
  /** Bytes scanned so far. */
  position = 0;

  /** `length`: how many bytes the structure is said to hold. */
  constructor(readonly length: number) {}

  /** Scans the next bytes; throws a StructureError at the first thing memjob never writes. */
  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      const pending = this.#pending;
      if (pending?.kind === 'skip') {
        const take = Math.min(pending.left, bytes.length - i);
        pending.left -= take;
        i += take;
        this.position += take;
        if (pending.left === 0) {
          this.#pending = undefined;
          this.#complete();
        }
        continue;
      }
      const byte = bytes[i++]!;
      this.position++;
      if (pending?.kind === 'header') {
        pending.value = pending.value * 256 + byte;
        if (++pending.got === pending.need) {
          this.#pending = undefined;
          this.#afterHeader(pending.format, pending.value);
        }
        continue;
      }
      // The commonest values, inside a list: a number, nil, a boolean or a short
      // string whose bytes are all in this piece. Checked as #start checks them.
      const size = SCALAR_SIZE[byte]!;
      if (
        size !== NOT_SCALAR &&
        this.#open.length > 0 &&
        this.#values < MAX_STRUCTURE_VALUES &&
        i + size <= bytes.length &&
        this.#owed - 1 + size <= this.length - this.position
      ) {
        this.#values++;
        this.#owed--;
        i += size;
        this.position += size;
        this.#complete();
        continue;
      }
      this.#start(byte);
    }
  }

  /** Throws unless exactly one complete value was scanned. */
  finish(): void {
    if (!this.#done) fail(`it ends inside a value at byte ${this.position}`);
  }

  #start(byte: number): void {
    const at = this.position - 1;
    if (this.#done) fail(`${this.length - at} bytes follow the value's end at byte ${at}`);
    if (++this.#values > MAX_STRUCTURE_VALUES) fail(TOO_MANY_VALUES);
    if (this.#owed > 0) this.#owed--; // this value is one of the items owed
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) return this.#complete();
    if (byte <= 0x8f) return this.#openList(2 * (byte & 0x0f), at);
    if (byte <= 0x9f) return this.#openList(byte & 0x0f, at);
    if (byte <= 0xbf) return this.#skip(byte & 0x1f, at);
    if (byte === 0xc1) fail(`byte 0xc1 at byte ${at}, which msgpack never uses`);
    if ((byte >= 0xc7 && byte <= 0xc9) || (byte >= 0xd4 && byte <= 0xd8)) {
      fail(`unexpected msgpack extension (format byte 0x${byte.toString(16)}) at byte ${at} in the structure, which is plain msgpack`);
    }
    const fixed = FIXED[byte];
    if (fixed !== undefined) return this.#skip(fixed, at);
    // A length or count follows: str8/16/32, bin8/16/32, array16/32, map16/32.
    this.#pending = { kind: 'header', format: byte, need: LENGTH_BYTES[byte]!, got: 0, value: 0 };
  }

  #afterHeader(format: number, value: number): void {
    const at = this.position - 1 - LENGTH_BYTES[format]!;
    if (format === 0xdc || format === 0xdd) return this.#openList(value, at);
    if (format === 0xde || format === 0xdf) return this.#openList(2 * value, at);
    return this.#skip(value, at); // a string or binary payload
  }

  #skip(bytes: number, at: number): void {
    if (bytes === 0) return this.#complete();
    this.#ensureRoom(this.#owed + bytes, at, `a ${bytes}-byte value`);
    this.#pending = { kind: 'skip', left: bytes };
  }

  #openList(items: number, at: number): void {
    if (items === 0) return this.#complete();
    if (this.#open.length >= MAX_NESTING) fail(`nesting deeper than 1000 levels`);
    // Items owed are values to come: a list that must overflow the count is refused now, not at its end.
    if (this.#values + this.#owed + items > MAX_STRUCTURE_VALUES) fail(TOO_MANY_VALUES);
    this.#ensureRoom(this.#owed + items, at, `a list of ${items} items`);
    this.#open.push(items);
    this.#owed += items;
  }

  /** Every byte and item still owed must fit in what is left of the structure. */
  #ensureRoom(bytes: number, at: number, what: string): void {
    const left = this.length - this.position;
    if (bytes > left) fail(`${what} at byte ${at} needs more than the ${left} bytes left in the structure`);
  }

  /** A value ended: count it off its list, and close every list it fills. */
  #complete(): void {
    for (;;) {
      const last = this.#open.length - 1;
      if (last < 0) {
        this.#done = true;
        return;
      }
      if (--this.#open[last]! > 0) return;
      this.#open.pop();
    }
  }
}

/** Scans a whole structure held in memory. */
export function checkPlainMsgpack(bytes: Uint8Array): void {
  const scanner = new MsgpackScanner(bytes.length);
  scanner.feed(bytes);
  scanner.finish();
}

function fail(problem: string): never {
  throw new StructureError(`its structure cannot be decoded: ${problem}`);
}

/** For each first byte: the payload bytes of a scalar or short string (0: complete in that byte), or NOT_SCALAR. */
const NOT_SCALAR = 255;
const SCALAR_SIZE = new Uint8Array(256).fill(NOT_SCALAR);
for (let b = 0; b < 256; b++) if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) SCALAR_SIZE[b] = 0;
for (let b = 0xa0; b <= 0xbf; b++) SCALAR_SIZE[b] = b & 0x1f; // fixstr
for (const [b, size] of [[0xca, 4], [0xcb, 8], [0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8], [0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8]]) SCALAR_SIZE[b!] = size!;

/** Payload bytes after formats of fixed size: float32/64, uint8-64, int8-64. */
const FIXED: Record<number, number> = { 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 };
/** Bytes of the big-endian length or count after each variable-size format. */
const LENGTH_BYTES: Record<number, number> = { 0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4 };
