/**
 * A Parallel's dumps kept from one run to the next (joblib reuses the dump
 * of the same array across the calls of a managed Parallel). The rule, as
 * docs/api.md states it: a run reuses a dump when it is given the same array
 * object, over the same bytes of the same buffer, and a sample of those
 * bytes (the first and last 4 KiB and 256 windows of 16 bytes spread
 * between) still equals what was dumped. Anything else is dumped again.
 * Only the dumps of the last successful run are kept, so a Parallel that
 * runs chunk after chunk of a big dataset never holds more than one run's
 * arrays on disk.
 */
import { rmSync } from 'node:fs';
import type { TypedArray } from '../memmap/dtype.js';

const EDGE_BYTES = 4096;
const WINDOWS = 256;
const WINDOW_BYTES = 16;

interface Entry {
  path: string;
  buffer: ArrayBufferLike;
  byteOffset: number;
  byteLength: number;
  sample: Buffer;
}

/** The bytes the cache compares: both edges and evenly spread windows. */
function sampleOf(data: TypedArray): Buffer {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length <= 2 * EDGE_BYTES + WINDOWS * WINDOW_BYTES) return Buffer.from(bytes);
  const parts = [bytes.subarray(0, EDGE_BYTES), bytes.subarray(bytes.length - EDGE_BYTES)];
  const step = Math.floor((bytes.length - WINDOW_BYTES) / WINDOWS);
  for (let i = 0; i < WINDOWS; i++) parts.push(bytes.subarray(i * step, i * step + WINDOW_BYTES));
  return Buffer.concat(parts);
}

export class DumpCache {
  /** Dumps the last successful run used (or made), by array. */
  #kept = new Map<object, Entry>();
  /** Dumps the run in progress used or made. */
  #current = new Map<object, Entry>();
  #files = 0;

  /** A number for the next dump's file name, unique for the cache's life (kept files must not be overwritten). */
  nextId(): number {
    return this.#files++;
  }

  /** The path of a kept dump of `value` that still matches it, or undefined. */
  lookup(value: object, data: TypedArray): string | undefined {
    const entry = this.#current.get(value) ?? this.#kept.get(value);
    if (entry === undefined) return undefined;
    const same =
      entry.buffer === data.buffer && entry.byteOffset === data.byteOffset && entry.byteLength === data.byteLength && entry.sample.equals(sampleOf(data));
    if (!same) return undefined;
    this.#current.set(value, entry);
    return entry.path;
  }

  record(value: object, data: TypedArray, path: string): void {
    const entry = { path, buffer: data.buffer, byteOffset: data.byteOffset, byteLength: data.byteLength, sample: sampleOf(data) };
    this.#current.set(value, entry);
  }

  /**
   * After a successful run: keeps what it used; the dumps of earlier runs it
   * did not use are removed (their arrays may never come back).
   */
  endRun(): void {
    const used = new Set([...this.#current.values()].map((entry) => entry.path));
    for (const entry of this.#kept.values()) if (!used.has(entry.path)) rmSync(entry.path, { force: true });
    this.#kept = this.#current;
    this.#current = new Map();
  }

  /** The files of the dumps kept for the next run. */
  keptPaths(): string[] {
    return [...this.#kept.values()].map((entry) => entry.path);
  }

  /** Forgets everything (the files go with their folder). */
  clear(): void {
    this.#kept.clear();
    this.#current.clear();
  }
}
