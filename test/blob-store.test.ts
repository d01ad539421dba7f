/** src/remote: broker options and connections, blobs in Redis, the per-machine blob cache; against a real redis-server. */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError } from '../src/errors.js';
import { BlobCache } from '../src/remote/blob-cache.js';
import { CHUNK_BYTES, chunkKey, downloadBlob, hashFileRegion, uploadBlob, type BlobInfo } from '../src/remote/blob-store.js';
import { connectBroker, describeBroker, parseBroker } from '../src/remote/broker.js';
import { failure, scratchDir } from './helpers.js';
import { startRedis, type RedisServer } from './redis-server.js';

const scratch = scratchDir('blob-store');
let server: RedisServer;
let redis: Redis;
let prefixes = 0;
/** A fresh key prefix per test, with its alive key set: tests never see each other's chunks. */
async function target(ttlMs = 60_000): Promise<{ prefix: string; aliveKey: string; ttlMs: number }> {
  const prefix = `t${++prefixes}`;
  await redis.set(`${prefix}:alive`, '1');
  return { prefix, aliveKey: `${prefix}:alive`, ttlMs };
}

async function rejection(promise: Promise<unknown>): Promise<MemjobError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(MemjobError);
    return error as MemjobError;
  }
  throw new Error('expected a MemjobError, but the promise resolved');
}

/** Open sockets and timers of this thread: a failed connect must not add any. */
function handles(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout' || kind.startsWith('TCP')).length;
}

// A region in the middle of a file: 9 MiB + 123 bytes (3 chunks, the last short) after 1000 bytes of other data.
const payload = randomBytes(9 * 1024 * 1024 + 123);
const bigFile = scratch.file('big.bin');
const OFFSET = 1000;
const payloadInfo: BlobInfo = { sha: createHash('sha256').update(payload).digest('hex'), size: payload.length };

beforeAll(async () => {
  writeFileSync(bigFile, Buffer.concat([randomBytes(OFFSET), payload, randomBytes(500)]));
  server = await startRedis();
  redis = await connectBroker(server.url, { timeoutMs: 5000, name: 'blob-store test' });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  scratch.remove();
});

describe('broker options', () => {
  it('parseBroker accepts redis:// and rediss:// URLs and plain options, refuses anything else with INVALID_ARG', () => {
    expect(parseBroker('t', 'rediss://alice:pw@example.com:6380/1')).toBe('rediss://alice:pw@example.com:6380/1');
    const options = { host: '10.0.0.1', port: 7000 };
    expect(parseBroker('t', options)).toBe(options);
    for (const bad of ['http://x', 42, 'localhost:6379', null, [], new Map(), { port: 0 }, { host: '' }]) {
      const error = failure(() => parseBroker('Parallel', bad));
      expect(error.code).toBe(ErrorCodes.INVALID_ARG);
      expect(error.message).toMatch(/^Parallel: expected "broker(\.\w+)?" to be .*, received /);
    }
    // The refused URL's password is not repeated in the message.
    expect(failure(() => parseBroker('t', 'http://u:hunter2@x')).message).not.toContain('hunter2');
  });

  it('describeBroker hides passwords', () => {
    expect(describeBroker('redis://:secret@h:6379/0')).toBe('redis://:***@h:6379/0');
    expect(describeBroker('rediss://alice:s3cr3t@h.example/2')).toBe('rediss://alice:***@h.example/2');
    expect(describeBroker('redis://h:6379/0?password=zz')).not.toContain('zz');
    expect(describeBroker('redis://h:6379')).toBe('redis://h:6379');
    expect(describeBroker({ host: 'h', port: 7000, password: 'x' })).toBe('h:7000');
    expect(describeBroker({})).toBe('localhost:6379');
  });
});

