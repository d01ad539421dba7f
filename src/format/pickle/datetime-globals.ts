/**
 * Python's datetime basics, as pickle writes them (datetime.__reduce__): a
 * datetime or date is a JS Date (a naive datetime read as UTC, an aware one
 * moved to UTC by its offset; microseconds below the millisecond are lost),
 * a timedelta `{ kind: 'timedelta', days, seconds, microseconds }`, a time
 * `{ kind: 'time', hour, minute, second, microsecond }`. Nothing else of the
 * datetime module is allowed.
 */
import { asBytes, format } from './numpy-dtype.js';
import type { PickleGlobal } from './globals.js';

interface Timezone {
  kind: 'timezone';
  offsetSeconds: number;
}

export interface Timedelta {
  kind: 'timedelta';
  days: number;
  seconds: number;
  microseconds: number;
}

function isTimedelta(v: unknown): v is Timedelta {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'timedelta';
}

function offsetOf(tz: unknown): number {
  if (tz === undefined || tz === null) return 0;
  if (typeof tz === 'object' && (tz as { kind?: unknown }).kind === 'timezone') return (tz as Timezone).offsetSeconds;
  throw format('no tzinfo or a datetime.timezone', tz);
}

function state(v: unknown, length: number, what: string): Uint8Array {
  const bytes = asBytes(v, `the state of a ${what}`);
  if (bytes.length !== length) throw format(`${length} bytes of ${what} state`, `${bytes.length} bytes`);
  return bytes;
}

function checkedDate(ms: number, what: string): Date {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) throw format(`a valid ${what}`, ms);
  return date;
}

const wholeNumber = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw format(`a whole number of ${what}`, v);
  return v;
};

export const datetimeGlobals: Record<string, PickleGlobal> = {
  'datetime.datetime': {
    call(args) {
      const b = state(args[0], 10, 'datetime');
      // year (2 bytes, big-endian), month (its top bit is PEP 495's fold), day, hour, minute, second, microsecond (3 bytes)
      const ms = Date.UTC((b[0]! << 8) | b[1]!, (b[2]! & 0x7f) - 1, b[3]!, b[4]!, b[5]!, b[6]!, Math.floor(((b[7]! << 16) | (b[8]! << 8) | b[9]!) / 1000));
      return checkedDate(ms - offsetOf(args[1]) * 1000, 'datetime');
    },
  },
  'datetime.date': {
    call(args) {
      const b = state(args[0], 4, 'date');
      return checkedDate(Date.UTC((b[0]! << 8) | b[1]!, b[2]! - 1, b[3]!), 'date');
    },
  },
  'datetime.time': {
    call(args) {
      const b = state(args[0], 6, 'time');
      if (args[1] !== undefined && args[1] !== null) throw format('a time without tzinfo', args[1]);
      return { kind: 'time', hour: b[0]!, minute: b[1]!, second: b[2]!, microsecond: (b[3]! << 16) | (b[4]! << 8) | b[5]! };
    },
  },
  'datetime.timedelta': {
    call(args): Timedelta {
      return { kind: 'timedelta', days: wholeNumber(args[0] ?? 0, 'days'), seconds: wholeNumber(args[1] ?? 0, 'seconds'), microseconds: wholeNumber(args[2] ?? 0, 'microseconds') };
    },
  },
  'datetime.timezone': {
    call(args): Timezone {
      const delta = args[0];
      if (!isTimedelta(delta)) throw format('a timedelta for datetime.timezone', delta);
      return { kind: 'timezone', offsetSeconds: delta.days * 86_400 + delta.seconds };
    },
  },
};
