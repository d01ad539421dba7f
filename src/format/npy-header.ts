/**
 * The .npy header: numpy's magic string, a version, and a Python dict
 * literal giving dtype, storage order and shape. Pure functions over bytes
 * and strings; npy.ts does the file I/O. The dict is read by a small strict
 * parser of Python literals, never evaluated.
 */
import { ErrorCodes, MemjobError, clip, invalidArg } from '../errors.js';
import { parsePyLiteral, type PyValue } from './py-literal.js';
import { dtypeInfo, littleEndian, numpyStr, parseNumpyDType, supportedDTypesText, type DType } from '../memmap/dtype.js';

/** Where an error happened, for messages: the function and the file. */
export interface NpyContext {
  where: string;
  path: string;
}

/** Magic (6 bytes) + version (2) + header length (2 in version 1.0, 4 in 2.0 and 3.0). */
export const PREFIX_MAX_BYTES = 12;
/** numpy aligns the start of the data to this many bytes, so mapped data is aligned for every dtype. */
const ARRAY_ALIGN = 64;
/**
 * numpy's max_header_size: np.load refuses a header of more characters
 * unless told otherwise, because parsing a Python literal is not safe for
 * large inputs. The default of the maxHeaderSize option.
 */
export const DEFAULT_MAX_HEADER_SIZE = 10_000;
/**
 * The largest header memjob reads whatever maxHeaderSize says: a lying
 * length field must not make us decode a gigabyte of text.
 */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** Axes read: numpy 2's limit (NPY_MAXDIMS); numpy 1.x reads 32. */
const MAX_DIMS = 64;
/**
 * Axes written: numpy 1.24 (Debian's, what users have) refuses to load a
 * file of 33 or more ("maximum supported dimension for an ndarray is 32"),
 * so saving refuses them instead of writing a file numpy cannot read.
 */
export const NUMPY_LOADABLE_DIMS = 32;
/** numpy >= 1.24 pads the header so the growing axis can reach this many digits in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;
/** Nesting deeper than any real descr; stops '[[[[...' from exhausting the stack. */
const MAX_DEPTH = 32;
/**
 * Values in one header: 3 keys and 64 axes need few; a structured descr of
 * many fields needs more. The bound keeps a header raised to 16 MiB by
 * maxHeaderSize from becoming millions of objects.
 */
const MAX_VALUES = 100_000;
/** Shapes' products saturate here: past it, the file is too small whatever the exact number. */
const SATURATED_SIZE = 2n ** 256n;

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // '\x93NUMPY'

export function formatError(ctx: NpyContext, reason: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `${ctx.where}: '${ctx.path}' is not a valid .npy file: ${reason}`, {
    path: ctx.path,
  });
}

export interface NpyPrefix {
  /** File offset of the header text. */
  headerStart: number;
  headerBytes: number;
  /** Version 3.0 headers are UTF-8; 1.0 and 2.0 are latin-1. */
  encoding: 'latin1' | 'utf8';
  /** The format's major version: 1, 2 or 3. */
  version: number;
}

/**
 * Checks the magic string and version and reads the header length from the
 * first bytes of the file. A latin-1 header longer than `maxHeaderSize` is
 * refused here, before it is read (its characters are its bytes).
 */
