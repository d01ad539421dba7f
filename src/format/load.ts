/**
 * load(filename, { mmapMode }): reads a dump back. With mmapMode every array
 * is a view on the file itself (zero copy); without it every array is read
 * into memory the caller owns. Nothing in the file is trusted: the header,
 * the structure and every array descriptor are checked before anything is
 * mapped or allocated, and no code from the file ever runs.
 */
import { closeSync, constants as fsConstants, createReadStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { ErrorCodes, MemjobError, describe, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { dtypeInfo } from '../memmap/dtype.js';
import { FileMapping } from '../memmap/file-mapping.js';
import { contiguousStrides } from '../memmap/layout.js';
import { Memmap, type MemmapMode } from '../memmap/memmap.js';
import { NDArray } from '../memmap/ndarray.js';
import { maxViewBytes } from '../native.js';
import { unpackr } from './codec.js';
import { decompressPrefix, decompressSync, decompressor, detectMethod, type CompressMethod } from './compression.js';
import { HEADER_BYTES, decodeHeader, formatError, hasMagic, type Header } from './header.js';
import { StreamReader } from './stream-reader.js';
import {
  StructureError,
  collectDescriptors,
  decodeValue,
  elementCount,
  validateSegments,
  type ArrayDescriptor,
  type Segment,
} from './structure.js';

export type LoadMmapMode = 'r' | 'r+' | 'c' | 'w+';

export interface LoadOptions {
  /** Map arrays instead of reading them: 'r' read-only, 'r+' read-write, 'c' copy-on-write, 'w+' as 'r+'. */
  mmapMode?: LoadMmapMode | null;
}

export interface Parsed {
  header: Header;
  segments: Segment[];
  tree: unknown;
  descriptors: ArrayDescriptor[];
}

const modes: readonly string[] = ['r', 'r+', 'c', 'w+'];
/** Larger arrays from a compressed stream are gathered in pieces first, so a lying header cannot make load allocate them up front. */
const PREALLOCATE_LIMIT = 64 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024 * 1024;

function parseArgs(filename: unknown, options: unknown, where: string): { path: string; mmapMode: LoadMmapMode | null } {
  const path = parseFilename(filename, where);
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const mmapMode = (options as LoadOptions).mmapMode ?? null;
  if (mmapMode !== null && !modes.includes(mmapMode)) throw invalidArg(where, 'mmapMode', "one of 'r', 'r+', 'c', 'w+' or null", mmapMode);
  return { path, mmapMode };
}

/** @internal Decodes and validates a structure (also used by inspect). */
export function parseStructure(header: Header, bytes: Buffer, path: string): Parsed {
  let decoded: unknown;
  try {
    decoded = unpackr.unpack(bytes);
  } catch (error) {
    throw formatError(path, `its structure cannot be decoded (${(error as Error).message})`);
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
function asFormatError(error: unknown, path: string): MemjobError {
  if (error instanceof MemjobError) return error;
  if (error instanceof StructureError) return formatError(path, error.message);
  return formatError(path, `its structure is malformed (${error instanceof Error ? error.message : 'unknown error'})`);
}

/** The value a descriptor stands for, over `buffer` (which holds exactly its bytes). */
function arrayOver(d: ArrayDescriptor, buffer: ArrayBuffer): unknown {
  const length = elementCount(d);
  switch (d.kind) {
    case 'ArrayBuffer':
      return buffer;
    case 'DataView':
      return new DataView(buffer);
    case 'Buffer':
      return Buffer.from(buffer, 0, d.byteLength);
    case 'Uint8ClampedArray':
      return new Uint8ClampedArray(buffer, 0, length);
    case 'NDArray':
    case 'Memmap': // a Memmap read into memory comes back as an NDArray, as a numpy memmap loads as an ndarray
      return new NDArray(new (dtypeInfo(d.dtype).arrayType)(buffer, 0, length), { shape: d.shape, order: d.order, dtype: d.dtype });
    default:
      return new (dtypeInfo(d.dtype).arrayType)(buffer, 0, length);
  }
}

/** Memory for one array read into memory; a dumped Memmap may be too large for that. */
function allocate(d: ArrayDescriptor, path: string): ArrayBuffer {
  if (d.byteLength > maxViewBytes) {
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `load: '${path}' holds an array of ${d.byteLength} bytes, more than one ArrayBuffer can hold in this Node; load it with { mmapMode: 'r' }`,
      { path },
    );
  }
  return new ArrayBuffer(d.byteLength);
}

function build(parsed: Parsed, arrays: Map<number, unknown>, path: string): unknown {
  try {
    return decodeValue(parsed.tree, parsed.segments, (d) => arrays.get(d.segment));
  } catch (error) {
    throw asFormatError(error, path);
  }
}

export function readExactlySync(fd: number, target: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(READ_CHUNK, target.length - done), position + done);
    if (n === 0) throw formatError(path, `it ended early, at byte ${position + done}`);
    done += n;
  }
}

async function readExactly(handle: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, Math.min(READ_CHUNK, target.length - done), position + done);
    if (bytesRead === 0) throw formatError(path, `it ended early, at byte ${position + done}`);
    done += bytesRead;
  }
}

