// Issue 12, finding 1: plain data that looks like one of memjob's internal
// references (`__memjob_ref__`, a queue spill) stays plain data through every
// channel: task arguments and results on every backend, Pool, Queue items.
// The files those payloads name are never read, mapped, deleted or written.
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, Memmap, Parallel, Pool, Queue, closeSharedWorkers, delayed, memmap } from '../src/index.js';
import { rejection } from './fixtures/parallel-helpers.js';
import { scratchDir } from './helpers.js';

let scratch: ReturnType<typeof scratchDir>;
let precious: string; // a dump-like file a forged reference would have deleted
let victim: string; // a file a forged Memmap would have written
let tiny: string; // 4 bytes: a forged view of 1 MiB over it would be SIGBUS
const preciousBytes = Buffer.from('precious: do not delete');

beforeAll(() => {
  scratch = scratchDir('forged-refs');
  precious = scratch.file('precious.mjdump');
  victim = scratch.file('victim.txt');
  tiny = scratch.file('tiny.bin');
  writeFileSync(tiny, Buffer.from([1, 2, 3, 4]));
});
afterEach(async () => {
  await closeSharedWorkers();
  // Nothing a payload named was touched.
  expect(readFileSync(precious)).toEqual(preciousBytes);
  expect(readFileSync(victim, 'utf8')).toBe('victim');
  expect(readFileSync(tiny)).toEqual(Buffer.from([1, 2, 3, 4]));
});
afterAll(() => scratch.remove());

function payloads(): Record<string, Record<string, unknown>> {
  writeFileSync(precious, preciousBytes);
  writeFileSync(victim, 'victim');
  return {
    'result-dump': { __memjob_ref__: 'result-dump', path: precious },
    memmap: { __memjob_ref__: 'memmap', path: victim, mode: 'r+', dtype: 'uint8', shape: [6], strides: [1], offset: 0, order: 'C' },
    view: { __memjob_ref__: 'view', path: tiny, mode: 'r', fileOffset: 0, byteLength: 1 << 20, arrayType: 'Uint8Array' },
    dump: { __memjob_ref__: 'dump', path: precious, mode: 'r' },
    ndarray: { __memjob_ref__: 'ndarray', dtype: 'uint8', shape: [4], order: 'C', data: new Uint8Array(4) },
    shared: { __memjob_ref__: 'shared', ref: { kind: 'value', path: tiny, byteLength: 1 << 20 } },
    // With a token-like field that is not this process tree's token.
    'guessed token': { __memjob_ref__: 'dump', __memjob_token__: '0'.repeat(32), path: precious, mode: 'r' },
    spill: { __memjob_queue_spill__: precious },
    'queue-spill': { __memjob_ref__: 'queue-spill', path: precious },
  };
}

/** What a task sees of its argument: plain data is a plain object with the same keys. */
const describeArg = (value: unknown) => ({
  plain: typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype,
  keys: Object.keys(value as object).sort(),
});
/** A task that builds the payload from text, as a task parsing a request would. */
const parse = (text: string) => JSON.parse(text) as unknown;

const expectPlain = (value: unknown, payload: Record<string, unknown>) => {
  expect(value).not.toBeInstanceOf(Memmap);
  expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
  expect(Object.keys(value as object).sort()).toEqual(Object.keys(payload).sort());
};

describe.each(['threads', 'processes', 'sequential'] as const)('%s', (backend) => {
  const options = { backend, nJobs: backend === 'sequential' ? 1 : 2 } as const;

  it('a task argument shaped like a reference arrives as plain data', async () => {
    await using p = new Parallel(options);
    const all = payloads();
    const seen = await p.run(Object.values(all).map((payload) => delayed(describeArg)(payload)));
    Object.values(all).forEach((payload, i) => expect(seen[i]).toEqual({ plain: true, keys: Object.keys(payload).sort() }));
  });

  it('a task result shaped like a reference comes back as plain data', async () => {
    await using p = new Parallel(options);
    const all = payloads();
    const texts = Object.values(all).map((payload) => JSON.stringify(payload, (_key, v: unknown) => (ArrayBuffer.isView(v) ? [...(v as Uint8Array)] : v)));
    const results = await p.run(texts.map((text) => delayed(parse)(text)));
    Object.values(all).forEach((payload, i) => expectPlain(results[i], payload));
  });
});

it('Pool: arguments and results shaped like references stay plain data', async () => {
  await using pool = new Pool({ processes: 2, backend: 'processes' });
  const all = payloads();
  const seen = await pool.map(describeArg, Object.values(all));
  Object.values(all).forEach((payload, i) => expect(seen[i]).toEqual({ plain: true, keys: Object.keys(payload).sort() }));
  const texts = Object.values(all).map((payload) => JSON.stringify(payload, (_key, v: unknown) => (ArrayBuffer.isView(v) ? [...(v as Uint8Array)] : v)));
  const results = await pool.map(parse, texts);
  Object.values(all).forEach((payload, i) => expectPlain(results[i], payload));
});

it('Queue: items shaped like a dump reference or a spill come out as plain data', async () => {
  const queue = new Queue<Record<string, unknown>>();
  try {
    for (const payload of Object.values(payloads())) {
      await queue.put(payload);
      const item = await queue.get();
      expectPlain(item, payload);
    }
  } finally {
    queue.close();
  }
});

it("a real view whose file shrank after it was sent is MEMJOB_ERR_OUT_OF_RANGE in the worker, not SIGBUS", async () => {
  const path = scratch.file('shrinks.u8');
  const m = memmap(path, { mode: 'w+', dtype: 'uint8', shape: 1 << 20 });
  const data = m.data as Uint8Array; // an array over the mapping: it travels as a view of the file
  truncateSync(path, 16); // the parent never touches the lost pages
  for (const backend of ['threads', 'processes'] as const) {
    await using p = new Parallel({ backend, nJobs: 2 });
    const error = await rejection(p.run([delayed((a: Uint8Array) => a.length)(data)]));
    expect(error.code).toBe(ErrorCodes.OUT_OF_RANGE);
    expect(error.message).toMatch(/received a file of 16 bytes/);
  }
  m.close();
  expect(existsSync(path)).toBe(true);
});
