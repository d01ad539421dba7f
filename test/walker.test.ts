// The one walker (src/transport/walker.ts) and its table of reference kinds,
// through the packers that use it: ArgumentPacker/ArgumentUnpacker (task
// arguments, Queue items) and packResult/unpackResult (task results). Real
// files, real Memmaps, real shared Values and Locks; every packed value goes
// through structuredClone, as it does on its way to a worker.
import { existsSync, readdirSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/errors.js';
import { Memmap } from '../src/memmap/memmap.js';
import { NDArray } from '../src/memmap/ndarray.js';
import { memmap } from '../src/memmap/open.js';
import { Lock } from '../src/multiprocessing/lock.js';
import '../src/multiprocessing/kinds.js';
import { Value } from '../src/multiprocessing/values.js';
import { ArgumentPacker, ArgumentUnpacker, REF, isArrayRef } from '../src/transport/array-refs.js';
import { packResult, unpackResult } from '../src/transport/result-refs.js';
import { reviveShared } from '../src/transport/shared-objects.js';
import { MAX_DEPTH, makeRef, refName } from '../src/transport/walker.js';
import { failure, scratchDir } from './helpers.js';

const scratch = scratchDir('walker');
afterAll(() => scratch.remove());
const closing: { close(): void }[] = [];
afterEach(() => {
  for (const x of closing.splice(0).reverse()) x.close();
});

let fileCounter = 0;
/** A packer dumping arrays above 64 bytes into the scratch folder. */
function packer(maxNbytes: number | null = 64): ArgumentPacker {
  return new ArgumentPacker({ maxNbytes, mmapMode: 'r', folder: () => ({ file: (name) => scratch.file(`${fileCounter++}-${name}`) }) });
}
function unpacker(): ArgumentUnpacker {
  const u = new ArgumentUnpacker();
  closing.push(u);
  return u;
}
/** pack -> structuredClone (what postMessage does) -> unpack. */
function roundTrip(value: unknown, p = packer()): unknown {
  return unpacker().unpack(structuredClone(p.pack(value)));
}
function floats(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => i + 0.5);
}
function mapped(n = 16): Memmap<'float64'> {
  const m = memmap(scratch.file(`m-${fileCounter++}.bin`), { mode: 'w+', dtype: 'float64', shape: [n] });
  for (let i = 0; i < n; i++) m.data[i] = i * 2;
  closing.push(m);
  return m;
}
function nest(depth: number): unknown {
  let deep: unknown = 1;
  for (let i = 0; i < depth; i++) deep = [deep];
  return deep;
}