describe('connectBroker', () => {
  it('rejects with BACKEND_UNAVAILABLE within the timeout for a closed port, leaving no socket or timer', async () => {
    const closed = server.port === 1 ? 2 : 1; // ports below 1024 are never a test's redis-server
    const before = handles();
    const started = Date.now();
    const error = await rejection(connectBroker(`redis://:hunter2@127.0.0.1:${closed}`, { timeoutMs: 400, name: 'memjob worker' }));
    expect(Date.now() - started).toBeLessThan(1400);
    expect(error.code).toBe(ErrorCodes.BACKEND_UNAVAILABLE);
    expect(error.message).toMatch(new RegExp(`^memjob worker: cannot reach the Redis broker at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${closed} within 400 ms: .*ECONNREFUSED`));
    expect(error.message).not.toContain('hunter2');
    await new Promise((resolve) => setImmediate(resolve));
    expect(handles()).toBeLessThanOrEqual(before);
  });

  it('logs in with an ACL user from the URL, and fails at once on a wrong password', async () => {
    await redis.call('ACL', 'SETUSER', 'alice', 'on', '>s3cret', '~*', '+@all');
    const alice = await connectBroker(`redis://alice:s3cret@127.0.0.1:${server.port}/0`, { timeoutMs: 2000, name: 't', extra: { connectionName: 'mj-test' } });
    expect(await alice.call('ACL', 'WHOAMI')).toBe('alice');
    expect(await alice.client('GETNAME')).toBe('mj-test');
    alice.disconnect();
    const before = handles();
    const started = Date.now();
    const error = await rejection(connectBroker(`redis://alice:wrong@127.0.0.1:${server.port}/0`, { timeoutMs: 5000, name: 't' }));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error.code).toBe(ErrorCodes.BACKEND_UNAVAILABLE);
    expect(error.message).toMatch(/refused the credentials.*WRONGPASS/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(handles()).toBeLessThanOrEqual(before);
  });
});

