import { describe, expect, it } from 'vitest';
import { Lock, MemjobError, Pool, Process, Queue, SharedArray, Value, delayed, task } from '../src/index.js';

const tasks = new URL('./fixtures/mp-tasks.ts', import.meta.url);
const square = task<[number], number>(tasks, 'square');
const sleepThenReturn = task<[number, number], number>(tasks, 'sleepThenReturn');
const whoAmI = task<[], string>(tasks, 'whoAmI');
const backends = ['threads', 'processes'] as const;

describe.each(backends)('Pool (%s)', (backend) => {
  it('map, starmap, imap, apply and applyAsync equal a plain loop', async () => {
    await using pool = new Pool({ processes: 2, backend });
    const items = Array.from({ length: 200 }, (_, i) => i);
    expect(await pool.map(square, items)).toEqual(items.map((i) => i * i));
    expect(await pool.map(square, items, { chunksize: 7 })).toEqual(items.map((i) => i * i));
    expect(await pool.starmap((a: number, b: number) => a + b, [[1, 2], [3, 4]])).toEqual([3, 7]);
    const fromImap: number[] = [];
    for await (const r of pool.imap(square, [1, 2, 3])) fromImap.push(r);
    expect(fromImap).toEqual([1, 4, 9]);
    expect(await pool.apply(Math.max, [3, 9, 4])).toBe(9);
    const pending = [pool.applyAsync(square, [5]), pool.applyAsync(square, [6])];
    expect(await Promise.all(pending)).toEqual([25, 36]);
  });

  it('imapUnordered yields fast results before a slow one; imap keeps the order', async () => {
    await using pool = new Pool({ processes: 2, backend });
    const order: number[] = [];
    for await (const r of pool.imapUnordered((x: [number, number]) => x[1], [])) order.push(r);
    const unordered: number[] = [];
    const calls = [[600, 0], [10, 1], [10, 2], [10, 3]] as const;
    for await (const r of pool.imapUnordered(([ms, v]: readonly [number, number]) => new Promise<number>((resolve) => setTimeout(() => resolve(v), ms)), calls)) unordered.push(r);
    expect(unordered[unordered.length - 1]).toBe(0);
    expect(unordered.slice(0, 3).sort()).toEqual([1, 2, 3]);
    const ordered: number[] = [];
    for await (const r of pool.imap(([ms, v]: readonly [number, number]) => new Promise<number>((resolve) => setTimeout(() => resolve(v), ms)), calls)) ordered.push(r);
    expect(ordered).toEqual([0, 1, 2, 3]);
    void sleepThenReturn;
  });

  it('the initializer runs once per worker', async () => {
    const countInit = task(tasks, 'countInit');
    const initCount = task<[], number>(tasks, 'initCount');
    await using pool = new Pool({ processes: 2, backend, initializer: countInit });
    // The worker imports the fixture module once, so its counter is per worker: 1 everywhere.
    const counts = await pool.map(initCount as unknown as (x: number) => number, Array.from({ length: 40 }, (_, i) => i), { chunksize: 1 });
    expect(new Set(counts)).toEqual(new Set([1]));
    const ids = await pool.map(whoAmI as unknown as (x: number) => string, Array.from({ length: 40 }, (_, i) => i), { chunksize: 1 });
    expect(new Set(ids).size).toBe(2);
  });

  it('maxTasksPerChild replaces workers', async () => {
    await using pool = new Pool({ processes: 2, backend, maxTasksPerChild: 3 });
    const ids = await pool.map(whoAmI as unknown as (x: number) => string, Array.from({ length: 24 }, (_, i) => i), { chunksize: 1 });
    // 24 tasks, at most 3 per worker: at least 8 different workers.
    expect(new Set(ids).size).toBeGreaterThanOrEqual(8);
  });

  it('a failing task rejects only its own call; a crash rejects the affected call and the pool keeps serving', async () => {
    await using pool = new Pool({ processes: 2, backend });
    const fail = task<[string], never>(tasks, 'fail');
    const crash = task<[number], never>(tasks, 'crash');
    const results = await Promise.allSettled([pool.apply(square, [2]), pool.apply(fail, ['boom']), pool.apply(square, [3])]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason as Error;
    expect(failure).toBeInstanceOf(RangeError);
    expect(failure.message).toBe('boom');
    const crashed = await pool.apply(crash, [3]).catch((error: unknown) => error as MemjobError);
    expect(crashed).toBeInstanceOf(MemjobError);
    expect((crashed as MemjobError).code).toBe('MEMJOB_ERR_WORKER_CRASHED');
    expect((crashed as MemjobError).message).toContain('code 3');
    expect(await pool.map(square, [1, 2, 3])).toEqual([1, 4, 9]);
  });

  it('an initializer that kills its worker fails the calls instead of restarting workers forever', async () => {
    const crash = task<[number], never>(tasks, 'crash');
    await using pool = new Pool({ processes: 2, backend, initializer: delayed(crash)(5) });
    await expect(pool.map(square, [1, 2, 3])).rejects.toMatchObject({ code: 'MEMJOB_ERR_WORKER_CRASHED' });
  });

  it('close() refuses new work; join() waits for the submitted tasks', async () => {
    const pool = new Pool({ processes: 2, backend });
    const pending = pool.map(sleepThenReturn as unknown as (x: number) => number, [1, 2]);
    pool.close();
    expect(() => pool.apply(square, [1])).toThrow(MemjobError);
    await pool.join();
    expect((await pending).length).toBe(2);
  });
});

describe.each(backends)('shared memory (%s)', (backend) => {
  it('two workers doing 1,000,000 atomic adds each on Value("int32", 0) end at exactly 2,000,000', async () => {
    const counter = new Value('int32', 0);
    await using pool = new Pool({ processes: 2, backend });
    const addMany = task<[Value<'int32'>, number], number>(tasks, 'addMany');
    await Promise.all([pool.apply(addMany, [counter, 1_000_000]), pool.apply(addMany, [counter, 1_000_000])]);
    expect(counter.value).toBe(2_000_000);
    counter.close();
  });

  it('a Lock around a float64 read-modify-write keeps every update', async () => {
    const total = new Value<'float64'>('d', 0); // Python's typecode for a double
    const lock = new Lock();
    await using pool = new Pool({ processes: 2, backend });
    const lockedAddMany = task<[Value<'float64'>, Lock, number], void>(tasks, 'lockedAddMany');
    await Promise.all([pool.apply(lockedAddMany, [total, lock, 200_000]), pool.apply(lockedAddMany, [total, lock, 200_000])]);
    expect(total.value).toBe(200_000);
    expect(lock.locked).toBe(false);
  });

  it('workers write into a SharedArray the parent sees', async () => {
    const array = new SharedArray('float64', 1000);
    await using pool = new Pool({ processes: 2, backend });
    const fillShared = task<[SharedArray<'float64'>, number, number], void>(tasks, 'fillShared');
    await pool.starmap(fillShared, [[array, 0, 500], [array, 500, 1000]]);
    expect([...array.toArray()]).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2));
  });
});

