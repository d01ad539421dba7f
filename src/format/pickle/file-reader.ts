/**
 * The PickleReader, over an open file or over bytes in memory: one class for
 * both, so that the unpickler's calls to it stay monomorphic (V8 threw the
 * optimized parser away each time a load of the other kind came along).
 *
 * Over a file (uncompressed joblib files of any size), the opcodes are read
 * through a small window, and the arrays' raw bytes (readData) are skipped,
 * left in the file for the caller to read straight into each array's own
 * buffer or to map. Nothing the size of the file is allocated or viewed, so a
 * 64 GiB joblib file parses like a small one. Over bytes in memory
 * (bufferReader()), the window is all of them, and readData returns views.
 */
import { readSync } from 'node:fs';
import { ErrorCodes, MemjobError } from '../../errors.js';
import { MAX_STRING_LENGTH, truncated, type PickleReader } from './reader.js';

/** Bytes fetched per read call: opcodes are small, and a few pages cover most pickles' metadata. */
const WINDOW = 64 * 1024;
/** Bytes of a file's start worth reading at once: a joblib file's opcodes before its first array usually fit. */
export const FIRST_READ = 4096;
let sharedWindow: Uint8Array | undefined;

export class FileReader implements PickleReader {
  /** Over bytes in memory (bufferReader()): never reads the file, and readData returns views. */
  #inMemory = false;
  #pos = 0;
  // A plain Uint8Array, not a Buffer: the unpickler copies with slice(), which on a Buffer is a view.
  // One window shared by every reader of this thread (parsing is synchronous, so they never overlap):
  // a new 64 KiB ArrayBuffer costs about 30 µs here, more than parsing a joblib file's opcodes.
  #window = (sharedWindow ??= new Uint8Array(WINDOW));
  /** File offset of #window[0], and how many bytes of it are valid. */
  #windowStart = 0;
  #windowLength = 0;

  /**
   * `fd` stays the caller's to close; `size` is the file's, checked against fstat by the caller.
   * `head`: the file's first bytes when the caller has read them already (to tell the format), so
   * they are not read again.
   */
  constructor(
    private readonly fd: number,
    private readonly size: number,
    head?: Uint8Array,
  ) {
    if (head !== undefined && head.length <= this.#window.length) {
      this.#window.set(head);
      this.#windowLength = head.length;
    }
  }

  get position(): number {
    return this.#pos;
  }

  remaining(): number {
    return this.size - this.#pos;
  }

  readByte(): number {
    if (this.#pos >= this.size) throw truncated('a byte', this.#pos, 0);
    if (this.#pos < this.#windowStart || this.#pos >= this.#windowStart + this.#windowLength) this.#fill(this.#pos, 1);
    return this.#window[this.#pos++ - this.#windowStart]!;
  }

  /** A view of the reader's window, valid until the next call (the unpickler decodes or copies at once). */
  read(n: number): Uint8Array {
    this.#check(n, 'data');
    if (this.#pos < this.#windowStart || this.#pos + n > this.#windowStart + this.#windowLength) this.#fill(this.#pos, n);
    const at = this.#pos - this.#windowStart;
    this.#pos += n;
    return this.#window.subarray(at, at + n);
  }

  readLine(): string {
    // Searched where the bytes already are: the window from the position on (all of the input in
    // memory), refilled only when the line runs past it. Reading a fresh window per line made each
    // of a protocol 0 pickle's one-opcode lines cost 64 KiB (a 1.7 MB file took 3 s, now 0.2 s).
    const parts: Uint8Array[] = [];
    let length = 0;
    for (;;) {
      if (this.remaining() === 0) {
        throw new MemjobError(ErrorCodes.FORMAT, `expected a line ending in "\\n" at offset ${this.#pos - length} of the pickle, received the end of the data`);
      }
      if (this.#pos < this.#windowStart || this.#pos >= this.#windowStart + this.#windowLength) this.#fill(this.#pos, 1);
      const available = this.#window.subarray(this.#pos - this.#windowStart, this.#windowLength);
      const end = available.indexOf(0x0a);
      const taken = end < 0 ? available : available.subarray(0, end);
      length += taken.length;
      if (length > MAX_STRING_LENGTH) {
        throw new MemjobError(ErrorCodes.FORMAT, `expected a line of at most ${MAX_STRING_LENGTH} bytes at offset ${this.#pos} of the pickle, received more`);
      }
      this.#pos += taken.length + (end < 0 ? 0 : 1);
      if (end >= 0 && parts.length === 0) return latin1(taken);
      // A line longer than the window: its pieces are copied, as the window is refilled for the rest.
      parts.push(taken.slice());
      if (end >= 0) return latin1(Buffer.concat(parts));
    }
  }

  skip(n: number): void {
    this.#check(n, 'data to skip');
    this.#pos += n;
  }

  readData(n: number): Uint8Array | null {
    if (this.#inMemory) return this.read(n);
    this.skip(n);
    return null;
  }

  /** @internal bufferReader()'s: the window becomes `bytes`, all of the input. */
  static overBytes(bytes: Uint8Array): FileReader {
    const reader = new FileReader(-1, bytes.length);
    // A plain Uint8Array view even when given a Buffer: Buffer's slice() is a view, and callers copy with slice().
    reader.#window = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    reader.#windowLength = bytes.length;
    reader.#inMemory = true;
    return reader;
  }

  #check(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new MemjobError(ErrorCodes.FORMAT, `expected a byte count at offset ${this.#pos} of the pickle, received ${n}`);
    }
    if (n > this.remaining()) throw truncated(`${what} of ${n} bytes`, this.#pos, this.remaining());
  }

  /** Loads the window with at least `n` bytes from `at` (n was checked against the file's size). */
  #fill(at: number, n: number): void {
    if (this.#inMemory) throw truncated(`${n} bytes`, at, this.size - at); // unreachable: #check bounds every read
    if (n > this.#window.length) this.#window = new Uint8Array(n);
    // The first read takes one page (a joblib file's opcodes before its first array usually fit);
    // later ones the whole window.
    const want = Math.min(this.#windowStart === 0 && this.#windowLength === 0 ? Math.max(n, FIRST_READ) : this.#window.length, this.size - at);
    let got = 0;
    while (got < want) {
      const read = readSync(this.fd, this.#window, got, want - got, at + got);
      if (read === 0) break;
      got += read;
    }
    if (got < n) throw truncated(`${n} bytes (the file shrank while being read)`, at, got);
    this.#windowStart = at;
    this.#windowLength = got;
  }
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** A PickleReader over bytes already in memory; `read` and `readData` return views, not copies. */
export function bufferReader(bytes: Uint8Array): PickleReader {
  return FileReader.overBytes(bytes);
}

// As Unpickler's (unpickler.ts): idle readers keep the class's object shapes, and so the optimized
// code of the loads that use them, alive between loads.
export const keptReaderShapes: readonly object[] = [new FileReader(-1, 0), bufferReader(new Uint8Array(0))];
