/**
 * The allowlist for joblib files: the globals `joblib.dump` writes for arrays, dtypes and scalars
 * (native-notes/pickle-readers.md lists what joblib 0.8.4 to 1.2 emit), plus the builtins that user data
 * pickles through. Arrays come back as plain descriptions (NdarrayDescription) for now; the public loader
 * turns them into NDArray/Memmap later. np.matrix is returned as an ndarray marked `subclass: 'matrix'`.
 */
import { describe, ErrorCodes, MemjobError } from '../../errors.js';
import { latin1Bytes } from './decode.js';
import { datetimeGlobals } from './datetime-globals.js';
import { PickleGlobalRef, type PickleGlobal, type PickleResolver } from './globals.js';
import { asBytes, asDtype, format, numpyDtype, numpyScalar, refuseUnsupported, type NdarrayDescription, type NumpyDtype } from './numpy-dtype.js';
import type { PickleReader } from './reader.js';
import { unpickle } from './unpickler.js';

export type { NdarrayDescription, NumpyDtype } from './numpy-dtype.js';

/** joblib 0.9's NDArrayWrapper/ZNDArrayWrapper: the array lives in a side file next to the pickle. */
export interface NdarrayFileDescription {
  kind: 'ndarray-file';
  /** As written by joblib: a bare file name, to be resolved (and checked) against the pickle's folder. */
  filename: string;
  /** ZNDArrayWrapper: the side file holds the raw bytes, zlib-compressed behind joblib's 'ZF' header; `array` says what they are. */
  compressed: boolean;
  array?: { dtype: NumpyDtype; shape: number[]; order: 'C' | 'F' };
  subclass?: 'matrix';
}

function isObjectDtype(dtype: NumpyDtype): boolean {
  return dtype.descr[1] === 'O';
}

/**
 * The items of an object array (numpy pickles them as one flat list, in C order whatever the
 * layout), nested by `shape` as JS Arrays; a 0-d array is its one item.
 */
export function nestByShape(items: unknown[], shape: number[]): unknown {
  if (shape.length > 64) throw format('an object array of at most 64 dimensions', `${shape.length}`);
  let count = 1;
  let containers = 0;
  for (const d of shape) {
    containers += count;
    count *= d;
    // Empty axes make no items but may ask for many empty Arrays: (10**9, 0) is refused.
    if (containers > items.length + 1_000_000) throw format('an object array shape with fewer empty rows', shape);
  }
  if (count !== items.length) throw format(`${count} items for an object array of shape (${shape.join(', ')})`, `${items.length} items`);
  const build = (axis: number, offset: number, stride: number): unknown => {
    if (axis === shape.length) return items[offset];
    const d = shape[axis]!;
    const inner = d === 0 ? 0 : stride / d;
    const row: unknown[] = [];
    for (let i = 0; i < d; i++) row.push(build(axis + 1, offset + i * inner, inner));
    return row;
  };
  return build(0, 0, count);
}

/** Globals of the pickle nested after an object array's wrapper: numpy's own, never joblib's (so no pickle nests another). */
export const resolveNestedGlobal: PickleResolver = (module, name) => {
  if (module.startsWith('joblib')) return resolveJoblibGlobal('', `${module}.${name} inside an object array`);
  return resolveJoblibGlobal(module, name);
};

const MATRIX = 'numpy.matrixlib.defmatrix.matrix';

function shapeOf(v: unknown): number[] {
  if (!Array.isArray(v) || !v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw format('a shape (a tuple of non-negative integers)', v);
  }
  return v as number[];
}

function subclassOf(v: unknown): 'matrix' | undefined {
  return v instanceof PickleGlobalRef && v.qualifiedName === MATRIX ? 'matrix' : undefined;
}

/** Bytes of `shape` elements, refused as soon as it exceeds `limit` (so no product overflows). */
function byteCount(shape: number[], itemsize: number, limit: number): number {
  let n = itemsize;
  for (const d of shape) {
    n *= d;
    if (n > limit) throw format(`a shape of ${itemsize}-byte items that fits in the ${limit} bytes left`, shape);
  }
  return shape.includes(0) ? 0 : n;
}

/** Dict state with string keys, as joblib's wrappers pickle their __dict__. */
function stateDict(state: unknown, what: string): Map<unknown, unknown> {
  if (!(state instanceof Map)) throw format(`the state dict of ${what}`, state);
  return state;
}

function marker(name: string): PickleGlobal {
  // NEWOBJ with no arguments: an empty instance waiting for its BUILD state.
  return { call: () => ({ kind: 'pending', global: name }) };
}

