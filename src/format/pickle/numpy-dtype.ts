/** numpy's dtype and scalar pickles (`numpy.dtype` + BUILD state, `numpy.core.multiarray.scalar`) as plain JS. */
import { describe, ErrorCodes, MemjobError } from '../../errors.js';
import { latin1Bytes, normalizeInt } from './decode.js';
import type { PickleGlobal } from './globals.js';

/** A dtype rebuilt from its pickle: `descr` is numpy's `dtype.str` (`'<f8'`, `'|b1'`, `'<U3'`, `'<M8[s]'`). */
export interface NumpyDtype {
  kind: 'dtype';
  descr: string;
  /** Bytes per element. */
  itemsize: number;
  /** Object dtype, or a structured/subarray one: memjob refuses arrays of these (MEMJOB_ERR_DTYPE). */
  unsupported: boolean;
}

/** An array described by a pickle; `offset` is where its bytes start in the pickle stream (null when they sat in a pickled bytes object). */
export interface NdarrayDescription {
  kind: 'ndarray';
  dtype: string;
  shape: number[];
  order: 'C' | 'F';
  offset: number | null;
  /** The data's length in bytes (shape × itemsize). */
  nbytes: number;
  /** The data; null when a file-backed reader left it in the file, at `offset`. */
  bytes: Uint8Array | null;
  /** np.matrix comes back as a 2-D ndarray marked here (memjob has no matrix type). */
  subclass?: 'matrix';
}

export function format(expected: string, received: unknown): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `expected ${expected} in the pickle, received ${describe(received)}`);
}

const TYPES = new Set(['b', 'i', 'u', 'f', 'c', 'O', 'S', 'U', 'V', 'M', 'm']);

function isDtype(v: unknown): v is NumpyDtype {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'dtype';
}

export function asDtype(v: unknown): NumpyDtype {
  if (!isDtype(v)) throw format('a numpy dtype', v);
  return v;
}

/** A Python 2 str read as latin-1, or bytes: the raw data of arrays and scalars. */
export function asBytes(v: unknown, what: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return latin1Bytes(v, 0);
  throw format(what, v);
}

export function refuseUnsupported(dtype: NumpyDtype): void {
  if (dtype.unsupported) {
    throw new MemjobError(
      ErrorCodes.DTYPE,
      `expected an array of a numeric, bool, string or datetime dtype, received dtype ${JSON.stringify(dtype.descr)} (object and structured arrays hold Python objects or records, which memjob does not read)`,
    );
  }
}

export const numpyDtype: PickleGlobal = {
  // numpy.dtype('f8', False, True): the type code and size; BUILD then sets the byte order.
  call(args) {
    const name = args[0];
    const m = typeof name === 'string' ? /^([a-zA-Z])(\d{0,9})$/.exec(name) : null;
    if (m === null || !TYPES.has(m[1]!)) throw format('a numpy type code such as "f8"', name);
    const type = m[1]!;
    const size = Number(m[2] || '0');
    const dtype: NumpyDtype = { kind: 'dtype', descr: '', itemsize: type === 'U' ? size * 4 : size, unsupported: type === 'O' };
    dtype.descr = `${size <= 1 || 'OSV'.includes(type) ? '|' : '<'}${type}${size}`;
    return dtype;
  },
  // state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]).
  build(obj, state) {
    const dtype = asDtype(obj);
    if (!Array.isArray(state) || state.length < 8) throw format('a numpy dtype state tuple of 8 or 9 items', state);
    const [, order, sub, names, , elsize] = state as unknown[];
    if (order !== '<' && order !== '>' && order !== '|' && order !== '=') throw format('a byte order "<", ">", "|" or "="', order);
    const type = dtype.descr[1]!;
    let size = Number(dtype.descr.slice(2));
    // Flexible types (S, U, V) carry their size in the state when the name did not.
    if ('SUV'.includes(type) && typeof elsize === 'number' && elsize > 0) {
      size = type === 'U' ? elsize / 4 : elsize;
      if (!Number.isSafeInteger(size)) throw format('a whole number of characters', elsize);
      dtype.itemsize = elsize;
    }
    if (sub !== null || names !== null) dtype.unsupported = true;
    let unit = '';
    if ((type === 'M' || type === 'm') && state.length > 8) {
      // metadata is (metadata dict or None, (unit, count, 1, 1)).
      const meta = state[state.length - 1];
      const info: unknown = Array.isArray(meta) && Array.isArray(meta[1]) ? meta[1] : meta;
      const u: unknown = Array.isArray(info) ? info[0] : undefined;
      const count: unknown = Array.isArray(info) ? info[1] : 1;
      const text = u instanceof Uint8Array ? Buffer.from(u).toString('latin1') : u;
      if (typeof text !== 'string' || !/^[a-zA-Z]{1,8}$/.test(text)) throw format('a datetime unit such as "s"', u);
      if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) throw format('a datetime unit count', count);
      unit = text === 'generic' ? '' : `[${count !== 1 ? String(count) : ''}${text}]`;
    }
    const bo = order === '=' ? '<' : order;
    dtype.descr = `${bo}${type}${size}${unit}`;
    return dtype;
  },
};

/** numpy.core.multiarray.scalar(dtype, bytes): numbers as number (BigInt for 64-bit ints beyond 2^53), bool, bytes, str. */
export const numpyScalar: PickleGlobal = {
  call(args) {
    const dtype = asDtype(args[0]);
    const raw = asBytes(args[1], 'the bytes of a numpy scalar');
    if (raw.length !== dtype.itemsize) throw format(`${dtype.itemsize} bytes for a ${dtype.descr} scalar`, `${raw.length} bytes`);
    const view = new DataView(raw.slice().buffer);
    const le = dtype.descr[0] !== '>';
    const code = dtype.descr.slice(1);
    switch (code) {
      case 'b1': return raw[0] !== 0;
      case 'i1': return view.getInt8(0);
      case 'u1': return view.getUint8(0);
      case 'i2': return view.getInt16(0, le);
      case 'u2': return view.getUint16(0, le);
      case 'i4': return view.getInt32(0, le);
      case 'u4': return view.getUint32(0, le);
      case 'i8': return normalizeInt(view.getBigInt64(0, le));
      case 'u8': return normalizeInt(view.getBigUint64(0, le));
      case 'f2': return half(view.getUint16(0, le));
      case 'f4': return view.getFloat32(0, le);
      case 'f8': return view.getFloat64(0, le);
      case 'c8': return { kind: 'complex', re: view.getFloat32(0, le), im: view.getFloat32(4, le) };
      case 'c16': return { kind: 'complex', re: view.getFloat64(0, le), im: view.getFloat64(8, le) };
    }
    if (code[0] === 'S') return raw.slice();
    if (code[0] === 'U') {
      let s = '';
      for (let i = 0; i + 4 <= raw.length; i += 4) {
        const cp = view.getUint32(i, le);
        if (cp === 0) break;
        if (cp > 0x10ffff) throw format('a Unicode code point', cp);
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    throw new MemjobError(ErrorCodes.DTYPE, `expected a numeric, bool or string numpy scalar, received one of dtype ${JSON.stringify(dtype.descr)}`);
  },
};

/** IEEE 754 half precision to a number. */
function half(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
