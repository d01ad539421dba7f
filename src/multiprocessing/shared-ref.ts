/**
 * How multiprocessing's shared objects (Lock, Value, SharedArray, Queue)
 * join transport's shared-object kind (transport/shared-objects.ts): each
 * kind's module registers a reviver here, and the reviver receives the
 * shared file already mapped, once per file per thread, so that many handles
 * on one Value share one mapping.
 */
import { SHARED_REF, registerSharedKind, type SharedRef } from '../transport/shared-objects.js';
import { SharedFile } from './shared-file.js';

export { SHARED_REF, type SharedRef };

type Reviver = (ref: SharedRef, file: SharedFile) => unknown;

// One mapping per file per thread: many handles on one Value share it.
const opened = new Map<string, SharedFile>();

function openOnce(ref: SharedRef): SharedFile {
  let file = opened.get(ref.path);
  if (file === undefined || file.closed) opened.set(ref.path, (file = SharedFile.open(ref.path, ref.byteLength)));
  return file;
}

export function registerShared(kind: 'lock' | 'value' | 'array' | 'queue', reviver: Reviver): void {
  registerSharedKind(kind, (ref) => reviver(ref, openOnce(ref)));
}
