// Lock and Value files that were damaged: a lock cell holding something
// other than 0 or 1 fails with MEMJOB_ERR_FORMAT instead of spinning forever,
// a file truncated before a worker maps it fails with a code instead of
// SIGBUS, and a process blocked in acquire() still dies of SIGTERM at once.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, truncateSync, writeSync, openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCodes, Lock, MemjobError, Parallel, Value, closeSharedWorkers, delayed } from '../src/index.js';
import { SHARED_REF, type SharedRef } from '../src/transport/shared-objects.js';
import { childPids, isAlive, rejection, waitFor, workerBackends } from './fixtures/parallel-helpers.js';
import { failure, repoRoot, scratchDir } from './helpers.js';

const scratch = scratchDir('lock-safety');
afterAll(async () => {
  await closeSharedWorkers();
  await waitFor(() => childPids().length === 0, 5000, 'the workers to exit');
  scratch.remove();
});

function fileOf(shared: Lock | Value): string {
  return (shared as unknown as { [SHARED_REF](): SharedRef })[SHARED_REF]().path;
}

/** Writes an int32 straight into the file, as a stray writer would: the shared mapping sees it. */
function poke(path: string, byteOffset: number, value: number): void {
  const fd = openSync(path, 'r+');
  try {
    const bytes = Buffer.alloc(4);
    bytes.writeInt32LE(value);
    writeSync(fd, bytes, 0, 4, byteOffset);
  } finally {
    closeSync(fd);
  }
}

describe('a corrupt lock cell', () => {
  it('acquire (with or without a timeout), acquireAsync, release and withLock fail with MEMJOB_ERR_FORMAT naming the value', async () => {
    const lock = new Lock();
    try {
      poke(fileOf(lock), 0, 2);
      for (const attempt of [() => lock.acquire(), () => lock.acquire({ timeout: 50 }), () => lock.acquire({ blocking: false }), () => lock.release(), () => lock.withLock(() => 1)]) {
        const error = failure(attempt);
        expect(error.code).toBe(ErrorCodes.FORMAT);
        expect(error.message).toMatch(/expected the lock's shared cell to hold 0 \(free\) or 1 \(held\), received 2/);
      }
      const asyncError = await rejection(lock.acquireAsync());
      expect(asyncError).toBeInstanceOf(MemjobError);
      expect(asyncError.code).toBe(ErrorCodes.FORMAT);
      // A negative value too, and a lock that was free and then overwritten while another party waited on it.
      poke(fileOf(lock), 0, -7);
      expect(failure(() => lock.acquire()).message).toContain('received -7');
      poke(fileOf(lock), 0, 1);
      setTimeout(() => poke(fileOf(lock), 0, 3), 50);
      expect((await rejection(lock.acquireAsync())).code).toBe(ErrorCodes.FORMAT);
      // Repaired, it works again; releasing a free lock is still the caller's mistake.
      poke(fileOf(lock), 0, 0);
      expect(lock.acquire()).toBe(true);
      lock.release();
      expect(failure(() => lock.release()).code).toBe(ErrorCodes.INVALID_ARG);
    } finally {
      lock.close();
    }
  });

  it("a Value's lock cell is checked the same way", () => {
    const value = new Value('int32', 5);
    try {
      poke(fileOf(value), 0, 2);
      expect(failure(() => value.getLock().acquire()).code).toBe(ErrorCodes.FORMAT);
      expect(value.value).toBe(5);
    } finally {
      value.close();
    }
  });
});

describe.each(workerBackends)('%s: a shared file truncated before a worker maps it', (backend) => {
  const readValue = (v: Value<'int32'>) => v.get();
  const takeLock = (lock: Lock) => lock.acquire({ timeout: 10 });

  it('fails the task with MEMJOB_ERR_OUT_OF_RANGE, not a crashed worker, and the worker keeps working', async () => {
    await using p = new Parallel({ backend, nJobs: 2, batchSize: 1 });
    const value = new Value('int32', 41);
    const lock = new Lock();
    try {
      expect(await p.run([delayed(readValue)(value)])).toEqual([41]);
      // A fresh Value (never mapped by a worker), truncated to nothing; the parent does not touch its memory again.
      const cut = new Value('int32', 7);
      truncateSync(fileOf(cut), 0);
      const error = await rejection(p.run([delayed(readValue)(cut)]));
      expect(error.code).toBe(ErrorCodes.OUT_OF_RANGE);
      expect(error.message).toMatch(/expected a file of at least \d+ bytes, received .* of 0 bytes/);
      cut.close();
      const cutLock = new Lock();
      truncateSync(fileOf(cutLock), 2);
      expect((await rejection(p.run([delayed(takeLock)(cutLock)]))).code).toBe(ErrorCodes.OUT_OF_RANGE);
      cutLock.close();
      expect(await p.run([delayed(readValue)(value), delayed(takeLock)(lock)])).toEqual([41, true]);
    } finally {
      value.close();
      lock.close();
    }
  });
});

describe('a process blocked in acquire()', () => {
  it('dies of SIGTERM at once (no listener stands in the way), and its temp folder is removed by the tracker', async () => {
    const root = scratch.file('blocked-root');
    mkdirSync(root);
    const script = fileURLToPath(new URL('./fixtures/lock-blocked-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: repoRoot,
      env: { ...process.env, MEMJOB_TEMP_FOLDER: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.on('exit', (_code, signal) => resolve({ signal, at: performance.now() })),
    );
    const info = await new Promise<{ pid: number; tracker: number }>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
      });
      void exited.then(() => reject(new Error(`the child ended early: ${out} ${stderr}`)));
    });
    expect(readdirSync(root)).toHaveLength(1);
    // Let it get past the spinning into the sleeping part of acquire().
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isAlive(info.pid)).toBe(true);
    const sent = performance.now();
    child.kill('SIGTERM');
    const { signal, at } = await exited;
    expect(signal).toBe('SIGTERM');
    expect(at - sent).toBeLessThan(3000);
    await waitFor(() => readdirSync(root).length === 0, 5000, 'the tracker to remove the folder');
    await waitFor(() => !isAlive(info.tracker), 5000, 'the tracker to exit');
    expect(stderr).toBe('');
  });
});
