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
