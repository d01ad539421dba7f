/**
 * inspectFile(path): what a dump or .npy file holds, without reading its
 * arrays. The header and structure are read and checked exactly as load()
 * and loadNpy() check them (the same decodeHeader, validateSegments,
 * collectDescriptors and decodeValue, the same .npy header parser), so a
 * file inspect accepts is one load accepts, and a corrupt one gets the same
 * MEMJOB_ERR_FORMAT. For a compressed dump only the decompressed prefix up
 * to the end of the structure is streamed; array data is never decompressed
 * (unless `checkData` asks to count it) and never allocated. The report is
 * bounded whatever the file holds (maxEntries, maxDepth, maxRows,
 * maxArrays, and short keys and paths: inspect-tree.ts).
 */
import { describeJoblib, isCompressedJoblib, type JoblibArrayReport, type JoblibFormat } from './inspect-joblib.js';
import { closeSync, constants as fsConstants } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, MemjobError, clip, systemError } from '../errors.js';
import { openRegularFile } from '../system/regular-file.js';
import { dtypeInfo, type DType } from '../memmap/dtype.js';
import type { Order } from '../memmap/layout.js';
import { detectMethod, type CompressMethod } from './compression.js';
import { openCompressedDump, readExactlySync, readHeadSync, readLayoutSync, skipTo, type Parsed } from './dump-reader.js';
import { hasMagic } from './header.js';
import { ArrayRef, describeValue, pathText, type ArrayAt, type ArrayNode, type Limits, type ValueNode } from './inspect-tree.js';
import {
  PREFIX_MAX_BYTES,
  decodeHeader as decodeNpyHeader,
  parseHeader as parseNpyHeader,
  parseMaxHeaderSize,
  parsePrefix,
  type NpyContext,
} from './npy-header.js';
import { StructureError, decodeValue, type ArrayKind } from './structure.js';

export type { JoblibArrayReport, JoblibFormat } from './inspect-joblib.js';
export type { ArrayNode, ContainerNode, ContainerType, EntryNode, ScalarNode, ScalarType, ValueNode } from './inspect-tree.js';

const WHERE = 'inspect';
const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // '\x93NUMPY'

export interface InspectOptions {
  /** Entries shown per container before "... N more" (default 20). */
  maxEntries?: number;
  /** Container levels shown in the tree (default 16); arrays deeper down are still listed. */
  maxDepth?: number;
  /** Nodes in the whole tree (default 1000): a file cannot make the report huge. */
  maxRows?: number;
  /** Arrays listed (default 1000; arrays the tree shows are listed too); the rest are only counted. */
  maxArrays?: number;
  /**
   * For a compressed dump: decompress (and discard) the data region too, to
   * check the stream holds all the bytes its header promises. Plain dumps and
   * .npy files are always checked against their size.
   */
  checkData?: boolean;
  /** For a .npy file: the most characters its header may have, as loadNpy's option (default 10,000, numpy's). */
  maxHeaderSize?: number;
}

export interface DumpFormat {
  type: 'memjob-dump';
  /** "major.minor" */
  version: string;
  alignment: number;
  /** null for a plain file. */
  compression: CompressMethod | null;
  /** Size of the file on disk. */
  fileBytes: number;
  /** Size of the dump once decompressed (dataOffset + dataLength). */
  dumpBytes: number;
  structureOffset: number;
  structureBytes: number;
  dataOffset: number;
  dataBytes: number;
  segments: number;
  /**
   * Whether the file was checked to hold the whole data region: always for
   * plain files; for compressed ones only with `checkData`.
   */
  dataChecked: boolean;
}

export interface NpyFormat {
  type: 'npy';
  /** "1.0", "2.0" or "3.0" */
  version: string;
  fileBytes: number;
  /** Bytes of the magic, version, length and header text: where the data starts. */
  headerBytes: number;
  /** Bytes after the array's data (numpy allows them; loadNpy ignores them). */
  trailingBytes: number;
}

export interface ArrayReport {
  /** Where the array is inside the value: `value`, `value.x`, `value.items[3]`, `value.get("k")`. */
  path: string;
  /** Other places the same array appears (dumped once, loaded as one object): the first ALSO_AT_LISTED. */
  alsoAt: string[];
  /** Other places not listed in alsoAt. */
  alsoAtMore: number;
  /** What load gives back: Float64Array, NDArray, Memmap, ... */
  kind: ArrayKind | 'NDArray';
  dtype: DType;
  /** For .npy: the descr as written ('<f8', '>i2'). */
  descr?: string;
  shape: number[];
  order: Order;
  itemsize: number;
  elements: number;
  /** Where the first byte is: in the file, or for a compressed dump in its decompressed content. */
  offset: number;
  bytes: number;
  /** Index in the dump's segment table (absent for .npy). */
  segment?: number;
}

