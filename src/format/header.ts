/**
 * The fixed 64-byte header at the start of every dump file (docs/format.md).
 * All integers are little-endian. The header says where the structure and
 * the data region are, so a reader never has to guess, and it carries the
 * format version and the alignment so either can change without breaking
 * files already written.
 */
import { ErrorCodes, MemjobError } from '../errors.js';

/** "\x93MEMJOB\0": a non-ASCII first byte, like numpy's "\x93NUMPY", so text tools see binary. */
export const MAGIC = Buffer.from([0x93, 0x4d, 0x45, 0x4d, 0x4a, 0x4f, 0x42, 0x00]);
export const HEADER_BYTES = 64;
export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 0;
/** Raw array bytes start at multiples of this, so any dtype can be viewed in place (and AVX-512 loads are aligned). */
export const ALIGNMENT = 64;
/**
 * The largest structure memjob writes or reads. The structure is decoded
 * whole into JS values (several times its size in heap), so a larger one
 * cannot be loaded anyway; checking the header's claim first means a small
 * compressed file cannot make a reader inflate gigabytes before refusing.
 */
export const MAX_STRUCTURE_BYTES = 2 ** 30;

export interface Header {
  major: number;
  minor: number;
  alignment: number;
  /** Where the msgpack structure starts, and its length. */
  structureOffset: number;
  structureLength: number;
  /** Where the data region starts (a multiple of `alignment`), and its length. */
  dataOffset: number;
  dataLength: number;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function encodeHeader(header: Header): Buffer {
  const out = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt16LE(header.major, 8);
  out.writeUInt16LE(header.minor, 10);
  out.writeUInt32LE(header.alignment, 12);
  out.writeUInt32LE(HEADER_BYTES, 16);
  out.writeUInt32LE(0, 20); // flags, none defined yet
  out.writeBigUInt64LE(BigInt(header.structureOffset), 24);
  out.writeBigUInt64LE(BigInt(header.structureLength), 32);
  out.writeBigUInt64LE(BigInt(header.dataOffset), 40);
  out.writeBigUInt64LE(BigInt(header.dataLength), 48);
  return out;
}

export function hasMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.equals(bytes.subarray(0, MAGIC.length));
}

export function formatError(path: string, problem: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `load: '${path}' is not a valid memjob dump: ${problem}`, { path });
}

/**
 * Reads and checks a header against the file's size (for a compressed file,
 * `fileBytes` is Infinity: the stream's end is checked as it is read).
 */
export function decodeHeader(bytes: Buffer, fileBytes: number, path: string): Header {
  if (bytes.length < HEADER_BYTES) throw formatError(path, `the file holds ${bytes.length} bytes, fewer than the ${HEADER_BYTES}-byte header`);
  if (!hasMagic(bytes)) throw formatError(path, `it does not start with the memjob magic bytes (found ${bytes.subarray(0, 8).toString('hex')})`);
  const major = bytes.readUInt16LE(8);
  const minor = bytes.readUInt16LE(10);
  if (major !== FORMAT_MAJOR) {
    throw formatError(path, `format version ${major}.${minor} is not one this memjob reads (it reads ${FORMAT_MAJOR}.x); upgrade memjob`);
  }
  const alignment = bytes.readUInt32LE(12);
  const headerLength = bytes.readUInt32LE(16);
  const u64 = (at: number, name: string): number => {
    const value = bytes.readBigUInt64LE(at);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(path, `${name} ${value} is impossibly large`);
    return Number(value);
  };
  const header: Header = {
    major,
    minor,
    alignment,
    structureOffset: u64(24, 'structure offset'),
    structureLength: u64(32, 'structure length'),
    dataOffset: u64(40, 'data offset'),
    dataLength: u64(48, 'data length'),
  };
  if (alignment < 8 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0) {
    throw formatError(path, `alignment ${alignment} is not a power of two between 8 and 1 MiB`);
  }
  if (headerLength !== HEADER_BYTES) throw formatError(path, `header length ${headerLength} is not ${HEADER_BYTES}`);
  if (header.structureLength > MAX_STRUCTURE_BYTES) {
    throw formatError(path, `its header says the structure is ${header.structureLength} bytes, more than the ${MAX_STRUCTURE_BYTES} memjob reads`);
  }
  if (header.structureOffset < HEADER_BYTES || header.structureOffset + header.structureLength > header.dataOffset) {
    throw formatError(
      path,
      `the structure (offset ${header.structureOffset}, ${header.structureLength} bytes) does not lie between the header and the data region at ${header.dataOffset}`,
    );
  }
  if (header.dataOffset % alignment !== 0) throw formatError(path, `data offset ${header.dataOffset} is not a multiple of the alignment ${alignment}`);
  if (header.dataOffset + header.dataLength > fileBytes) {
    throw formatError(
      path,
      `it is truncated: the header promises ${header.dataOffset + header.dataLength} bytes, the file holds ${fileBytes}`,
    );
  }
  return header;
}