/** Header and structure of an uncompressed dump, read from an open file. */
function readLayoutSync(fd: number, size: number, head: Buffer, path: string): Parsed {
  const header = decodeHeader(head, size, path);
  const structure = Buffer.alloc(header.structureLength);
  readExactlySync(fd, structure, header.structureOffset, path);
  return parseStructure(header, structure, path);
}

function mapArrays(fd: number, path: string, parsed: Parsed, mode: LoadMmapMode, mappings?: FileMapping[]): Map<number, unknown> {
  const memmapMode: MemmapMode = mode === 'w+' ? 'r+' : mode;
  const shared = memmapMode === 'r+';
  const { dataOffset, dataLength } = parsed.header;
  // Plain arrays share one mapping of the data region (they have no close());
  // each Memmap gets its own, so closing one never detaches the others.
  let common: FileMapping | undefined;
  const arrays = new Map<number, unknown>();
  for (const d of parsed.descriptors) {
    const fileOffset = dataOffset + parsed.segments[d.segment]!.offset;
    if (d.byteLength === 0) {
      arrays.set(d.segment, arrayOver(d, new ArrayBuffer(0)));
    } else if (d.kind === 'Memmap') {
      const mapping = new FileMapping(fd, path, fileOffset, d.byteLength, shared);
      mappings?.push(mapping);
      const strides = contiguousStrides(d.shape, dtypeInfo(d.dtype).itemsize, d.order);
      arrays.set(d.segment, Memmap.create({ mapping, mode: memmapMode, dtype: d.dtype, shape: d.shape, strides, offset: fileOffset, order: d.order }));
    } else {
      if (common === undefined) {
        common = new FileMapping(fd, path, dataOffset, dataLength, shared);
        mappings?.push(common);
      }
      arrays.set(d.segment, arrayOver(d, common.view(fileOffset, d.byteLength)));
    }
  }
  return arrays;
}

function warnCompressedMmap(path: string): void {
  process.emitWarning(`'${path}' is compressed, so its arrays cannot be memory-mapped; they were read into memory instead`, {
    code: 'MEMJOB_COMPRESSED_MMAP',
    detail: 'Dump without "compress" to load with mmapMode.',
  });
}

function asMemjobError(error: unknown, where: string, path: string): MemjobError {
  return error instanceof MemjobError ? error : systemError(where, error, path);
}

/** Opens for reading, or for writing too when the arrays will be mapped shared ('r+', 'w+'). */
function openChecked(path: string, mmapMode: LoadMmapMode | null, where: string): { fd: number; size: number } {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not make open() wait for a writer; the type check below refuses it.
    fd = openSync(path, (mmapMode === 'r+' || mmapMode === 'w+' ? fsConstants.O_RDWR : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK);
  } catch (error) {
    throw systemError(where, error, path);
  }
  const stat = fstatSync(fd);
  if (!stat.isFile()) {
    closeSync(fd);
    throw new MemjobError(stat.isDirectory() ? 'EISDIR' : ErrorCodes.INVALID_ARG, `${where}: expected a regular file, received '${path}', which is not one`, { path });
  }
  return { fd, size: stat.size };
}

