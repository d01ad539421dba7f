/**
 * `memjob inspect` of a file written by Python's joblib.dump: its structure,
 * dtypes and shapes, read through the restricted unpickler (joblib.ts)
 * without reading the arrays' bytes. A file that names a global outside the
 * allowlist is refused as loadJoblibSync refuses it.
 */
import { dtypeInfo } from '../memmap/dtype.js';
import { ArrayRef, describeValue, pathText, type Limits, type ValueNode } from './inspect-tree.js';
import { readJoblibMapped } from './joblib.js';
import { dtypeOfDescr } from './npy-header.js';
import type { ArrayDescriptor } from './structure.js';

export interface JoblibFormat {
  type: 'joblib';
  /** The pickle protocol (0 for protocols 0 and 1, which have no PROTO opcode). */
  protocol: number;
  fileBytes: number;
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
  /** Where the array's first byte is in the file (null: inside a pickled bytes object). */
  offset: number | null;
  bytes: number;
}

/** The report of an uncompressed joblib file, or undefined when the file is compressed. */
export function describeJoblib(
  path: string,
  where: string,
  limits: Limits & { maxArrays: number },
): { format: JoblibFormat; tree: ValueNode; arrays: JoblibArrayReport[]; arrayCount: number; arrayBytes: number } | undefined {
  const found: { descriptor: ArrayDescriptor; descr: string; offset: number | null }[] = [];
  const read = readJoblibMapped(path, where, (d) => {
    const { dtype } = dtypeOfDescr(d.dtype, { where, path });
    const descriptor: ArrayDescriptor = { kind: 'NDArray', dtype, shape: d.shape, order: d.order, segment: found.length, byteLength: d.bytes.byteLength };
    found.push({ descriptor, descr: d.dtype, offset: d.offset });
    return new ArrayRef(descriptor);
  });
  if (read === undefined) return undefined;
  const arrays: JoblibArrayReport[] = [];
  const listed = new Map<number, number>();
  const tree = describeValue(read.value, 'value', (ref, at, shown) => {
    const segment = ref.descriptor.segment;
    const known = listed.get(segment);
    if (known !== undefined) return known;
    if (!shown && arrays.length >= limits.maxArrays) return -1;
    const { descriptor, descr, offset } = found[segment]!;
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
      bytes: descriptor.byteLength,
    });
    listed.set(segment, arrays.length - 1);
    return arrays.length - 1;
  }, limits);
  const arrayBytes = found.reduce((sum, f) => sum + f.descriptor.byteLength, 0);
  return { format: { type: 'joblib', protocol: read.protocol, fileBytes: read.size }, tree, arrays, arrayCount: found.length, arrayBytes };
}