/** joblib >= 0.10: BUILD's state describes the array, whose bytes follow in the stream (joblib/numpy_pickle.py read_array). */
const numpyArrayWrapper: PickleGlobal = {
  ...marker('NumpyArrayWrapper'),
  build(_obj, state, reader: PickleReader): unknown {
    const s = stateDict(state, 'NumpyArrayWrapper');
    const dtype = asDtype(s.get('dtype'));
    const shape = shapeOf(s.get('shape'));
    // An object array is pickled whole right after (joblib's write_array: pickle.dump(array, protocol=2)).
    if (isObjectDtype(dtype)) return unpickle(reader, { resolve: resolveNestedGlobal });
    refuseUnsupported(dtype);
    const order = s.get('order');
    if (order !== 'C' && order !== 'F') throw format('order "C" or "F"', order);
    // joblib >= 1.2 writes a padding length byte and that many bytes so the data starts 16-byte aligned.
    const alignment = s.get('numpy_array_alignment_bytes');
    if (alignment !== undefined && alignment !== null) reader.skip(reader.readByte());
    const nbytes = byteCount(shape, dtype.itemsize, reader.remaining());
    const offset = reader.position;
    const out: NdarrayDescription = { kind: 'ndarray', dtype: dtype.descr, shape, order, offset, nbytes, bytes: reader.readData(nbytes) };
    const sub = subclassOf(s.get('subclass'));
    if (sub) out.subclass = sub;
    return out;
  },
};

function sideFile(compressed: boolean): PickleGlobal {
  return {
    ...marker(compressed ? 'ZNDArrayWrapper' : 'NDArrayWrapper'),
    build(_obj, state): NdarrayFileDescription {
      const s = stateDict(state, 'NDArrayWrapper');
      const filename = s.get('filename');
      if (typeof filename !== 'string') throw format('a side file name', filename);
      const out: NdarrayFileDescription = { kind: 'ndarray-file', filename, compressed };
      if (compressed) {
        // ZNDArrayWrapper: state (version, shape, dtype, is_fortran) and init_args (subtype, (0,), b'b'), as ndarray.__reduce__ gave them.
        const array = s.get('state');
        const init = s.get('init_args');
        if (!Array.isArray(array) || array.length !== 4) throw format('the (version, shape, dtype, is_fortran) state of a ZNDArrayWrapper', array);
        const dtype = asDtype(array[2]);
        refuseUnsupported(dtype);
        out.array = { dtype, shape: shapeOf(array[1]), order: array[3] ? 'F' : 'C' };
        const sub = Array.isArray(init) ? subclassOf(init[0]) : undefined;
        if (sub) out.subclass = sub;
        return out;
      }
      const sub = subclassOf(s.get('subclass'));
      if (sub) out.subclass = sub;
      return out;
    },
  };
}

/** numpy.core.multiarray._reconstruct(subtype, (0,), b'b') then BUILD (version, shape, dtype, is_fortran, raw). */
const reconstruct: PickleGlobal = {
  call(args): Partial<NdarrayDescription> {
    const sub = subclassOf(args[0]);
    return sub ? { kind: 'ndarray', subclass: sub } : { kind: 'ndarray' };
  },
  build(obj, state) {
    if (!Array.isArray(state) || (state.length !== 5 && state.length !== 4)) throw format('an ndarray state tuple', state);
    const [shapeV, dtypeV, fortran, raw] = state.length === 5 ? state.slice(1) : state;
    const dtype = asDtype(dtypeV);
    const shape = shapeOf(shapeV);
    // Object arrays come back as their items nested by shape (the memo's placeholder is not updated:
    // numpy never refers back to an array from inside its own pickle).
    if (isObjectDtype(dtype) && Array.isArray(raw)) return nestByShape(raw, shape);
    refuseUnsupported(dtype);
    const bytes = asBytes(raw, 'the raw bytes of an ndarray');
    const nbytes = byteCount(shape, dtype.itemsize, bytes.length);
    if (nbytes !== bytes.length) throw format(`${nbytes} bytes of array data`, `${bytes.length} bytes`);
    // In place: the memo holds this very object, and later references to it must see the array.
    return Object.assign(obj as object, { dtype: dtype.descr, shape, order: fortran ? 'F' : 'C', offset: null, nbytes, bytes: bytes.slice() });
  },
};

/** numpy.core.numeric._frombuffer(buffer, dtype, shape, order): ndarray.__reduce_ex__ at protocol 5. */
const frombuffer: PickleGlobal = {
  call(args): NdarrayDescription {
    const dtype = asDtype(args[1]);
    refuseUnsupported(dtype);
    const shape = shapeOf(args[2]);
    const bytes = asBytes(args[0], 'the buffer of an ndarray');
    if (byteCount(shape, dtype.itemsize, bytes.length) !== bytes.length) throw format('array data matching the shape', `${bytes.length} bytes`);
    const order = args[3] === 'F' ? 'F' : 'C';
    return { kind: 'ndarray', dtype: dtype.descr, shape, order, offset: null, nbytes: bytes.length, bytes: bytes.slice() };
  },
};

function iterableItems(v: unknown, what: string): unknown[] {
  if (Array.isArray(v)) return v;
  if (v instanceof Set) return [...v];
  throw format(`a list of items for ${what}`, v);
}

