/**
 * `memjob inspect` of a file written by Python's joblib.dump: its structure,
 * dtypes and shapes, read through the restricted unpickler (joblib.ts)
 * without building the arrays. An uncompressed file is read through a mapping
 * (the arrays' pages are not touched); a compressed one is decompressed within
 * maxDecompressedBytes, as loadJoblibSync does. A file that names a global
 * outside the allowlist is refused as loadJoblibSync refuses it.
 */
import { readSync } from 'node:fs';
import { constants as zlibConstants, gunzipSync, inflateSync } from 'node:zlib';
import { dtypeInfo } from '../memmap/dtype.js';
import { Memmap } from '../memmap/memmap.js';
import { isZfile, readSideFile } from './joblib-compat.js';
import { compressionOf, type JoblibCompression } from './joblib-compression.js';
import { ArrayRef, describeValue, pathText, type Limits, type ValueNode } from './inspect-tree.js';
import { readJoblibBytes, readJoblibFile, readPickleSync } from './joblib.js';
import { descrOf, dtypeOfDescr } from './npy-header.js';
import type { NdarrayDescription, NdarrayFileDescription } from './pickle/joblib-globals.js';
import type { ArrayDescriptor } from './structure.js';

export interface JoblibFormat {
  type: 'joblib';
  /** The pickle protocol (0 for protocols 0 and 1, which have no PROTO opcode). */
  protocol: number;
  fileBytes: number;
  /** How the whole pickle is compressed ('zfile': joblib 0.8/0.9's zlib with a 'ZF' header); null when it is not. */
  compression: JoblibCompression | 'zfile' | null;
  /** The pickle's size once decompressed (the file's size when not compressed); array offsets count in it. */
  pickleBytes: number;
}

/**
 * Whether the file open as `fd`, whose first bytes are `head`, is a compressed joblib file. zlib
 * and gzip are also memjob's own dump compressions: for them the start of the stream (its first
 * 64 KiB: a deflate block's code tables alone may pass 64 bytes) is inflated and must start a
 * pickle (PROTO, 0x80).
 */
export function isCompressedJoblib(head: Uint8Array, fd: number): boolean {
  if (isZfile(head)) return true;
  const method = compressionOf(head);
  if (method === undefined) return false;
  if (method !== 'zlib' && method !== 'gzip') return true;
  const start = new Uint8Array(1 << 16);
  const got = readSync(fd, start, 0, start.length, 0);
  try {
    const out = (method === 'zlib' ? inflateSync : gunzipSync)(start.subarray(0, got), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 1 << 16 });
    return out[0] === 0x80;
  } catch {
    return false;
  }
}

export interface JoblibArrayReport {
  path: string;
  alsoAt: string[];
  alsoAtMore: number;
  kind: 'NDArray';
  dtype: ArrayDescriptor['dtype'];
  descr: string;
  shape: number[];
  order: 'C' | 'F';
  itemsize: number;
  elements: number;
  /** Where the array's first byte is in the file (null: inside a pickled bytes object, or a compressed side file). */
  offset: number | null;
  /** joblib 0.9: the side file (next to the pickle) that holds the array; `offset` is then in it. */
  sideFile: string | null;
  bytes: number;
}

type JoblibReport = { format: JoblibFormat; tree: ValueNode; arrays: JoblibArrayReport[]; arrayCount: number; arrayBytes: number };

/**
 * The report of a joblib file: uncompressed, read through a mapping; compressed (`compressed` true,
 * see isCompressedJoblib), decompressed into at most `maxDecompressedBytes`. Undefined when an
 * uncompressed read finds the file compressed.
 */
export function describeJoblib(
  path: string,
  where: string,
  limits: Limits & { maxArrays: number },
  compressed = false,
  maxDecompressedBytes = 2 ** 31 - 1,
): JoblibReport | undefined {
  const found: { descriptor: ArrayDescriptor; descr: string; offset: number | null; sideFile?: string }[] = [];
  const make = (d: NdarrayDescription): ArrayRef => {
    const { dtype } = dtypeOfDescr(d.dtype, { where, path });
    const descriptor: ArrayDescriptor = { kind: 'NDArray', dtype, shape: d.shape, order: d.order, segment: found.length, byteLength: d.nbytes };
    found.push({ descriptor, descr: d.dtype, offset: d.offset });
    return new ArrayRef(descriptor);
  };
  // joblib 0.9's side files, checked and opened as loadJoblibSync opens them: a .npy mapped for its
  // header only, a Z-file decompressed (small: joblib 0.9 wrote them below its cache size).
  const side = (d: NdarrayFileDescription): unknown => {
    const before = found.length;
    let value = readSideFile(d, path, { mmapMode: 'r', limit: maxDecompressedBytes, toArray: make }, where);
    if (value instanceof Memmap) {
      const array = value;
      value = make({ kind: 'ndarray', dtype: descrOf(array.dtype), shape: [...array.shape], order: array.order, offset: array.offset, nbytes: array.nbytes, bytes: null });
      found.at(-1)!.descriptor.byteLength = array.nbytes; // mapped, not read: its size from the header
      array.close();
    }
    if (found.length > before) found.at(-1)!.sideFile = d.filename;
    return value;
  };
  let read: { value: unknown; protocol: number; size: number; compression: JoblibFormat['compression']; pickleBytes: number };
  if (compressed) {
    const { bytes, compression, fileBytes } = readPickleSync(path, maxDecompressedBytes, where);
    const value = readJoblibBytes(bytes, path, where, make, side);
    read = { value, protocol: bytes[0] === 0x80 ? bytes[1]! : 0, size: fileBytes, compression, pickleBytes: bytes.length };
  } else {
    const plain = readJoblibFile(path, where, make, side);
    if (plain === undefined) return undefined;
    read = { ...plain, compression: null, pickleBytes: plain.size };
  }
  const arrays: JoblibArrayReport[] = [];
  const listed = new Map<number, number>();
  const tree = describeValue(read.value, 'value', (ref, at, shown) => {
    const segment = ref.descriptor.segment;
    const known = listed.get(segment);
    if (known !== undefined) return known;
    if (!shown && arrays.length >= limits.maxArrays) return -1;
    const { descriptor, descr, offset, sideFile } = found[segment]!;
    const { itemsize } = dtypeInfo(descriptor.dtype);
    arrays.push({
      path: pathText(at),
      alsoAt: [],
      alsoAtMore: 0,
      kind: 'NDArray',
      dtype: descriptor.dtype,
      descr,
      shape: descriptor.shape,
      order: descriptor.order,
      itemsize,
      elements: descriptor.byteLength / itemsize,
      offset,
      sideFile: sideFile ?? null,
      bytes: descriptor.byteLength,
    });
    listed.set(segment, arrays.length - 1);
    return arrays.length - 1;
  }, limits);
  const arrayBytes = found.reduce((sum, f) => sum + f.descriptor.byteLength, 0);
  const format: JoblibFormat = { type: 'joblib', protocol: read.protocol, fileBytes: read.size, compression: read.compression, pickleBytes: read.pickleBytes };
  return { format, tree, arrays, arrayCount: found.length, arrayBytes };
}