export interface FileReport {
  path: string;
  format: DumpFormat | NpyFormat | JoblibFormat;
  /** The value's structure, truncated by maxEntries, maxDepth and maxRows. */
  tree: ValueNode;
  /** Arrays in the order the tree walk meets them: the first maxArrays, and any the tree shows. */
  arrays: (ArrayReport | JoblibArrayReport)[];
  /** Every array in the file (distinct segments), listed or not, and their bytes in all. */
  arrayCount: number;
  arrayBytes: number;
}

/** Paths listed per array in alsoAt; the rest are counted. */
const ALSO_AT_LISTED = 10;

/** Describes a memjob dump (plain or compressed) or a .npy file. Errors are MemjobErrors (MEMJOB_ERR_FORMAT for a corrupt file). */
export async function inspectFile(filename: string, options: InspectOptions = {}): Promise<FileReport> {
  const path = resolve(filename);
  const limits = { maxEntries: options.maxEntries ?? 20, maxDepth: options.maxDepth ?? 16, maxRows: options.maxRows ?? 1000, maxArrays: options.maxArrays ?? 1000 };
  const { fd, size } = openRegularFile(path, fsConstants.O_RDONLY, WHERE);
  let compressed: CompressMethod;
  try {
    const head = readHeadSync(fd, size, path);
    if (hasMagic(head)) {
      return report(path, readLayoutSync(fd, size, head, path), { compression: null, fileBytes: size, dataChecked: true }, limits);
    }
    if (head.length > 0 && NPY_MAGIC.subarray(0, Math.min(head.length, NPY_MAGIC.length)).equals(head.subarray(0, NPY_MAGIC.length))) {
      return describeNpy(fd, size, head, path, parseMaxHeaderSize(options.maxHeaderSize, WHERE));
    }
    // A Python pickle of protocol 2 to 5 (joblib.dump): read through the restricted unpickler, arrays not read.
    if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) {
      const joblib = describeJoblib(path, WHERE, limits);
      if (joblib !== undefined) return { path, ...joblib };
    }
    // A compressed joblib file (bz2, xz, lzma, lz4, joblib 0.9's Z-file, or zlib/gzip holding a pickle).
    if (isCompressedJoblib(head, fd)) return { path, ...describeJoblib(path, WHERE, limits, true)! };
    compressed = detectMethod(head);
  } catch (error) {
    throw asMemjobError(error, path);
  } finally {
    closeSync(fd);
  }
  try {
    return await describeCompressed(path, size, compressed, limits, options.checkData === true);
  } catch (error) {
    throw asMemjobError(error, path);
  }
}

// ---- memjob dumps ----

/** A FORMAT error for a dump, worded as load's (header.ts formatError) but from inspect. */
function dumpError(path: string, problem: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `${WHERE}: '${path}' is not a valid memjob dump: ${problem}`, { path });
}

/** header.ts and structure checks word their errors for load: say inspect instead. */
function asMemjobError(error: unknown, path: string): MemjobError {
  if (error instanceof MemjobError) {
    if (!error.message.startsWith('load: ')) return error;
    const details = error.path === undefined ? { cause: error } : { cause: error, path: error.path };
    return new MemjobError(error.code, `${WHERE}: ${error.message.slice('load: '.length)}`, details);
  }
  if (error instanceof StructureError) return dumpError(path, error.message);
  if ((error as { errno?: unknown }).errno !== undefined) return systemError(WHERE, error, path);
  return dumpError(path, `its structure is malformed (${error instanceof Error ? clip(error.message) : 'unknown error'})`);
}

type ReportLimits = Limits & { maxArrays: number };

async function describeCompressed(path: string, size: number, method: CompressMethod, limits: ReportLimits, checkData: boolean): Promise<FileReport> {
  const { reader, parsed, close } = await openCompressedDump(path, size, method);
  try {
    if (checkData) {
      // The stream only goes forward: count the rest without keeping it.
      await skipTo(reader, parsed.header.dataOffset + parsed.header.dataLength, path);
    }
  } catch (error) {
    if (error instanceof MemjobError) throw error;
    throw dumpError(path, `it could not be decompressed as ${method} (${(error as Error).message})`);
  } finally {
    await close();
  }
  return report(path, parsed, { compression: method, fileBytes: size, dataChecked: checkData }, limits);
}

