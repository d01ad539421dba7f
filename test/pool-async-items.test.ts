// Pool.map, imap and imapUnordered take an AsyncIterable as Parallel.run
// does, so that two pools chain as stages; anything that is not iterable
// gets MEMJOB_ERR_INVALID_ARG.
import { describe, expect, it } from 'vitest';
import { MemjobError, Pool } from '../src/index.js';
import { failure } from './helpers.js';

async function* slowly<T>(items: readonly T[], ms = 5): AsyncGenerator<T> {
  for (const item of items) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    yield item;
  }
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}

describe('Pool with AsyncIterable items', () => {
  it('chains two pools: imapUnordered over the other pool’s imapUnordered', async () => {
    await using first = new Pool({ processes: 2 });
    await using second = new Pool({ processes: 2 });
    const stage1 = first.imapUnordered((x: number) => x * 10, [1, 2, 3, 4, 5, 6]);
    const stage2 = second.imapUnordered((x: number) => x + 1, stage1);
    expect((await collect(stage2)).sort((a, b) => a - b)).toEqual([11, 21, 31, 41, 51, 61]);
  });

  it('imap keeps input order over an async generator; map and starmap read it to the end', async () => {
    await using pool = new Pool({ processes: 2 });
    const late = async (i: number) => {
      await new Promise((resolve) => setTimeout(resolve, (5 - i) * 20)); // later items finish first
      return i * i;
    };
    expect(await collect(pool.imap(late, slowly([0, 1, 2, 3, 4])))).toEqual([0, 1, 4, 9, 16]);
    expect(await collect(pool.imap(late, slowly([0, 1, 2, 3, 4]), { chunksize: 2 }))).toEqual([0, 1, 4, 9, 16]);
    expect(await pool.map((x: number) => -x, slowly([1, 2, 3]))).toEqual([-1, -2, -3]);
    expect(await pool.mapAsync((x: number) => -x, slowly([4]))).toEqual([-4]);
    expect(await pool.starmap((a: number, b: number) => a + b, slowly([[1, 2], [3, 4]] as [number, number][]))).toEqual([3, 7]);
    expect(await collect(pool.imapUnordered((x: number) => x, slowly([])))).toEqual([]);
  });

  it('submits items as they arrive: the first result comes before the source is done', async () => {
    await using pool = new Pool({ processes: 2 });
    let firstResult!: () => void;
    const gate = new Promise<void>((resolve) => (firstResult = resolve));
    async function* source(): AsyncGenerator<number> {
      yield 1;
      // An implementation that read the whole source first would never get here in time.
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the source was read to its end before any result came back')), 20_000).unref(),
      );
      await Promise.race([gate, timeout]);
      yield 2;
    }
    const results: number[] = [];
    for await (const r of pool.imap((x: number) => x * 3, source())) {
      results.push(r);
      firstResult();
    }
    expect(results).toEqual([3, 6]);
  });

  it('a failing task, or a failing source, is thrown at its place in the output', async () => {
    await using pool = new Pool({ processes: 2 });
    const failAt3 = (x: number) => {
      if (x === 3) throw new RangeError('three');
      return x;
    };
    const seen: number[] = [];
    const taskError = await (async () => {
      for await (const r of pool.imap(failAt3, slowly([1, 2, 3, 4]))) seen.push(r);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([1, 2]);
    expect(taskError).toBeInstanceOf(RangeError);
    expect((taskError as Error).message).toBe('three');

    async function* broken(): AsyncGenerator<number> {
      yield 1;
      yield 2;
      throw new Error('the source broke');
    }
    for (const iterate of [(s: AsyncIterable<number>) => pool.imap((x: number) => x, s), (s: AsyncIterable<number>) => pool.imapUnordered((x: number) => x, s)]) {
      const got: number[] = [];
      const sourceError = await (async () => {
        for await (const r of iterate(broken())) got.push(r);
      })().catch((e: unknown) => e);
      expect(got.sort()).toEqual([1, 2]);
      expect((sourceError as Error).message).toBe('the source broke');
    }
    await expect(pool.map((x: number) => x, broken())).rejects.toThrow('the source broke');
  });

  it('leaving early stops reading the source', async () => {
    await using pool = new Pool({ processes: 2 });
    let read = 0;
    let finished!: () => void;
    const closed = new Promise<void>((resolve) => (finished = resolve));
    async function* endless(): AsyncGenerator<number> {
      try {
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          yield read++;
        }
      } finally {
        finished();
      }
    }
    for await (const r of pool.imapUnordered((x: number) => x, endless())) {
      expect(typeof r).toBe('number');
      break;
    }
    await closed; // the source's finally ran: it was told to stop
    expect(read).toBeLessThan(1000);
  });

  it('close() then join() waits for a stream still reading its source', async () => {
    const pool = new Pool({ processes: 2 });
    const results: number[] = [];
    const consuming = (async () => {
      for await (const r of pool.imap((x: number) => x + 100, slowly([1, 2, 3, 4, 5], 20))) results.push(r);
    })();
    await new Promise((resolve) => setTimeout(resolve, 30)); // the stream has begun
    pool.close();
    await pool.join();
    await consuming;
    expect(results).toEqual([101, 102, 103, 104, 105]);
  });
});

describe('Pool with items that are not iterable', () => {
  it('gets MEMJOB_ERR_INVALID_ARG naming what was expected and received, not a raw TypeError', async () => {
    await using pool = new Pool({ processes: 1 });
    const mapError = failure(() => pool.map((x: number) => x, 5 as never));
    expect(mapError.code).toBe('MEMJOB_ERR_INVALID_ARG');
    expect(mapError.message).toBe('Pool.map: expected "items" to be an Iterable or an AsyncIterable, received 5 (number)');
    expect(failure(() => pool.starmap((x: number) => x, null as never)).message).toBe(
      'Pool.starmap: expected "items" to be an Iterable or an AsyncIterable, received null',
    );
    for (const [name, iterator] of [
      ['imap', pool.imap((x: number) => x, { length: 2 } as never)],
      ['imapUnordered', pool.imapUnordered((x: number) => x, { length: 2 } as never)],
    ] as const) {
      const error = await iterator.next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MemjobError);
      expect((error as MemjobError).code).toBe('MEMJOB_ERR_INVALID_ARG');
      expect((error as MemjobError).message).toBe(`Pool.${name}: expected "items" to be an Iterable or an AsyncIterable, received an object`);
    }
  });
});
