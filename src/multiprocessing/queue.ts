/**
 * Queue: multiprocessing.Queue for worker threads and child processes. A
 * ring buffer in a shared file, guarded by a Lock: any number of producers
 * and consumers, nothing lost or duplicated, and put() waits while the queue
 * is full (backpressure). Values are structured clones (node:v8); arrays
 * above maxNbytes travel as memory-mapped dumps, and any item too large for
 * the ring goes through a file of its own.
 *
 * Shared file layout: lock int32 at 0; float64 fields at 8.. (read position,
 * write position, bytes used, item count, closed flag, maxsize); the ring
 * from byte 64. Items are framed as [uint32 length][bytes], wrapping around.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleepAsync } from 'node:timers/promises';
import { deserialize, serialize } from 'node:v8';
import { ErrorCodes, MemjobError, invalidArg } from '../errors.js';
import { openRegularFile } from '../system/regular-file.js';
import { ArgumentPacker, ArgumentUnpacker } from '../transport/array-refs.js';
import { MAX_DEPTH, makeRef, refName } from '../transport/walker.js';
import { parseMaxNbytes } from '../transport/options.js';
import { Lock } from './lock.js';
import { SharedFile } from './shared-file.js';
import { SHARED_REF, registerShared, type SharedRef } from './shared-ref.js';

const HEADER = 64;
const enum Field {
  Read = 1,
  Write = 2,
  Used = 3,
  Count = 4,
  Closed = 5,
  MaxSize = 6,
}
/** The kind of reference an item too large for the ring becomes: a file of its own. */
const SPILL = 'queue-spill';
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export interface QueueOptions {
  /** Items at most (0: no limit but the ring's bytes). Default 0, as in Python. */
  maxsize?: number;
  /** Bytes of the shared ring buffer. Default 16 MiB. */
  capacity?: number;
  /** Arrays larger than this travel as memory-mapped dumps: bytes, or a string such as '1M'. Default 1 MiB. */
  maxNbytes?: number | string;
}

export interface QueueWaitOptions {
  /** false: fail at once instead of waiting. Default true. */
  block?: boolean;
  /** Milliseconds to wait at most; default forever. */
  timeout?: number;
}

function waitOptions(options: QueueWaitOptions, where: string): { block: boolean; deadline: number } {
  const block = options.block ?? true;
  const timeout = options.timeout ?? Infinity;
  if (typeof block !== 'boolean') throw invalidArg(where, 'block', 'a boolean', block);
  if (typeof timeout !== 'number' || !(timeout >= 0)) throw invalidArg(where, 'timeout', 'a non-negative number of milliseconds', timeout);
  return { block, deadline: performance.now() + timeout };
}

let spillCounter = 0;

export class Queue<T = unknown> {
  readonly #file: SharedFile;
  readonly #lock: Lock;
  readonly #fields: Float64Array;
  readonly #ring: Uint8Array;
  readonly #owner: boolean;
  readonly #maxNbytes: number;

