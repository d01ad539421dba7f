import { closeSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxViewBytes, memmap, pageSize } from '../src/index.js';
import { scratchDir } from './helpers.js';

const GiB = 1024 ** 3;
const scratch = scratchDir('large');
const path = scratch.file('sparse-64g.bin');

beforeAll(() => {
  // ftruncate makes a sparse file: 64 GiB of apparent size, no disk used.
  const fd = openSync(path, 'w+', 0o600);
  ftruncateSync(fd, 64 * GiB);
  closeSync(fd);
});
afterAll(() => scratch.remove());

function readBytes(offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, offset);
  closeSync(fd);
  return buffer;
}

describe('a 64 GiB sparse file', () => {
  it('opens, and its .data refuses with a message naming slice() and chunks()', () => {
    const mm = memmap(path, { dtype: 'float64', mode: 'r+' });
    expect(mm.shape).toEqual([8 * GiB]);
    expect(mm.nbytes).toBe(64 * GiB);
    expect(() => mm.data).toThrow(expect.objectContaining({ code: 'MEMJOB_ERR_VIEW_TOO_LARGE' }));
    expect(() => mm.data).toThrow(/slice\(.*chunks\(/);
    mm.close();
  });

  it('writes at offsets above 2^32 land at exactly those bytes of the file', () => {
    const mm = memmap(path, { dtype: 'float64', mode: 'r+' });
    const targets = [2 ** 32 + 8, 5 * GiB, 63 * GiB + 4096 * 3 + 8];
    for (const [i, byteOffset] of targets.entries()) {
      const window = mm.slice(byteOffset / 8, byteOffset / 8 + 2);
      expect(window.offset).toBe(byteOffset);
      window.data.set([1.5 + i, -2.25 - i]);
    }
    mm.flush();
    mm.close();
    for (const [i, byteOffset] of targets.entries()) {
      const bytes = readBytes(byteOffset, 16);
      expect(bytes.readDoubleLE(0)).toBe(1.5 + i);
      expect(bytes.readDoubleLE(8)).toBe(-2.25 - i);
    }
    // Reading back through a fresh memmap at a non-page-aligned offset above 4 GiB.
    const again = memmap(path, { dtype: 'float64', mode: 'r', offset: 2 ** 32 + 8, shape: 2 });
    expect(Array.from(again.data)).toEqual([1.5, -2.25]);
    again.close();
  });

  it('data written with fs at a high offset reads back through a mapping', () => {
    const offset = 40 * GiB + 12;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('memjob!'), 0, 7, offset);
    closeSync(fd);
    const mm = memmap(path, { mode: 'r', offset, shape: 7 });
    expect(Buffer.from(mm.data).toString()).toBe('memjob!');
    mm.close();
  });

  it('chunks() yields views lazily, each within maxBytes, covering the file', () => {
    const mm = memmap(path, { dtype: 'float64', mode: 'r' });
    let count = 0;
    let covered = 0;
    for (const chunk of mm.chunks({ maxBytes: 4 * GiB })) {
      expect(chunk.nbytes).toBeLessThanOrEqual(4 * GiB);
      expect(chunk.offset).toBe(covered);
      covered += chunk.nbytes;
      count++;
    }
    expect(count).toBe(16);
    expect(covered).toBe(64 * GiB);
    mm.close();
  });

  it('one view can be as large as the largest ArrayBuffer, and no larger', () => {
    const mm = memmap(path, { dtype: 'uint8', mode: 'r' });
    expect(maxViewBytes).toBeGreaterThanOrEqual(2 ** 31);
    const biggest = mm.slice(0, maxViewBytes).data;
    expect(biggest.length).toBe(maxViewBytes);
    expect(biggest[maxViewBytes - 1]).toBe(0);
    const wide = memmap(path, { dtype: 'float64', mode: 'r' }).slice(0, maxViewBytes / 8);
    expect(wide.data.length).toBe(maxViewBytes / 8);
    wide.close();
    expect(() => mm.slice(0, maxViewBytes + 1).data).toThrow(expect.objectContaining({ code: 'MEMJOB_ERR_VIEW_TOO_LARGE' }));
    mm.close();
  });

  it('does not allocate the file: its blocks stay sparse', () => {
    expect(statSync(path).blocks * 512).toBeLessThan(64 * 1024 * 1024);
    expect(pageSize % 4096).toBe(0);
  });
});
