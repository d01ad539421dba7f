/**
 * dump(value, filename): writes a value to one file whose arrays can later be
 * mapped in place (docs/format.md). Arrays are written straight from their
 * own memory (or, for a Memmap, from its mapping in bounded chunks), so the
 * extra memory a dump needs does not grow with the arrays' size.
 */
import { createWriteStream, writeSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCodes, MemjobError, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import { maxViewBytes } from '../native.js';
import { createTempBeside, type TempFile, type TempFileOptions } from './atomic-file.js';
import { packr } from './codec.js';
import { compressSync, compressor, parseCompress, type CompressOption, type Compression } from './compression.js';
import { ALIGNMENT, FORMAT_MAJOR, FORMAT_MINOR, HEADER_BYTES, MAX_STRUCTURE_BYTES, alignUp, encodeHeader } from './header.js';
import { checkPlainMsgpack } from './msgpack-scan.js';
import { encodeValue, memmapStorageOrder, type SegmentSource } from './structure.js';

export interface DumpOptions {
  /** true (zlib level 3), a level 0-9, 'gzip' | 'zlib' | 'brotli', or [method, level]. Default: none, unless the filename ends in .gz, .z or .br. */
  compress?: CompressOption;
}

/** Writes larger than this are split, so no single write call or compression input is huge. */
const WRITE_CHUNK = 64 * 1024 * 1024;
const zeros = new Uint8Array(ALIGNMENT);

/** Every byte of the file, in order, as views on memory that already exists (nothing is copied but the header). */
function* fileChunks(value: unknown): Generator<Uint8Array, void, undefined> {
  const { tree, sources, byteLengths } = encodeValue(value);
  const offsets: number[] = [];
  let dataLength = 0;
  for (const length of byteLengths) {
    dataLength = alignUp(dataLength, ALIGNMENT);
    offsets.push(dataLength);
    dataLength += length;
  }
  const structure = packr.pack([offsets.map((offset, i) => [offset, byteLengths[i]]), tree]);
  // load would refuse a structure over its limits: say so now, not when the file is read back.
  if (structure.length > MAX_STRUCTURE_BYTES) {
    throw new MemjobError(
      ErrorCodes.UNSUPPORTED_VALUE,
      `dump: cannot store value: its non-array part packs into ${structure.length} bytes, more than the ${MAX_STRUCTURE_BYTES} a dump's structure may hold; put large data in typed arrays or NDArrays`,
    );
  }
  try {
    checkPlainMsgpack(structure);
  } catch (error) {
    const problem = error instanceof Error ? error.message.replace(/^its structure cannot be decoded: /, '') : String(error);
    throw new MemjobError(ErrorCodes.UNSUPPORTED_VALUE, `dump: cannot store value: load would refuse its structure: ${problem}`);
  }
  const dataOffset = alignUp(HEADER_BYTES + structure.length, ALIGNMENT);
  yield encodeHeader({
    major: FORMAT_MAJOR,
    minor: FORMAT_MINOR,
    alignment: ALIGNMENT,
    structureOffset: HEADER_BYTES,
    structureLength: structure.length,
    dataOffset,
    dataLength,
  });
  yield structure;
  // The file always reaches the data region's start, even with no arrays, so
  // its length is exactly dataOffset + dataLength.
  let written = HEADER_BYTES + structure.length;
  for (let i = 0; i <= sources.length; i++) {
    const start = dataOffset + (offsets[i] ?? dataLength);
    if (start > written) yield zeros.subarray(0, start - written);
    if (i === sources.length) break;
    for (const bytes of segmentBytes(sources[i]!)) yield bytes;
    written = start + byteLengths[i]!;
  }
}

/** A segment's bytes in file order (a Memmap in the order memmapStorageOrder() gives), in bounded chunks. */
export function* segmentBytes(source: SegmentSource): Generator<Uint8Array, void, undefined> {
  if ('bytes' in source) {
    for (let at = 0; at < source.bytes.length; at += WRITE_CHUNK) yield source.bytes.subarray(at, at + WRITE_CHUNK);
    return;
  }
  const m = source.memmap;
  if (m.size === 0) return;
  // An F-ordered memmap that fits one view is written as stored (the
  // descriptor says 'F'); everything else is written in C order, row block
  // by row block, copying only strided blocks.
  if (memmapStorageOrder(m) === 'F') {
    const data = m.data;
    yield* segmentBytes({ bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return;
  }
  const cContiguous = (block: typeof m) => block.contiguous && (block.order === 'C' || block.ndim <= 1);
  for (const block of m.chunks({ maxBytes: WRITE_CHUNK })) {
    const data = cContiguous(block) ? block.data : block.toArray();
    yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
}

/** Synchronous dump(); with compression it holds the whole file in memory (the async dump streams). */
export function dumpSync(value: unknown, filename: string | URL, options: DumpOptions = {}): string[] {
  const where = 'dumpSync';
  const target = parseFilename(filename, where);
  writeDumpSync(value, target, parseCompress(options.compress, target, where), {}, where);
  return [target];
}

/**
 * @internal For the transport layer: an uncompressed dump into a run's
 * private temp folder, kept 0600 and not fsynced (it never outlives the run).
 */
export function dumpScratchSync(value: unknown, target: string): void {
  writeDumpSync(value, target, null, { durable: false, private: true }, 'dump');
}

function writeDumpSync(value: unknown, target: string, compression: Compression | null, tempOptions: TempFileOptions, where: string): void {
  const chunks = fileChunks(value);
  // Encode (and refuse bad values) before any file exists.
  const first = chunks.next();
  const temp = createTempBeside(target, where, tempOptions);
  try {
    if (compression === null) {
      if (!first.done) writeAll(temp, first.value);
      for (const chunk of chunks) writeAll(temp, chunk);
    } else {
      // The header (the first chunk) says how long the file will be: check before gathering it.
      const header = Buffer.from(first.value!.buffer, first.value!.byteOffset, first.value!.byteLength);
      const total = Number(header.readBigUInt64LE(40) + header.readBigUInt64LE(48));
      if (total > maxViewBytes) {
        throw new MemjobError(
          ErrorCodes.VIEW_TOO_LARGE,
          `${where}: compressing ${total} bytes synchronously needs them in one Buffer, more than this Node can hold; use the async dump(), which streams`,
          { path: target },
        );
      }
      writeAll(temp, compressSync(Buffer.concat([first.value!, ...chunks]), compression));
    }
    temp.commit();
  } catch (error) {
    temp.abort();
    throw asMemjobError(error, where, target);
  }
}

function writeAll(temp: TempFile, chunk: Uint8Array): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(temp.fd, chunk, done, chunk.length - done);
}

/**
 * Writes `value` to `filename` atomically (temp file, fsync, rename) and
 * resolves to the list of files written, as joblib.dump returns.
 */
export async function dump(value: unknown, filename: string | URL, options: DumpOptions = {}): Promise<string[]> {
  const where = 'dump';
  const target = parseFilename(filename, where);
  const compression = parseCompress(options.compress, target, where);
  const chunks = fileChunks(value);
  const first = chunks.next(); // encodes the structure: bad values are refused before a file exists
  const temp = createTempBeside(target, where);
  try {
    const source = Readable.from(
      (function* () {
        if (!first.done) yield first.value;
        yield* chunks;
      })(),
      { objectMode: false, highWaterMark: 1 },
    );
    const sink = createWriteStream('', { fd: temp.fd, autoClose: false });
    if (compression === null) await pipeline(source, sink);
    else await pipeline(source, compressor(compression), sink);
    temp.commit();
  } catch (error) {
    temp.abort();
    throw asMemjobError(error, where, target);
  }
  return [target];
}

function asMemjobError(error: unknown, where: string, target: string): MemjobError {
  return error instanceof MemjobError ? error : systemError(where, error, target);
}