  constructor(options: QueueOptions = {}, existing?: { file: SharedFile; maxNbytes: number }) {
    const where = 'Queue';
    const maxsize = options.maxsize ?? 0;
    const capacity = options.capacity ?? 16 * 1024 * 1024;
    if (!Number.isSafeInteger(maxsize) || maxsize < 0) throw invalidArg(where, 'maxsize', 'a non-negative integer (0: unbounded)', maxsize);
    if (!Number.isSafeInteger(capacity) || capacity < 4096) throw invalidArg(where, 'capacity', 'an integer of at least 4096 bytes', capacity);
    // Never null: an item too large for the ring must be able to spill to a file.
    this.#maxNbytes = existing?.maxNbytes ?? (parseMaxNbytes(where, options.maxNbytes, false) as number);
    this.#owner = existing === undefined;
    this.#file = existing?.file ?? SharedFile.create('queue', HEADER + capacity);
    this.#lock = new Lock({ file: this.#file, byteOffset: 0 });
    this.#fields = new Float64Array(this.#file.buffer, 0, HEADER / 8);
    this.#ring = new Uint8Array(this.#file.buffer, HEADER);
    if (this.#owner) this.#fields[Field.MaxSize] = maxsize;
  }

  /** Items in the queue now (a snapshot: other parties may change it at once). */
  qsize(): number {
    return this.#lock.withLock(() => this.#fields[Field.Count]!);
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    const maxsize = this.#fields[Field.MaxSize]!;
    return maxsize > 0 && this.qsize() >= maxsize;
  }

  /** Adds `item`, waiting while the queue is full. Rejects with MEMJOB_ERR_QUEUE_FULL on timeout, MEMJOB_ERR_QUEUE_CLOSED after close(). */
  async put(item: T, options: QueueWaitOptions = {}): Promise<void> {
    const { block, deadline } = waitOptions(options, 'Queue.put');
    const frame = this.#encode(item);
    for (let round = 0; ; round++) {
      if (this.#tryPut(frame)) return;
      this.#giveUp(block, deadline, 'put', frame);
      await sleepAsync(Math.min(5, round / 4));
    }
  }

  /** put(), blocking the thread instead of awaiting (Python's put()). */
  putSync(item: T, options: QueueWaitOptions = {}): void {
    const { block, deadline } = waitOptions(options, 'Queue.putSync');
    const frame = this.#encode(item);
    for (let round = 0; ; round++) {
      if (this.#tryPut(frame)) return;
      this.#giveUp(block, deadline, 'put', frame);
      Atomics.wait(sleeper, 0, 0, Math.min(2, 0.02 * (round + 1)));
    }
  }

  /** Takes the oldest item, waiting while the queue is empty. Rejects with MEMJOB_ERR_QUEUE_EMPTY on timeout, MEMJOB_ERR_QUEUE_CLOSED once closed and drained. */
  async get(options: QueueWaitOptions = {}): Promise<T> {
    const { block, deadline } = waitOptions(options, 'Queue.get');
    for (let round = 0; ; round++) {
      const frame = this.#tryGet();
      if (frame !== undefined) return this.#decode(frame);
      this.#giveUp(block, deadline, 'get');
      await sleepAsync(Math.min(5, round / 4));
    }
  }

  /** get(), blocking the thread instead of awaiting (Python's get()). */
  getSync(options: QueueWaitOptions = {}): T {
    const { block, deadline } = waitOptions(options, 'Queue.getSync');
    for (let round = 0; ; round++) {
      const frame = this.#tryGet();
      if (frame !== undefined) return this.#decode(frame);
      this.#giveUp(block, deadline, 'get');
      Atomics.wait(sleeper, 0, 0, Math.min(2, 0.02 * (round + 1)));
    }
  }

  /** No more items will be put: put() then fails, and get() fails once the queue is drained, so consumers can stop. */
  close(): void {
    this.#lock.withLock(() => void (this.#fields[Field.Closed] = 1));
  }

  get closed(): boolean {
    return this.#fields[Field.Closed] === 1;
  }

  /** Items until the queue is closed and drained: `for await (const item of queue)`. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<T> {
    for (;;) {
      try {
        yield await this.get();
      } catch (error) {
        if ((error as MemjobError).code === ErrorCodes.QUEUE_CLOSED) return;
        throw error;
      }
    }
  }

  /** Unmaps this handle; the creating process also removes the shared file. */
  dispose(): void {
    if (this.#owner) this.#file.close();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal */
  [SHARED_REF](): SharedRef {
    return { kind: 'queue', path: this.#file.path, byteLength: this.#file.byteLength, maxNbytes: this.#maxNbytes };
  }

  #giveUp(block: boolean, deadline: number, what: 'put' | 'get', frame?: Uint8Array): void {
    if (what === 'get' && this.closed && this.qsize() === 0) {
      throw new MemjobError(ErrorCodes.QUEUE_CLOSED, 'Queue.get: the queue is closed and empty');
    }
    if (block && performance.now() < deadline) return;
    if (frame !== undefined) this.#discard(frame);
    throw what === 'put'
      ? new MemjobError(ErrorCodes.QUEUE_FULL, `Queue.put: the queue stayed full${block ? ' until the timeout' : ''}`)
      : new MemjobError(ErrorCodes.QUEUE_EMPTY, `Queue.get: the queue stayed empty${block ? ' until the timeout' : ''}`);
  }

  #tryPut(frame: Uint8Array): boolean {
    return this.#lock.withLock(() => {
      const f = this.#fields;
      if (f[Field.Closed] === 1) {
        this.#discard(frame);
        throw new MemjobError(ErrorCodes.QUEUE_CLOSED, 'Queue.put: the queue is closed');
      }
      const need = 4 + frame.length;
      const maxsize = f[Field.MaxSize]!;
      if ((maxsize > 0 && f[Field.Count]! >= maxsize) || this.#ring.length - f[Field.Used]! < need) return false;
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, frame.length, true);
      let at = this.#copyIn(f[Field.Write]!, header);
      at = this.#copyIn(at, frame);
      f[Field.Write] = at;
      f[Field.Used] = f[Field.Used]! + need;
      f[Field.Count] = f[Field.Count]! + 1;
      return true;
    });
  }

  #tryGet(): Uint8Array | undefined {
    return this.#lock.withLock(() => {
      const f = this.#fields;
      if (f[Field.Count] === 0) return undefined;
      const header = new Uint8Array(4);
      let at = this.#copyOut(f[Field.Read]!, header);
      const length = new DataView(header.buffer).getUint32(0, true);
      const frame = new Uint8Array(length);
      at = this.#copyOut(at, frame);
      f[Field.Read] = at;
      f[Field.Used] = f[Field.Used]! - 4 - length;
      f[Field.Count] = f[Field.Count]! - 1;
      return frame;
    });
  }

  #copyIn(at: number, bytes: Uint8Array): number {
    const first = Math.min(bytes.length, this.#ring.length - at);
    this.#ring.set(bytes.subarray(0, first), at);
    this.#ring.set(bytes.subarray(first), 0);
    return (at + bytes.length) % this.#ring.length;
  }

  #copyOut(at: number, target: Uint8Array): number {
    const first = Math.min(target.length, this.#ring.length - at);
    target.set(this.#ring.subarray(at, at + first));
    target.set(this.#ring.subarray(0, target.length - first), first);
    return (at + target.length) % this.#ring.length;
  }

  /** The bytes of one item: large arrays become dump references, and an item too big for the ring a file of its own. */
  #encode(item: T): Uint8Array {
    // Plain values (numbers, strings...) hold no arrays to dump: serialize them directly.
    if (typeof item !== 'object' || item === null) return serialize(item);
    const folder = dirname(this.#file.path);
    const prefix = `q-${process.pid}-${spillCounter++}-${randomBytes(4).toString('hex')}`;
    const target = { file: (name: string) => join(folder, `${prefix}-${name}`) };
    const packer = new ArgumentPacker({
      maxNbytes: this.#maxNbytes,
      mmapMode: 'c',
      // The queue's folder is shared by all parties; there is no other to fall back to.
      folders: { current: () => target, fallback: (_failed, _bytes, cause) => { throw cause; } },
    });
    const bytes = serialize(packer.pack(item));
    if (bytes.length + 4 <= this.#ring.length / 4) return bytes;
    const path = join(folder, `${prefix}.spill`);
    writeFileSync(path, bytes, { mode: 0o600, flag: 'wx' });
    return serialize(makeRef(SPILL, { path }));
  }

  /**
   * A file this queue wrote (a spill or an array dump): in the queue's own
   * folder with the queue's prefix. Anything else an item names is refused,
   * never read, mapped or deleted.
   */
  #ownFile(path: unknown): string {
    const folder = dirname(this.#file.path);
    if (typeof path !== 'string' || dirname(path) !== folder || !basename(path).startsWith('q-')) {
      throw new MemjobError(ErrorCodes.FORMAT, `Queue.get: an item names a file outside the queue's folder (${JSON.stringify(String(path).slice(0, 200))}); it was left alone`);
    }
    return path;
  }

  #decode(frame: Uint8Array): T {
    let value = deserialize(frame) as unknown;
    if (typeof value !== 'object' || value === null) return value as T;
    if (refName(value) === SPILL) {
      const path = this.#ownFile((value as { path?: unknown }).path);
      const { fd } = openRegularFile(path, fsConstants.O_RDONLY, 'Queue.get');
      try {
        value = deserialize(readFileSync(fd));
      } finally {
        closeSync(fd);
      }
      rmSync(path, { force: true });
    }
    const dumps = dumpPaths(value).map((path) => this.#ownFile(path));
    const item = new ArgumentUnpacker().unpack(value) as T;
    // The arrays are mapped now; the files can go (the mappings keep their pages).
    for (const path of dumps) rmSync(path, { force: true });
    return item;
  }

  /** Removes the files behind an item that will never be read (a put that failed). */
  #discard(frame: Uint8Array): void {
    const value = deserialize(frame) as unknown;
    const paths = refName(value) === SPILL ? [(value as { path?: unknown }).path] : dumpPaths(value);
    for (const path of paths) rmSync(this.#ownFile(path), { force: true });
  }
}

/** Paths of the array dumps an encoded item refers to (references memjob made only: see transport/walker.ts). */
function dumpPaths(value: unknown, found: unknown[] = [], depth = 0): unknown[] {
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH || ArrayBuffer.isView(value)) return found;
  if (refName(value) === 'dump') found.push((value as { path?: unknown }).path);
  else if (value instanceof Map || value instanceof Set) for (const v of value.values()) dumpPaths(v, found, depth + 1);
  else for (const v of Object.values(value)) dumpPaths(v, found, depth + 1);
  return found;
}

registerShared('queue', (ref, file) => new Queue({}, { file, maxNbytes: ref.maxNbytes as number }));