export function parsePrefix(
  bytes: Uint8Array,
  fileSize: number,
  ctx: NpyContext,
  maxHeaderSize: number = DEFAULT_MAX_HEADER_SIZE,
): NpyPrefix {
  if (bytes.length === 0 || !MAGIC.slice(0, bytes.length).every((b, i) => bytes[i] === b)) {
    throw formatError(ctx, `it does not start with numpy's magic string '\\x93NUMPY' (${fileSize} bytes in the file)`);
  }
  if (bytes.length < 8) throw formatError(ctx, `the file ends inside its prefix (${fileSize} bytes)`);
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (!((major === 1 || major === 2 || major === 3) && minor === 0)) {
    throw formatError(ctx, `format version ${major}.${minor} is unknown; memjob reads versions 1.0, 2.0 and 3.0`);
  }
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) throw formatError(ctx, `the file ends inside its prefix (${fileSize} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lengthBytes;
  if (headerStart + headerBytes > fileSize) {
    throw formatError(
      ctx,
      `the header length field says ${headerBytes} bytes, but only ${fileSize - headerStart} follow it in the file`,
    );
  }
  if (headerBytes > MAX_HEADER_BYTES) {
    throw formatError(ctx, `the header is ${headerBytes} bytes, more than the ${MAX_HEADER_BYTES} memjob reads whatever maxHeaderSize says`);
  }
  if (major !== 3 && headerBytes > maxHeaderSize) throw headerTooLarge(ctx, headerBytes, maxHeaderSize);
  return { headerStart, headerBytes, encoding: major === 3 ? 'utf8' : 'latin1', version: major };
}

// Worded after numpy's "Header info length (N) is large and may not be safe to load securely".
function headerTooLarge(ctx: NpyContext, characters: number, maxHeaderSize: number): MemjobError {
  return formatError(
    ctx,
    `the header is ${characters} characters, more than maxHeaderSize (${maxHeaderSize}) allows: parsing a large ` +
      `header may not be safe (numpy refuses it too, over its max_header_size of ${DEFAULT_MAX_HEADER_SIZE}). ` +
      `If you trust the file, pass a larger { maxHeaderSize } to ${ctx.where}` +
      (ctx.where === 'inspect' ? ' (memjob inspect --max-header-size N)' : ''),
  );
}

/** Validates the maxHeaderSize option: a non-negative integer, or Infinity (the 16 MiB cap still applies). */
export function parseMaxHeaderSize(value: unknown, where: string): number {
  if (value === undefined) return DEFAULT_MAX_HEADER_SIZE;
  if (typeof value === 'number' && value >= 0 && (Number.isSafeInteger(value) || value === Infinity)) return value;
  throw invalidArg(where, 'maxHeaderSize', 'a non-negative integer (characters; numpy\'s default is 10000)', value);
}

export function decodeHeader(bytes: Uint8Array, encoding: 'latin1' | 'utf8', ctx: NpyContext): string {
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(bytes);
  } catch {
    throw formatError(ctx, 'the version 3.0 header is not valid UTF-8');
  }
}

export interface NpyHeader {
  dtype: DType;
  /** The descr as written in the file: '<f8', '>i2', '|b1'. */
  descr: string;
  /** True when the file's elements are in the other byte order than this machine's. */
  swap: boolean;
  fortranOrder: boolean;
  shape: number[];
  size: number;
  /** File offset of the first data byte (the whole header's length). */
  dataOffset: number;
  dataBytes: number;
}

/** How a header is read: numpy's rules for the header's size and its version's syntax. */
export interface HeaderRules {
  /** The most characters the header may have (numpy's max_header_size); default 10,000. */
  maxHeaderSize?: number;
  /** The format's major version (NpyPrefix.version): 1.0 and 2.0 headers may hold Python 2's 'L' suffixes. Default 1. */
  version?: number;
}

/**
 * Parses the header text and checks it against the file: the dtype must be
 * one memjob supports and the file must hold at least shape × itemsize bytes
 * of data (more is allowed, as in numpy). Every check is linear in the
 * header's length, and the axes are counted before their product is taken.
 */
export function parseHeader(text: string, dataOffset: number, fileSize: number, ctx: NpyContext, rules: HeaderRules = {}): NpyHeader {
  const maxHeaderSize = rules.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
  // numpy counts characters (len() of the decoded str): code points, not UTF-16 units.
  if (text.length > maxHeaderSize) {
    let characters = text.length;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0xd800 && unit <= 0xdbff) characters--; // the high half of a pair: one character in two units
    }
    if (characters > maxHeaderSize) throw headerTooLarge(ctx, characters, maxHeaderSize);
  }
  const dict = parseHeaderDict(text, (rules.version ?? 1) < 3, ctx);
  const descrValue = dict.get('descr')!;
  const orderValue = dict.get('fortran_order')!;
  const shapeValue = dict.get('shape')!;

  if (orderValue.type !== 'bool') {
    throw formatError(ctx, `expected 'fortran_order' to be True or False, found ${quote(orderValue.source)}`);
  }
  if (shapeValue.type === 'tuple' && shapeValue.items.length > MAX_DIMS) {
    throw formatError(
      ctx,
      `'shape' has ${shapeValue.items.length} axes, more than the ${MAX_DIMS} numpy 2 allows (numpy 1.x reads ${NUMPY_LOADABLE_DIMS}); found ${quote(shapeValue.source)}`,
    );
  }
  const items = shapeValue.type === 'tuple' ? shapeValue.items : [];
  const dims = items.map((d) => (d.type === 'int' && d.value >= 0n ? d.value : -1n));
  if (shapeValue.type !== 'tuple' || dims.includes(-1n)) {
    throw formatError(ctx, `expected 'shape' to be a tuple of non-negative integers, found ${quote(shapeValue.source)}`);
  }
  const { dtype, swap, descr } = resolveDescr(descrValue, ctx);

  // In BigInt, so a shape whose product overflows a double is still caught;
  // saturated, so at most 64 axes of up to 4300 digits (py-literal.ts) stay cheap.
  const size = dims.includes(0n) ? 0n : dims.reduce((a, b) => (a > SATURATED_SIZE ? a : a * b), 1n);
  const needed = size * BigInt(dtypeInfo(dtype).itemsize);
  const available = fileSize - dataOffset;
  if (needed > BigInt(available)) {
    throw formatError(
      ctx,
      `shape ${quote(shapeValue.source)} of '${clip(descr, 40)}' needs ${size > SATURATED_SIZE ? 'more than 2^256' : needed} bytes ` +
        `of data after the ${dataOffset}-byte header, but the file holds only ${available} (truncated?)`,
    );
  }
  // Only reachable when another axis is 0: then the data fits, but the shape cannot be held as numbers.
  const huge = dims.find((d) => d > BigInt(Number.MAX_SAFE_INTEGER));
  if (huge !== undefined) {
    throw formatError(ctx, `an axis of ${clip(String(huge), 40)} elements is more than memjob can index (2^53 - 1)`);
  }
  const shape = dims.map(Number);
  return {
    dtype,
    descr,
    swap,
    fortranOrder: orderValue.value,
    shape,
    size: Number(size),
    dataOffset,
    dataBytes: Number(needed),
  };
}

function resolveDescr(value: PyValue, ctx: NpyContext): { dtype: DType; swap: boolean; descr: string } {
  if (value.type === 'list') {
    throw unsupported(ctx, value.source, 'a structured dtype');
  }
  if (value.type !== 'str') throw formatError(ctx, `expected 'descr' to be a string, found ${quote(value.source)}`);
  const descr = value.value;
  // numpy reads the descr with numpy.dtype(descr), so every spelling it takes is valid: '<f8', 'd', 'float64', '<M8[ns]'.
  const parsed = parseNumpyDType(descr);
  if (parsed === undefined) throw unsupported(ctx, descr, undefined);
  const { dtype, order } = parsed;
  // '<' and '>' are explicit; '=' and '|' (and no character) mean this machine's order.
  const fileLittle = order === '<' ? true : order === '>' ? false : littleEndian;
  // Swapping is per TypedArray slot: each float of a complex, each code point of a 'U' string.
  return { dtype, swap: dtypeInfo(dtype).arrayType.BYTES_PER_ELEMENT > 1 && fileLittle !== littleEndian, descr };
}

/** The memjob dtype of a numpy descr string ('<f8', '|b1'), and whether its bytes need swapping on this machine. */
export function dtypeOfDescr(descr: string, ctx: NpyContext): { dtype: DType; swap: boolean } {
  // A file's descrs are a handful of short strings read again at every load (a mapped joblib load
  // spends more on parsing '<f8' than on mapping the array): the answers for valid ones are kept.
  const known = descrCache.get(descr);
  if (known !== undefined) return known;
  const resolved = Object.freeze(resolveDescr({ type: 'str', value: descr, source: quote(descr) }, ctx));
  if (descrCache.size < 256 && descr.length <= 64) descrCache.set(descr, resolved);
  return resolved;
}

const descrCache = new Map<string, Readonly<{ dtype: DType; swap: boolean }>>();

function unsupported(ctx: NpyContext, descr: string, what: string | undefined): MemjobError {
  const shown = descr.length > 80 ? `${descr.slice(0, 80)}...` : descr;
  return new MemjobError(
    ErrorCodes.DTYPE,
    `${ctx.where}: '${ctx.path}' holds ${what ?? 'dtype'} '${shown}', which memjob does not support; it reads ` +
      `${supportedDTypesText} (descrs such as '<f8', '>i4', '<c16', '<M8[ns]', '|S5', '<U5')`,
    { path: ctx.path },
  );
}

function quote(source: string): string {
  return source.length > 80 ? `${source.slice(0, 80)}...` : source;
}

/** The descr numpy writes for an array of `dtype` in this machine's byte order: '<f8', '|b1', '<M8[ns]', '|S5'. */
export function descrOf(dtype: DType): string {
  return numpyStr(dtype);
}

/**
 * The complete header, byte for byte as numpy >= 1.24 writes it: keys
 * sorted, Python reprs, growth-axis padding, then spaces and '\n' so the
 * data starts at a multiple of 64. Version 2.0 only when 1.0's 16-bit length
 * cannot hold it.
 */
export function formatHeader(descr: string, fortranOrder: boolean, shape: readonly number[]): Uint8Array {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': ${tuple}, }`;
  if (shape.length > 0) {
    const growthAxis = shape[fortranOrder ? shape.length - 1 : 0]!;
    dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(growthAxis).length));
  }
  for (const [major, lengthBytes] of [[1, 2], [2, 4]] as const) {
    const prefixBytes = 8 + lengthBytes;
    const textBytes = dict.length + 1; // + '\n'
    const padding = ARRAY_ALIGN - ((prefixBytes + textBytes) % ARRAY_ALIGN);
    const headerBytes = textBytes + padding;
    if (lengthBytes === 2 && headerBytes > 0xffff) continue;
    const out = new Uint8Array(prefixBytes + headerBytes);
    out.set(MAGIC);
    out[6] = major;
    const view = new DataView(out.buffer);
    if (lengthBytes === 2) view.setUint16(8, headerBytes, true);
    else view.setUint32(8, headerBytes, true);
    out.set(Buffer.from(dict + ' '.repeat(padding), 'latin1'), prefixBytes);
    out[out.length - 1] = 0x0a;
    return out;
  }
  throw new MemjobError(ErrorCodes.INTERNAL, 'saveNpy: no header version fits'); // unreachable: 2.0 holds 4 GiB
}

