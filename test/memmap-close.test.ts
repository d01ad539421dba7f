import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { memmap } from '../src/index.js';
import { runTsChild, scratchDir } from './helpers.js';

const scratch = scratchDir('close');
afterAll(() => scratch.remove());

function file(name: string): string {
  const path = scratch.file(name);
  writeFileSync(path, new Float64Array([1, 2, 3, 4, 5, 6, 7, 8]));
  return path;
}

describe('close()', () => {
  it('detaches every old view: they read as empty, never crash', () => {
    const mm = memmap(file('detach.bin'), { dtype: 'float64' });
    const data = mm.data;
    const slice = mm.slice(2, 4);
    const sliceData = slice.data;
    const bytes = new Uint8Array(data.buffer);
    mm.close();
    expect(mm.closed).toBe(true);
    expect(slice.closed).toBe(true);
    for (const view of [data, sliceData, bytes]) {
      expect(view.length).toBe(0);
      expect(view[0]).toBeUndefined();
    }
    expect(data.buffer.byteLength).toBe(0);
    // Writing into a detached view is a no-op in JavaScript, not a crash.
    data[0] = 1;
    expect(data[0]).toBeUndefined();
  });

  it('is idempotent, and later use gets MEMJOB_ERR_CLOSED', () => {
    const mm = memmap(file('twice.bin'), { dtype: 'float64' });
    const slice = mm.slice(1);
    slice.close(); // closing any view closes the shared mapping
    mm.close();
    for (const use of [() => mm.data, () => slice.data, () => mm.flush(), () => mm.get(0), () => mm.slice(1), () => mm.toArray()]) {
      expect(use).toThrow(expect.objectContaining({ name: 'MemjobError', code: 'MEMJOB_ERR_CLOSED' }));
    }
  });

  it('runs at the end of a `using` block', () => {
    let kept: Float64Array;
    {
      using mm = memmap(file('using.bin'), { dtype: 'float64', mode: 'r' });
      kept = mm.data;
      expect(kept[0]).toBe(1);
    }
    expect(kept.length).toBe(0);
  });

  it('a finalizer unmaps memmaps that were never closed (counted in /proc/self/maps)', async () => {
    const path = file('forgotten.bin');
    const result = await runTsChild('forget-memmaps.ts', [path], ['--expose-gc']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const counts = JSON.parse(result.stdout) as { whileOpen: number; afterGc: number };
    expect(counts.whileOpen).toBe(200);
    expect(counts.afterGc).toBe(0);
  });
});
