/**
 * numpy's repr for Memmap and NDArray, so that `String(mm)`, template
 * strings and console.log show the numbers:
 *
 *   memmap([0.000e+00, 1.000e+00, 2.000e+00, ..., 9.997e+03, 9.998e+03,
 *           9.999e+03], shape=(10000,), dtype=float64, mode='r', file='/data/x.f64')
 *
 * It follows numpy 2's arrayprint with the default print options: above
 * 1000 elements each axis longer than 6 shows its first and last 3 around
 * '...', lines wrap at 75 columns, elements are padded to one width, floats
 * print the shortest digits that round-trip (at most 8 after the point) and
 * switch to scientific notation as numpy does. Only the elements shown are
 * read, so a huge memmap costs a few page reads.
 */
import { dtypeInfo, numpyStr, type DType } from './dtype.js';
import { NAT, datetimeText } from './datetime-text.js';
import { float16ToNumber, numberToFloat16 } from './float16.js';

/** Node's util.inspect hook, without importing node:util. */
export const inspectCustom: unique symbol = Symbol.for('nodejs.util.inspect.custom');

export interface ReprSource {
  /** 'memmap' or 'ndarray': the function that makes one, as numpy prints 'array(' and 'memmap('. */
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** Reads one element (one index per axis); null when the array cannot be read (a closed memmap). */
  read: ((index: readonly number[]) => Element) | null;
  /** Printed after shape and dtype: `mode='r'`, `file='...'`. */
  extras?: readonly string[];
}

const LINE_WIDTH = 75;
const THRESHOLD = 1000;
const EDGE_ITEMS = 3;
const PRECISION = 8;
const SUMMARY = Symbol('...');

/** A complex element is [re, im]; datetime64/timedelta64 ones are bigints; S/U ones strings. */
type Element = number | bigint | boolean | string | number[];
/** Bits of the float type being printed, for the shortest round-tripping digits. */
type Precision = 16 | 32 | 64;
type Nested = Element | typeof SUMMARY | Nested[];

export function arrayRepr(source: ReprSource): string {
  const prefix = `${source.name}(`;
  const size = source.shape.reduce((a, b) => a * b, 1);
  const shapeText = `shape=(${source.shape.join(', ')}${source.shape.length === 1 ? ',' : ''})`;
  // numpy quotes the dtypes whose name is not a Python identifier: dtype='datetime64[ns]', dtype='<U5'.
  const info = dtypeInfo(source.dtype);
  const quoted = ((info.kind === 'M' || info.kind === 'm') && info.unit !== '') || info.kind === 'S' || info.kind === 'U';
  const dtypeText = !quoted ? source.dtype : info.kind === 'S' || info.kind === 'U' ? `'${numpyStr(source.dtype)}'` : `'${source.dtype}'`;
  const extras = [`dtype=${dtypeText}`, ...(source.extras ?? [])];
  let body: string;
  if (source.read === null) {
    body = '<closed>';
    extras.unshift(shapeText);
  } else {
    const summarize = size > THRESHOLD;
    // numpy names the shape when the brackets cannot show it.
    if (summarize || (size === 0 && !(source.shape.length === 1 && source.shape[0] === 0))) extras.unshift(shapeText);
    if (size === 0) {
      body = '[]';
    } else {
      const shown: Element[] = [];
      const tree = gather(source.shape, source.read, summarize, [], shown);
      const format = formatter(source.dtype, shown, source.shape.length === 0);
      const indent = ' '.repeat(prefix.length + 1);
      body = layout(tree, source.shape.length, format, indent, LINE_WIDTH - 1);
    }
  }
  // As numpy: the extras go on a line of their own when they would make the last line too long.
  const head = `${prefix}${body},`;
  const tail = `${extras.join(', ')})`;
  const lastLine = head.length - (head.lastIndexOf('\n') + 1);
  return head + (lastLine + tail.length + 1 > LINE_WIDTH ? `\n${' '.repeat(prefix.length)}` : ' ') + tail;
}