const HEADER_KEYS = ['descr', 'fortran_order', 'shape'];

/**
 * The header's dict, read as numpy reads it (ast.literal_eval, after
 * dropping Python 2's 'L' suffixes from version 1.0 and 2.0 headers):
 * exactly the keys 'descr', 'fortran_order' and 'shape', a repeated key
 * keeping its last value as in any Python dict literal.
 */
function parseHeaderDict(text: string, python2Longs: boolean, ctx: NpyContext): Map<string, PyValue> {
  const malformed = (pos: number | undefined, reason: string): MemjobError =>
    formatError(ctx, `malformed header dict${pos === undefined ? '' : ` at character ${pos}`}: ${reason} (header: ${clip(text.trimEnd(), 120)})`);
  const value = parsePyLiteral(text, { python2Longs, maxDepth: MAX_DEPTH, maxValues: MAX_VALUES, fail: malformed });
  if (value.type !== 'dict') throw malformed(undefined, `expected '{' (a dict literal), found ${quote(value.source)}`);
  const entries = new Map<string, PyValue>();
  for (const [key, item] of value.entries) {
    if (key.type !== 'str' || !HEADER_KEYS.includes(key.value)) {
      const shown = key.type === 'str' ? `'${clip(key.value, 40)}'` : quote(key.source);
      throw malformed(undefined, `unexpected key ${shown}; the header dict has exactly 'descr', 'fortran_order' and 'shape'`);
    }
    entries.set(key.value, item);
  }
  const missing = HEADER_KEYS.filter((k) => !entries.has(k));
  if (missing.length > 0) throw malformed(undefined, `the header dict has no ${missing.map((k) => `'${k}'`).join(' or ')}`);
  return entries;
}
