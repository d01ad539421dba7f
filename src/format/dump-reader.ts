/**
 * Reading a dump's header and structure, checked, from a plain file, from
 * bytes in memory, or from a compressed stream: what load and inspect both
 * do before they look at a single array.
 */
import { createReadStream } from 'node:fs';
import { ErrorCodes, MemjobError, clip, describe } from '../errors.js';
import { readFully, readFullySync } from '../system/regular-file.js';
import { maxViewBytes } from '../native.js';
import { unpackr } from './codec.js';
import { decompressPrefix, decompressSync, decompressor, type CompressMethod } from './compression.js';
import { HEADER_BYTES, decodeHeader, formatError, hasMagic, type Header } from './header.js';
import { MsgpackScanner, checkPlainMsgpack } from './msgpack-scan.js';
import { StreamReader } from './stream-reader.js';
import { StructureError, collectDescriptors, validateSegments, type ArrayDescriptor, type Segment } from './structure.js';

export interface Parsed {
  header: Header;
  segments: Segment[];
  tree: unknown;
  descriptors: ArrayDescriptor[];
}

/**
 * Decodes and validates a structure. The raw bytes are checked first
 * (msgpack-scan.ts): msgpackr only ever sees plain msgpack, so none of its
 * extensions runs on a file's bytes. `scanned`: the caller already did that.
 */
export function parseStructure(header: Header, bytes: Buffer, path: string, scanned = false): Parsed {
  let decoded: unknown;
  try {
    if (!scanned) checkPlainMsgpack(bytes);
    decoded = unpackr.unpack(bytes);
  } catch (error) {
    if (error instanceof StructureError) throw formatError(path, error.message);
    throw formatError(path, `its structure cannot be decoded (${clip((error as Error).message)})`);
  }
  try {
    if (!Array.isArray(decoded) || decoded.length !== 2) throw new StructureError(`the structure is ${describe(decoded)}, not [segments, value]`);
    const segments = validateSegments(decoded[0], header.dataLength, header.alignment);
    const tree = decoded[1] as unknown;
    return { header, segments, tree, descriptors: collectDescriptors(tree, segments) };
  } catch (error) {
    throw asFormatError(error, path);
  }
}

/**
 * Anything that goes wrong while checking or rebuilding a structure is the
 * file's fault (a stack overflow from absurd nesting included): a FORMAT
 * error, whatever was thrown.
 */
export function asFormatError(error: unknown, path: string): MemjobError {
  if (error instanceof MemjobError) return error;
  if (error instanceof StructureError) return formatError(path, error.message);
  return formatError(path, `its structure is malformed (${error instanceof Error ? clip(error.message) : 'unknown error'})`);
}

export function readExactlySync(fd: number, target: Uint8Array, position: number, path: string): void {
  const read = readFullySync(fd, target, position);
  if (read < target.length) throw formatError(path, `it ended early, at byte ${position + read}`);
}

export async function readExactly(fd: number, target: Uint8Array, position: number, path: string): Promise<void> {
  const read = await readFully(fd, target, position);
  if (read < target.length) throw formatError(path, `it ended early, at byte ${position + read}`);
}

/** The first bytes of a file of `size` bytes: the header of a plain dump, or the magic of a compressed one or of a .npy. */
export function readHeadSync(fd: number, size: number, path: string): Buffer {
  const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
  readExactlySync(fd, head, 0, path);
  return head;
}

/** Header and structure of an uncompressed dump, read from an open file. */
export function readLayoutSync(fd: number, size: number, head: Buffer, path: string): Parsed {
  const header = decodeHeader(head, size, path);
  const structure = Buffer.alloc(header.structureLength);
  readExactlySync(fd, structure, header.structureOffset, path);
  return parseStructure(header, structure, path);
}

/** Header and structure of a whole (decompressed) dump held in memory. */
export function parseBytes(bytes: Buffer, path: string): Parsed {
  const header = decodeHeader(bytes.subarray(0, HEADER_BYTES), bytes.length, path);
  return parseStructure(header, bytes.subarray(header.structureOffset, header.structureOffset + header.structureLength), path);
}

/**
 * Decompresses a whole file in memory, but never beyond what its header
 * promises: the header is read from a small decompressed prefix first, so a
 * tiny file cannot inflate into gigabytes before anything is checked.
 */
export function decompressOrFail(bytes: Buffer, method: CompressMethod, path: string): Buffer {
  let head: Buffer;
  try {
    head = decompressPrefix(bytes, method, HEADER_BYTES);
  } catch (error) {
    throw notADump(path, method, error);
  }
  if (!hasMagic(head)) throw notADump(path, method);
  const header = decodeCompressedHeader(head, bytes.length, method, path);
  scanEarly(bytes, method, header, path);
  const total = header.dataOffset + header.dataLength;
  if (total > maxViewBytes) {
    // Too big to hold, if true. A bounded trial tells a lying header (the
    // stream ends early: truncated) from a genuinely huge file.
    let probe: Buffer | undefined;
    try {
      probe = decompressSync(bytes, method, 64 << 20);
    } catch {
      probe = undefined;
    }
    if (probe !== undefined) throw formatError(path, `it is truncated: its header promises ${total} bytes, it decompresses to ${probe.length}`);
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `loadSync: '${path}' promises ${total} bytes once decompressed, more than one ArrayBuffer can hold in this Node, and loadSync decompresses a file whole; ` +
        `if the file is genuine, use the async load(), which streams, or decompress it to a plain dump (${DECOMPRESS_COMMAND[method]}) and load that, with { mmapMode: 'r' } for arrays this large`,
      { path },
    );
  }
  try {
    return decompressSync(bytes, method, total);
  } catch (error) {
    const tooLong = (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE';
    throw formatError(path, tooLong ? `it decompresses to more than the ${total} bytes its header promises` : `it cannot be decompressed as ${method} (${(error as Error).message})`);
  }
}