/** The elements shown, nested by axis, with SUMMARY where numpy prints '...'; `shown` collects them in order. */
function gather(
  shape: readonly number[],
  read: (index: readonly number[]) => Element,
  summarize: boolean,
  index: number[],
  shown: Element[],
): Nested {
  const axis = index.length;
  if (axis === shape.length) {
    const value = read(index);
    shown.push(value);
    return value;
  }
  const n = shape[axis]!;
  const positions: (number | typeof SUMMARY)[] =
    summarize && n > 2 * EDGE_ITEMS
      ? [...range(0, EDGE_ITEMS), SUMMARY, ...range(n - EDGE_ITEMS, n)]
      : range(0, n);
  return positions.map((i) => (i === SUMMARY ? SUMMARY : gather(shape, read, summarize, [...index, i], shown)));
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** numpy's _formatArray: rows wrap at `width`, nested axes are separated by newlines. */
function layout(node: Nested, axesLeft: number, format: (v: Element) => string, hanging: string, width: number): string {
  if (axesLeft === 0) return format(node as Element);
  const items = node as Nested[];
  const nextHanging = `${hanging} `;
  let s = '';
  if (axesLeft === 1) {
    const elementWidth = width - 1; // room for the ',' or ']' after it
    let line = hanging;
    items.forEach((item, i) => {
      const word = item === SUMMARY ? '...' : format(item as Element);
      // Wrap unless the line holds nothing yet (wrapping would not help).
      if (line.length + word.length > elementWidth && line.length > hanging.length) {
        s += `${line.trimEnd()}\n`;
        line = hanging;
      }
      line += word;
      if (i < items.length - 1) line += ', ';
    });
    s += line;
  } else {
    const separator = `,${'\n'.repeat(axesLeft - 1)}`;
    items.forEach((item, i) => {
      s += hanging + (item === SUMMARY ? '...' : layout(item, axesLeft - 1, format, nextHanging, width - 1));
      if (i < items.length - 1) s += separator;
    });
  }
  return `[${s.slice(hanging.length)}]`;
}

/** One element's text, padded so that all the elements shown line up (numpy's Bool/Integer/FloatingFormat). */
function formatter(dtype: DType, shown: readonly Element[], scalar: boolean): (v: Element) => string {
  if (dtype === 'bool') {
    const trueText = scalar ? 'True' : ' True';
    return (v) => (v === true || v === 1 ? trueText : 'False');
  }
  if (dtype === 'float16' || dtype === 'float32' || dtype === 'float64') {
    const format = floatFormatter(shown as number[], dtype === 'float16' ? 16 : dtype === 'float32' ? 32 : 64);
    return (v) => format(v as number);
  }
  const { kind } = dtypeInfo(dtype);
  if (kind === 'c') {
    // numpy's ComplexFloatingFormat: the real parts padded together, then the imaginary parts with their sign and 'j'.
    const precision = dtype === 'complex64' ? 32 : 64;
    const pairs = shown as number[][];
    const real = floatFormatter(pairs.map((p) => p[0]!), precision);
    const imag = floatFormatter(pairs.map((p) => Math.abs(p[1]!)), precision);
    return (v) => {
      const [re, im] = v as number[];
      const sign = im! < 0 || Object.is(im, -0) ? '-' : '+';
      return `${real(re!)}${sign}${imag(Math.abs(im!)).trimStart()}j`;
    };
  }
  if (kind === 'S' || kind === 'U') {
    // numpy does not pad strings to one width.
    return (v) => (kind === 'S' ? `b${quote(v as string)}` : quote(v as string));
  }
  if (kind === 'M' || kind === 'm') {
    // numpy: datetimes as quoted dates, timedeltas as counts of the unit; NaT (-2^63) quoted in both.
    const { unit } = dtypeInfo(dtype);
    const text = (v: Element) => (kind === 'M' ? `'${datetimeText(v as bigint, unit)}'` : v === NAT ? "'NaT'" : String(v));
    const width = Math.max(...shown.map((v) => text(v).length));
    return (v) => text(v).padStart(width);
  }
  const width = Math.max(...shown.map((v) => String(v).length));
  return (v) => String(v).padStart(width);
}

function floatFormatter(values: readonly number[], precision: Precision): (v: number) => string {
  const finite = values.filter(Number.isFinite);
  const magnitudes = finite.filter((v) => v !== 0).map(Math.abs);
  // numpy 2: scientific from 1e8 for float64 and 1e6 for float32, below 1e-4, or when the range spans over 1e3.
  const cutoff = precision < 64 ? 1e6 : 1e8;
  const max = magnitudes.length > 0 ? Math.max(...magnitudes) : 0;
  const min = magnitudes.length > 0 ? Math.min(...magnitudes) : 0;
  const scientific = magnitudes.length > 0 && (max >= cutoff || min < 1e-4 || max / min > 1e3);

  let padLeft = 0;
  let padRight = 0;
  let text: (v: number) => string;
  if (scientific) {
    const parts = finite.map((v) => splitScientific(shortest(v, precision)));
    const digits = Math.max(...parts.map((p) => p.fraction.length));
    const expDigits = Math.max(2, ...parts.map((p) => p.exponent.length));
    padLeft = Math.max(...parts.map((p) => p.integer.length));
    padRight = expDigits + 2 + digits; // 'e+' and the exponent: only used to pad nan and inf
    text = (v) => {
      const p = splitScientific(shortest(v, precision));
      const exponent = `e${p.sign}${p.exponent.padStart(expDigits, '0')}`;
      return `${p.integer.padStart(padLeft)}.${p.fraction.padEnd(digits, '0')}${exponent}`;
    };
  } else {
    const parts = finite.map((v) => splitPositional(v, precision));
    padLeft = parts.length > 0 ? Math.max(...parts.map((p) => p.integer.length)) : 0;
    padRight = parts.length > 0 ? Math.max(...parts.map((p) => p.fraction.length)) : 0;
    text = (v) => {
      const p = splitPositional(v, precision);
      return `${p.integer.padStart(padLeft)}.${p.fraction.padEnd(padRight)}`;
    };
  }
  if (finite.length !== values.length) {
    const negativeInfinity = values.some((v) => v === -Infinity) ? 1 : 0;
    padLeft = Math.max(padLeft, 3 - (padRight + 1), 3 + negativeInfinity - (padRight + 1));
  }
  return (v) => {
    if (Number.isFinite(v)) return text(v);
    const word = Number.isNaN(v) ? 'nan' : v < 0 ? '-inf' : 'inf';
    return word.padStart(padLeft + padRight + 1);
  };
}

/**
 * The shortest decimal that reads back as `v` in its own precision: JS
 * prints doubles that way; a float32 needs the fewest significant digits
 * that round to the same float32.
 */
function shortest(v: number, precision: Precision): number {
  if (precision === 64 || v === 0) return v;
  const round = precision === 32 ? Math.fround : (x: number) => float16ToNumber(numberToFloat16(x));
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (round(candidate) === v) return candidate;
  }
  return Number(v.toPrecision(9));
}