describe('blobs in Redis', () => {
  it('round-trips a multi-chunk file region with expiring chunks', async () => {
    const info = await hashFileRegion(bigFile, OFFSET, payload.length);
    expect(info).toEqual(payloadInfo);
    const t = await target();
    const uploaded = await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, length: payload.length });
    expect(uploaded?.info).toEqual(payloadInfo);
    expect(uploaded?.keys).toEqual([0, 1, 2].map((i) => chunkKey(t.prefix, info.sha, i)));
    expect(await server.keys(`${t.prefix}:blob:*`)).toEqual([...uploaded!.keys].sort());
    for (const key of uploaded!.keys) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
    expect(await redis.strlen(uploaded!.keys[2]!)).toBe(payload.length - 2 * CHUNK_BYTES);
    const dest = scratch.file('round-trip.bin');
    await downloadBlob(redis, t.prefix, info, dest);
    expect(readFileSync(dest).equals(payload)).toBe(true);
    expect(statSync(dest).mode & 0o777).toBe(0o600);

    // Uploading the same sha again renews the chunks' TTL.
    await redis.pexpire(uploaded!.keys[1]!, 5000);
    expect(await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, info })).toEqual(uploaded);
    expect(await redis.pttl(uploaded!.keys[1]!)).toBeGreaterThan(50_000);
  });

  it('uploads a private file in one pass under an upload key, hashing as it sends; the download checks that sha', async () => {
    const t = await target();
    const uploaded = await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, length: payload.length, privateFile: true });
    expect(uploaded?.info.sha).toBe(payloadInfo.sha);
    expect(uploaded?.info.size).toBe(payload.length);
    expect(uploaded?.info.key).toMatch(/^[0-9a-f]{32}$/);
    expect(uploaded?.keys).toEqual([0, 1, 2].map((i) => chunkKey(t.prefix, uploaded!.info.key!, i)));
    const dest = scratch.file('one-pass.bin');
    await downloadBlob(redis, t.prefix, uploaded!.info, dest);
    expect(readFileSync(dest).equals(payload)).toBe(true);
    // The same key with another sha (a forged or stale info) fails the check, and leaves no file.
    const wrong = scratch.file('one-pass-wrong.bin');
    const error = await rejection(downloadBlob(redis, t.prefix, { ...uploaded!.info, sha: 'a'.repeat(64) }, wrong));
    expect(error.code).toBe(ErrorCodes.FORMAT);
    expect(existsSync(wrong)).toBe(false);
    await redis.unlink(...uploaded!.keys);
  });

  it('round-trips an empty blob (one empty chunk)', async () => {
    const empty = scratch.file('empty.bin');
    writeFileSync(empty, '');
    const t = await target();
    const uploaded = await uploadBlob(redis, t, { path: empty });
    expect(uploaded?.info).toEqual({ sha: createHash('sha256').digest('hex'), size: 0 });
    const dest = scratch.file('empty-copy.bin');
    await downloadBlob(redis, t.prefix, uploaded!.info, dest);
    expect(statSync(dest).size).toBe(0);
  });

  it('uploads nothing once the alive key is gone', async () => {
    const t = await target();
    await redis.del(t.aliveKey);
    expect(await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, length: payload.length, info: payloadInfo })).toBeNull();
    expect(await server.keys(`${t.prefix}:*`)).toEqual([]);
  });

  it('stops and deletes what it wrote when the alive key goes during the upload', async () => {
    // 12 chunks of zeros (3 pipelined batches); a second client deletes the alive key as soon as chunk 0 is set.
    const zeros = scratch.file('zeros.bin');
    writeFileSync(zeros, Buffer.alloc(12 * CHUNK_BYTES));
    const t = await target();
    await redis.config('SET', 'notify-keyspace-events', 'K$');
    const watcher = await connectBroker(server.url, { timeoutMs: 5000, name: 'watcher' });
    const killer = await connectBroker(server.url, { timeoutMs: 5000, name: 'killer' });
    try {
      const sets: string[] = [];
      watcher.on('pmessage', (_pattern: string, channel: string) => {
        sets.push(channel);
        if (sets.length === 1) void killer.del(t.aliveKey);
      });
      await watcher.psubscribe(`__keyspace@0__:${t.prefix}:blob:*`);
      expect(await uploadBlob(redis, t, { path: zeros })).toBeNull();
      expect(sets.length).toBeGreaterThan(0); // it did write, then cleaned up
      expect(await server.keys(`${t.prefix}:*`)).toEqual([]);
    } finally {
      watcher.disconnect();
      killer.disconnect();
      await redis.config('SET', 'notify-keyspace-events', '');
    }
  });

  it('refuses a region outside the file, and a source.info that does not match the file', async () => {
    expect((await rejection(hashFileRegion(bigFile, OFFSET, statSync(bigFile).size))).code).toBe(ErrorCodes.OUT_OF_RANGE);
    const t = await target();
    const wrong = { sha: 'a'.repeat(64), size: payload.length };
    const error = await rejection(uploadBlob(redis, t, { path: bigFile, offset: OFFSET, info: wrong }));
    expect(error.code).toBe(ErrorCodes.FORMAT);
    expect(error.message).toMatch(/the file changed/);
    expect(await server.keys(`${t.prefix}:blob:*`)).toEqual([]);
  });

  describe('a damaged blob fails with FORMAT and leaves no file', () => {
    const damages: [string, (keys: string[]) => Promise<unknown>, RegExp][] = [
      ['a tampered chunk', async (keys) => {
        const chunk = (await redis.getBuffer(keys[1]!))!;
        chunk[12345] = chunk[12345]! ^ 0xff;
        return redis.set(keys[1]!, chunk);
      }, /expected content hashing to [0-9a-f]{64}, received content hashing to/],
      ['a missing chunk', (keys) => redis.del(keys[2]!), /expected chunk 2 of 3 \(\d+ bytes\), received nothing/],
      ['a wrong-length chunk', (keys) => redis.append(keys[0]!, 'x'), new RegExp(`expected chunk 0 of 3 to be ${CHUNK_BYTES} bytes, received ${CHUNK_BYTES + 1}`)],
    ];
    for (const [name, damage, message] of damages) {
      it(name, async () => {
        const t = await target();
        const uploaded = await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, info: payloadInfo });
        await damage(uploaded!.keys);
        const dest = scratch.file(`damaged-${t.prefix}.bin`);
        const error = await rejection(downloadBlob(redis, t.prefix, payloadInfo, dest));
        expect(error.code).toBe(ErrorCodes.FORMAT);
        expect(error.message).toMatch(new RegExp(`^blob ${payloadInfo.sha}: `));
        expect(error.message).toMatch(message);
        expect(existsSync(dest)).toBe(false);
      });
    }
  });

  it('fails with BACKEND_UNAVAILABLE and leaves no file when the connection is closed', async () => {
    const t = await target();
    await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, info: payloadInfo });
    const closed = await connectBroker(server.url, { timeoutMs: 5000, name: 't' });
    closed.disconnect();
    const dest = scratch.file('closed.bin');
    const error = await rejection(downloadBlob(closed, t.prefix, payloadInfo, dest));
    expect(error.code).toBe(ErrorCodes.BACKEND_UNAVAILABLE);
    expect(error.message).toMatch(/^downloadBlob: the Redis broker failed: /);
    expect(existsSync(dest)).toBe(false);
  });

  it('refuses a bad BlobInfo before creating any file, and never replaces an existing file', async () => {
    const bad: unknown[] = [
      { sha: 'zz', size: 1 },
      { sha: payloadInfo.sha.toUpperCase(), size: 1 },
      { sha: payloadInfo.sha, size: -1 },
      { sha: payloadInfo.sha, size: 1.5 },
      { sha: payloadInfo.sha, size: 2 ** 60 },
      { sha: payloadInfo.sha, size: payload.length }, // over the maxBytes below
      null,
    ];
    const dest = scratch.file('never.bin');
    for (const info of bad) {
      const error = await rejection(downloadBlob(redis, 'nowhere', info as BlobInfo, dest, { maxBytes: 1024 * 1024 }));
      expect(error.code).toBe(ErrorCodes.FORMAT);
      expect(error.message).toMatch(/^downloadBlob: expected (a blob sha of 64 lowercase hex digits|blob [0-9a-f]{64} to have a size from 0 to 1048576 bytes), received /);
      expect(existsSync(dest)).toBe(false);
    }
    writeFileSync(dest, 'mine');
    expect((await rejection(downloadBlob(redis, 'nowhere', payloadInfo, dest))).code).toBe('EEXIST');
    expect(readFileSync(dest, 'utf8')).toBe('mine');
  });
});