function report(
  path: string,
  parsed: Parsed,
  file: { compression: CompressMethod | null; fileBytes: number; dataChecked: boolean },
  limits: ReportLimits,
): FileReport {
  const { header, segments } = parsed;
  // The same rebuild load does, tags, keys and nesting checked, with each array replaced by a reference.
  const value = decodeValue(parsed.tree, segments, (descriptor) => new ArrayRef(descriptor));
  const format: DumpFormat = {
    type: 'memjob-dump',
    version: `${header.major}.${header.minor}`,
    alignment: header.alignment,
    compression: file.compression,
    fileBytes: file.fileBytes,
    dumpBytes: header.dataOffset + header.dataLength,
    structureOffset: header.structureOffset,
    structureBytes: header.structureLength,
    dataOffset: header.dataOffset,
    dataBytes: header.dataLength,
    segments: segments.length,
    dataChecked: file.dataChecked,
  };
  const arrays: ArrayReport[] = [];
  // Segment -> index in arrays, or -1 for an array met but not listed.
  const bySegment = new Map<number, number>();
  let arrayBytes = 0;
  const arrayAt: ArrayAt = (ref, at, shown) => {
    const d = ref.descriptor;
    const known = bySegment.get(d.segment);
    if (known !== undefined && known >= 0) {
      const listed = arrays[known]!;
      if (listed.alsoAt.length < ALSO_AT_LISTED) listed.alsoAt.push(pathText(at));
      else listed.alsoAtMore++;
      return known;
    }
    if (known === undefined) arrayBytes += d.byteLength;
    if (!shown && arrays.length >= limits.maxArrays) {
      bySegment.set(d.segment, -1);
      return -1;
    }
    const { itemsize } = dtypeInfo(d.dtype);
    arrays.push({
      path: pathText(at),
      alsoAt: [],
      alsoAtMore: 0,
      kind: d.kind,
      dtype: d.dtype,
      shape: d.shape,
      order: d.order,
      itemsize,
      elements: d.byteLength / itemsize,
      offset: header.dataOffset + segments[d.segment]!.offset,
      bytes: d.byteLength,
      segment: d.segment,
    });
    bySegment.set(d.segment, arrays.length - 1);
    return arrays.length - 1;
  };
  const tree = describeValue(value, 'value', arrayAt, limits);
  return { path, format, tree, arrays, arrayCount: bySegment.size, arrayBytes };
}

// ---- .npy ----

function describeNpy(fd: number, size: number, head: Buffer, path: string, maxHeaderSize: number): FileReport {
  const ctx: NpyContext = { where: WHERE, path };
  const prefixBytes = Buffer.alloc(Math.min(size, PREFIX_MAX_BYTES));
  readExactlySync(fd, prefixBytes, 0, path);
  const prefix = parsePrefix(prefixBytes, size, ctx, maxHeaderSize);
  const textBytes = Buffer.alloc(prefix.headerBytes);
  readExactlySync(fd, textBytes, prefix.headerStart, path);
  const text = decodeNpyHeader(textBytes, prefix.encoding, ctx);
  const dataOffset = prefix.headerStart + prefix.headerBytes;
  const header = parseNpyHeader(text, dataOffset, size, ctx, { maxHeaderSize, version: prefix.version });
  const order: Order = header.fortranOrder ? 'F' : 'C';
  const format: NpyFormat = {
    type: 'npy',
    version: `${head[6]}.${head[7]}`,
    fileBytes: size,
    headerBytes: dataOffset,
    trailingBytes: size - dataOffset - header.dataBytes,
  };
  const array: ArrayReport = {
    path: 'value',
    alsoAt: [],
    alsoAtMore: 0,
    kind: 'NDArray',
    dtype: header.dtype,
    descr: header.descr,
    shape: header.shape,
    order,
    itemsize: dtypeInfo(header.dtype).itemsize,
    elements: header.size,
    offset: header.dataOffset,
    bytes: header.dataBytes,
  };
  const tree: ArrayNode = { type: 'array-data', path: 'value', array: 0, kind: 'NDArray', dtype: header.dtype, shape: header.shape, order };
  return { path, format, tree, arrays: [array], arrayCount: 1, arrayBytes: array.bytes };
}
