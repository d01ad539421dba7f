import { ErrorCodes, MemjobError } from '../../errors.js';

/**
 * Where the unpickler takes its bytes from. The position is exposed because joblib writes array data
 * raw between two opcodes: a BUILD handler reads (or, for a file-backed reader, skips) it and parsing
 * resumes after it, as joblib's NumpyArrayUnpickler does.
 */
export interface PickleReader {
  /** Offset of the next byte, from the start of the pickle stream. */
  readonly position: number;
  /** Bytes left: every length field is checked against this before anything is allocated. */
  remaining(): number;
  readByte(): number;
  /** The next `n` bytes (may be a view of the reader's storage: copy before mutating). */
  read(n: number): Uint8Array;
  /** Bytes up to the next `\n`, decoded as latin-1 (the text opcodes of protocol 0 are ASCII). */
  readLine(): string;
  skip(n: number): void;
  /**
   * `n` bytes of raw data (an array's, between two opcodes): read, or, by a
   * file-backed reader, skipped and left in the file (null) for the caller
   * to read straight into the array or to map.
   */
  readData(n: number): Uint8Array | null;
}

/** V8's longest string (2^29 - 24 characters): longer lines or strings are refused, never attempted. */
export const MAX_STRING_LENGTH = 0x1fffffe8;

export function truncated(what: string, position: number, left: number): MemjobError {
  return new MemjobError(
    ErrorCodes.FORMAT,
    `expected ${what} at offset ${position} of the pickle, received only ${left} bytes left (truncated or corrupt file)`,
  );
}

/** A PickleReader over bytes already in memory; `read` returns views, not copies. */
export class BufferReader implements PickleReader {
  #pos = 0;
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    // A plain Uint8Array view even when given a Buffer: Buffer's slice() is a view, and callers copy with slice().
    this.#bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get position(): number {
    return this.#pos;
  }

  remaining(): number {
    return this.#bytes.length - this.#pos;
  }

  readByte(): number {
    if (this.#pos >= this.#bytes.length) throw truncated('a byte', this.#pos, 0);
    return this.#bytes[this.#pos++]!;
  }

  read(n: number): Uint8Array {
    this.#check(n, 'data');
    const out = this.#bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  readLine(): string {
    const end = this.#bytes.indexOf(0x0a, this.#pos);
    if (end < 0) {
      throw new MemjobError(
        ErrorCodes.FORMAT,
        `expected a line ending in "\\n" at offset ${this.#pos} of the pickle, received the end of the data after ${this.remaining()} bytes`,
      );
    }
    if (end - this.#pos > MAX_STRING_LENGTH) {
      throw new MemjobError(ErrorCodes.FORMAT, `expected a line of at most ${MAX_STRING_LENGTH} bytes at offset ${this.#pos} of the pickle, received ${end - this.#pos} bytes`);
    }
    const line = Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + this.#pos, end - this.#pos).toString('latin1');
    this.#pos = end + 1;
    return line;
  }

  skip(n: number): void {
    this.#check(n, 'data to skip');
    this.#pos += n;
  }

  readData(n: number): Uint8Array {
    return this.read(n);
  }

  #check(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new MemjobError(ErrorCodes.FORMAT, `expected a byte count at offset ${this.#pos} of the pickle, received ${n}`);
    }
    if (n > this.remaining()) throw truncated(`${what} of ${n} bytes`, this.#pos, this.remaining());
  }
}
