/**
 * maxNbytes and tempFolder mean the same in every class that takes them
 * (Parallel, Pool, Process, Queue): one parser, one default, one refusal.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, Parallel, Pool, Process, Queue, delayed, hasShareableMemory } from '../src/index.js';
import { failure } from './helpers.js';

const small = new Float64Array(1); // 8 bytes
const large = new Float64Array(300_000); // 2.4 MB

describe('maxNbytes', () => {
  it("Pool takes '1M' as Parallel does: an 8-byte array is copied, a 2.4 MB one mapped", async () => {
    await using pool = new Pool({ processes: 1, maxNbytes: '1M' });
    expect(await pool.map(hasShareableMemory, [small, large])).toEqual([false, true]);
    await using parallel = new Parallel({ nJobs: 2, backend: 'threads', maxNbytes: '1M' });
    expect(await parallel.run([delayed(hasShareableMemory)(small), delayed(hasShareableMemory)(large)])).toEqual([false, true]);
  });

  it("Pool with maxNbytes null copies even a large array; '4M' leaves 2.4 MB to copy too", async () => {
    await using copying = new Pool({ processes: 1, maxNbytes: null });
    expect(await copying.map(hasShareableMemory, [large])).toEqual([false]);
    await using higher = new Pool({ processes: 1, maxNbytes: '4M' });
    expect(await higher.map(hasShareableMemory, [large])).toEqual([false]);
  });

  it("a Queue item above a '64K' maxNbytes travels as a mapped dump and arrives intact", async () => {
    using queue = new Queue<Float64Array>({ maxNbytes: '64K' });
    const item = Float64Array.from({ length: 20_000 }, (_, i) => i / 2); // 160 KB
    await queue.put(item);
    const got = await queue.get();
    expect(hasShareableMemory(got)).toBe(true); // dumped, then mapped copy-on-write by get()
    expect(Array.from(got)).toEqual(Array.from(item));
  });

  const bad: [string, unknown][] = [
    ['a negative number', -5],
    ['NaN', Number.NaN],
    ['an unknown unit', '1X'],
    ['an object', {}],
  ];
  for (const [what, value] of bad) {
    it(`${what} is refused by every class with MEMJOB_ERR_INVALID_ARG, before anything starts`, () => {
      const makers: [string, () => unknown][] = [
        ['Parallel', () => new Parallel({ maxNbytes: value as never })],
        ['Pool', () => new Pool({ processes: 1, maxNbytes: value as never })],
        ['Process', () => new Process({ target: Math.abs, maxNbytes: value as never })],
        ['Queue', () => new Queue({ maxNbytes: value as never })],
      ];
      for (const [where, make] of makers) {
        const error = failure(make);
        expect(error.code).toBe(ErrorCodes.INVALID_ARG);
        expect(error.message).toContain(`${where}: expected "maxNbytes" to be a byte count, a string such as '1M'`);
        expect(error.message).toContain('received');
      }
    });
  }

  it('null is refused by Queue only (an item too large for the ring must spill to a file)', () => {
    const error = failure(() => new Queue({ maxNbytes: null as never }));
    expect(error).toBeInstanceOf(MemjobError);
    expect(error.message).toContain('Queue: expected "maxNbytes"');
    expect(error.message).not.toContain('or null');
  });
});

describe('tempFolder', () => {
  it('an empty or non-string tempFolder is refused by Parallel and Pool alike', () => {
    for (const value of ['', 42]) {
      for (const make of [() => new Parallel({ tempFolder: value as never }), () => new Pool({ processes: 1, tempFolder: value as never })]) {
        const error = failure(make);
        expect(error.code).toBe(ErrorCodes.INVALID_ARG);
        expect(error.message).toMatch(/^(Parallel|Pool): expected "tempFolder" to be a folder path, received/);
      }
    }
  });
});