describe('reference kinds, arguments', () => {
  it('memmap: a Memmap becomes its file and layout; the worker side maps the same file, once per run', () => {
    const m = mapped();
    const packed = packer().pack([m, m]) as Record<string, unknown>[];
    expect(packed[0]).toMatchObject({ [REF]: 'memmap', path: m.filename, mode: 'r+', dtype: 'float64', shape: [16] });
    expect(packed[1]).toBe(packed[0]);
    const u = unpacker();
    const [a, b] = u.unpack(structuredClone(packed)) as Memmap[];
    expect(a).toBeInstanceOf(Memmap);
    expect(b).toBe(a);
    // Another reference to the same view (another task of the run) gets the run's one mapping.
    expect((u.unpack(structuredClone(packer().pack([m]))) as Memmap[])[0]).toBe(a);
    (a!.data as Float64Array)[3] = 99;
    expect(m.data[3]).toBe(99);
  });

  it('view: a TypedArray or NDArray over a mapped file becomes a reference to its region, with its class', () => {
    const m = mapped();
    const slice = m.data.subarray(4, 8);
    const nd = new NDArray(m.data.subarray(0, 6), { shape: [2, 3] });
    const packed = packer(null).pack({ slice, nd }) as Record<string, Record<string, unknown>>;
    expect(packed.slice).toMatchObject({ [REF]: 'view', path: m.filename, fileOffset: 32, byteLength: 32, arrayType: 'Float64Array' });
    expect(packed.nd).toMatchObject({ [REF]: 'view', nd: { dtype: 'float64', shape: [2, 3], order: 'C' } });
    const back = unpacker().unpack(structuredClone(packed)) as { slice: Float64Array; nd: NDArray };
    expect(back.slice).toBeInstanceOf(Float64Array);
    expect([...back.slice]).toEqual([8, 10, 12, 14]);
    expect(back.nd).toBeInstanceOf(NDArray);
    expect(back.nd.shape).toEqual([2, 3]);
    back.slice[0] = -1; // mapped shared: the caller sees it
    expect(m.data[4]).toBe(-1);
  });

  it('dump: an array above maxNbytes is dumped once per run and mapped by the worker', () => {
    const big = floats(100);
    const bigNd = new NDArray(floats(30), { shape: [5, 6] });
    const p = packer();
    const packed = p.pack([big, { again: big }, bigNd]) as unknown[];
    const ref = packed[0] as { path: string };
    expect(packed[0]).toMatchObject({ [REF]: 'dump', mode: 'r' });
    expect((packed[1] as { again: unknown }).again).toBe(packed[0]);
    expect(p.pack([big])).toEqual([packed[0]]); // the next task of the run reuses the dump
    expect(p.dumpCount).toBe(2);
    expect(existsSync(ref.path)).toBe(true);
    const [a, b, c] = unpacker().unpack(structuredClone(packed)) as [Float64Array, { again: Float64Array }, NDArray];
    expect(a).toEqual(big);
    expect(b.again).toBe(a);
    expect(c).toBeInstanceOf(NDArray);
    expect(c.shape).toEqual([5, 6]);
    expect(c.data).toEqual(bigNd.data);
  });

  it('ndarray: a small NDArray travels in parts and keeps its class; a small TypedArray goes as it is', () => {
    const nd = new NDArray(new Int32Array([1, 2, 3, 4]), { shape: [2, 2], order: 'F' });
    const small = new Int16Array([5, 6]);
    const packed = packer().pack([nd, small]) as unknown[];
    expect(packed[0]).toMatchObject({ [REF]: 'ndarray', dtype: 'int32', shape: [2, 2], order: 'F' });
    expect(packed[1]).toBe(small);
    const [back, backSmall] = unpacker().unpack(structuredClone(packed)) as [NDArray, Int16Array];
    expect(back).toBeInstanceOf(NDArray);
    expect(back.order).toBe('F');
    expect([...back.data]).toEqual([1, 2, 3, 4]);
    expect(backSmall).toEqual(small);
  });

  it('shared: a Value and a Lock become handles on the same shared memory', () => {
    const v = new Value('int32', 7);
    const lock = new Lock();
    closing.push(v, lock);
    const packed = packer().pack({ v, lock }) as Record<string, { [REF]: string; ref: { kind: string } }>;
    expect(packed.v).toMatchObject({ [REF]: 'shared', ref: { kind: 'value' } });
    expect(packed.lock).toMatchObject({ [REF]: 'shared', ref: { kind: 'lock' } });
    const back = unpacker().unpack(structuredClone(packed)) as { v: Value<'int32'>; lock: Lock };
    expect(back.v).toBeInstanceOf(Value);
    back.v.value = 42;
    expect(v.value).toBe(42);
    expect(back.v.add(1)).toBe(43);
    expect(v.value).toBe(43);
    expect(lock.acquire()).toBe(true);
    expect(back.lock.acquire({ blocking: false })).toBe(false);
    lock.release();
    expect(back.lock.acquire({ blocking: false })).toBe(true);
    back.lock.release();
  });

  it('a shared reference of a kind nobody registered is a MemjobError', () => {
    const error = failure(() => reviveShared({ kind: 'semaphore', path: scratch.file('none'), byteLength: 8 }));
    expect(error.code).toBe(ErrorCodes.UNSUPPORTED_VALUE);
    expect(error.message).toContain('received "semaphore" (string)');
  });

  it('references of a kind the table does not have come through as they are', () => {
    const stranger = makeRef('not-a-kind', { x: 1 });
    expect(unpacker().unpack([stranger])).toEqual([stranger]);
    expect(refName(stranger)).toBe('not-a-kind');
    expect(isArrayRef(stranger)).toBe(true);
    expect(isArrayRef({ x: 1 })).toBe(false);
  });
});

