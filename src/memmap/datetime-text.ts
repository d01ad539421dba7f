/**
 * A datetime64 element as numpy prints it (numpy.datetime_as_string):
 * '2020-01-01' for days, '2020-01-01T12:30:00.500' for milliseconds, 'NaT'
 * for -2^63. Proleptic Gregorian calendar, UTC, any year (numpy prints
 * '-001' for 2 BC and '25252734927768524' for what D can reach). BigInt
 * throughout, since a count of days or years may pass 2^53.
 */

export const NAT = -(2n ** 63n);

// Units finer than a day: how many make a day, and the digits after the seconds' point.
const subDay: Record<string, { perDay: bigint; fraction: number }> = {
  h: { perDay: 24n, fraction: 0 },
  m: { perDay: 1440n, fraction: 0 },
  s: { perDay: 86_400n, fraction: 0 },
  ms: { perDay: 86_400n * 10n ** 3n, fraction: 3 },
  us: { perDay: 86_400n * 10n ** 6n, fraction: 6 },
  ns: { perDay: 86_400n * 10n ** 9n, fraction: 9 },
  ps: { perDay: 86_400n * 10n ** 12n, fraction: 12 },
  fs: { perDay: 86_400n * 10n ** 15n, fraction: 15 },
  as: { perDay: 86_400n * 10n ** 18n, fraction: 18 },
};

/** `value` counted in `unit` ('D', 'ns', ...; '' is numpy's generic unit, which holds only NaT) since 1970-01-01T00:00. */
export function datetimeText(value: bigint, unit: string): string {
  if (value === NAT) return 'NaT';
  if (unit === 'Y') return yearText(1970n + value);
  if (unit === 'M') return `${yearText(1970n + floorDiv(value, 12n))}-${pad(value - floorDiv(value, 12n) * 12n + 1n, 2)}`;
  if (unit === 'W' || unit === 'D') return dateText(unit === 'W' ? value * 7n : value);
  const part = subDay[unit];
  if (part === undefined) return String(value);
  const days = floorDiv(value, part.perDay);
  const rest = value - days * part.perDay;
  const date = dateText(days);
  if (unit === 'h') return `${date}T${pad(rest, 2)}`;
  if (unit === 'm') return `${date}T${pad(rest / 60n, 2)}:${pad(rest % 60n, 2)}`;
  const perSecond = part.perDay / 86_400n;
  const seconds = rest / perSecond;
  const time = `${pad(seconds / 3600n, 2)}:${pad((seconds / 60n) % 60n, 2)}:${pad(seconds % 60n, 2)}`;
  return `${date}T${time}${part.fraction === 0 ? '' : `.${pad(rest % perSecond, part.fraction)}`}`;
}

/** Days since 1970-01-01 as 'YYYY-MM-DD' (Howard Hinnant's civil_from_days). */
function dateText(days: bigint): string {
  const z = days + 719_468n;
  const era = floorDiv(z, 146_097n);
  const doe = z - era * 146_097n; // day of the 400-year era, [0, 146096]
  const yoe = (doe - doe / 1460n + doe / 36_524n - doe / 146_096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const day = doy - (153n * mp + 2n) / 5n + 1n;
  const month = mp < 10n ? mp + 3n : mp - 9n;
  const year = yoe + era * 400n + (month <= 2n ? 1n : 0n);
  return `${yearText(year)}-${pad(month, 2)}-${pad(day, 2)}`;
}

// numpy pads years to four characters, the sign included: '0042', '-001'.
function yearText(year: bigint): string {
  return year < 0n ? `-${pad(-year, 3)}` : pad(year, 4);
}

function pad(n: bigint, width: number): string {
  return String(n).padStart(width, '0');
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}
