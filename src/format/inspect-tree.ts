/**
 * The tree inspect shows for a decoded value: containers with their first
 * entries, scalars as short previews, arrays as references into the file's
 * list of arrays. Every array is found however deep it sits; what is shown
 * is bounded whatever the file holds (a file is not trusted): entries per
 * container, depth, rows in all, and the length of every key and path.
 * Paths are kept as links to their parent and spelled out only for what is
 * shown, so a deep file with long keys never builds a long string per node.
 */
import type { DType } from '../memmap/dtype.js';
import type { Order } from '../memmap/layout.js';
import type { ArrayDescriptor, ArrayKind } from './structure.js';

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
  /** Why entries were left out, when some were: the maxEntries, maxDepth or maxRows limit. */
  cut?: 'max-entries' | 'max-depth' | 'max-rows';
}

export interface EntryNode {
  /** Property name, index, or a preview of a Map key; a longer name is cut to KEY_SHOWN characters and ends in "…". */
  key: string;
  /** The name's full length, when `key` was cut. */
  keyLength?: number;
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
  kind: ArrayKind | 'NDArray';
  dtype: DType;
  shape: number[];
  order: Order;
}

export type ValueNode = ContainerNode | ScalarNode | ArrayNode;

export interface Limits {
  maxEntries: number;
  maxDepth: number;
  /** Nodes in the whole tree. */
  maxRows: number;
}

/** Characters of an entry's key shown in the tree. */
export const KEY_SHOWN = 200;
/** Characters of a key inside a path, and of a whole path (its start and its end are kept). */
const PATH_KEY_SHOWN = 60;
const PATH_HEAD = 100;
const PATH_TAIL = 150;

/** A path as a link to its parent: spelled out (pathText) only when shown. */
export interface PathRef {
  readonly parent: PathRef | undefined;
  /** `value`, `.x`, `[3]`, `["k"]`, `.get("k")`, `.<item 0>`: each already short. */
  readonly part: string;
}

/**
 * The path's text, at most about PATH_HEAD + PATH_TAIL characters: where it
 * starts, "…", and where it ends, when it is longer.
 */
export function pathText(path: PathRef): string {
  // Only the parts that can be shown are joined: the end, gathered going up,
  // and (when the path is long) the start, from the root down.
  let tail = '';
  let at: PathRef | undefined = path;
  for (; at !== undefined && tail.length <= PATH_HEAD + PATH_TAIL; at = at.parent) tail = at.part + tail;
  if (at === undefined) return tail.length <= PATH_HEAD + PATH_TAIL ? tail : `${tail.slice(0, PATH_HEAD)}…${tail.slice(-PATH_TAIL)}`;
  const fromRoot: string[] = [];
  for (; at !== undefined; at = at.parent) fromRoot.push(at.part);
  let head = '';
  for (let i = fromRoot.length - 1; i >= 0 && head.length < PATH_HEAD; i--) head += fromRoot[i];
  return `${head.slice(0, PATH_HEAD)}…${tail.slice(-PATH_TAIL)}`;
}

/** Stands for an array in the decoded value: decodeValue is given this instead of the data. */
export class ArrayRef {
  constructor(readonly descriptor: ArrayDescriptor) {}
}

/**
 * The tree of a decoded value. Every array is registered with `arrayAt`,
 * however deep or far down a long container; nodes are built only within
 * the limits.
 */
/**
 * `arrayAt(ref, path, shown)` registers an array and returns its index in
 * the file's list of arrays (or -1 when it is not listed; never for a shown one).
 */
export type ArrayAt = (ref: ArrayRef, path: PathRef, shown: boolean) => number;

export function describeValue(root: unknown, rootPath: string, arrayAt: ArrayAt, limits: Limits): ValueNode {
  let rows = 0;
  const walk = (value: unknown, path: PathRef, depth: number, shown: boolean): ValueNode | undefined => {
    if (shown) rows++;
    if (value instanceof ArrayRef) {
      const index = arrayAt(value, path, shown);
      const d = value.descriptor;
      return shown ? { type: 'array-data', path: pathText(path), array: index, kind: d.kind, dtype: d.dtype, shape: d.shape, order: d.order } : undefined;
    }
    const container = containerOf(value);
    if (container === undefined) return shown ? { type: scalarType(value), path: pathText(path), preview: preview(value) } : undefined;
    const [type, items] = container;
    const entries: EntryNode[] = [];
    const showEntries = shown && depth < limits.maxDepth;
    let cut: ContainerNode['cut'] = shown && !showEntries ? 'max-depth' : undefined;
    let i = 0;
    for (const [key, item, itemPart, keyPart] of items()) {
      let showThis = showEntries && i < limits.maxEntries;
      if (showEntries && i === limits.maxEntries) cut ??= 'max-entries';
      if (showThis && rows >= limits.maxRows) {
        showThis = false;
        cut ??= 'max-rows';
      }
      // A Map's key may itself hold arrays: walk it for them, show only a preview.
      if (keyPart !== undefined) walk(key, { parent: path, part: keyPart }, depth + 1, false);
      const node = walk(item, { parent: path, part: itemPart }, depth + 1, showThis);
      if (showThis && node !== undefined) entries.push(entryNode(type, key, i, node));
      i++;
    }
    if (!shown) return undefined;
    const more = i - entries.length;
    return { type, path: pathText(path), size: i, entries, more, ...(more > 0 && cut !== undefined ? { cut } : {}) };
  };
  return walk(root, { parent: undefined, part: rootPath }, 0, true)!;
}

function entryNode(type: ContainerType, key: unknown, index: number, value: ValueNode): EntryNode {
  const name = entryKey(type, key, index);
  return name.length > KEY_SHOWN ? { key: `${name.slice(0, KEY_SHOWN)}…`, keyLength: name.length, value } : { key: name, value };
}

type Entries = () => Iterable<[key: unknown, item: unknown, itemPart: string, keyPart?: string]>;

/** Paths written as dump's error messages write them. */
function containerOf(value: unknown): [ContainerType, Entries] | undefined {
  if (Array.isArray(value)) {
    return [
      'array',
      function* () {
        for (let i = 0; i < value.length; i++) yield [i, value[i], `[${i}]`];
      },
    ];
  }
  if (value instanceof Map) {
    return [
      'map',
      function* () {
        let i = 0;
        for (const [key, item] of value) {
          const scalarKey = containerOf(key) === undefined && !(key instanceof ArrayRef);
          yield [key, item, `.get(${scalarKey ? mapKeyPath(key) : `<key ${i}>`})`, scalarKey ? undefined : `.<key ${i}>`];
          i++;
        }
      },
    ];
  }
  if (value instanceof Set) {
    return [
      'set',
      function* () {
        let i = 0;
        for (const item of value) yield [i, item, `.<item ${i++}>`];
      },
    ];
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    return [
      'object',
      function* () {
        for (const key of Object.keys(value)) yield [key, (value as Record<string, unknown>)[key], propertyPath(key)];
      },
    ];
  }
  return undefined;
}

function propertyPath(key: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return key.length > PATH_KEY_SHOWN ? `.${key.slice(0, PATH_KEY_SHOWN)}…` : `.${key}`;
  return key.length > PATH_KEY_SHOWN ? `[${JSON.stringify(key.slice(0, PATH_KEY_SHOWN))}…]` : `[${JSON.stringify(key)}]`;
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
