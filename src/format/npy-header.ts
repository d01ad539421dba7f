/**
 * The .npy header: numpy's magic string, a version, and a Python dict
 * literal giving dtype, storage order and shape. Pure functions over bytes
 * and strings; npy.ts does the file I/O. The dict is read by a small strict
 * parser of Python literals, never evaluated.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import { dtypeInfo, dtypeNames, littleEndian, type DType } from '../memmap/dtype.js';

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
 * The largest header memjob reads. numpy writes about 128 bytes for the
 * dtypes memjob supports; the cap keeps a lying length field from making us
 * decode a gigabyte of text.
 */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** numpy >= 1.24 pads the header so the growing axis can reach this many digits in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;
/** Nesting deeper than any real descr; stops '[[[[...' from exhausting the stack. */
const MAX_DEPTH = 32;

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
}

/** Checks the magic string and version and reads the header length from the first bytes of the file. */
export function parsePrefix(bytes: Uint8Array, fileSize: number, ctx: NpyContext): NpyPrefix {
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
    throw formatError(ctx, `the header is ${headerBytes} bytes, more than the ${MAX_HEADER_BYTES} memjob reads`);
  }
  return { headerStart, headerBytes, encoding: major === 3 ? 'utf8' : 'latin1' };
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

/**
 * Parses the header text and checks it against the file: the dtype must be
 * one memjob supports and the file must hold at least shape × itemsize bytes
 * of data (more is allowed, as in numpy).
 */
