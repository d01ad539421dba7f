/**
 * What Pool's map and imap accept as items: an Iterable, as Python's, or an
 * AsyncIterable, as Parallel.run, so that stages chain:
 * `pool.imapUnordered(f, other.imapUnordered(g, xs))`. An AsyncIterable is
 * fed to the workers as its items arrive (streamResults), so the second
 * stage starts on the first stage's first result.
 */
import { invalidArg } from '../errors.js';

/** Hears how each call of one submission ended (index: the call's position in that submission). */
export interface Sink {
  resolve(index: number, value: unknown): void;
  reject(index: number, error: unknown): void;
}

/** A sync Iterable as an array (taken at once, as Python does), an AsyncIterable as is; anything else is refused. */
export function parseItems(items: unknown, where: string): unknown[] | AsyncIterable<unknown> {
  if (items !== null && items !== undefined) {
    if (typeof (items as Iterable<unknown>)[Symbol.iterator] === 'function') return [...(items as Iterable<unknown>)];
    if (typeof (items as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') return items as AsyncIterable<unknown>;
  }
  throw invalidArg(where, 'items', 'an Iterable or an AsyncIterable', items);
}

export async function collectItems(source: AsyncIterable<unknown>): Promise<unknown[]> {
  const list: unknown[] = [];
  for await (const item of source) list.push(item);
  return list;
}

/** How streamResults hands work to the pool. */
export interface StreamTarget {
  /** Queues `items` as calls numbered from 0; throws if the pool no longer takes work. */
  submit(items: unknown[], sink: Sink): void;
  /** The stream starts (+1) or stops (-1) feeding: the pool's join() waits for feeders. */
  feeding(delta: 1 | -1): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * imap/imapUnordered over an AsyncIterable: submits the items in chunks of
 * `chunksize` as they arrive and yields results in input order (`ordered`)
 * or as they complete. A failing task, or a failing source, is thrown at its
 * position in the output; leaving early stops reading the source (tasks
 * already submitted still run, as with an array).
 */
export async function* streamResults(
  source: AsyncIterable<unknown>,
  chunksize: number,
  ordered: boolean,
  target: StreamTarget,
): AsyncGenerator<unknown, void, undefined> {
  const settled = new Map<number, Outcome>();
  const arrivals: number[] = []; // completion order, for unordered output
  let read = 0; // items taken from the source
  let ended = false; // the source is exhausted (or failed, or the pool refused work)
  let failure: { error: unknown } | undefined; // the source's (or the pool's) error, after the `read` items
  let stopped = false; // the consumer left
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const settle = (index: number, outcome: Outcome) => {
    settled.set(index, outcome);
    if (!ordered) arrivals.push(index);
    notify();
  };
  // Once the source is done, or the consumer has left (the source may never
  // yield again), the pool no longer waits for this stream.
  let feeding = true;
  const release = () => {
    if (feeding) target.feeding(-1);
    feeding = false;
  };

  const feed = async () => {
    let chunk: unknown[] = [];
    const flush = () => {
      const first = read - chunk.length;
      target.submit(chunk, {
        resolve: (i, value) => settle(first + i, { ok: true, value }),
        reject: (i, error) => settle(first + i, { ok: false, error }),
      });
      chunk = [];
    };
    try {
      for await (const item of source) {
        if (stopped) break; // `break` also tells the source to finish (its return())
        chunk.push(item);
        read++;
        if (chunk.length >= chunksize) flush();
      }
      if (chunk.length > 0 && !stopped) flush();
    } catch (error) {
      // The items of a chunk not submitted never ran: the error stands at their place.
      read -= chunk.length;
      failure = { error };
    } finally {
      ended = true;
      release();
      notify();
    }
  };
  target.feeding(1);
  void feed();

  try {
    for (let yielded = 0; ; ) {
      const next = ordered ? (settled.has(yielded) ? yielded : undefined) : arrivals.shift();
      if (next !== undefined) {
        const outcome = settled.get(next)!;
        settled.delete(next);
        yielded++;
        if (!outcome.ok) throw outcome.error;
        yield outcome.value;
        continue;
      }
      if (ended && yielded >= read) {
        if (failure !== undefined) throw failure.error;
        return;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stopped = true;
    release();
  }
}

/** A sink that fills one array: a single Promise for a whole map, nothing allocated per item. */
export function collector(n: number): { sink: Sink; all: Promise<unknown[]> } {
  const results = new Array<unknown>(n);
  let remaining = n;
  let settle!: { resolve: (values: unknown[]) => void; reject: (error: unknown) => void };
  const all = new Promise<unknown[]>((resolve, reject) => (settle = { resolve, reject }));
  if (n === 0) settle.resolve(results);
  const sink: Sink = {
    resolve(index, value) {
      results[index] = value;
      if (--remaining === 0) settle.resolve(results);
    },
    reject(_index, error) {
      settle.reject(error); // the first error wins, as in Python's map
    },
  };
  return { sink, all };
}

/** One Promise per call, for imap and apply. */
/**
 * A sink for `n` tasks and their outcomes in the order they settle: each
 * result is yielded once, the first error is thrown (imapUnordered). O(1)
 * per item, where racing every pending promise was O(n) per item.
 */
export function inCompletionOrder(n: number): { sink: Sink; results: () => AsyncGenerator<unknown, void, undefined> } {
  const settled: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
  const done = new Set<number>();
  let wake: (() => void) | undefined;
  const settle = (index: number, outcome: (typeof settled)[number]) => {
    if (done.has(index)) return;
    done.add(index);
    settled.push(outcome);
    wake?.();
  };
  const sink: Sink = {
    resolve: (index, value) => settle(index, { ok: true, value }),
    reject: (index, error) => settle(index, { ok: false, error }),
  };
  async function* results(): AsyncGenerator<unknown, void, undefined> {
    for (let yielded = 0; yielded < n; ) {
      const outcome = settled[yielded];
      if (outcome === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      settled[yielded++] = undefined as never; // let the value go once yielded
      if (!outcome.ok) throw outcome.error;
      yield outcome.value;
    }
  }
  return { sink, results };
}

export function deferreds(n: number): { sink: Sink; promises: Promise<unknown>[] } {
  const settlers: { resolve: (value: unknown) => void; reject: (error: unknown) => void }[] = [];
  const promises = Array.from({ length: n }, () => new Promise<unknown>((resolve, reject) => settlers.push({ resolve, reject })));
  for (const promise of promises) promise.catch(() => undefined); // each is the caller's to observe
  const sink: Sink = {
    resolve: (index, value) => settlers[index]!.resolve(value),
    reject: (index, error) => settlers[index]!.reject(error),
  };
  return { sink, promises };
}
