/**
 * How shared objects (Lock, Value, SharedArray, Queue) travel to workers:
 * as a small reference to their shared file, revived on the other side as a
 * handle on the same memory. The transport layer calls packShared() and
 * reviveShared(); each kind registers how to rebuild itself.
 */
import { SharedFile } from './shared-file.js';

export const SHARED_REF = Symbol.for('memjob.sharedRef');

export interface SharedRef {
  kind: 'lock' | 'value' | 'array' | 'queue';
  path: string;
  byteLength: number;
  byteOffset?: number;
  /** Kind-specific fields (dtype, length, capacity...). */
  [key: string]: unknown;
}

type Reviver = (ref: SharedRef, file: SharedFile) => unknown;
const revivers = new Map<SharedRef['kind'], Reviver>();

export function registerShared(kind: SharedRef['kind'], reviver: Reviver): void {
  revivers.set(kind, reviver);
}

/** The reference for a shared object, or undefined for anything else. */
export function packShared(value: object): SharedRef | undefined {
  const method = (value as { [SHARED_REF]?: () => SharedRef })[SHARED_REF];
  return typeof method === 'function' ? method.call(value) : undefined;
}

// One mapping per file per thread: many handles on one Value share it.
const opened = new Map<string, SharedFile>();

export function reviveShared(ref: SharedRef): unknown {
  const reviver = revivers.get(ref.kind);
  if (reviver === undefined) throw new Error(`memjob: no reviver for shared ${ref.kind}; import memjob before using it in a worker`);
  let file = opened.get(ref.path);
  if (file === undefined || file.closed) opened.set(ref.path, (file = SharedFile.open(ref.path, ref.byteLength)));
  return reviver(ref, file);
}
