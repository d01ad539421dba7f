import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { memmap, type MemmapOptions } from '../src/index.js';
import { failure, scratchDir } from './helpers.js';

const scratch = scratchDir('errors');
afterAll(() => scratch.remove());

const path = scratch.file('data.bin');
writeFileSync(path, new Float64Array([1, 2, 3, 4])); // 32 bytes

describe('bad input gets a MemjobError with a stable code', () => {
  it('a missing file keeps ENOENT, the syscall and the path', () => {
    const missing = scratch.file('nope.bin');
    const error = failure(() => memmap(missing, { mode: 'r' }));
    expect(error.code).toBe('ENOENT');
    expect(error.syscall).toBe('open');
    expect(error.path).toBe(missing);
    expect(error.message).toContain(missing);
  });

  it('a directory gives EISDIR in every mode', () => {
    for (const mode of ['r', 'r+', 'c'] as const) {
      expect(failure(() => memmap(scratch.dir, { mode })).code).toBe('EISDIR');
    }
  });

  it('an unknown dtype names the known ones and what was received', () => {
    const error = failure(() => memmap(path, { dtype: 'float128' as never }));
    expect(error.code).toBe('MEMJOB_ERR_DTYPE');
    expect(error.message).toContain('float64');
    expect(error.message).toContain('datetime64[unit]');
    expect(error.message).toContain('"float128"');
    expect(error.message.length).toBeLessThan(300);
  });

  it('numpy spellings of known dtypes are accepted', () => {
    const mm = memmap(path, { dtype: '<f8' as never, mode: 'r' });
    expect(mm.dtype).toBe('float64');
    mm.close();
  });

  it('a shape that needs more bytes than the file holds', () => {
    const error = failure(() => memmap(path, { dtype: 'float64', shape: [5] }));
    expect(error.code).toBe('MEMJOB_ERR_SHAPE');
    expect(error.message).toMatch(/needs 40 bytes.*holds 32 bytes/);
    expect(failure(() => memmap(path, { dtype: 'float64', shape: [2], offset: 24 })).code).toBe('MEMJOB_ERR_SHAPE');
  });

  it('a file that is not a whole number of items, when no shape is given', () => {
    expect(failure(() => memmap(path, { dtype: 'float64', offset: 4 })).code).toBe('MEMJOB_ERR_SHAPE');
  });

  it('malformed shapes', () => {
    for (const shape of [[-1], [1.5], 'big', [Number.NaN]]) {
      expect(failure(() => memmap(path, { shape } as unknown as MemmapOptions)).code).toBe('MEMJOB_ERR_SHAPE');
    }
  });

  it('negative, fractional and too-large offsets', () => {
    for (const offset of [-8, 1.5, Number.NaN]) {
      expect(failure(() => memmap(path, { offset })).code).toBe('MEMJOB_ERR_OUT_OF_RANGE');
    }
    const error = failure(() => memmap(path, { offset: 33 }));
    expect(error.code).toBe('MEMJOB_ERR_OUT_OF_RANGE');
    expect(error.message).toContain('holds 32 bytes');
  });

  it('an unknown mode or order, or options of the wrong type', () => {
    const error = failure(() => memmap(path, { mode: 'rw' as never }));
    expect(error.code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(error.message).toContain("'r+'");
    expect(error.message).toContain('"rw"');
    expect(failure(() => memmap(path, { order: 'K' as never })).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => memmap(path, 'r' as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => memmap(42 as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
  });

  it("'w+' without a shape fails before touching the file", () => {
    const error = failure(() => memmap(path, { mode: 'w+', dtype: 'float64' }));
    expect(error.code).toBe('MEMJOB_ERR_SHAPE');
    expect(readFileSync(path).length).toBe(32);
  });

  it('an empty array cannot be mapped, and w+ does not create the file', () => {
    const empty = scratch.file('empty.bin');
    expect(failure(() => memmap(empty, { mode: 'w+', shape: [0, 3] })).code).toBe('MEMJOB_ERR_SHAPE');
    expect(existsSync(empty)).toBe(false);
  });

  it("'w+' larger than the free space is ENOSPC before any file exists; beyond 2^53 bytes is a SHAPE error", () => {
    const huge = scratch.file('huge.bin');
    const error = failure(() => memmap(huge, { mode: 'w+', dtype: 'float64', shape: [2 ** 30, 2 ** 19] })); // 4 PiB
    expect(error.code).toBe('ENOSPC');
    expect(error.message).toContain('free');
    expect(existsSync(huge)).toBe(false);
    const tooBig = failure(() => memmap(huge, { mode: 'w+', dtype: 'float64', shape: [2 ** 40, 2 ** 20] }));
    expect(tooBig.code).toBe('MEMJOB_ERR_SHAPE');
    expect(existsSync(huge)).toBe(false);
  });

  it('a FIFO is refused at once instead of waiting for a writer', () => {
    const fifo = scratch.file('pipe');
    execFileSync('mkfifo', [fifo]);
    for (const mode of ['r', 'r+', 'c'] as const) {
      const error = failure(() => memmap(fifo, { mode }));
      expect(error.code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect(error.message).toContain('regular file');
    }
  });

  it('index and slice arguments are checked', () => {
    const mm = memmap(path, { dtype: 'float64', mode: 'r' });
    expect(failure(() => mm.get(4)).code).toBe('MEMJOB_ERR_OUT_OF_RANGE');
    expect(failure(() => mm.get(0, 0)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => mm.slice(0, 2, 0)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => mm.slice(0.5)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(failure(() => mm.advise('soon' as never)).code).toBe('MEMJOB_ERR_INVALID_ARG');
    mm.close();
  });

  it('Memmap cannot be constructed directly', async () => {
    const { Memmap } = await import('../src/index.js');
    expect(failure(() => new (Memmap as unknown as new () => unknown)()).code).toBe('MEMJOB_ERR_INVALID_ARG');
  });
});
