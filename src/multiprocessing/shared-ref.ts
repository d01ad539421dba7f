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

// One mapping per file per thread: many handles on one Value share it. The
// cache holds the files weakly: a worker kept warm across runs receives a
// fresh Value each run, and a strong cache kept every one mapped for the
// worker's life (129,611 mappings, then ENOMEM). Once no handle holds a file,
// the collector takes it, the native layer unmaps it on the next map
// (native/addon.cc), and the registry below drops its entry. Entries are
// never scanned with deref(): measured in a worker thread, dereferencing
// every entry to prune the dead ones kept them all alive (3,000 of 3,000).
interface Entry {
  readonly file: WeakRef<SharedFile>;
}
const opened = new Map<string, Entry>();
const dropEntry = new FinalizationRegistry<{ path: string; entry: Entry }>(({ path, entry }) => {
  if (opened.get(path) === entry) opened.delete(path);
});

function openOnce(ref: SharedRef): SharedFile {
  let file = opened.get(ref.path)?.file.deref();
  if (file === undefined || file.closed) {
    file = SharedFile.open(ref.path, ref.byteLength);
    const entry: Entry = { file: new WeakRef(file) };
    opened.set(ref.path, entry);
    dropEntry.register(file, { path: ref.path, entry });
  }
  return file;
}

export function registerShared(kind: 'lock' | 'value' | 'array' | 'queue', reviver: Reviver): void {
  registerSharedKind(kind, (ref) => reviver(ref, openOnce(ref)));
}
