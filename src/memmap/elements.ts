/**
 * One element in and out of a TypedArray, for the dtypes whose element is
 * not simply one slot: bool (0/1 as false/true), float16 (bits), complex
 * ([re, im] over two slots) and the fixed-width strings (a byte or a code
 * point per slot, padded with NULs). NDArray and Memmap both read and write
 * through here.
 */
import { ErrorCodes, MemjobError, describe, invalidArg } from '../errors.js';
import type { DTypeInfo, TypedArray } from './dtype.js';
import { float16ToNumber, numberToFloat16 } from './float16.js';

type Slots = { [index: number]: number | bigint; length: number };

/** The element whose first slot is `slot`. */
export function readElement(info: DTypeInfo, array: TypedArray, slot: number): unknown {
  const slots = array as unknown as Slots;
  switch (info.kind) {
    case 'b':
      return slots[slot] !== 0;
    case 'c':
      return [slots[slot], slots[slot + 1]];
    case 'S':
    case 'U':
      return decodeString(info, array, slot);
    default:
      return info.name === 'float16' ? float16ToNumber(slots[slot] as number) : slots[slot];
  }
}

/**
 * Stores `value` at `slot`. Old dtypes keep the TypedArray's own coercion
 * (as before); the new ones check their value's type, since a wrong one
 * would otherwise be silently mangled.
 */
export function writeElement(info: DTypeInfo, array: TypedArray, slot: number, value: unknown, where: string): void {
  const slots = array as unknown as Slots;
  switch (info.kind) {
    case 'b':
      slots[slot] = typeof value === 'boolean' ? Number(value) : (value as number);
      return;
    case 'c': {
      const pair = value as readonly unknown[];
      if (!Array.isArray(value) || pair.length !== 2 || typeof pair[0] !== 'number' || typeof pair[1] !== 'number') {
        throw invalidArg(where, 'value', `[re, im], two numbers (${info.name})`, value);
      }
      slots[slot] = pair[0];
      slots[slot + 1] = pair[1];
      return;
    }
    case 'S':
    case 'U':
      encodeString(info, array, slot, value, where);
      return;
    case 'M':
    case 'm':
      if (typeof value !== 'bigint') throw invalidArg(where, 'value', `a bigint count of units (${info.name})`, value);
      slots[slot] = value;
      return;
    default:
      if (info.name === 'float16') {
        if (typeof value !== 'number') throw invalidArg(where, 'value', 'a number (float16)', value);
        slots[slot] = numberToFloat16(value);
        return;
      }
      slots[slot] = value as number | bigint;
  }
}

/** An S element as latin-1 (one char per byte, so any bytes read back unchanged), a U element from its code points; trailing NULs stripped as numpy does. */
function decodeString(info: DTypeInfo, array: TypedArray, slot: number): string {
  const slots = array as unknown as Slots;
  let end = slot + info.lanes;
  while (end > slot && slots[end - 1] === 0) end--;
  let out = '';
  for (let i = slot; i < end; i++) {
    const code = slots[i] as number;
    // A code point past U+10FFFF (only a corrupt or hostile file has one) reads as U+FFFD rather than throwing.
    out += info.kind === 'S' ? String.fromCharCode(code) : String.fromCodePoint(code <= 0x10ffff ? code : 0xfffd);
  }
  return out;
}

function encodeString(info: DTypeInfo, array: TypedArray, slot: number, value: unknown, where: string): void {
  if (typeof value !== 'string') throw invalidArg(where, 'value', `a string (${info.name})`, value);
  const codes: number[] = [];
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (info.kind === 'S' && code > 0xff) {
      throw new MemjobError(
        ErrorCodes.DTYPE,
        `${where}: expected a string of characters U+0000 to U+00FF (one byte each) for dtype '${info.name}', received ${describe(value)} with ${JSON.stringify(char)}`,
      );
    }
    codes.push(code);
  }
  if (codes.length > info.lanes) {
    const unit = info.kind === 'S' ? 'bytes' : 'characters';
    throw new MemjobError(
      ErrorCodes.OUT_OF_RANGE,
      `${where}: expected at most ${info.lanes} ${unit} for dtype '${info.name}', received ${codes.length}: ${describe(value)}`,
    );
  }
  const slots = array as unknown as Slots;
  for (let i = 0; i < info.lanes; i++) slots[slot + i] = codes[i] ?? 0;
}

/** Every element of a C-order string array, as numpy's tolist() gives them (flattened). */
export function decodeStrings(info: DTypeInfo, array: TypedArray): string[] {
  const count = array.length / info.lanes;
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) out[i] = decodeString(info, array, i * info.lanes);
  return out;
}

/** The width numpy gives an array of these strings: the longest, in code points (at least 1). */
export function widthOf(values: readonly string[]): number {
  let width = 1;
  for (const value of values) {
    let n = 0;
    for (const _ of value) n++;
    width = Math.max(width, n);
  }
  return width;
}
