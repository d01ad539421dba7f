/** Every entry point that takes a filename checks it the same way, before touching any file. */
import { describe, expect, it } from 'vitest';
import { ErrorCodes, dump, dumpSync, load, loadNpy, loadNpySync, loadSync, memmap, saveNpy, saveNpySync } from '../src/index.js';

const entries: [string, (filename: unknown) => unknown][] = [
  ['memmap', (f) => memmap(f as string, { dtype: 'uint8', mode: 'r' })],
  ['dump', (f) => dump([1], f as string)],
  ['dumpSync', (f) => dumpSync([1], f as string)],
  ['load', (f) => load(f as string)],
  ['loadSync', (f) => loadSync(f as string)],
  ['saveNpy', (f) => saveNpy(f as string, new Float64Array(1))],
  ['saveNpySync', (f) => saveNpySync(f as string, new Float64Array(1))],
  ['loadNpy', (f) => loadNpy(f as string)],
  ['loadNpySync', (f) => loadNpySync(f as string)],
];

async function errorOf(call: () => unknown): Promise<{ code?: string; message: string }> {
  try {
    await call();
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected an error');
}

describe('filename arguments', () => {
  for (const [name, call] of entries) {
    it(`${name} refuses '', a number and an http: URL with MEMJOB_ERR_INVALID_ARG`, async () => {
      for (const bad of ['', 42, new URL('http://example.invalid/data.mjdump')]) {
        const error = await errorOf(() => call(bad));
        expect(error.code).toBe(ErrorCodes.INVALID_ARG);
        expect(error.message).toMatch(/expected "filename" to be a non-empty string or a file: URL, received/);
      }
    });
  }
});
