/**
 * Memory, joblib's disk cache: hits and misses counted on real files,
 * results mapped on reload, keys by content, concurrent and killed writers
 * in real child processes, damaged entries, and reduceSize's limits.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createXXHash128 } from 'hash-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { Memory, MemjobError, NDArray, Parallel, delayed, expiresAfter, hash, hasShareableMemory, memmap, task } from '../src/index.js';
import { Xxh128 } from '../src/native.js';
import { repoRoot, runCommand, runTsChild, scratchDir } from './helpers.js';

const scratch = scratchDir('memory');
afterAll(() => scratch.remove());
let folders = 0;
const freshLocation = () => scratch.file(`cache-${folders++}`);

/** Collects the warnings emitted while `fn` runs, by code. */
async function warningsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const codes: string[] = [];
  const listener = (w: Error & { code?: string }) => codes.push(w.code ?? w.name);
  process.on('warning', listener);
  try {
    await fn();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', listener);
  }
  return codes;
}

describe('Memory', () => {
  it('computes a call once, then loads it; other arguments are other entries', async () => {
    const memory = new Memory(freshLocation());
    let calls = 0;
    const square = memory.cache(function square(x: number, label: string) {
      calls++;
      return { value: x * x, label };
    });
    expect(await square(3, 'a')).toEqual({ value: 9, label: 'a' });
    expect(await square(3, 'a')).toEqual({ value: 9, label: 'a' });
    expect(calls).toBe(1);
    expect(await square(4, 'a')).toEqual({ value: 16, label: 'a' });
    expect(await square(3, 'b')).toEqual({ value: 9, label: 'b' });
    expect(calls).toBe(3);
    expect(await square.checkCallInCache(3, 'a')).toBe(true);
    expect(await square.checkCallInCache(5, 'a')).toBe(false);
    expect(memory.entries().map((e) => e.function)).toEqual(['square', 'square', 'square']);
    // Folders 0700, files 0600: a cache holds the user's data.
    const entry = memory.entries()[0]!;
    expect(statSync(entry.path).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(entry.path)) expect(statSync(join(entry.path, name)).mode & 0o777, name).toBe(0o600);
    square.clear();
    expect(memory.entries()).toEqual([]);
    await square(3, 'a');
    expect(calls).toBe(4);
  });

  it("verbose prints joblib's lines on stderr; compress stores compressed entries", async () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      const memory = new Memory(freshLocation(), { verbose: 1, compress: 'gzip' });
      const loud = memory.cache(function loud(x: number) {
        return new Float64Array(10_000).fill(x);
      });
      await loud(1);
      await loud(1);
      const entry = memory.entries()[0]!;
      expect(entry.size).toBeLessThan(10_000); // 80,000 bytes of one value, gzipped
    } finally {
      process.stderr.write = write;
    }
    expect(lines.join('')).toMatch(/^\[Memory\] Calling loud\.\.\.\n\[Memory\] \d+\.\ds, \d+\.\dmin: loud done\n\[Memory\] \d+\.\ds, \d+\.\dmin: Loading loud\.\.\.\n$/);
  });

  it('awaits async functions, and passes calls straight through with Memory(null)', async () => {
    let calls = 0;
    const slowDouble = async (x: number) => {
      calls++;
      await new Promise((r) => setTimeout(r, 1));
      return x * 2;
    };
    const cached = new Memory(freshLocation()).cache(slowDouble);
    expect([await cached(2), await cached(2)]).toEqual([4, 4]);
    expect(calls).toBe(1);
    const none = new Memory(null);
    const direct = none.cache(slowDouble);
    expect([await direct(2), await direct(2)]).toEqual([4, 4]);
    expect(calls).toBe(3);
    expect(none.location).toBeNull();
    expect(none.entries()).toEqual([]);
    expect(await (await direct.callAndShelve(5)).get()).toBe(10);
  });

  it("maps the arrays of a cached result with mmapMode: 'r'", async () => {
    const memory = new Memory(freshLocation(), { mmapMode: 'r' });
    const ramp = memory.cache((n: number) => new NDArray(Float64Array.from({ length: n }, (_, i) => i / 2)));
    const first = await ramp(1000);
    expect(hasShareableMemory(first)).toBe(false); // the computed result itself, as joblib returns it
    const again = await ramp(1000);
    expect(hasShareableMemory(again)).toBe(true);
    expect(again.get(999)).toBe(499.5);
    const shelved = await ramp.callAndShelve(1000);
    expect(shelved.path).toBe(memory.entries()[0]!.path);
    expect(hasShareableMemory(await shelved.get())).toBe(true);
    shelved.clear();
    await expect(shelved.get()).rejects.toMatchObject({ code: 'MEMJOB_ERR_CACHE_MISS' });
  });

  it('keys arrays by content, dtype, shape and order, not by identity', async () => {
    const memory = new Memory(freshLocation());
    const seen: unknown[] = [];
    const record = memory.cache((a: unknown) => {
      seen.push(a);
      return seen.length;
    });
    const base = new Float64Array([1, 2, 3, 4]);
    expect(await record(base)).toBe(1);
    expect(await record(new Float64Array([1, 2, 3, 4]))).toBe(1); // another buffer, same content
    expect(await record(new NDArray(new Float64Array([1, 2, 3, 4])))).toBe(1); // a 1-d NDArray is that array
    expect(await record(new Float64Array([1, 2, 3, 5]))).toBe(2); // one element differs
    expect(await record(new Float32Array([1, 2, 3, 4]))).toBe(3); // dtype
    expect(await record(new NDArray(new Float64Array([1, 2, 3, 4]), { shape: [2, 2] }))).toBe(4); // shape
    expect(await record(new NDArray(new Float64Array([1, 2, 3, 4]), { shape: [2, 2], order: 'F' }))).toBe(5); // order
    // Plain values: key order does not matter, -0 is not 0, a BigInt is not a number, NaNs are one value.
    expect(await record({ a: 1, b: [NaN] })).toBe(6);
    expect(await record({ b: [Number.NaN], a: 1 })).toBe(6);
    expect(await record(0)).toBe(7);
    expect(await record(-0)).toBe(8);
    expect(await record(0n)).toBe(9);
    expect(await record(new Map([['x', 1], ['y', 2]]))).toBe(10);
    expect(await record(new Map([['y', 2], ['x', 1]]))).toBe(10);
    expect(await record(new Set([1, 2]))).toBe(11);
    expect(await record(new Set([2, 1]))).toBe(11);
    const cycle: unknown[] = [1];
    cycle.push(cycle);
    expect(await record(cycle)).toBe(12);
    expect(await record(cycle)).toBe(12);    // hash(), joblib.hash's counterpart, is the same encoding: 32 hex digits.
    const digest = await hash({ x: new Float64Array([1, 2]), y: 'z' });
    expect(digest).toMatch(/^[0-9a-f]{32}$/);
    expect(await hash({ y: 'z', x: new NDArray(new Float64Array([1, 2])) })).toBe(digest);
    expect(await hash({ y: 'z', x: new Float64Array([1, 3]) })).not.toBe(digest);
    await expect(hash(new (class Point {})())).rejects.toMatchObject({ code: 'MEMJOB_ERR_UNSUPPORTED_VALUE', message: expect.stringMatching(/^hash\(\): cannot hash value: an instance of Point/) });
    await expect(record(Symbol('s'))).rejects.toMatchObject({ code: 'MEMJOB_ERR_UNSUPPORTED_VALUE' });
    // The addon's XXH128 is xxHash's: the same digests as another implementation (hash-wasm's WebAssembly build).
    const wasm = await createXXHash128();
    for (const size of [0, 1, 100, 70_000, 3 << 20]) {
      const bytes = Buffer.alloc(size, size % 251);
      const native = new Xxh128();
      native.update(bytes.subarray(0, size >> 1));
      native.update(bytes.subarray(size >> 1));
      wasm.init();
      wasm.update(bytes);
      expect(native.digest(), String(size)).toBe(wasm.digest('hex'));
    }
  });

  it('hashes a Memmap by content, or by its file with memmapIdentity', async () => {
    const memory = new Memory(freshLocation());
    let calls = 0;
    const total = memory.cache((m: { toArray(): Float64Array }) => {
      calls++;
      return m.toArray().reduce((a, b) => a + b, 0);
    });
    const files = ['m1.bin', 'm2.bin'].map((name) => memmap(scratch.file(name), { mode: 'w+', dtype: 'float64', shape: [100] }));
    for (const m of files) for (let i = 0; i < 100; i++) m.set(i, i);
    expect(await total(files[0]!)).toBe(4950);
    expect(await total(files[1]!)).toBe(4950);
    expect(calls).toBe(1); // same content in two files: one entry
    expect(await total(new NDArray(Float64Array.from({ length: 100 }, (_, i) => i)) as never)).toBe(4950);
    expect(calls).toBe(1);
    const byFile = new Memory(freshLocation(), { memmapIdentity: true }).cache((m: { size: number }) => {
      calls++;
      return m.size;
    });
    await byFile(files[0]!);
    await byFile(files[1]!);
    expect(calls).toBe(3); // two files, two identities
    for (const m of files) m.close();
  });

  it('ignore leaves named parameters out of the key: positional, destructured options, rest', async () => {
    const memory = new Memory(freshLocation());
    let calls = 0;
    function extract(raw: number[], verbose: boolean, { window, progress }: { window: number; progress?: boolean }, ...extra: unknown[]) {
      calls++;
      return [raw.length, window, verbose, progress, extra.length];
    }
    const cached = memory.cache(extract, { ignore: ['verbose', 'progress', 'extra'] });
    await cached([1, 2], true, { window: 3, progress: true }, 'a');
    await cached([1, 2], false, { window: 3 }, 'b', 'c');
    expect(calls).toBe(1);
    await cached([1, 2], false, { window: 4 });
    expect(calls).toBe(2);
    expect(() => memory.cache(extract, { ignore: ['nope'] })).toThrow(/received 'nope'; it has 'raw', 'verbose', 'window', 'progress', 'extra'/);
  });

  it('clears the entries of a function whose source changed, with a warning', async () => {
    const location = freshLocation();
    const v1 = function step(x: number) {
      return x + 1;
    };
    const v2 = function step(x: number) {
      return x + 2;
    };
    expect(await new Memory(location).cache(v1)(1)).toBe(2);
    expect(await new Memory(location).cache(v1)(1)).toBe(2);
    let result: unknown;
    const warnings = await warningsDuring(async () => (result = await new Memory(location).cache(v2)(1)));
    expect(result).toBe(3);
    expect(warnings).toContain('MEMJOB_CACHE_FUNCTION_CHANGED');
    expect(new Memory(location).entries()).toHaveLength(1);
  });

  it('treats a damaged entry as a miss, with a warning, and still returns a result it could not store', async () => {
    const memory = new Memory(freshLocation());
    let calls = 0;
    const make = memory.cache((n: number) => {
      calls++;
      return new Float64Array(n).fill(n);
    });
    await make(1000);
    const [entry] = memory.entries();
    truncateSync(join(entry!.path, 'output.dump'), 100);
    let value: unknown;
    expect(await warningsDuring(async () => (value = await make(1000)))).toContain('MEMJOB_CACHE_CORRUPT');
    expect(value).toEqual(new Float64Array(1000).fill(1000));
    expect(calls).toBe(2);
    writeFileSync(join(memory.entries()[0]!.path, 'metadata.json'), '{not json');
    expect(await warningsDuring(() => make(1000))).toContain('MEMJOB_CACHE_CORRUPT');
    // A value dump() refuses cannot be stored: the call still returns it.
    const odd = memory.cache(() => new (class Point {})());
    expect(await warningsDuring(() => odd())).toContain('MEMJOB_CACHE_WRITE_FAILED');
  });

  it('reduceSize removes least recently used entries first, by bytes, items and age; validate and expiresAfter', async () => {
    const memory = new Memory(freshLocation());
    const block = memory.cache((i: number) => new Uint8Array(64 * 1024).fill(i));
    for (let i = 0; i < 5; i++) await block(i);
    // Entry i was last used 5 - i hours ago: entry 0 is the least recently used.
    const now = Date.now() / 1000;
    const byValue = new Map<number, string>();
    for (let i = 0; i < 5; i++) {
      const path = (await block.callAndShelve(i)).path!;
      byValue.set(i, path);
      utimesSync(path, now - (5 - i) * 3600, now - (5 - i) * 3600);
    }
    expect(memory.reduceSize({ itemsLimit: 4 }).removed).toBe(1);
    expect(existsSync(byValue.get(0)!)).toBe(false);
    expect(memory.reduceSize({ ageLimit: { hours: 3, minutes: 30 } }).removed).toBe(1); // entry 1, used 4 hours ago
    const size = memory.entries()[0]!.size;
    expect(memory.reduceSize({ bytesLimit: size * 2 }).removed).toBe(1);
    expect(memory.entries().map((e) => e.path).sort()).toEqual([byValue.get(3), byValue.get(4)].sort());
    expect(() => memory.reduceSize({ bytesLimit: 'lots' })).toThrow(MemjobError);
    // validate: an entry it refuses is computed again.
    let calls = 0;
    const stamp = memory.cache((x: number) => ++calls + x, { validate: expiresAfter({ seconds: 3600 }) });
    await stamp(1);
    await stamp(1);
    expect(calls).toBe(1);
    const never = memory.cache((x: number) => ++calls + x, { validate: () => false });
    await never(1);
    await never(1);
    expect(calls).toBe(3);
  });

  it('four processes computing one key at once leave one valid entry', { timeout: 60_000 }, async () => {
    const location = freshLocation();
    const children = [0, 1, 2, 3].map(() => runTsChild('memory-child.ts', [location, 'race', '200000']));
    // All four wait at the start line, then go at once.
    const ready = () => readdirSync(scratch.dir).filter((n) => n.startsWith(`${location.split('/').pop()}.ready-`)).length;
    while (ready() < 4) await new Promise((r) => setTimeout(r, 10));
    writeFileSync(`${location}.start`, '');
    const results = await Promise.all(children);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const outputs = results.map((r) => JSON.parse(r.stdout.trim()) as { computed: boolean; first: number; length: number });
    for (const o of outputs) expect(o).toMatchObject({ first: 2, length: 200000 });
    const memory = new Memory(location);
    expect(memory.entries()).toHaveLength(1);
    const folder = join(location, memory.entries()[0]!.functionFolder);
    expect(readdirSync(folder).filter((n) => n.startsWith('.'))).toEqual([]); // no temp folder left
    const after = await runTsChild('memory-child.ts', [location, 'race', '200000']);
    expect(JSON.parse(after.stdout.trim())).toMatchObject({ computed: false, first: 2 });
  });

  it('a writer killed mid-write leaves no visible entry', { timeout: 60_000 }, async () => {
    const location = freshLocation();
    const script = fileURLToPath(new URL('./fixtures/memory-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, location, 'slow-write', String(2 ** 26)], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Kill it once its temp folder exists (it is writing 512 MiB).
    const deadline = Date.now() + 30_000;
    const tempExists = () => readdirSync(location, { recursive: true }).some((n) => String(n).includes('.tmp-'));
    while (Date.now() < deadline && !(existsSync(location) && tempExists())) await new Promise((r) => setTimeout(r, 2));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const memory = new Memory(location);
    expect(memory.entries()).toEqual([]);
  });

  it('memjob cache ls, size and clear', { timeout: 60_000 }, async () => {
    const location = freshLocation();
    const memory = new Memory(location);
    const twice = memory.cache(function twice(x: number) {
      return new Float64Array(1000).fill(x * 2);
    });
    await twice(1);
    await twice(2);
    writeFileSync(join(location, 'notes.txt'), 'not ours');
    const cli = (...args: string[]) => runCommand(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'cache', ...args]);
    const ls = await cli('ls', location, '--json');
    expect(ls.code, ls.stderr).toBe(0);
    const listed = JSON.parse(ls.stdout) as { function: string; size: number }[];
    expect(listed.map((e) => e.function)).toEqual(['twice', 'twice']);
    expect(listed.every((e) => e.size >= 8000)).toBe(true);
    const table = await cli('ls', location);
    expect(table.stdout).toMatch(/function\s+key\s+size\s+created\s+last used\s+took/);
    const size = await cli('size', location, '--json');
    expect(JSON.parse(size.stdout)).toMatchObject({ entries: 2, functions: 1 });
    const cleared = await cli('clear', location);
    expect(cleared.stdout).toMatch(/removed 2 cached results/);
    expect(memory.entries()).toEqual([]);
    expect(existsSync(join(location, 'notes.txt'))).toBe(true); // only what memjob wrote goes
    const missing = await cli('ls', join(location, 'nope'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/expected a cache folder/);
  });

  it('Parallel workers share one cache: each distinct call is stored once, and a second run loads them all', { timeout: 60_000 }, async () => {
    const location = freshLocation();
    const cached = task<[string, number], { n: number; last: number; computed: number }>(new URL('./fixtures/memory-tasks.ts', import.meta.url), 'cachedSquares');
    const calls = Array.from({ length: 24 }, (_, i) => delayed(cached)(location, i % 6));
    const parallel = new Parallel({ nJobs: 2, backend: 'processes' });
    const threads = new Parallel({ nJobs: 2, backend: 'threads' });
    try {
      const first = await parallel.run(calls);
      expect(first.map((r) => r.last)).toEqual(calls.map((_, i) => (999 + (i % 6)) ** 2));
      const memory = new Memory(location);
      expect(memory.entries()).toHaveLength(6);
      const folder = join(location, memory.entries()[0]!.functionFolder);
      expect(readdirSync(folder).filter((n) => n.startsWith('.'))).toEqual([]);
      const second = await threads.run(calls);
      expect(second.every((r) => r.computed === 0)).toBe(true);
    } finally {
      await Promise.all([parallel.close(), threads.close()]);
    }
  });
});
