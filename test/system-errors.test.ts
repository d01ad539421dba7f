// Operating-system failures: a message that says once what was expected and
// what was found (no path or code said twice), with Node's code, the syscall,
// the path and the original error as properties.
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { MemjobError, load, loadNpy, loadNpySync, loadSync, memmap, saveNpy, saveNpySync } from '../src/index.js';
import { failure, scratchDir } from './helpers.js';

const scratch = scratchDir('system-errors');
afterAll(() => scratch.remove());

async function rejection(promise: Promise<unknown>): Promise<MemjobError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MemjobError);
  return error as MemjobError;
}

function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

describe('a missing file', () => {
  const missing = (name: string) => scratch.file(name);

  it('memmap, load, loadSync, loadNpy, loadNpySync: "expected <path> to exist", the path and ENOENT once each', async () => {
    const cases: [string, string, () => MemjobError | Promise<MemjobError>][] = [
      ['memmap', missing('missing.f64'), () => failure(() => memmap(missing('missing.f64'), { mode: 'r' }))],
      ['loadSync', missing('missing.mjdump'), () => failure(() => loadSync(missing('missing.mjdump')))],
      ['load', missing('missing.mjdump'), () => rejection(load(missing('missing.mjdump')))],
      ['load', missing('mapped.mjdump'), () => rejection(load(missing('mapped.mjdump'), { mmapMode: 'r' }))],
      ['loadNpySync', missing('missing.npy'), () => failure(() => loadNpySync(missing('missing.npy')))],
      ['loadNpy', missing('missing.npy'), () => rejection(loadNpy(missing('missing.npy'), { mmapMode: 'r' }))],
    ];
    for (const [where, path, run] of cases) {
      const error = await run();
      expect(error.message).toBe(`${where}: expected '${path}' to exist, but it does not (ENOENT, open)`);
      expect(occurrences(error.message, path)).toBe(1);
      expect(occurrences(error.message, 'ENOENT')).toBe(1);
      expect(error.code).toBe('ENOENT');
      expect(error.syscall).toBe('open');
      expect(error.path).toBe(path);
      expect(error.errno).toBeGreaterThan(0);
      // Node's own error, with its own message, stays available as the cause.
      expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
      expect((error.cause as Error).message).toContain(path);
    }
  });

  it('a relative path is reported absolute, as it was opened', () => {
    const error = failure(() => memmap('surely-missing-file.f64'));
    expect(error.message).toBe(`memmap: expected '${process.cwd()}/surely-missing-file.f64' to exist, but it does not (ENOENT, open)`);
  });

  it('writing into a missing folder names the folder that is missing', async () => {
    const folder = scratch.file('no-such-folder');
    const target = `${folder}/x.npy`;
    for (const error of [failure(() => saveNpySync(target, new Float64Array(2))), await rejection(saveNpy(target, new Float64Array(2)))]) {
      expect(error.code).toBe('ENOENT');
      expect(error.path).toBe(target);
      expect(error.message).toMatch(/^saveNpy(Sync)?: expected the folder '.*\/no-such-folder' to exist, but it does not \(ENOENT, open\)$/);
    }
    const room = failure(() => memmap(`${folder}/y.f64`, { mode: 'w+', shape: 4 }));
    expect(room.message).toBe(`memmap: expected '${folder}' to exist, but it does not (ENOENT, statfs)`);
  });
});

describe('other system errors', () => {
  it("say the syscall, the path once, the OS's words and the code once", () => {
    const file = scratch.file('plain-file');
    writeFileSync(file, 'x');
    const inside = `${file}/child.f64`;
    const error = failure(() => memmap(inside, { mode: 'r' }));
    expect(error.message).toBe(`memmap: open failed for '${inside}': not a directory (ENOTDIR)`);
    expect(error.code).toBe('ENOTDIR');
    expect(error.path).toBe(inside);
    mkdirSync(scratch.file('a-folder'));
    expect(failure(() => loadSync(scratch.file('a-folder'))).code).toBe('EISDIR');
  });
});
