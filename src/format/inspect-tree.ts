/**
 * The tree inspect shows for a decoded value: containers with their first
 * entries, scalars as short previews, arrays as references into the file's
 * list of arrays. Every array is found however deep it sits; only the nodes
 * shown are bounded by maxEntries and maxDepth.
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
}

export interface EntryNode {
  /** Property name, index, or a preview of a Map key. */
  key: string;
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
export function describeValue(root: unknown, rootPath: string, arrayAt: (ref: ArrayRef, path: string) => number, limits: Limits): ValueNode {
  const walk = (value: unknown, path: string, depth: number, shown: boolean): ValueNode | undefined => {
    if (value instanceof ArrayRef) {
      const index = arrayAt(value, path);
      const d = value.descriptor;
      return shown ? { type: 'array-data', path, array: index, kind: d.kind, dtype: d.dtype, shape: d.shape, order: d.order } : undefined;
    }
    const container = containerOf(value);
    if (container === undefined) return shown ? { type: scalarType(value), path, preview: preview(value) } : undefined;
    const [type, items] = container;
    const entries: EntryNode[] = [];
    const showEntries = shown && depth < limits.maxDepth;
    let i = 0;
    for (const [key, item, itemPath, keyPath] of items(path)) {
      const showThis = showEntries && i < limits.maxEntries;
      // A Map's key may itself hold arrays: walk it for them, show only a preview.
      if (keyPath !== undefined) walk(key, keyPath, depth + 1, false);
      const node = walk(item, itemPath, depth + 1, showThis);
      if (showThis && node !== undefined) entries.push({ key: entryKey(type, key, i), value: node });
      i++;
    }
    return shown ? { type, path, size: i, entries, more: i - entries.length } : undefined;
  };
  return walk(root, rootPath, 0, true)!;
}

type Entries = (path: string) => Iterable<[key: unknown, item: unknown, itemPath: string, keyPath?: string]>;

/** Paths written as dump's error messages write them. */
function containerOf(value: unknown): [ContainerType, Entries] | undefined {
  if (Array.isArray(value)) {
    return ['array', (path) => value.map((item, i) => [i, item, `${path}[${i}]`] as [number, unknown, string])];
  }
  if (value instanceof Map) {
    return [
      'map',
      function* (path) {
        let i = 0;
        for (const [key, item] of value) {
          const scalarKey = containerOf(key) === undefined && !(key instanceof ArrayRef);
          yield [key, item, `${path}.get(${scalarKey ? mapKeyPath(key) : `<key ${i}>`})`, scalarKey ? undefined : `${path}.<key ${i}>`];
          i++;
        }
      },
    ];
  }
  if (value instanceof Set) {
    return [
      'set',
      function* (path) {
        let i = 0;
        for (const item of value) yield [i, item, `${path}.<item ${i++}>`];
      },
    ];
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    return ['object', (path) => Object.keys(value).map((key) => [key, (value as Record<string, unknown>)[key], `${path}${propertyPath(key)}`] as [string, unknown, string])];
  }
  return undefined;
}

function propertyPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
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