/** Parses a whole (decompressed) file held in memory and copies its arrays out. */
function loadFromBytes(bytes: Buffer, path: string): unknown {
  const header = decodeHeader(bytes.subarray(0, HEADER_BYTES), bytes.length, path);
  const parsed = parseStructure(header, bytes.subarray(header.structureOffset, header.structureOffset + header.structureLength), path);
  const arrays = new Map<number, unknown>();
  for (const d of parsed.descriptors) {
    const start = header.dataOffset + parsed.segments[d.segment]!.offset;
    const buffer = allocate(d, path);
    new Uint8Array(buffer).set(bytes.subarray(start, start + d.byteLength));
    arrays.set(d.segment, arrayOver(d, buffer));
  }
  return build(parsed, arrays, path);
}

/**
 * Synchronous load(). A compressed file is decompressed whole in memory (the async load streams it).
 * `loadSync<T>()` is a cast, not a check, as load<T>().
 */
export function loadSync<T = unknown>(filename: string | URL, options?: LoadOptions): T;
export function loadSync(filename: string | URL, options: LoadOptions = {}): unknown {
  const where = 'loadSync';
  const { path, mmapMode } = parseArgs(filename, options, where);
  const { fd, size } = openChecked(path, mmapMode, where);
  try {
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    readExactlySync(fd, head, 0, path);
    if (!hasMagic(head)) {
      if (mmapMode !== null) warnCompressedMmap(path);
      return loadFromBytes(decompressOrFail(readFileSync(fd), detectMethod(head), path), path);
    }
    const parsed = readLayoutSync(fd, size, head, path);
    if (mmapMode !== null) return build(parsed, mapArrays(fd, path, parsed, mmapMode), path);
    const arrays = new Map<number, unknown>();
    for (const d of parsed.descriptors) {
      const buffer = allocate(d, path);
      readExactlySync(fd, new Uint8Array(buffer), parsed.header.dataOffset + parsed.segments[d.segment]!.offset, path);
      arrays.set(d.segment, arrayOver(d, buffer));
    }
    return build(parsed, arrays, path);
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * @internal For workers: maps an uncompressed dump and also returns the
 * mappings made, so the owner can unmap them all (close()) when a run ends
 * instead of waiting for the garbage collector.
 */
export function loadMappedSync(path: string, mode: LoadMmapMode): { value: unknown; mappings: FileMapping[] } {
  const where = 'load';
  const { fd, size } = openChecked(path, mode, where);
  try {
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    readExactlySync(fd, head, 0, path);
    const parsed = readLayoutSync(fd, size, head, path);
    const mappings: FileMapping[] = [];
    return { value: build(parsed, mapArrays(fd, path, parsed, mode, mappings), path), mappings };
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Decompresses a whole file in memory, but never beyond what its header
 * promises: the header is read from a small decompressed prefix first, so a
 * tiny file cannot inflate into gigabytes before anything is checked.
 */
function decompressOrFail(bytes: Buffer, method: CompressMethod, path: string): Buffer {
  let head: Buffer;
  try {
    head = decompressPrefix(bytes, method, HEADER_BYTES);
  } catch (error) {
    throw notADump(path, method, error);
  }
  if (!hasMagic(head)) throw notADump(path, method);
  const header = decodeHeader(head, Infinity, path);
  const total = header.dataOffset + header.dataLength;
  // Deflate cannot expand data more than 1032 times: a header promising more is lying.
  if (method !== 'brotli' && total > bytes.length * 1032) {
    throw formatError(path, `it is truncated: its header promises ${total} bytes, more than ${bytes.length} bytes of ${method} can expand to`);
  }
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
      `loadSync: '${path}' promises ${total} bytes once decompressed, more than one ArrayBuffer can hold in this Node; if the file is genuine, use the async load(), which streams`,
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

export function notADump(path: string, method: CompressMethod, cause?: unknown): MemjobError {
  const how = method === 'brotli' ? 'nor does it decompress as brotli' : `and it does not decompress as ${method}`;
  const why = cause === undefined ? ' into one' : ` (${(cause as Error).message})`;
  return formatError(path, `it does not start with the memjob magic bytes, ${how}${why}`);
}

/**
 * Reads a dump back. Without `mmapMode`, every array is read into memory the
 * caller owns; with it, every array is a view on the file (zero copy), and a
 * dumped Memmap comes back as a Memmap. `load<T>()` types the result as the
 * caller expects it: a cast, not a check (the file is what it is).
 */
export async function load<T = unknown>(filename: string | URL, options?: LoadOptions): Promise<T>;
export async function load(filename: string | URL, options: LoadOptions = {}): Promise<unknown> {
  const where = 'load';
  const { path, mmapMode } = parseArgs(filename, options, where);
  const { fd, size } = openChecked(path, mmapMode, where);
  let handle: FileHandle | undefined;
  try {
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    readExactlySync(fd, head, 0, path);
    if (!hasMagic(head)) {
      if (mmapMode !== null) warnCompressedMmap(path);
      return await loadCompressedStream(path, detectMethod(head));
    }
    const parsed = readLayoutSync(fd, size, head, path);
    if (mmapMode !== null) return build(parsed, mapArrays(fd, path, parsed, mmapMode), path);
    handle = await openAsync(path, 'r');
    const arrays = new Map<number, unknown>();
    for (const d of parsed.descriptors) {
      const buffer = allocate(d, path);
      await readExactly(handle, new Uint8Array(buffer), parsed.header.dataOffset + parsed.segments[d.segment]!.offset, path);
      arrays.set(d.segment, arrayOver(d, buffer));
    }
    return build(parsed, arrays, path);
  } catch (error) {
    throw asMemjobError(error, where, path);
  } finally {
    closeSync(fd);
    await handle?.close();
  }
}

/**
 * @internal A compressed dump opened as a stream, its header and structure
 * read and checked (load and inspect). The reader is left at the end of the
 * structure; call close() when done, whatever happens.
 */
export async function openCompressedDump(path: string, method: CompressMethod): Promise<{ reader: StreamReader; parsed: Parsed; close: () => Promise<void> }> {
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
    const header = decodeHeader(head, Infinity, path);
    await skipTo(reader, header.structureOffset, path);
    const structure = await readPiecesOrFail(reader, header.structureLength, path);
    return { reader, parsed: parseStructure(header, Buffer.concat(structure), path), close };
  } catch (error) {
    await close();
    throw undecompressable(error, path, method);
  }
}

function undecompressable(error: unknown, path: string, method: CompressMethod): MemjobError {
  if (error instanceof MemjobError) return error;
  return formatError(path, `it could not be decompressed as ${method} (${(error as Error).message})`);
}

async function loadCompressedStream(path: string, method: CompressMethod): Promise<unknown> {
  const { reader, parsed, close } = await openCompressedDump(path, method);
  const { header } = parsed;
  try {
    // Read the arrays in file order: the stream only goes forward.
    const inOrder = [...parsed.descriptors].sort((a, b) => parsed.segments[a.segment]!.offset - parsed.segments[b.segment]!.offset);
    const arrays = new Map<number, unknown>();
    for (const d of inOrder) {
      await skipTo(reader, header.dataOffset + parsed.segments[d.segment]!.offset, path);
      let buffer: ArrayBuffer;
      if (d.byteLength <= PREALLOCATE_LIMIT) {
        buffer = allocate(d, path);
        if (!(await reader.readInto(new Uint8Array(buffer)))) throw truncated(path, reader.position);
      } else {
        const pieces = await readPiecesOrFail(reader, d.byteLength, path);
        buffer = allocate(d, path);
        const target = new Uint8Array(buffer);
        let at = 0;
        for (const piece of pieces) {
          target.set(piece, at);
          at += piece.length;
        }
      }
      arrays.set(d.segment, arrayOver(d, buffer));
    }
    return build(parsed, arrays, path);
  } catch (error) {
    throw undecompressable(error, path, method);
  } finally {
    await close();
  }
}

export function truncated(path: string, position: number): MemjobError {
  return formatError(path, `it is truncated: the decompressed content ends at byte ${position}`);
}

export async function skipTo(reader: StreamReader, position: number, path: string): Promise<void> {
  if (position < reader.position) throw formatError(path, `byte ${position} comes before the read position ${reader.position}`);
  if (!(await reader.skip(position - reader.position))) throw truncated(path, reader.position);
}

async function readPiecesOrFail(reader: StreamReader, length: number, path: string): Promise<Buffer[]> {
  const pieces = await reader.readPieces(length);
  if (pieces === null) throw truncated(path, reader.position);
  return pieces;
}
