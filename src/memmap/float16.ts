/**
 * IEEE 754 half precision (numpy's float16) to and from JS numbers. A
 * float16 array's data is always a Uint16Array of the raw bits, also on
 * runtimes that have Float16Array, so code and types do not change with the
 * Node version; where the runtime has DataView.getFloat16/setFloat16 they do
 * the conversion.
 */

interface Float16DataView {
  getFloat16(byteOffset: number, littleEndian?: boolean): number;
  setFloat16(byteOffset: number, value: number, littleEndian?: boolean): void;
}

const scratch = new DataView(new ArrayBuffer(2));
const native = typeof (scratch as unknown as Partial<Float16DataView>).getFloat16 === 'function' ? (scratch as unknown as Float16DataView) : undefined;

/** The number a float16 bit pattern (0 to 0xffff) stands for: subnormals, ±0, ±Infinity and NaN included. */
export function float16ToNumber(bits: number): number {
  if (native !== undefined) {
    scratch.setUint16(0, bits);
    return native.getFloat16(0);
  }
  return float16ToNumberPortable(bits);
}

/** The float16 bits nearest to `x`, ties to even, as numpy's float64 -> float16 cast; beyond ±65504 rounds to ±Infinity; NaN is 0x7e00. */
export function numberToFloat16(x: number): number {
  if (native !== undefined) {
    native.setFloat16(0, x);
    return scratch.getUint16(0);
  }
  return numberToFloat16Portable(x);
}

/** @internal Exported so the tests check it on runtimes with a native float16 too. */
export function float16ToNumberPortable(bits: number): number {
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  const sign = bits & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** @internal */
export function numberToFloat16Portable(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65504 is the largest float16; halfway to the next power (65520) and beyond round to Infinity.
  if (a >= 65520) return sign | 0x7c00;
  // Subnormals count units of 2^-24; a result of 1024 is the smallest normal, whose bits are the same number.
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);
  let exponent = Math.floor(Math.log2(a));
  // log2 can be off by one next to powers of two.
  if (2 ** exponent > a) exponent--;
  else if (2 ** (exponent + 1) <= a) exponent++;
  // Scaling by a power of two is exact, so this is the one rounding step. 11 bits: [1024, 2048]; 2048 carries into the exponent.
  const significand = roundHalfEven(a * 2 ** (10 - exponent));
  return sign | (((exponent + 15) << 10) + significand - 1024);
}

function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const rest = v - floor;
  return rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
}
