/**
 * inspectFile(path): what a dump or .npy file holds, without reading its
 * arrays. The header and structure are read and checked exactly as load()
 * and loadNpy() check them (the same decodeHeader, validateSegments,
 * collectDescriptors and decodeValue, the same .npy header parser), so a
 * file inspect accepts is one load accepts, and a corrupt one gets the same
 * MEMJOB_ERR_FORMAT. For a compressed dump only the decompressed prefix up
 * to the end of the structure is streamed; array data is never decompressed
 * (unless `checkData` asks to count it) and never allocated.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, MemjobError, systemError } from '../errors.js';
import { dtypeInfo, type DType } from '../memmap/dtype.js';
import type { Order } from '../memmap/layout.js';
import { detectMethod, type CompressMethod } from './compression.js';
import { HEADER_BYTES, decodeHeader, hasMagic } from './header.js';
import { PREFIX_MAX_BYTES, decodeHeader as decodeNpyHeader, parseHeader as parseNpyHeader, parsePrefix, type NpyContext } from './npy-header.js';
import { openCompressedDump, parseStructure, readExactlySync, skipTo, type Parsed } from './load.js';
import {
  StructureError,
  decodeValue,
  type ArrayDescriptor,
  type ArrayKind,
} from './structure.js';

const WHERE = 'inspect';
const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // '\x93NUMPY'

export interface InspectOptions {
  /** Entries shown per container before "... N more" (default 20). */
  maxEntries?: number;
  /** Container levels shown in the tree (default 16); arrays deeper down are still listed. */
  maxDepth?: number;
  /**
   * For a compressed dump: decompress (and discard) the data region too, to
   * check the stream holds all the bytes its header promises. Plain dumps and
   * .npy files are always checked against their size.
   */
  checkData?: boolean;
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
  /** Other places the same array appears (dumped once, loaded as one object). */
  alsoAt: string[];
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

export type ScalarType = 'string' | 'number' | 'bigint' | 'boolean' | 'null' | 'undefined' | 'date';
export type ContainerType = 'object' | 'array' | 'map' | 'set';

export interface ContainerNode {
  type: ContainerType;
  path: string;
  /** Keys, items or entries the container holds. */
  size: number;
  entries: EntryNode[];
  /** How many entries were left out (size - entries.length). */
  more: number;
}

export interface EntryNode {
  /** Property name, index, or a preview of a Map key. */
  key: string;
  value: ValueNode;
}

export interface ScalarNode {
  type: ScalarType;
  path: string;
  preview: string;
}

export interface ArrayNode {
  type: 'array-data';
  path: string;
  /** Index into FileReport.arrays. */
  array: number;
  kind: ArrayReport['kind'];
  dtype: DType;
  shape: number[];
  order: Order;
}

export type ValueNode = ContainerNode | ScalarNode | ArrayNode;

export interface FileReport {
  path: string;
  format: DumpFormat | NpyFormat;
  /** The value's structure, truncated by maxEntries and maxDepth. */
  tree: ValueNode;
  /** Every array in the file, in the order the tree walk meets them (never truncated). */
  arrays: ArrayReport[];
}

/** Describes a memjob dump (plain or compressed) or a .npy file. Errors are MemjobErrors (MEMJOB_ERR_FORMAT for a corrupt file). */
export async function inspectFile(filename: string, options: InspectOptions = {}): Promise<FileReport> {
  const path = resolve(filename);
  const limits = { maxEntries: options.maxEntries ?? 20, maxDepth: options.maxDepth ?? 16 };
  let fd: number;
  try {
    // O_NONBLOCK, as load: a FIFO must not make open() wait for a writer; the type check below refuses it.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (error) {
    throw systemError(WHERE, error, path);
  }
  let compressed: CompressMethod | undefined;
  let size: number;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new MemjobError(stat.isDirectory() ? 'EISDIR' : ErrorCodes.INVALID_ARG, `${WHERE}: expected a regular file, received '${path}', which is not one`, {
        path,
      });
    }
    size = stat.size;
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    readExactlySync(fd, head, 0, path);
    if (hasMagic(head)) return describePlain(fd, size, head, path, limits);
    if (head.length > 0 && NPY_MAGIC.subarray(0, Math.min(head.length, NPY_MAGIC.length)).equals(head.subarray(0, NPY_MAGIC.length))) {
      return describeNpy(fd, size, head, path);
    }
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

interface Limits {
  maxEntries: number;
  maxDepth: number;
}


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
  return dumpError(path, `its structure is malformed (${error instanceof Error ? error.message : 'unknown error'})`);
}

function describePlain(fd: number, size: number, head: Buffer, path: string, limits: Limits): FileReport {
  const header = decodeHeader(head, size, path);
  const structure = Buffer.alloc(header.structureLength);
  readExactlySync(fd, structure, header.structureOffset, path);
  const parsed = parseStructure(header, structure, path);
  return report(path, parsed, { compression: null, fileBytes: size, dataChecked: true }, limits);
}

