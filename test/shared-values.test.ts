// Value and SharedArray refuse what their dtype cannot hold instead of
// coercing it (an int32 would store 1.5 as 1 and 2 ** 40 as 0), in the
// parent and in a worker alike.
import { afterEach, describe, expect, it } from 'vitest';
import { MemjobError, Pool, SharedArray, Value, type DType } from '../src/index.js';
import { failure } from './helpers.js';

const opened: { close(): void }[] = [];
afterEach(() => {
  for (const x of opened.splice(0)) x.close();
});
function value<D extends DType>(dtype: D, initial?: number | bigint | boolean): Value<D> {
  const v = new Value<D>(dtype, initial as never);
  opened.push(v);
  return v;
}

const ranges: [DType, string, string][] = [
  ['int8', '-128', '127'],
  ['uint8', '0', '255'],
  ['int16', '-32768', '32767'],
  ['uint16', '0', '65535'],
  ['int32', '-2147483648', '2147483647'],
  ['uint32', '0', '4294967295'],
];

describe('integer dtypes refuse fractions and values out of range', () => {
  it('int32: 1.5 and 2 ** 40 are refused with the dtype, the range and the value; the stored value is unchanged', () => {
    const v = value('int32', 7);
    const fraction = failure(() => (v.value = 1.5));
    expect(fraction.code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(fraction.message).toBe('Value.set: expected "value" to be an integer from -2147483648 to 2147483647 (int32), received 1.5 (number)');
    expect(failure(() => v.set(2 ** 40)).message).toBe(
      'Value.set: expected "value" to be an integer from -2147483648 to 2147483647 (int32), received 1099511627776 (number)',
    );
    expect(v.value).toBe(7);
    for (const bad of [NaN, Infinity, -0.5, 2 ** 31, -(2 ** 31) - 1, '3', 3n, true]) {
      expect(failure(() => v.set(bad as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    }
    expect(v.value).toBe(7);
  });

  it('every 8-, 16- and 32-bit dtype takes exactly its range', () => {
    for (const [dtype, min, max] of ranges) {
      const v = value(dtype);
      v.value = Number(min);
      expect(v.value).toBe(Number(min));
      v.value = Number(max);
      expect(v.value).toBe(Number(max));
      for (const outside of [Number(min) - 1, Number(max) + 1]) {
        expect(failure(() => (v.value = outside)).message).toBe(
          `Value.set: expected "value" to be an integer from ${min} to ${max} (${dtype}), received ${outside} (number)`,
        );
      }
      expect(v.value).toBe(Number(max));
    }
  });

  it('the initial value is checked the same way', () => {
    expect(failure(() => new Value('uint8', 256)).message).toBe(
      'Value: expected "initial" to be an integer from 0 to 255 (uint8), received 256 (number)',
    );
    expect(failure(() => new Value('i', 0.25)).code).toBe('MEMJOB_ERR_INVALID_ARG');
  });

  it('int64 and uint64 take bigints (and safe integers) in range', () => {
    const big = value('int64', 2n ** 63n - 1n);
    expect(big.value).toBe(2n ** 63n - 1n);
    big.value = -(2n ** 63n);
    expect(big.value).toBe(-(2n ** 63n));
    big.value = -5 as never; // a safe integer is taken too, at run time, though the type says bigint
    expect(big.value).toBe(-5n);
    expect(failure(() => (big.value = 2n ** 63n)).message).toBe(
      'Value.set: expected "value" to be a bigint (or a safe integer) from -9223372036854775808 to 9223372036854775807 (int64), ' +
        'received 9223372036854775808 (bigint)',
    );
    expect(failure(() => (big.value = 2 ** 60 as never)).code).toBe('MEMJOB_ERR_INVALID_ARG'); // not a safe integer
    const unsigned = value('uint64', 2n ** 64n - 1n);
    expect(unsigned.value).toBe(2n ** 64n - 1n);
    expect(failure(() => (unsigned.value = -1n)).message).toBe(
      'Value.set: expected "value" to be a bigint (or a safe integer) from 0 to 18446744073709551615 (uint64), received -1 (bigint)',
    );
  });

  it('floats take any number; bool takes booleans', () => {
    const f = value('float64');
    for (const x of [1.5, -0.1, 2 ** 80, Infinity, NaN]) {
      f.value = x;
      expect(f.value).toBe(x);
    }
    const single = value('float32');
    single.value = 0.1;
    expect(single.value).toBe(Math.fround(0.1)); // rounded to the nearest float32, as numpy's float32 is
    expect(failure(() => (f.value = 1n as never)).message).toBe('Value.set: expected "value" to be a number (float64), received 1 (bigint)');
    const flag = value('bool', false);
    flag.value = true;
    expect(flag.value).toBe(true);
    expect(failure(() => (flag.value = 1 as never)).message).toBe('Value.set: expected "value" to be a boolean (bool), received 1 (number)');
  });

  it('add(): the delta is checked (a negative delta decrements an unsigned counter); the sum wraps as the CPU does', () => {
    const counter = value('uint32', 5);
    expect(counter.add(-1)).toBe(4);
    expect(failure(() => counter.add(0.5)).message).toBe(
      'Value.add: expected "delta" to be an integer from -4294967295 to 4294967295 (uint32), received 0.5 (number)',
    );
    expect(counter.value).toBe(4);
    const wrapping = value('int8', 127);
    expect(wrapping.add(1)).toBe(-128);
  });
});

describe('SharedArray', () => {
  it('set() and the initial values refuse what the dtype cannot hold; .data is a raw TypedArray that is not guarded', () => {
    const a = new SharedArray('int16', [1, 2, 3]);
    opened.push(a);
    expect(failure(() => a.set(0, 40_000)).message).toBe(
      'SharedArray.set: expected "value" to be an integer from -32768 to 32767 (int16), received 40000 (number)',
    );
    expect(failure(() => a.set(1, 2.5)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect([...a]).toEqual([1, 2, 3]);
    expect(failure(() => new SharedArray('uint8', [1, 2, -3])).message).toBe(
      'SharedArray: expected "sizeOrValues[2]" to be an integer from 0 to 255 (uint8), received -3 (number)',
    );
    a.data[0] = 40_000; // the TypedArray itself wraps, as every Int16Array does
    expect(a.get(0)).toBe(40_000 - 65_536);
  });
});

describe('in a worker', () => {
  it('a task that stores an out-of-range value gets the same MemjobError', async () => {
    const v = value('int32', 1);
    await using pool = new Pool({ processes: 1 });
    const error = await pool.apply((target: Value<'int32'>) => target.set(2 ** 40), [v]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemjobError);
    expect((error as MemjobError).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect((error as MemjobError).message).toContain('from -2147483648 to 2147483647 (int32), received 1099511627776 (number)');
    expect(v.value).toBe(1);
    await pool.apply((target: Value<'int32'>) => target.set(-3), [v]);
    expect(v.value).toBe(-3);
  });
});
