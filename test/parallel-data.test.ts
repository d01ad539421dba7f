// Passing data: large arrays go to workers as memory-mapped references
// (dumped once per run), Memmap arguments are written in place, views and
// NDArrays keep their layout, and large results come back intact.
import { mkdirSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Memmap, NDArray, Parallel, delayed, hasShareableMemory, memmap } from '../src/index.js';
import { SharedParallels, childPids, entries, t, workerBackends } from './fixtures/parallel-helpers.js';
import { scratchDir } from './helpers.js';

let scratch: ReturnType<typeof scratchDir>;
let root: string; // the tempFolder of every run here: must be empty after each
beforeAll(() => {
  scratch = scratchDir('parallel-data');
  root = scratch.file('temp-root');
  mkdirSync(root);
});
// One warm Parallel per backend with the default options serves most tests.
const shared = new SharedParallels();
const warm = (backend: 'threads' | 'processes') => shared.get(backend, { batchSize: 1, tempFolder: root });
afterAll(async () => {
  await shared.close();
  expect(childPids()).toEqual([]);
  scratch.remove();
});
afterEach(async () => {
  await shared.settle();
  expect(entries(root)).toEqual([]);
});

describe.each(workerBackends)('%s', (backend) => {
  it("the seed's case: [1e2, 1e4, 1e6] float64 arrays with maxNbytes 1e6 give [false, false, true]; null gives all false", async () => {
    const arrays = [1e2, 1e4, 1e6].map((n) => new Float64Array(n).fill(1));
    await using p = new Parallel({ backend, nJobs: 2, maxNbytes: 1e6, tempFolder: root });
    expect(await p.run(arrays.map((a) => delayed(hasShareableMemory)(a)))).toEqual([false, false, true]);
    expect(await p.run(arrays.map((a) => delayed(t('sum'))(a)))).toEqual([1e2, 1e4, 1e6]);

    await using q = new Parallel({ backend, nJobs: 2, maxNbytes: null, tempFolder: root });
    expect(await q.run(arrays.map((a) => delayed(hasShareableMemory)(a)))).toEqual([false, false, false]);
    // ... except for a Memmap, which always travels as a reference to its file.
    const m = memmap(scratch.file(`null-${backend}.f64`), { mode: 'w+', dtype: 'float64', shape: 4 });
    expect(await q.run([delayed(hasShareableMemory)(m), delayed(t('writeAt'))(m, [1], 5)])).toEqual([true, 'Memmap']);
    expect(m.get(1)).toBe(5);
    m.close();
    // The default threshold is '1M' (1 MiB): 8e6 bytes are above it.
    expect(await warm(backend).run(arrays.map((a) => delayed(hasShareableMemory)(a)))).toEqual([false, false, true]);
  });

  it('an array given to 10 tasks is dumped once; two arrays twice; the folder goes at the end', async () => {
    const big = new Float64Array(300_000).fill(2); // 2.4 MB
    const other = new Float32Array(400_000).fill(3); // 1.6 MB
    const p = warm(backend);
    const listings = await p.run(Array.from({ length: 10 }, () => delayed(t('listRunFolders'))(root, big)));
    for (const listing of listings) {
      const folders = Object.values(listing as Record<string, string[]>);
      expect(folders).toHaveLength(1);
      expect(folders[0]!.filter((name) => name.includes('arg-'))).toHaveLength(1);
    }
    const both = await p.run(Array.from({ length: 6 }, (_, i) => delayed(t('listRunFolders'))(root, i % 2 ? big : other, big)));
    for (const listing of both) {
      expect(Object.values(listing as Record<string, string[]>)[0]!.filter((name) => name.includes('arg-'))).toHaveLength(2);
    }
    expect(await p.run([delayed(t('sum'))(big), delayed(t('sum'))(other)])).toEqual([600_000, 1_200_000]);
  });

  for (const mode of ['r+', 'w+'] as const) {
    it(`a Memmap opened '${mode}' in the parent is written in place by the workers`, async () => {
      const path = scratch.file(`inplace-${backend}-${mode}.f64`);
      if (mode === 'r+') memmap(path, { mode: 'w+', dtype: 'float64', shape: 100 }).close();
      const m = memmap(path, { mode, dtype: 'float64', shape: 100 });
      const p = warm(backend);
      const received = await p.run(Array.from({ length: 10 }, (_, i) => delayed(t('writeAt'))(m, [i * 10, i * 10 + 9], i + 1)));
      expect(received).toEqual(Array(10).fill('Memmap'));
      for (let i = 0; i < 10; i++) {
        expect(m.get(i * 10)).toBe(i + 1);
        expect(m.get(i * 10 + 9)).toBe(i + 1);
        expect(m.get(i * 10 + 5)).toBe(0);
      }
      const onDisk = new Float64Array(Uint8Array.from(readFileSync(path)).buffer);
      expect(onDisk[90]).toBe(10);
      m.close();
    });
  }

  it("with mmapMode 'r' a worker's write to a dumped array neither crashes nor reaches the file; 'r+' writes it", async () => {
    const big = new Float64Array(200_000); // 1.6 MB: dumped
    const reader = new Parallel({ backend, nJobs: 2, tempFolder: root });
    const [r] = await reader.run([delayed(t('writeAndReadBack'))(big, root)]);
    expect(r).toEqual({ received: 'Float64Array', shareable: true, seenByTask: 42, inFile: 0 });
    expect(big[0]).toBe(0); // nor the caller's array
    await reader.close(); // its dump cache goes: the task below finds only the 'r+' run's dump

    await using w = new Parallel({ backend, nJobs: 2, tempFolder: root, mmapMode: 'r+' });
    const [rw] = await w.run([delayed(t('writeAndReadBack'))(big, root)]);
    expect(rw).toEqual({ received: 'Float64Array', shareable: true, seenByTask: 42, inFile: 42 });
    expect(big[0]).toBe(0); // the dump is a copy: the caller's array is never written
  });

  it('a strided Memmap slice arrives as the same view; an NDArray keeps dtype, shape and order', async () => {
    const path = scratch.file(`strided-${backend}.f64`);
    const m = memmap(path, { mode: 'w+', dtype: 'float64', shape: [10, 4] });
    for (let i = 0; i < 40; i++) m.set([Math.floor(i / 4), i % 4], i);
    const view = m.slice(1, 9, 3); // rows 1, 4, 7
    const p = warm(backend);
    const [seen] = await p.run([delayed(t('describeArg'))(view)]);
    expect(seen).toEqual({ kind: 'Memmap', shape: [3, 4], strides: [96, 8], values: Array.from(view.toArray() as Float64Array), shareable: true });

    const large = new NDArray(new Float64Array(200 * 1000).map((_, i) => i), { shape: [200, 1000], order: 'F' });
    const small = new NDArray(new Int32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    const [l, s] = await p.run([delayed(t('describeArg'))(large), delayed(t('describeArg'))(small)]);
    expect(l).toEqual({ kind: 'NDArray', dtype: 'float64', shape: [200, 1000], order: 'F', first: 0, last: 199_999, shareable: true });
    expect(s).toEqual({ kind: 'NDArray', dtype: 'int32', shape: [2, 3], order: 'C', first: 1, last: 6, shareable: false });
    m.close();
  });

  it('large typed-array and NDArray results come back intact, and leave no file behind', async () => {
    const p = warm(backend);
    const [flat, nd, small] = await p.run([delayed(t('makeArray'))(500_000), delayed(t('makeArray'))(300_000, 300), delayed(t('makeArray'))(10)]);
    expect(flat).toBeInstanceOf(Float64Array);
    expect((flat as Float64Array).length).toBe(500_000);
    expect((flat as Float64Array)[499_999]).toBe(499_999);
    expect(hasShareableMemory(flat)).toBe(false); // an ordinary array: no file behind it
    expect(nd).toBeInstanceOf(NDArray);
    expect((nd as NDArray).shape).toEqual([300, 1000]);
    expect((nd as NDArray<'float64'>).data[123_456]).toBe(123_456);
    expect(Array.from(small as Float64Array)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('a Memmap returned by a task comes back as a view of the same file', async () => {
    const path = scratch.file(`returned-${backend}.f64`);
    const m = memmap(path, { mode: 'w+', dtype: 'float64', shape: 8 });
    const p = warm(backend);
    const [back] = await p.run([delayed(t('writeAndReturn'))(m, 3, 7)]);
    expect(back).toBeInstanceOf(Memmap);
    expect((back as Memmap).filename).toBe(m.filename);
    expect((back as Memmap<'float64'>).get(3)).toBe(7);
    (back as Memmap).close();
    m.close();
  });
});

it('sequential runs see the arrays themselves (nothing is dumped)', async () => {
  const big = new Float64Array(1e6);
  await using p = new Parallel({ backend: 'sequential', maxNbytes: 1e6, tempFolder: root });
  expect(await p.run([delayed((a: Float64Array, b: Float64Array) => a === b)(big, big)])).toEqual([true]);
});