const setOf: PickleGlobal = { call: (args) => new Set(args.length === 0 ? [] : iterableItems(args[0], 'set')) };

function encodeText(text: unknown, encoding: unknown): Uint8Array {
  if (typeof text !== 'string') throw format('a str to encode', text);
  if (encoding === 'latin1' || encoding === 'latin-1' || encoding === 'iso-8859-1') return latin1Bytes(text, 0);
  if (encoding === 'utf-8' || encoding === 'utf8' || encoding === undefined) return new TextEncoder().encode(text);
  throw format('the encoding "latin1" or "utf-8"', encoding);
}

const builtins: Record<string, PickleGlobal> = {
  set: setOf,
  frozenset: setOf,
  complex: {
    call(args) {
      const [re = 0, im = 0] = args;
      if (typeof re !== 'number' || typeof im !== 'number') throw format('two floats for complex()', args);
      return { kind: 'complex', re, im };
    },
  },
  bytearray: { call: bytesOf },
  // bytes() and bytes(s, 'latin-1'): how Python 3 pickles bytes below protocol 3 (b'' and bytearray).
  bytes: { call: bytesOf },
};

function reconstructor(args: unknown[]): unknown {
  const [cls, base, state] = args;
  if (!(cls instanceof PickleGlobalRef) || cls.handler.call === undefined || cls.handler.build === undefined) {
    throw format('an allowlisted class for copyreg._reconstructor', cls);
  }
  if (!(base instanceof PickleGlobalRef) || base.qualifiedName !== 'builtins.object' || (state !== null && state !== undefined)) {
    throw format('copyreg._reconstructor(cls, object, None)', args);
  }
  const obj = cls.handler.call([]) as object;
  reconstructed.set(obj, cls.handler);
  return obj;
}

/** Instances made by copyreg._reconstructor, and the class whose BUILD applies to them. */
const reconstructed = new WeakMap<object, PickleGlobal>();

function bytesOf(args: unknown[]): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  if (args[0] instanceof Uint8Array) return args[0].slice();
  return encodeText(args[0], args[1]);
}

const numpyCore: Record<string, PickleGlobal> = {
  'multiarray._reconstruct': reconstruct,
  'multiarray.scalar': numpyScalar,
  'numeric._frombuffer': frombuffer,
};

const ALLOWED = new Map<string, PickleGlobal>([
  ['joblib.numpy_pickle.NumpyArrayWrapper', numpyArrayWrapper],
  ['joblib.numpy_pickle.NDArrayWrapper', sideFile(false)],
  ['joblib.numpy_pickle.ZNDArrayWrapper', sideFile(true)],
  ['numpy.dtype', numpyDtype],
  // Classes passed as arguments (the subtype of _reconstruct, the subclass in a wrapper's state).
  ['numpy.ndarray', {}],
  [MATRIX, {}],
  ['_codecs.encode', { call: (args) => encodeText(args[0], args[1]) }],
  // Protocols 0 and 1 make an instance with copyreg._reconstructor(cls, object, None), which is
  // object.__new__(cls): allowed only for a class of this list that makes empty instances (the wrappers).
  ['copyreg._reconstructor', {
    call: reconstructor,
    // BUILD goes to the global that made the object: hand it to its class's own build.
    build: (obj, state, reader) => reconstructed.get(obj as object)!.build!(obj, state, reader),
  }],
  ['builtins.object', {}],
  ...Object.entries(datetimeGlobals),
  ['collections.OrderedDict', { call: (args) => new Map(args.length === 0 ? [] : (iterableItems(args[0], 'OrderedDict').map(pair) as [unknown, unknown][])) }],
  ...Object.entries(numpyCore).flatMap(([name, h]): [string, PickleGlobal][] => [[`numpy.core.${name}`, h], [`numpy._core.${name}`, h]]),
  // Python 2's __builtin__ arrives here renamed builtins by the unpickler, as CPython's fix_imports does.
  ...Object.entries(builtins).map(([name, h]): [string, PickleGlobal] => [`builtins.${name}`, h]),
]);

function pair(v: unknown): unknown[] {
  if (!Array.isArray(v) || v.length !== 2) throw format('a (key, value) pair', v);
  return v;
}

/** The resolver for joblib files: the allowlisted handler, or MEMJOB_ERR_UNSAFE_PICKLE naming the global. */
export const resolveJoblibGlobal: PickleResolver = (module, name) => {
  const handler = ALLOWED.get(`${module}.${name}`);
  if (handler === undefined) {
    const full = `${module}.${name}`;
    // Names come from the file: shown raw only when they look like a Python dotted name.
    const shown = /^[\w.]{1,100}$/.test(full) ? full : describe(full);
    throw new MemjobError(
      ErrorCodes.UNSAFE_PICKLE,
      `expected only numpy/joblib array globals and Python builtins, received ${shown} (memjob never runs code from a pickle; this file may be malicious)`,
    );
  }
  return handler;
};