describe('Queue and Process', () => {
  it('moves 100,000 items between two processes with none lost or duplicated, the producer blocked while full', async () => {
    const queue = new Queue<number>({ maxsize: 100 });
    const produced = new Value('int32', 0);
    const go = new Value('int32', 0);
    const producer = new Process({ target: task(tasks, 'produce'), args: [queue, 100_000, produced], name: 'producer' });
    const consumer = new Process({ target: task(tasks, 'consume'), args: [queue, go], name: 'consumer' });
    producer.start();
    consumer.start();
    // The consumer waits for "go": until then the producer must stop at maxsize.
    const deadline = Date.now() + 20_000;
    while (produced.value < 100 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(produced.value).toBe(100);
    expect(queue.qsize()).toBe(100);
    go.value = 1;
    await producer.join();
    await consumer.join();
    expect([producer.exitCode, consumer.exitCode]).toEqual([0, 0]);
    expect(produced.value).toBe(100_000);
    expect(queue.qsize()).toBe(0);
  }, 120_000);

  it('Process reports exit codes, errors and pids', async () => {
    const ok = new Process({ target: Math.max, args: [1, 2] });
    ok.start();
    expect(ok.pid).toBeGreaterThan(0);
    await ok.join();
    expect(ok.exitCode).toBe(0);
    const failing = new Process({ target: task(tasks, 'fail'), args: ['nope'], backend: 'threads' });
    failing.start();
    await failing.join();
    expect(failing.exitCode).toBe(1);
    expect(failing.error).toBeInstanceOf(RangeError);
    const crashing = new Process({ target: task(tasks, 'crash'), args: [7] });
    crashing.start();
    await crashing.join();
    expect(crashing.exitCode).toBe(7);
    const scale = 3;
    expect(() => new Process({ target: (x: number) => x * scale }).start()).toThrow(/scale/);
    void delayed;
  });

  it('Value and SharedArray work for every dtype, including 1- and 2-byte ones', () => {
    for (const dtype of ['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'] as const) {
      const v = new Value(dtype, 3);
      expect(v.value).toBe(3);
      const a = new SharedArray(dtype, 3);
      a.set(2, 5);
      expect([...a]).toEqual([0, 0, 5]);
      v.close();
      a.close();
    }
    const flag = new Value('bool', true);
    expect(flag.value).toBe(true);
    const big = new Value('int64', 2n ** 40n);
    expect(big.add(1n)).toBe(2n ** 40n + 1n);
    expect(new Value('i', 7).add(1)).toBe(8);
  });

  it('get with a timeout on an empty queue, put on a closed one', async () => {
    const queue = new Queue<string>({ maxsize: 1 });
    await expect(queue.get({ timeout: 20 })).rejects.toMatchObject({ code: 'MEMJOB_ERR_QUEUE_EMPTY' });
    await queue.put('a');
    await expect(queue.put('b', { timeout: 20 })).rejects.toMatchObject({ code: 'MEMJOB_ERR_QUEUE_FULL' });
    expect(await queue.get()).toBe('a');
    queue.close();
    await expect(queue.put('c')).rejects.toMatchObject({ code: 'MEMJOB_ERR_QUEUE_CLOSED' });
    queue.dispose();
  });

  it('large arrays travel through a Queue as mapped dumps', async () => {
    const queue = new Queue<Float64Array>();
    const big = Float64Array.from({ length: 1_000_000 }, (_, i) => i);
    await queue.put(big);
    const got = await queue.get();
    expect(got.length).toBe(1_000_000);
    expect(got[999_999]).toBe(999_999);
    queue.dispose();
  });
});
