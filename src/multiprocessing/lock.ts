/**
 * Lock: multiprocessing.Lock for threads and processes alike. One int32 in
 * shared memory, taken with an atomic compare-and-swap (Atomics work on the
 * mapped file across processes). acquire() blocks synchronously like
 * Python's, spinning briefly and then sleeping in growing steps, so it can
 * sit inside a tight loop; acquireAsync() waits without blocking the event
 * loop. A blocked acquire() runs no JavaScript, so a program's own signal
 * listeners wait for it; memjob installs none, so SIGINT and SIGTERM keep
 * their default action and end a process stuck in acquire() at once (its
 * temp files are removed by the resource tracker, transport/temp-tracker.ts).
 * A cell holding anything but 0 or 1 is corrupt: every acquire and release
 * checks, and fails with MEMJOB_ERR_FORMAT rather than wait forever.
 */
import { setTimeout as sleepAsync } from 'node:timers/promises';
import { ErrorCodes, MemjobError, invalidArg } from '../errors.js';
import { SharedFile } from './shared-file.js';
import { SHARED_REF, registerShared, type SharedRef } from './shared-ref.js';

const UNLOCKED = 0;
const LOCKED = 1;
const SPINS = 200;
/** A private cell to sleep on: Atomics.wait needs a SharedArrayBuffer, and nobody ever wakes it. */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export interface AcquireOptions {
  /** false: try once and return at once. Default true. */
  blocking?: boolean;
  /** Milliseconds to wait at most; default forever. */
  timeout?: number;
}

function parseAcquire(options: AcquireOptions, where: string): { blocking: boolean; deadline: number } {
  const blocking = options.blocking ?? true;
  const timeout = options.timeout ?? Infinity;
  if (typeof blocking !== 'boolean') throw invalidArg(where, 'blocking', 'a boolean', blocking);
  if (typeof timeout !== 'number' || !(timeout >= 0)) throw invalidArg(where, 'timeout', 'a non-negative number of milliseconds', timeout);
  return { blocking, deadline: performance.now() + timeout };
}

export class Lock {
  readonly #file: SharedFile;
  readonly #cell: Int32Array;
  readonly #index: number;
  readonly #ownsFile: boolean;

  /** A new lock, or (internal) one cell of an existing shared file. */
  constructor(at?: { file: SharedFile; byteOffset: number }) {
    this.#ownsFile = at === undefined;
    this.#file = at?.file ?? SharedFile.create('lock', 64);
    // Just the lock's own 4 bytes: the file may hold data of any size after it.
    this.#cell = new Int32Array(this.#file.buffer, at?.byteOffset ?? 0, 1);
    this.#index = 0;
  }

  /** true while some party holds the lock. */
  get locked(): boolean {
    return Atomics.load(this.#cell, this.#index) === LOCKED;
  }

  /** true if taken; false if held by someone; a cell holding anything else is corrupt, and waiting on it would never end. */
  #tryAcquire(where: string): boolean {
    const old = Atomics.compareExchange(this.#cell, this.#index, UNLOCKED, LOCKED);
    if (old === UNLOCKED) return true;
    if (old !== LOCKED) throw this.#corrupt(where, old);
    return false;
  }

  #corrupt(where: string, value: number): MemjobError {
    return new MemjobError(
      ErrorCodes.FORMAT,
      `${where}: expected the lock's shared cell to hold 0 (free) or 1 (held), received ${value}: the file '${this.#file.path}' was overwritten by something other than a Lock`,
      { path: this.#file.path },
    );
  }

  /** Takes the lock, waiting (synchronously) until it is free; false if `blocking: false` or `timeout` ran out. */
  acquire(options: AcquireOptions = {}): boolean {
    this.#file.check('Lock.acquire');
    const { blocking, deadline } = parseAcquire(options, 'Lock.acquire');
    if (this.#tryAcquire('Lock.acquire')) return true;
    if (!blocking) return false;
    for (let round = 0; ; round++) {
      if (round < SPINS) {
        if (Atomics.load(this.#cell, this.#index) === UNLOCKED && this.#tryAcquire('Lock.acquire')) return true;
        continue;
      }
      if (this.#tryAcquire('Lock.acquire')) return true;
      const now = performance.now();
      if (now >= deadline) return false;
      // Sleep 0.02 ms, growing to 1 ms: short waits stay short, long ones stop burning a core.
      Atomics.wait(sleeper, 0, 0, Math.min(1, 0.02 * 2 ** Math.min(6, (round - SPINS) / 8), deadline - now));
    }
  }

  /** As acquire(), but waits with timers, so the event loop keeps running. */
  async acquireAsync(options: AcquireOptions = {}): Promise<boolean> {
    this.#file.check('Lock.acquireAsync');
    const { blocking, deadline } = parseAcquire(options, 'Lock.acquireAsync');
    if (this.#tryAcquire('Lock.acquireAsync')) return true;
    if (!blocking) return false;
    for (let round = 0; ; round++) {
      if (this.#tryAcquire('Lock.acquireAsync')) return true;
      if (performance.now() >= deadline) return false;
      await sleepAsync(Math.min(10, round));
    }
  }

  /** Frees the lock. Like Python's, any party may release it; releasing a free lock is an error. */
  release(): void {
    this.#file.check('Lock.release');
    const old = Atomics.compareExchange(this.#cell, this.#index, LOCKED, UNLOCKED);
    if (old === UNLOCKED) throw new MemjobError(ErrorCodes.INVALID_ARG, 'Lock.release: the lock is not held (release() without acquire())');
    if (old !== LOCKED) throw this.#corrupt('Lock.release', old);
  }

  /** Runs `fn` holding the lock and releases it afterwards, also when `fn` throws or its Promise rejects. */
  withLock<T>(fn: () => T): T {
    this.acquire();
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.release();
      throw error;
    }
    if (result instanceof Promise) return result.finally(() => this.release()) as T;
    this.release();
    return result;
  }

  /** Unmaps the lock (and removes its file in the process that created it). */
  close(): void {
    if (this.#ownsFile) this.#file.close();
  }

  /** @internal How a worker finds the same lock. */
  [SHARED_REF](): SharedRef {
    return { kind: 'lock', path: this.#file.path, byteLength: this.#file.byteLength, byteOffset: this.#cell.byteOffset };
  }

  /** @internal */
  static fromRef(ref: SharedRef, file: SharedFile): Lock {
    return new Lock({ file, byteOffset: ref.byteOffset ?? 0 });
  }
}

registerShared('lock', (ref, file) => Lock.fromRef(ref, file));