export function parseHeader(text: string, dataOffset: number, fileSize: number, ctx: NpyContext): NpyHeader {
  const dict = new LiteralParser(text, ctx).parseHeaderDict();
  const descrValue = dict.get('descr')!;
  const orderValue = dict.get('fortran_order')!;
  const shapeValue = dict.get('shape')!;

  if (orderValue.type !== 'bool') {
    throw formatError(ctx, `expected 'fortran_order' to be True or False, found ${quote(orderValue.source)}`);
  }
  const items = shapeValue.type === 'tuple' ? shapeValue.items : [];
  const dims = items.map((d) => (d.type === 'int' && d.value >= 0n ? d.value : -1n));
  if (shapeValue.type !== 'tuple' || dims.includes(-1n)) {
    throw formatError(ctx, `expected 'shape' to be a tuple of non-negative integers, found ${quote(shapeValue.source)}`);
  }
  const { dtype, swap, descr } = resolveDescr(descrValue, ctx);

  // In BigInt, so a shape whose product overflows a double is still caught.
  const size = dims.reduce((a, b) => a * b, 1n);
  const needed = size * BigInt(dtypeInfo(dtype).itemsize);
  const available = fileSize - dataOffset;
  if (needed > BigInt(available)) {
    throw formatError(
      ctx,
      `shape ${quote(shapeValue.source)} of '${descr}' needs ${needed} bytes of data after the ${dataOffset}-byte header, ` +
        `but the file holds only ${available} (truncated?)`,
    );
  }
  // Only reachable when another axis is 0: then the data fits, but the shape cannot be held as numbers.
  const huge = dims.find((d) => d > BigInt(Number.MAX_SAFE_INTEGER));
  if (huge !== undefined) throw formatError(ctx, `an axis of ${huge} elements is more than memjob can index (2^53 - 1)`);
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

// 'kind + itemsize' for each supported dtype, as numpy spells it in a descr.
const codes: Record<string, DType> = Object.fromEntries(
  dtypeNames.map((name) => {
    const info = dtypeInfo(name);
    return [`${info.kind}${info.itemsize}`, name];
  }),
);

function resolveDescr(value: PyValue, ctx: NpyContext): { dtype: DType; swap: boolean; descr: string } {
  if (value.type === 'list') {
    throw unsupported(ctx, value.source, 'a structured dtype');
  }
  if (value.type !== 'str') throw formatError(ctx, `expected 'descr' to be a string, found ${quote(value.source)}`);
  const descr = value.value;
  const match = /^([<>|=]?)([a-z?])(\d*)$/.exec(descr);
  const code = match === null ? undefined : match[2] === '?' && match[3] === '' ? 'b1' : `${match[2]}${match[3]}`;
  const dtype = code !== undefined && Object.hasOwn(codes, code) ? codes[code] : undefined;
  if (dtype === undefined) throw unsupported(ctx, descr, undefined);
  // '<' and '>' are explicit; '=' and '|' (and no character) mean this machine's order.
  const order = match![1];
  const fileLittle = order === '<' ? true : order === '>' ? false : littleEndian;
  return { dtype, swap: dtypeInfo(dtype).itemsize > 1 && fileLittle !== littleEndian, descr };
}

/** The memjob dtype of a numpy descr string ('<f8', '|b1'), and whether its bytes need swapping on this machine. */
export function dtypeOfDescr(descr: string, ctx: NpyContext): { dtype: DType; swap: boolean } {
  return resolveDescr({ type: 'str', value: descr, source: quote(descr) }, ctx);
}

function unsupported(ctx: NpyContext, descr: string, what: string | undefined): MemjobError {
  const shown = descr.length > 80 ? `${descr.slice(0, 80)}...` : descr;
  return new MemjobError(
    ErrorCodes.DTYPE,
    `${ctx.where}: '${ctx.path}' holds ${what ?? 'dtype'} '${shown}', which memjob does not support; it reads ` +
      `${dtypeNames.join(', ')} (descrs such as '<f8', '>i4', '|u1', '|b1')`,
    { path: ctx.path },
  );
}

function quote(source: string): string {
  return source.length > 80 ? `${source.slice(0, 80)}...` : source;
}

/** The descr numpy writes for an array of `dtype` in this machine's byte order. */
export function descrOf(dtype: DType): string {
  const { kind, itemsize } = dtypeInfo(dtype);
  if (itemsize === 1) return `|${kind}1`;
  return `${littleEndian ? '<' : '>'}${kind}${itemsize}`;
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

/** The Python literals a .npy header can contain, with the text each came from (for messages). */
type PyValue = { source: string } & (
  | { type: 'str'; value: string }
  | { type: 'int'; value: bigint }
  | { type: 'float' }
  | { type: 'bool'; value: boolean }
  | { type: 'none' }
  | { type: 'tuple' | 'list'; items: PyValue[] }
);

/**
 * A recursive-descent parser for the subset of Python literals numpy writes
 * in headers: one dict with string keys; strings, integers (with Python 2's
 * 'L' suffix), floats (only to report them), True/False/None, tuples and
 * lists. Anything else is a FORMAT error.
 */
class LiteralParser {
  #pos = 0;
  readonly #text: string;
  readonly #ctx: NpyContext;

  constructor(text: string, ctx: NpyContext) {
    this.#text = text;
    this.#ctx = ctx;
  }

  parseHeaderDict(): Map<string, PyValue> {
    const entries = new Map<string, PyValue>();
    this.#skipSpace();
    this.#expect('{');
    for (;;) {
      this.#skipSpace();
      if (this.#eat('}')) break;
      const key = this.#parseValue(0);
      if (key.type !== 'str') throw this.#error(`expected a quoted key, found ${quote(key.source)}`);
      this.#skipSpace();
      this.#expect(':');
      const value = this.#parseValue(0);
      if (!['descr', 'fortran_order', 'shape'].includes(key.value)) {
        throw this.#error(`unexpected key '${key.value}'; the header dict has exactly 'descr', 'fortran_order' and 'shape'`);
      }
      if (entries.has(key.value)) throw this.#error(`key '${key.value}' appears twice`);
      entries.set(key.value, value);
      this.#skipSpace();
      if (!this.#eat(',')) {
        this.#skipSpace();
        this.#expect('}');
        break;
      }
    }
    this.#skipSpace();
    if (this.#pos < this.#text.length) throw this.#error('unexpected text after the header dict');
    const missing = ['descr', 'fortran_order', 'shape'].filter((k) => !entries.has(k));
    if (missing.length > 0) throw this.#error(`the header dict has no ${missing.map((k) => `'${k}'`).join(' or ')}`);
    return entries;
  }

  #parseValue(depth: number): PyValue {
    if (depth > MAX_DEPTH) throw this.#error(`values nested more than ${MAX_DEPTH} deep`);
    this.#skipSpace();
    const start = this.#pos;
    const c = this.#text[this.#pos];
    const done = <T extends object>(value: T): T & { source: string } => ({ ...value, source: this.#text.slice(start, this.#pos) });
    if (c === "'" || c === '"') return done({ type: 'str', value: this.#parseString(c) });
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      this.#pos++;
      const items: PyValue[] = [];
      let comma = false;
      for (;;) {
        this.#skipSpace();
        if (this.#eat(close)) break;
        items.push(this.#parseValue(depth + 1));
        this.#skipSpace();
        comma = this.#eat(',');
        if (!comma) {
          this.#expect(close);
          break;
        }
      }
      // Python: '(3)' is the number 3 in parentheses; only '(3,)' is a tuple.
      if (c === '(' && items.length === 1 && !comma) return { ...items[0]!, source: this.#text.slice(start, this.#pos) };
      return done({ type: c === '(' ? 'tuple' : 'list', items });
    }
    const number = /[-+]?(?:\d+(\.\d*)?|(\.)\d+)([eE][-+]?\d+)?([lL])?/y;
    number.lastIndex = this.#pos;
    const num = number.exec(this.#text);
    if (num !== null) {
      this.#pos = number.lastIndex;
      if (num[1] !== undefined || num[2] !== undefined || num[3] !== undefined) return done({ type: 'float' });
      const digits = num[0].replace(/[lL]$/, '').replace(/^\+/, '');
      return done({ type: 'int', value: BigInt(digits) });
    }
    const name = /[A-Za-z_]\w*/y;
    name.lastIndex = this.#pos;
    const word = name.exec(this.#text)?.[0];
    if (word === 'True' || word === 'False') {
      this.#pos += word.length;
      return done({ type: 'bool', value: word === 'True' });
    }
    if (word === 'None') {
      this.#pos += word.length;
      return done({ type: 'none' });
    }
    throw this.#error(
      word !== undefined ? `unexpected name '${word.slice(0, 40)}'` : c === undefined ? 'it ends too early' : `unexpected ${JSON.stringify(c)}`,
    );
  }

  // Quoted strings; a backslash keeps the next character as is (numpy's descrs need no escapes).
  #parseString(quoteChar: string): string {
    let out = '';
    for (let i = this.#pos + 1; i < this.#text.length; i++) {
      const c = this.#text[i]!;
      if (c === quoteChar) {
        this.#pos = i + 1;
        return out;
      }
      if (c === '\n') break;
      if (c === '\\' && i + 1 < this.#text.length) i++;
      out += this.#text[i];
    }
    throw this.#error('a string is not terminated');
  }

  #skipSpace(): void {
    while (this.#pos < this.#text.length && ' \t\r\n'.includes(this.#text[this.#pos]!)) this.#pos++;
  }

  #eat(c: string): boolean {
    if (this.#text[this.#pos] !== c) return false;
    this.#pos++;
    return true;
  }

  #expect(c: string): void {
    if (this.#eat(c)) return;
    const found = this.#text[this.#pos];
    throw this.#error(`expected '${c}', found ${found === undefined ? 'the end' : JSON.stringify(found)}`);
  }

  #error(reason: string): MemjobError {
    const excerpt = this.#text.trimEnd();
    const shown = excerpt.length > 120 ? `${excerpt.slice(0, 120)}...` : excerpt;
    return formatError(this.#ctx, `malformed header dict at character ${this.#pos}: ${reason} (header: ${shown})`);
  }
}
