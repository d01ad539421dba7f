/**
 * reduceSize(): removes least recently used entries first (as joblib >= 1.3)
 * until the cache holds at most `bytesLimit` bytes and `itemsLimit` entries,
 * and every entry older than `ageLimit` (since its last use) is gone.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import { removeEntry } from './store.js';
import { durationMs, type Duration } from './types.js';

export interface ReduceSizeLimits {
  bytesLimit?: number | string;
  itemsLimit?: number;
  /** Milliseconds, or { days, hours, minutes, seconds }. */
  ageLimit?: number | Duration;
}

export interface CacheEntry {
  function: string;
  functionFolder: string;
  key: string;
  path: string;
  size: number;
  createdAt: Date;
  lastUsed: Date;
  /** Seconds the original call took, when its metadata is readable. */
  duration: number | undefined;
}

interface Limits {
  bytes: number;
  items: number;
  ageMs: number;
}

const units: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

function parseBytes(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$/i.exec(value.trim()) : null;
  if (match !== null) return Math.floor(Number(match[1]) * units[match[2]!.toUpperCase()]!);
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "bytesLimit" to be a number of bytes or a size such as '1G', received ${describe(value)}`);
}

export function parseReduceLimits(limits: ReduceSizeLimits, where: string): Limits {
  if (typeof limits !== 'object' || limits === null) {
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected the limits to be an object, received ${describe(limits)}`);
  }
  const items = limits.itemsLimit ?? Infinity;
  if (!(items === Infinity || (Number.isInteger(items) && items >= 0))) {
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "itemsLimit" to be a whole number from 0, received ${describe(items)}`);
  }
  return {
    bytes: limits.bytesLimit === undefined ? Infinity : parseBytes(limits.bytesLimit, where),
    items,
    ageMs: limits.ageLimit === undefined ? Infinity : durationMs(limits.ageLimit, where, 'ageLimit'),
  };
}

export function reduceEntries(entries: CacheEntry[], limits: Limits): { removed: number; bytes: number } {
  const byAge = [...entries].sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  let total = byAge.reduce((n, e) => n + e.size, 0);
  let count = byAge.length;
  let removed = 0;
  let bytes = 0;
  const now = Date.now();
  for (const entry of byAge) {
    const tooOld = now - entry.lastUsed.getTime() > limits.ageMs;
    if (!tooOld && total <= limits.bytes && count <= limits.items) break;
    removeEntry(entry.path);
    total -= entry.size;
    count--;
    removed++;
    bytes += entry.size;
  }
  return { removed, bytes };
}