describe('BlobCache', () => {
  it('downloads a sha once for concurrent callers and hands out a complete file', async () => {
    const t = await target();
    await uploadBlob(redis, t, { path: bigFile, offset: OFFSET, info: payloadInfo });
    const cache = new BlobCache({ tempFolder: scratch.dir });
    try {
      const paths = await Promise.all(Array.from({ length: 8 }, () => cache.get(redis, t.prefix, payloadInfo)));
      expect(new Set(paths).size).toBe(1);
      expect(basename(paths[0]!)).toBe(`${payloadInfo.sha}.mjdump`);
      expect(dirname(paths[0]!)).toBe(cache.folder);
      expect(statSync(cache.folder).mode & 0o777).toBe(0o700);
      expect(cache.stats()).toEqual({ count: 1, bytes: payload.length });
      expect(readFileSync(paths[0]!).equals(payload)).toBe(true);
      expect(readdirSync(cache.folder).filter((name) => name.includes('.part-'))).toEqual([]);
      // A later get() is a hit.
      expect(await cache.get(redis, t.prefix, payloadInfo)).toBe(paths[0]);
      expect(cache.stats().count).toBe(1);
      // A sha with another size is malformed.
      expect((await rejection(cache.get(redis, t.prefix, { ...payloadInfo, size: 5 }))).code).toBe(ErrorCodes.FORMAT);
    } finally {
      cache.close();
    }
  });

  it('keeps within maxBytes by removing the least recently used files, never a pinned one', async () => {
    const t = await target();
    const blobs: BlobInfo[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      const path = scratch.file(`small-${name}.bin`);
      writeFileSync(path, randomBytes(1024 * 1024));
      blobs.push((await uploadBlob(redis, t, { path }))!.info);
    }
    const [a, b, c, d] = blobs as [BlobInfo, BlobInfo, BlobInfo, BlobInfo];
    const cache = new BlobCache({ tempFolder: scratch.dir, maxBytes: 2.5 * 1024 * 1024 });
    try {
      const pathA = await cache.get(redis, t.prefix, a, { pin: true });
      const pathB = await cache.get(redis, t.prefix, b);
      const pathC = await cache.get(redis, t.prefix, c); // 3 MiB held: B goes, A is pinned though older
      expect([existsSync(pathA), existsSync(pathB), existsSync(pathC)]).toEqual([true, false, true]);
      cache.unpin(pathA); // 2 MiB held: nothing to remove
      expect(existsSync(pathA)).toBe(true);
      cache.pin(pathC);
      const pathD = await cache.get(redis, t.prefix, d); // A is now the only unpinned older file
      expect([existsSync(pathA), existsSync(pathC), existsSync(pathD)]).toEqual([false, true, true]);
      expect(await cache.get(redis, t.prefix, b)).toBe(pathB); // downloaded again
      expect(existsSync(pathC)).toBe(true);
      expect(cache.stats()).toEqual({ count: 5, bytes: 5 * 1024 * 1024 });
    } finally {
      cache.close();
    }
  });

  it('does not cache a failed download, and close() removes the folder', async () => {
    const cache = new BlobCache({ tempFolder: scratch.dir });
    const missing = { sha: 'b'.repeat(64), size: 10 };
    expect((await rejection(cache.get(redis, 'nothing-here', missing))).code).toBe(ErrorCodes.FORMAT);
    expect((await rejection(cache.get(redis, 'nothing-here', missing))).code).toBe(ErrorCodes.FORMAT);
    const folder = cache.folder;
    expect(readdirSync(folder)).toEqual(['.lock']);
    expect(cache.stats().count).toBe(0);
    cache.close();
    cache.close();
    expect(existsSync(folder)).toBe(false);
    expect((await rejection(cache.get(redis, 'x', missing))).code).toBe(ErrorCodes.CLOSED);
  });
});

// Last: the restart empties the server.
describe('a connection after the broker restarts', () => {
  it('reconnects by itself', async () => {
    await redis.set('before', '1');
    await server.restart();
    expect(await redis.ping()).toBe('PONG');
    expect(await redis.get('before')).toBeNull(); // a new, empty server (no persistence)
    expect(existsSync(server.dir)).toBe(true);
  });
});