describe('reference kinds, results', () => {
  const names = () => {
    let n = 0;
    return () => `result-${n++}.mjdump`;
  };

  it('result-dump: a large result is written to the result folder, loaded once by the parent and removed', () => {
    const folder = scratchDir('walker-results');
    try {
      const big = floats(100);
      const packed = packResult({ a: big, b: [big], small: floats(2) }, { maxNbytes: 64, resultFolder: folder.dir, nextName: names() });
      const value = packed.value as Record<string, unknown>;
      expect(packed.transfer).toEqual([]);
      expect(value.a).toMatchObject({ [REF]: 'result-dump' });
      expect((value.b as unknown[])[0]).toBe(value.a);
      expect(value.small).toBeInstanceOf(Float64Array);
      expect(readdirSync(folder.dir)).toEqual(['result-0.mjdump']);
      const back = unpackResult(structuredClone(value), () => true) as { a: Float64Array; b: Float64Array[] };
      expect(back.a).toEqual(big);
      expect(back.b[0]).toBe(back.a);
      expect(readdirSync(folder.dir)).toEqual([]);
    } finally {
      folder.remove();
    }
  });

  it('transfer: threads move a large result buffer instead of copying it', () => {
    const big = floats(100);
    const nd = new NDArray(floats(200), { shape: [10, 20] });
    const packed = packResult([big, nd, floats(2)], { maxNbytes: 64, resultFolder: undefined, nextName: names() });
    expect(packed.transfer).toEqual([big.buffer, nd.data.buffer]);
    const value = packed.value as unknown[];
    expect(value[0]).toBe(big);
    expect(value[1]).toMatchObject({ [REF]: 'ndarray', shape: [10, 20] });
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(value, packed.transfer);
    expect(big.byteLength).toBe(0); // moved, not copied
    const received = receiveMessageOnPort(port2)!.message as unknown[];
    port1.close();
    const [a, b, c] = unpackResult(received, () => false) as [Float64Array, NDArray, Float64Array];
    expect(a).toEqual(floats(100));
    expect(b).toBeInstanceOf(NDArray);
    expect(b.data).toEqual(floats(200));
    expect(c).toEqual(floats(2));
  });

  it('memmap: the caller\'s own file maps again; one in the run\'s folders comes back as a copy', () => {
    const m = mapped();
    const packed = structuredClone(packResult({ m }, { maxNbytes: 64, resultFolder: undefined, nextName: names() }).value);
    const mine = (unpackResult(structuredClone(packed), () => false) as { m: Memmap }).m;
    closing.push(mine);
    expect(mine).toBeInstanceOf(Memmap);
    (mine.data as Float64Array)[0] = 5;
    expect(m.data[0]).toBe(5);
    const owned = (unpackResult(packed, (path) => path === m.filename) as { m: NDArray }).m;
    expect(owned).toBeInstanceOf(NDArray);
    expect(owned).not.toBeInstanceOf(Memmap);
    expect(owned.data[0]).toBe(5);
  });
});

