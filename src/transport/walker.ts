/**
 * The one walk over a value that crosses a thread or process boundary, in
 * either direction: task arguments on their way to a worker, results on
 * their way back, items through a Queue. A table of reference kinds decides
 * what each object becomes (joblib's forward and backward reducer tables in
 * _memmapping_reducer.py, applied by one pickler walk); the walk only knows
 * containers: arrays, plain objects (null-prototype too), Maps (keys and
 * values) and Sets. Cycles and shared sub-structure come out with the same
 * shape they went in with, and the caller's value is never mutated: a
 * container is copied only when something inside it changed.
 *
 * A reference is a plain object marked with the key REF and with this
 * process tree's reference token: 128 random bits that the parent makes and
 * hands to its workers in their init message, never in the environment.
 * Data cannot pose as a reference (a task returning
 * `JSON.parse('{"__memjob_ref__":"result-dump","path":"..."}')` stays plain
 * data), because nothing outside memjob knows the token; joblib gets the same
 * from deciding by type. Every reference is made by makeRef() and recognised
 * by refName() only.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCodes, MemjobError } from '../errors.js';

/** The key that marks a reference inside structured-cloned data. */
export const REF = '__memjob_ref__';
/** The key of the token that proves a reference was made by memjob in this process tree. */
const TOKEN = '__memjob_token__';

/** A reference on the wire: `{ __memjob_ref__: kind name, __memjob_token__, ...fields }`. */
export type Ref<K extends string = string> = { readonly [REF]: K };

// On globalThis under a registered symbol: every copy of memjob in one thread (src and dist, say) uses the same token.
const TOKEN_SLOT = Symbol.for('memjob.referenceToken');
const slots = globalThis as { [TOKEN_SLOT]?: string };

/** This process tree's reference token (made on first use in the parent). */
export function referenceToken(): string {
  return (slots[TOKEN_SLOT] ??= randomBytes(16).toString('hex'));
}

/** In a worker, from its init message: the parent's token, so that both recognise each other's references. */
export function adoptReferenceToken(token: unknown): void {
  if (typeof token !== 'string' || !/^[0-9a-f]{32}$/.test(token)) {
    throw new MemjobError(ErrorCodes.INTERNAL, `worker init: expected a reference token of 32 hex digits, received ${typeof token}`);
  }
  slots[TOKEN_SLOT] = token;
}

/** Makes a reference of kind `kind` carrying `fields`. */
export function makeRef<K extends string, F extends object>(kind: K, fields: F): Ref<K> & F {
  return { [REF]: kind, [TOKEN]: referenceToken(), ...fields } as Ref<K> & F;
}

/** The kind name of a reference made by memjob in this process tree, or undefined for any other value (plain data that looks like one included). */
export function refName(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, REF)) return undefined;
  const record = value as Record<string, unknown>;
  const name = record[REF];
  return typeof name === 'string' && record[TOKEN] === referenceToken() ? name : undefined;
}

/**
 * One kind of reference. `P` is what its packing side needs (the run's dump
 * folder, the buffers to transfer...), `U` what its unpacking side needs.
 */
export interface RefKind<P = unknown, U = unknown> {
  /** The wire name: the value of REF in the references it makes. */
  readonly name: string;
  /** Sending side: whether this kind may stand for `value` (cheap: an instanceof or a property check). */
  test(value: object): boolean;
  /** The reference or stand-in for `value` (the value itself: sent as it is); undefined leaves it to the kinds after this one. */
  pack(value: object, context: P): unknown;
  /** Receiving side: the value a reference of this kind stands for. Absent for kinds that make no reference of their own. */
  unpack?(ref: Ref, context: U): unknown;
}

/**
 * How deep arrays, objects, Maps and Sets may nest. Python's pickle stops at
 * its recursion limit (1000) too; this keeps a runaway structure (a long
 * linked list) a clear error instead of a stack overflow.
 */
export const MAX_DEPTH = 1000;

/** Object.prototype or no prototype at all: what structured clone copies key by key. */
export function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Replaces every object the table knows with its reference; `where` names the value in errors ('arguments', 'result'). */
export function packValue<P>(value: unknown, kinds: readonly RefKind<P, never>[], context: P, where: string): unknown {
  return walk(value, where, (item) => {
    for (const kind of kinds) {
      if (!kind.test(item)) continue;
      const packed = kind.pack(item, context);
      if (packed !== undefined) return packed;
    }
    // Bytes are copied by structured clone as they are: nothing inside to walk.
    return ArrayBuffer.isView(item) || item instanceof ArrayBuffer ? item : DESCEND;
  });
}

