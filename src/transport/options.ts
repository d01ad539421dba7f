/**
 * The transport options every class takes (Parallel, Pool, Process, Queue):
 * one default and one parser each, so that `maxNbytes: '1M'` means the same
 * everywhere and a bad value is refused by every class in the same words.
 */
import { invalidArg } from '../errors.js';

/** Arrays larger than this travel as memory-mapped dumps (joblib's max_nbytes='1M'). */
export const DEFAULT_MAX_NBYTES = 1024 * 1024;

const units: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** A byte count: a number >= 0, or a string such as '1M' (K, M, G; base 1024), or null when `allowNull`. */
export function parseBytes(where: string, name: string, value: unknown, allowNull = true): number | null {
  if (value === null && allowNull) return null;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$/i.exec(value);
    if (match) return Math.floor(Number(match[1]) * units[match[2]!.toUpperCase()]!);
  }
  const expected = `a byte count, a string such as '1M' (K, M, G; base 1024)${allowNull ? ', or null' : ''}`;
  throw invalidArg(where, name, expected, value);
}

/** `maxNbytes`: undefined gives the default; null (where allowed) sends arrays by copy. */
export function parseMaxNbytes(where: string, value: unknown, allowNull = true): number | null {
  return value === undefined ? DEFAULT_MAX_NBYTES : parseBytes(where, 'maxNbytes', value, allowNull);
}

/** `tempFolder`: a non-empty path, or undefined to choose as joblib does (transport/temp-root.ts). */
export function parseTempFolder(where: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw invalidArg(where, 'tempFolder', 'a folder path', value);
  return value;
}