describe('the walk', () => {
  it('keeps cycles: an object containing itself', () => {
    const big = floats(100);
    const o: Record<string, unknown> = { big, n: 1 };
    o.self = o;
    const packed = packer().pack(o) as Record<string, unknown>;
    expect(packed).not.toBe(o);
    expect(packed.self).toBe(packed);
    expect(packed.big).toMatchObject({ [REF]: 'dump' });
    const back = unpacker().unpack(structuredClone(packed)) as Record<string, unknown>;
    expect(back.self).toBe(back);
    expect(back.big).toEqual(big);
    expect(o.big).toBe(big); // the caller's object is untouched
    expect(o.self).toBe(o);
  });

  it('keeps cycles: a Map whose value is the Map', () => {
    const m = new Map<unknown, unknown>([['big', floats(100)]]);
    m.set('me', m);
    const packed = packer().pack(m) as Map<unknown, unknown>;
    expect(packed).not.toBe(m);
    expect(packed.get('me')).toBe(packed);
    expect([...packed.keys()]).toEqual(['big', 'me']);
    const back = roundTrip(m) as Map<unknown, unknown>;
    expect(back.get('me')).toBe(back);
    expect(back.get('big')).toEqual(floats(100));
    expect(m.get('big')).toBeInstanceOf(Float64Array);
  });

  it('keeps shared structure: a Set holding one object twice (directly and inside another)', () => {
    const shared = { big: floats(100) };
    const s = new Set<unknown>([shared, { inner: shared }]);
    const packed = packer().pack(s) as Set<Record<string, unknown>>;
    const [first, second] = [...packed];
    expect(second!.inner).toBe(first);
    expect(first!.big).toMatchObject({ [REF]: 'dump' });
    const [a, b] = [...(roundTrip(s) as Set<Record<string, unknown>>)];
    expect(b!.inner).toBe(a);
    expect(a!.big).toEqual(floats(100));
  });

  it('returns what needs no change as it is; a cycle is copied along its path only', () => {
    const o: Record<string, unknown> = { list: [1, 2, { deep: 'x' }], set: new Set([1]), map: new Map([[1, 2]]), small: floats(2) };
    expect(packer().pack(o)).toBe(o);
    // A container on a cycle gets its copy before its members are walked, so the cycle closes on the copy.
    o.self = o;
    const packed = packer().pack(o) as Record<string, unknown>;
    expect(packed).not.toBe(o);
    expect(packed.self).toBe(packed);
    expect(packed.list).toBe(o.list);
    expect(packed.set).toBe(o.set);
  });

  it('walks Map keys and values and Set members', () => {
    const key = new NDArray(new Int32Array([1, 2]));
    const packed = packer().pack(new Map<unknown, unknown>([[key, new Set([key, floats(100)])]])) as Map<unknown, Set<unknown>>;
    const [packedKey] = packed.keys();
    expect(packedKey).toMatchObject({ [REF]: 'ndarray' });
    expect([...packed.get(packedKey)!][0]).toBe(packedKey);
    const back = unpacker().unpack(structuredClone(packed)) as Map<NDArray, Set<unknown>>;
    const [backKey] = back.keys();
    expect(backKey).toBeInstanceOf(NDArray);
    const members = [...back.get(backKey!)!];
    expect(members[0]).toBe(backKey);
    expect(members[1]).toEqual(floats(100));
  });

  it('keeps null-prototype objects and an own "__proto__" key', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.big = floats(100);
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "nd": 1}') as Record<string, unknown>;
    parsed.nd = new NDArray(new Uint8Array([1]));
    const packed = packer().pack({ bare, parsed }) as Record<string, Record<string, unknown>>;
    expect(Object.getPrototypeOf(packed.bare)).toBeNull();
    expect(Object.getPrototypeOf(packed.parsed)).toBe(Object.prototype);
    expect(Object.keys(packed.parsed!)).toEqual(['__proto__', 'nd']);
    // structuredClone itself gives a null-prototype object Object.prototype; the unpacker keeps what it receives.
    const back = unpacker().unpack(structuredClone(packed)) as Record<string, Record<string, unknown>>;
    expect(back.bare!.big).toEqual(floats(100));
    const received = Object.create(null) as Record<string, unknown>;
    received.nd = packed.parsed!.nd;
    const unpacked = unpacker().unpack(received) as Record<string, unknown>;
    expect(Object.getPrototypeOf(unpacked)).toBeNull();
    expect(unpacked.nd).toBeInstanceOf(NDArray);
    expect(back.parsed!.nd).toBeInstanceOf(NDArray);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('never mutates the caller\'s value', () => {
    const big = floats(100);
    const nd = new NDArray(new Int32Array([1, 2]));
    const inner = Object.freeze({ nd, list: Object.freeze([big, 1]) });
    const map = new Map<unknown, unknown>([[nd, inner]]);
    const set = new Set<unknown>([big, inner]);
    const value = Object.freeze([inner, map, set, Object.freeze({ big })]);
    const packed = packer().pack(value) as unknown[];
    expect(packed).not.toBe(value);
    // Frozen containers would have thrown on a write; the Map and Set are checked entry by entry.
    expect([...map]).toEqual([[nd, inner]]);
    expect([...map.keys()][0]).toBe(nd);
    expect([...set]).toEqual([big, inner]);
    expect(inner.list[0]).toBe(big);
    expect(isArrayRef((packed[3] as Record<string, unknown>).big)).toBe(true);
  });

  it('round-trips a mixed value through structuredClone', () => {
    const m = mapped();
    const value = {
      n: 1,
      s: 'text',
      date: new Date(0),
      list: [m, floats(100), new NDArray(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] }), null, undefined],
      map: new Map([['k', { x: floats(3) }]]),
      set: new Set(['a', 'b']),
    };
    const back = roundTrip(value) as typeof value & { list: [Memmap, Float64Array, NDArray, null, undefined] };
    expect(back.n).toBe(1);
    expect(back.date).toEqual(new Date(0));
    expect(back.list[0]).toBeInstanceOf(Memmap);
    expect([...(back.list[0].data as Float64Array)]).toEqual([...m.data]);
    expect(back.list[1]).toEqual(floats(100));
    expect(back.list[2]).toBeInstanceOf(NDArray);
    expect(back.list[2].shape).toEqual([2, 2]);
    expect(back.list.slice(3)).toEqual([null, undefined]);
    expect(back.map.get('k')!.x).toEqual(floats(3));
    expect([...back.set]).toEqual(['a', 'b']);
  });

  it(`refuses nesting deeper than ${MAX_DEPTH} levels with a MemjobError, on every side`, () => {
    const deep = nest(10_000);
    for (const attempt of [
      () => packer().pack(deep),
      () => unpacker().unpack(deep),
      () => packResult(deep, { maxNbytes: 64, resultFolder: undefined, nextName: () => 'x' }),
      () => unpackResult(deep, () => false),
    ]) {
      const error = failure(attempt);
      expect(error.code).toBe(ErrorCodes.UNSUPPORTED_VALUE);
      expect(error.message).toMatch(/: expected arrays, objects, Maps and Sets nested at most 1000 levels deep, received deeper nesting/);
    }
    expect(failure(() => packer().pack(deep)).message.startsWith('arguments:')).toBe(true);
    expect(failure(() => unpackResult(deep, () => false)).message.startsWith('result:')).toBe(true);
    // Exactly at the limit is fine; one more level is not.
    expect(packer().pack(nest(MAX_DEPTH))).toEqual(nest(MAX_DEPTH));
    expect(failure(() => packer().pack(nest(MAX_DEPTH + 1))).code).toBe(ErrorCodes.UNSUPPORTED_VALUE);
  });
});