/** Replaces every reference of a kind in the table with what it stands for; references of other kinds stay as they are. */
export function unpackValue<U>(value: unknown, kinds: readonly RefKind<never, U>[], context: U, where: string): unknown {
  const byName = new Map(kinds.filter((kind) => kind.unpack !== undefined).map((kind) => [kind.name, kind]));
  return walk(value, where, (item) => {
    if (ArrayBuffer.isView(item) || item instanceof ArrayBuffer) return item;
    const name = refName(item);
    if (name === undefined) return DESCEND;
    const kind = byName.get(name);
    return kind === undefined ? item : kind.unpack!(item as Ref, context);
  });
}

const DESCEND = Symbol('descend');

/**
 * Copy-on-write with cycles: each container gets its (empty) copy before its
 * children are walked, so a child that refers back to it refers to the copy.
 * That back-reference counts as a change all the way up to the container,
 * which then returns the filled copy; a container where nothing changed
 * returns itself and the copy is dropped.
 */
function walk(root: unknown, where: string, leaf: (value: object) => unknown): unknown {
  const seen = new Map<object, unknown>();

  const visit = (value: unknown, depth: number): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    const known = seen.get(value);
    if (known !== undefined) return known;
    const replaced = leaf(value);
    if (replaced !== DESCEND) {
      // Only a replacement needs remembering: the same object met again must become the same reference.
      if (replaced !== value) seen.set(value, replaced);
      return replaced;
    }
    if (depth >= MAX_DEPTH) {
      throw new MemjobError(
        ErrorCodes.UNSUPPORTED_VALUE,
        `${where}: expected arrays, objects, Maps and Sets nested at most ${MAX_DEPTH} levels deep, received deeper nesting; flatten the structure (a long linked list, say, into an array)`,
      );
    }
    if (Array.isArray(value)) return visitArray(value, depth + 1);
    if (value instanceof Map) return visitMap(value, depth + 1);
    if (value instanceof Set) return visitSet(value, depth + 1);
    if (isPlainObject(value)) return visitObject(value, depth + 1);
    return value; // left to structured clone, which reports what it cannot copy
  };

  const done = <T extends object>(value: T, copy: T, changed: boolean): T => {
    if (changed) return copy;
    seen.set(value, value);
    return value;
  };

  const visitArray = (value: unknown[], depth: number): unknown[] => {
    const copy: unknown[] = [];
    seen.set(value, copy);
    let changed = false;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const packed = visit(item, depth);
      if (!changed && packed !== item) {
        changed = true;
        for (let j = 0; j < i; j++) copy.push(value[j]);
      }
      if (changed) copy.push(packed);
    }
    return done(value, copy, changed);
  };

  const visitMap = (value: Map<unknown, unknown>, depth: number): Map<unknown, unknown> => {
    const copy = new Map<unknown, unknown>();
    seen.set(value, copy);
    let changed = false;
    let index = 0;
    for (const [key, item] of value) {
      const packedKey = visit(key, depth);
      const packedItem = visit(item, depth);
      if (!changed && (packedKey !== key || packedItem !== item)) {
        changed = true;
        let j = 0;
        for (const entry of value) {
          if (j++ === index) break;
          copy.set(entry[0], entry[1]);
        }
      }
      if (changed) copy.set(packedKey, packedItem);
      index++;
    }
    return done(value, copy, changed);
  };

  const visitSet = (value: Set<unknown>, depth: number): Set<unknown> => {
    const copy = new Set<unknown>();
    seen.set(value, copy);
    let changed = false;
    let index = 0;
    for (const item of value) {
      const packed = visit(item, depth);
      if (!changed && packed !== item) {
        changed = true;
        let j = 0;
        for (const earlier of value) {
          if (j++ === index) break;
          copy.add(earlier);
        }
      }
      if (changed) copy.add(packed);
      index++;
    }
    return done(value, copy, changed);
  };

  const visitObject = (value: Record<string, unknown>, depth: number): Record<string, unknown> => {
    const copy: Record<string, unknown> = Object.getPrototypeOf(value) === null ? Object.create(null) : {};
    seen.set(value, copy);
    let changed = false;
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length; i++) {
      const item = value[keys[i]!];
      const packed = visit(item, depth);
      if (!changed && packed !== item) {
        changed = true;
        for (let j = 0; j < i; j++) define(copy, keys[j]!, value[keys[j]!]);
      }
      if (changed) define(copy, keys[i]!, packed);
    }
    return done(value, copy, changed);
  };

  return visit(root, 0);
}

/** An own property even for the key '__proto__' (JSON.parse makes those), which plain assignment would take as the prototype. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}