/** Structure bytes checked before a compressed file is inflated whole (loadSync). */
const EARLY_SCAN_BYTES = 1 << 20;

/**
 * The structure's first bytes, checked as load() checks the stream: a file
 * whose structure is garbage is refused before loadSync inflates all of it.
 */
function scanEarly(bytes: Buffer, method: CompressMethod, header: Header, path: string): void {
  const end = Math.min(header.structureOffset + header.structureLength, header.structureOffset + EARLY_SCAN_BYTES);
  let prefix: Buffer;
  try {
    prefix = decompressPrefix(bytes, method, end);
  } catch {
    return; // the whole inflate reports it
  }
  if (prefix.length <= header.structureOffset) return;
  try {
    new MsgpackScanner(header.structureLength).feed(prefix.subarray(header.structureOffset));
  } catch (error) {
    throw asFormatError(error, path);
  }
}

/** What turns a compressed dump back into a plain one, for messages. */
const DECOMPRESS_COMMAND: Record<CompressMethod, string> = { gzip: 'gunzip', zlib: 'pigz -dz', brotli: 'brotli -d' };

/**
 * A compressed dump's header, checked against what its compressed size can
 * hold before anything past the header is inflated (load, loadSync and
 * inspect alike): deflate cannot expand data more than 1032 times, so a
 * header promising more is lying; brotli has no such bound.
 */
export function decodeCompressedHeader(head: Buffer, compressedBytes: number, method: CompressMethod, path: string): Header {
  const header = decodeHeader(head, Infinity, path);
  const total = header.dataOffset + header.dataLength;
  if (method !== 'brotli' && total > compressedBytes * 1032) {
    throw formatError(path, `it is truncated: its header promises ${total} bytes, more than ${compressedBytes} bytes of ${method} can expand to`);
  }
  return header;
}

/**
 * Every array of a compressed dump must fit one ArrayBuffer, since none can
 * be mapped: checked once the structure is read, before any array is
 * inflated. A plain dump's larger arrays load with mmapMode instead.
 */
export function refuseUnviewable(parsed: Parsed, path: string, method: CompressMethod, where: string): void {
  for (const d of parsed.descriptors) {
    if (d.byteLength <= maxViewBytes) continue;
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `${where}: '${path}' holds a ${d.kind} of ${d.byteLength} bytes, more than one ArrayBuffer can hold in this Node, and a ${method}-compressed dump cannot be memory-mapped; ` +
        `decompress it to a plain dump first (${DECOMPRESS_COMMAND[method]}) and load that with { mmapMode: 'r' }`,
      { path },
    );
  }
}

export function notADump(path: string, method: CompressMethod, cause?: unknown): MemjobError {
  const how = method === 'brotli' ? 'nor does it decompress as brotli' : `and it does not decompress as ${method}`;
  const why = cause === undefined ? ' into one' : ` (${(cause as Error).message})`;
  return formatError(path, `it does not start with the memjob magic bytes, ${how}${why}`);
}

/**
 * A compressed dump opened as a stream, its header and structure read and
 * checked (load and inspect). The reader is left at the end of the
 * structure; call close() when done, whatever happens.
 */
export async function openCompressedDump(
  path: string,
  fileBytes: number,
  method: CompressMethod,
): Promise<{ reader: StreamReader; parsed: Parsed; close: () => Promise<void> }> {
  const input = createReadStream(path);
  const output = input.pipe(decompressor(method));
  input.on('error', (error) => output.destroy(error));
  const reader = new StreamReader(output);
  const close = async () => {
    await reader.close();
    input.destroy();
  };
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    let complete: boolean;
    try {
      complete = await reader.readInto(head);
    } catch (error) {
      throw notADump(path, method, error);
    }
    if (!hasMagic(head)) throw notADump(path, method);
    if (!complete) throw formatError(path, 'its decompressed content is shorter than the header');
    const header = decodeCompressedHeader(head, fileBytes, method, path);
    await skipTo(reader, header.structureOffset, path);
    // Checked as it is inflated: a file is refused at its first bad byte, not after gigabytes.
    const scanner = new MsgpackScanner(header.structureLength);
    let structure: Buffer[];
    try {
      structure = await readPiecesOrFail(reader, header.structureLength, path, (piece) => scanner.feed(piece));
      scanner.finish();
    } catch (error) {
      if (error instanceof StructureError) throw formatError(path, error.message);
      throw error;
    }
    return { reader, parsed: parseStructure(header, Buffer.concat(structure), path, true), close };
  } catch (error) {
    await close();
    throw undecompressable(error, path, method);
  }
}

export function undecompressable(error: unknown, path: string, method: CompressMethod): MemjobError {
  if (error instanceof MemjobError) return error;
  return formatError(path, `it could not be decompressed as ${method} (${(error as Error).message})`);
}

export function truncated(path: string, position: number): MemjobError {
  return formatError(path, `it is truncated: the decompressed content ends at byte ${position}`);
}

export async function skipTo(reader: StreamReader, position: number, path: string): Promise<void> {
  if (position < reader.position) throw formatError(path, `byte ${position} comes before the read position ${reader.position}`);
  if (!(await reader.skip(position - reader.position))) throw truncated(path, reader.position);
}

export async function readPiecesOrFail(reader: StreamReader, length: number, path: string, onPiece?: (piece: Buffer) => void): Promise<Buffer[]> {
  const pieces = await reader.readPieces(length, onPiece);
  if (pieces === null) throw truncated(path, reader.position);
  return pieces;
}
