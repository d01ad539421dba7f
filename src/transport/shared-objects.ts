/**
 * Shared objects (multiprocessing's Lock, Value, SharedArray, Queue) travel
 * as a small reference to their shared file and are revived on the other
 * side as a handle on the same memory. Transport knows only this contract:
 * an object offers its reference through the SHARED_REF method, and each
 * kind registers how to revive itself when its module loads. A thread must
 * have loaded those modules (multiprocessing/kinds.ts) before it revives one.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';

export const SHARED_REF = Symbol.for('memjob.sharedRef');

export interface SharedRef {
  /** The registered kind: 'lock', 'value', 'array', 'queue'. */
  kind: string;
  path: string;
  byteLength: number;
  byteOffset?: number;
  /** Kind-specific fields (dtype, length, capacity...). */
  [key: string]: unknown;
}

type Reviver = (ref: SharedRef) => unknown;
const revivers = new Map<string, Reviver>();

/** Called once by each kind's module when it loads. */
export function registerSharedKind(kind: string, reviver: Reviver): void {
  revivers.set(kind, reviver);
}

/** Whether `value` is a shared object (offers a SHARED_REF method). */
export function isSharedObject(value: object): boolean {
  return typeof (value as { [SHARED_REF]?: unknown })[SHARED_REF] === 'function';
}

/** The reference for a shared object, or undefined for anything else. */
export function packShared(value: object): SharedRef | undefined {
  const method = (value as { [SHARED_REF]?: () => SharedRef })[SHARED_REF];
  return typeof method === 'function' ? method.call(value) : undefined;
}

export function reviveShared(ref: SharedRef): unknown {
  const reviver = revivers.get(ref.kind);
  if (reviver === undefined) {
    throw new MemjobError(
      ErrorCodes.UNSUPPORTED_VALUE,
      `shared object: expected a kind loaded in this thread (${[...revivers.keys()].join(', ') || 'none'}), received ${describe(ref.kind)}; a worker must import memjob's multiprocessing kinds before it receives one`,
    );
  }
  return reviver(ref);
}
