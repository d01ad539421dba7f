/** Decoding of pickle's scalar encodings: text ints and floats, LONG1/LONG4 bytes, Python string escapes. */
import { ErrorCodes, MemjobError } from '../../errors.js';

/** Python refuses to parse ints of more digits than this (sys.int_info.default_max_str_digits): BigInt parsing is superlinear. */
const MAX_INT_DIGITS = 4300;

export function formatError(expected: string, received: string, offset: number): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `expected ${expected} at offset ${offset} of the pickle, received ${received}`);
}

/** A line, quoted and cut short for a message. */
export function quoteLine(line: string): string {
  return JSON.stringify(line.length > 40 ? `${line.slice(0, 40)}...` : line);
}

/** A Python int as a number when exact, a BigInt beyond 2^53. */
export function normalizeInt(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/** INT and LONG text (`123`, `-5L`); INT's `01`/`00` (protocol 0's True/False) are handled by the caller. */
export function parseTextInt(line: string, offset: number): number | bigint {
  const text = line.endsWith('L') ? line.slice(0, -1) : line;
  if (!/^[+-]?\d+$/.test(text) || text.length > MAX_INT_DIGITS + 1) {
    throw formatError(`a decimal integer of at most ${MAX_INT_DIGITS} digits`, quoteLine(line), offset);
  }
  return normalizeInt(BigInt(text));
}

export function parseTextFloat(line: string, offset: number): number {
  const text = line.trim();
  if (/^[+-]?(inf|infinity)$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw formatError('a decimal float', quoteLine(line), offset);
  return Number(text);
}

/** LONG1/LONG4 payload: little-endian two's complement of any length. */
export function decodeLong(bytes: Uint8Array): number | bigint {
  const n = bytes.length;
  if (n === 0) return 0;
  if (n <= 6) {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
    // Sign bit of the last byte: subtract 2^(8n) for negatives.
    return bytes[n - 1]! & 0x80 ? v - 2 ** (8 * n) : v;
  }
  // Hexadecimal is linear to build and to parse, unlike decimal.
  let hex = '';
  for (let i = n - 1; i >= 0; i--) hex += bytes[i]!.toString(16).padStart(2, '0');
  let v = BigInt(`0x${hex}`);
  if (bytes[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
  return normalizeInt(v);
}

const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '\n': -1 };

/** Protocol 0 STRING: a Python 2 `repr` of a str (quoted, with escapes) → its bytes. */
export function unescapeStringLiteral(line: string, offset: number): Uint8Array {
  const q = line[0];
  if (line.length < 2 || (q !== "'" && q !== '"') || line[line.length - 1] !== q) {
    throw formatError('a quoted string literal', quoteLine(line), offset);
  }
  const body = line.slice(1, -1);
  const out = new Uint8Array(body.length);
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c > 0xff) throw formatError('a latin-1 string literal', quoteLine(line), offset);
    if (c !== 0x5c) {
      out[n++] = c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw formatError('a character after "\\"', quoteLine(line), offset);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      if (simple >= 0) out[n++] = simple;
    } else if (e === 'x') {
      const hex = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw formatError('two hex digits after "\\x"', quoteLine(line), offset);
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else if (e >= '0' && e <= '7') {
      const oct = /^[0-7]{1,3}/.exec(body.slice(i, i + 3))![0];
      out[n++] = parseInt(oct, 8) & 0xff;
      i += oct.length - 1;
    } else {
      // Python keeps unknown escapes as they are.
      out[n++] = 0x5c;
      out[n++] = body.charCodeAt(i) & 0xff;
    }
  }
  return out.slice(0, n);
}

/** Protocol 0 UNICODE: raw-unicode-escape, i.e. latin-1 with `\uXXXX` and `\UXXXXXXXX` escapes. */
export function decodeRawUnicodeEscape(line: string, offset: number): string {
  if (!line.includes('\\')) return line;
  return line.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[uU])/g, (m, code: string) => {
    if (code.length === 1) throw formatError('hex digits after "\\u" or "\\U"', quoteLine(m), offset);
    const cp = parseInt(code.slice(1), 16);
    if (cp > 0x10ffff) throw formatError('a code point up to 0x10ffff', `0x${cp.toString(16)}`, offset);
    return String.fromCodePoint(cp);
  });
}

/** Latin-1 text back to its bytes (Python 2 str read with encoding='latin1', or `_codecs.encode(s, 'latin1')`). */
export function latin1Bytes(text: string, offset: number): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw formatError('latin-1 text (code points up to 0xff)', `code point 0x${c.toString(16)}`, offset);
    out[i] = c;
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeUtf8(bytes: Uint8Array, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    const text = decodeSurrogatePass(bytes);
    if (text === undefined) throw formatError('UTF-8 text', `${bytes.length} bytes that are not valid UTF-8`, offset);
    return text;
  }
}

/**
 * UTF-8 in which lone surrogates are written as their own 3-byte sequences (ED A0-BF xx), as
 * Python's pickle writes a str with 'surrogatepass' (and memjob's dumpJoblib does); undefined when
 * the bytes are not valid even so. Only reached for text the strict decoder refused.
 */
function decodeSurrogatePass(bytes: Uint8Array): string | undefined {
  let out = '';
  let start = 0;
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] !== 0xed || bytes[i + 1]! < 0xa0 || bytes[i + 1]! > 0xbf || (bytes[i + 2]! & 0xc0) !== 0x80) continue;
    try {
      out += utf8.decode(bytes.subarray(start, i));
    } catch {
      return undefined;
    }
    out += String.fromCharCode(0xd000 | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f));
    start = i + 3;
    i += 2;
  }
  try {
    return out + utf8.decode(bytes.subarray(start));
  } catch {
    return undefined;
  }
}