/** '-1.25e-7' -> { integer: '-1', fraction: '25', sign: '-', exponent: '7' }, at most PRECISION fraction digits. */
function splitScientific(v: number): { integer: string; fraction: string; sign: string; exponent: string } {
  let text = v.toExponential();
  if (text.indexOf('e') - text.indexOf('.') - 1 > PRECISION && text.includes('.')) text = v.toExponential(PRECISION);
  const [mantissa = '', power = ''] = text.split('e');
  const [digits = '', fraction = ''] = mantissa.split('.');
  const integer = Object.is(v, -0) ? '-0' : digits;
  return { integer, fraction: fraction.replace(/0+$/, ''), sign: power.startsWith('-') ? '-' : '+', exponent: power.replace(/^[+-]/, '') };
}

/** 0.5 -> { integer: '0', fraction: '5' }; 3 -> { integer: '3', fraction: '' }: at most PRECISION fraction digits. */
function splitPositional(v: number, precision: Precision): { integer: string; fraction: string } {
  const value = shortest(v, precision);
  // Positional notation is only chosen for magnitudes in [1e-4, 1e8), where String() never uses an exponent.
  let text = Object.is(value, -0) ? '-0' : String(value);
  const point = text.indexOf('.');
  if (point >= 0 && text.length - point - 1 > PRECISION) text = value.toFixed(PRECISION);
  const [integer = '', fraction = ''] = text.split('.');
  return { integer, fraction: fraction.replace(/0+$/, '') };
}

/** A string as Python's repr quotes it: in single quotes unless it holds one. */
export function quote(text: string): string {
  if (!text.includes("'")) return `'${text.replace(/\\/g, '\\\\')}'`;
  return JSON.stringify(text);
}