async function describeCompressed(path: string, size: number, method: CompressMethod, limits: Limits, checkData: boolean): Promise<FileReport> {
  const { reader, parsed, close } = await openCompressedDump(path, method);
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

/** Stands for an array in the decoded value: decodeValue is given this instead of the data. */
class ArrayRef {
  constructor(readonly descriptor: ArrayDescriptor) {}
}

function report(
  path: string,
  parsed: Parsed,
  file: { compression: CompressMethod | null; fileBytes: number; dataChecked: boolean },
  limits: Limits,
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
  const bySegment = new Map<number, number>();
  const arrayAt = (ref: ArrayRef, at: string): number => {
    const d = ref.descriptor;
    const known = bySegment.get(d.segment);
    if (known !== undefined) {
      arrays[known]!.alsoAt.push(at);
      return known;
    }
    const { itemsize } = dtypeInfo(d.dtype);
    arrays.push({
      path: at,
      alsoAt: [],
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
  return { path, format, tree, arrays };
}

/**
 * The tree of a decoded value. Every array is registered with `arrayAt`,
 * however deep or far down a long container; nodes are built only within
 * the limits.
 */
function describeValue(root: unknown, rootPath: string, arrayAt: (ref: ArrayRef, path: string) => number, limits: Limits): ValueNode {
  const walk = (value: unknown, path: string, depth: number, shown: boolean): ValueNode | undefined => {
    if (value instanceof ArrayRef) {
      const index = arrayAt(value, path);
      const d = value.descriptor;
      return shown ? { type: 'array-data', path, array: index, kind: d.kind, dtype: d.dtype, shape: d.shape, order: d.order } : undefined;
    }
    const container = containerOf(value);
    if (container === undefined) return shown ? { type: scalarType(value), path, preview: preview(value) } : undefined;
    const [type, items] = container;
    const entries: EntryNode[] = [];
    const showEntries = shown && depth < limits.maxDepth;
    let i = 0;
    for (const [key, item, itemPath, keyPath] of items(path)) {
      const showThis = showEntries && i < limits.maxEntries;
      // A Map's key may itself hold arrays: walk it for them, show only a preview.
      if (keyPath !== undefined) walk(key, keyPath, depth + 1, false);
      const node = walk(item, itemPath, depth + 1, showThis);
      if (showThis && node !== undefined) entries.push({ key: entryKey(type, key, i), value: node });
      i++;
    }
    return shown ? { type, path, size: i, entries, more: i - entries.length } : undefined;
  };
  return walk(root, rootPath, 0, true)!;
}

type Entries = (path: string) => Iterable<[key: unknown, item: unknown, itemPath: string, keyPath?: string]>;

/** Paths written as dump's error messages write them. */
function containerOf(value: unknown): [ContainerType, Entries] | undefined {
  if (Array.isArray(value)) {
    return ['array', (path) => value.map((item, i) => [i, item, `${path}[${i}]`] as [number, unknown, string])];
  }
  if (value instanceof Map) {
    return [
      'map',
      function* (path) {
        let i = 0;
        for (const [key, item] of value) {
          const scalarKey = containerOf(key) === undefined && !(key instanceof ArrayRef);
          yield [key, item, `${path}.get(${scalarKey ? mapKeyPath(key) : `<key ${i}>`})`, scalarKey ? undefined : `${path}.<key ${i}>`];
          i++;
        }
      },
    ];
  }
  if (value instanceof Set) {
    return [
      'set',
      function* (path) {
        let i = 0;
        for (const item of value) yield [i, item, `${path}.<item ${i++}>`];
      },
    ];
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    return ['object', (path) => Object.keys(value).map((key) => [key, (value as Record<string, unknown>)[key], `${path}${propertyPath(key)}`] as [string, unknown, string])];
  }
  return undefined;
}

function propertyPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function mapKeyPath(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(truncate(key, 40)) : preview(key);
}

function entryKey(type: ContainerType, key: unknown, index: number): string {
  if (type === 'object') return key as string;
  if (type === 'map') {
    if (key instanceof ArrayRef) return `<${key.descriptor.kind}>`;
    const container = containerOf(key);
    return container === undefined ? mapKeyPath(key) : `<${container[0]} key ${index}>`;
  }
  return String(index);
}

function scalarType(value: unknown): ScalarType {
  if (value === null) return 'null';
  if (value instanceof Date) return 'date';
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'bigint' || type === 'boolean' || type === 'undefined') return type;
  return 'undefined'; // decodeValue builds nothing else
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length)}...` : text;
}

/** A short, single-line preview of a scalar. */
function preview(value: unknown): string {
  if (typeof value === 'string') {
    const shown = JSON.stringify(truncate(value, 60));
    return value.length > 60 ? `${shown} (${value.length} chars)` : shown;
  }
  if (typeof value === 'bigint') {
    const digits = value.toString();
    return digits.length > 40 ? `${digits.slice(0, 40)}...n (${digits.length} digits)` : `${digits}n`;
  }
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  return String(value);
}

// ---- .npy ----

function describeNpy(fd: number, size: number, head: Buffer, path: string): FileReport {
  const ctx: NpyContext = { where: WHERE, path };
  const prefixBytes = Buffer.alloc(Math.min(size, PREFIX_MAX_BYTES));
  readExactlySync(fd, prefixBytes, 0, path);
  const prefix = parsePrefix(prefixBytes, size, ctx);
  const textBytes = Buffer.alloc(prefix.headerBytes);
  readExactlySync(fd, textBytes, prefix.headerStart, path);
  const text = decodeNpyHeader(textBytes, prefix.encoding, ctx);
  const dataOffset = prefix.headerStart + prefix.headerBytes;
  const header = parseNpyHeader(text, dataOffset, size, ctx);
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
  return { path, format, tree, arrays: [array] };
}
