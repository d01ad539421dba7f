// Files written by earlier format versions must keep loading. Each folder
// under fixtures/dump/ is one version, frozen when it was released.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NDArray, load, loadSync } from '../src/index.js';

const v1 = (name: string) => fileURLToPath(new URL(`./fixtures/dump/v1.0/${name}`, import.meta.url));

function expectV1Value(value: unknown): void {
  const v = value as Record<string, unknown>;
  expect(v.name).toBe('format 1.0');
  expect(v.counts).toEqual([1, -0, 2.5, 2 ** 60, null, undefined, true]);
  expect(Object.is((v.counts as number[])[1], -0)).toBe(true);
  expect(v.big).toBe(-(2n ** 70n));
  expect(v.when).toEqual(new Date(Date.UTC(2026, 10, 23, 12)));
  expect(v.tags).toEqual(new Set(['a', 'b']));
  expect(v.lookup).toEqual(new Map<unknown, unknown>([[1, 'one'], ['two', [2]]]));
  expect(v.f64).toEqual(Float64Array.from({ length: 100 }, (_, i) => i / 4));
  expect(v.u16).toEqual(Uint16Array.from({ length: 33 }, (_, i) => i * 1000));
  expect(v.i64).toEqual(BigInt64Array.from([-1n, 2n ** 62n]));
  expect(Buffer.isBuffer(v.bytes) && (v.bytes as Buffer).toString()).toBe('memjob');
  const grid = v.grid as NDArray<'float32'>;
  expect(grid).toBeInstanceOf(NDArray);
  expect([grid.shape, grid.order, grid.get(2, 3)]).toEqual([[3, 4], 'F', 11]);
}

describe('format version 1.0 files still load', () => {
  it('plain, in memory and mapped', async () => {
    expectV1Value(loadSync(v1('values.mjdump')));
    expectV1Value(await load(v1('values.mjdump'), { mmapMode: 'r' }));
  });

  it('gzip and brotli compressed', async () => {
    expectV1Value(loadSync(v1('values.mjdump.gz')));
    expectV1Value(await load(v1('values-brotli.mjdump')));
  });
});
