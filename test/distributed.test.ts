/**
 * The bullmq backend against a real redis-server and two real `memjob
 * worker` processes (the built CLI), each with its own temp root: two
 * machines as far as blobs are concerned.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Parallel, Pool, delayed, memmap, parallelConfig, task, type ParallelOptions, type ReturnAs } from '../src/index.js';
import { repoRoot, runCommand, scratchDir } from './helpers.js';
import { startRedis, type RedisServer } from './redis-server.js';

const SECRET = 'test-secret-0123456789abcdef0123';
const cli = join(repoRoot, 'dist', 'cli', 'main.js');
const scratch = scratchDir('distributed');
let redis: RedisServer;
let baseline: Set<string>;

/** Every worker process a test started: afterAll stops those a failed or timed-out test left behind. */
const started = new Set<ChildProcess>();

interface RemoteWorker {
  child: ChildProcess;
  root: string;
  output: () => string;
}

async function startWorker(name: string, options: { project?: string; extra?: string[]; env?: Record<string, string> } = {}): Promise<RemoteWorker> {
  const root = scratch.file(`root-${name}`);
  mkdirSync(root, { recursive: true });
  const args = [cli, 'worker', '--broker', redis.url, '--jobs', '2', '--backend', 'processes', '--temp-folder', root, ...(options.project ? ['--project', options.project] : []), ...(options.extra ?? [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, MEMJOB_SECRET: SECRET, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${name} did not start: ${text}`)), 15_000);
    const check = () => {
      if (text.includes('serving queue')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => reject(new Error(`worker ${name} exited with ${code}: ${text}`)));
  });
  return { child, root, output: () => text };
}

async function stopWorker(worker: RemoteWorker, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return worker.child.exitCode;
  const exited = new Promise<number | null>((resolve) => worker.child.once('exit', (code) => resolve(code)));
  worker.child.kill(signal);
  return exited;
}

async function status(): Promise<{ workers: { host: string; pid: number; downloads: { count: number; bytes: number }; rejected: number }[] }> {
  const result = await runCommand(process.execPath, [cli, 'cluster', 'status', '--broker', redis.url, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

/** Keys that are not worker registrations or BullMQ's per-queue housekeeping. */
async function runKeys(): Promise<string[]> {
  const housekeeping = /^memjob:memjob:(meta|id|events|stalled-check|marker)$|^memjob-worker:/;
  return (await redis.keys()).filter((key) => !housekeeping.test(key) && !baseline.has(key));
}

const parentRoot = scratch.file('parent-root');
const remote = <RA extends ReturnAs = 'array'>(extra: ParallelOptions<RA> = {}) =>
  new Parallel<RA>({ backend: 'bullmq', broker: redis.url, secret: SECRET, nJobs: 4, tempFolder: parentRoot, ...extra });

let machineA: RemoteWorker;
let machineB: RemoteWorker;
let workerProject: string;
let parentProject: string;

beforeAll(async () => {
  redis = await startRedis();
  mkdirSync(parentRoot);
  // The parent's project and the workers' copy of it live in different folders, as on two machines.
  parentProject = scratch.file('parent-project');
  workerProject = scratch.file('worker-project');
  for (const dir of [parentProject, workerProject]) {
    mkdirSync(join(dir, 'tasks'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(join(dir, 'tasks', 'sum.mjs'), `export function sum(a, b) { return a + b + ${dir === workerProject ? 1000 : 0}; }\n`);
  }
  writeFileSync(join(parentProject, 'tasks', 'only-here.mjs'), 'export function f() { return 1; }\n');
  [machineA, machineB] = await Promise.all([startWorker('a', { project: workerProject }), startWorker('b', { project: workerProject })]);
  baseline = new Set(await redis.keys());
}, 30_000);

afterEach(async () => {
  // Every run's keys are gone once its Parallel is closed, and the parent's temp root is empty.
  expect(await runKeys()).toEqual([]);
  expect(readdirSync(parentRoot)).toEqual([]);
});

afterAll(async () => {
  for (const child of started) if (child !== machineA?.child && child !== machineB?.child && child.exitCode === null) child.kill('SIGKILL');
  const codes = await Promise.all([machineA, machineB].filter(Boolean).map((w) => stopWorker(w)));
  await redis?.stop();
  // A worker stopped by SIGTERM exits 0 and removes its downloaded blobs.
  expect(codes.every((code) => code === 0)).toBe(true);
  for (const w of [machineA, machineB]) if (w) expect(readdirSync(w.root)).toEqual([]);
  scratch.remove();
}, 30_000);

function seedTask(n: number): number {
  let s = 0;
  for (let i = 0; i < 100000; i++) s += i * n;
  return s;
}

describe('Parallel on backend bullmq', () => {
  it("gives the local backends' results for the seed loop, in input order", async () => {
    const p = remote();
    try {
      const inputs = Array.from({ length: 2000 }, (_, i) => i);
      expect(await p.run(inputs.map((n) => delayed(seedTask)(n)))).toEqual(inputs.map(seedTask));
    } finally {
      await p.close();
    }
  });

  it('moves a 64 MiB array argument once per machine, and a large result back', async () => {
    const big = new Float64Array(8 * 1024 * 1024).map((_, i) => i % 7);
    const chunkSum = (a: Float64Array, c: number) => {
      const until = Date.now() + 100; // long enough for both machines to get tasks
      while (Date.now() < until);
      let s = 0;
      for (let i = c; i < a.length; i += 8) s += a[i]!;
      return s;
    };
    const expected = Array.from({ length: 8 }, (_, c) => chunkSum(big, c));
    const p = remote({ batchSize: 1 });
    try {
      expect(await p.run(expected.map((_, c) => delayed(chunkSum)(big, c)))).toEqual(expected);
      const stats = await status();
      expect(stats.workers).toHaveLength(2);
      for (const w of stats.workers) {
        expect(w.downloads.count).toBe(1); // both machines ran tasks, each downloaded the blob once
        expect(w.downloads.bytes).toBeGreaterThan(big.byteLength);
        expect(w.downloads.bytes).toBeLessThan(big.byteLength + 65536);
      }
      const [back] = await p.run([delayed((n: number) => new Float32Array(n).fill(2.5))(1 << 19)]); // 2 MiB: above maxNbytes, a blob
      expect(back).toBeInstanceOf(Float32Array);
      expect((back as Float32Array).length).toBe(1 << 19);
      expect((back as Float32Array)[12345]).toBe(2.5);
    } finally {
      await p.close();
    }
    expect((await status()).workers.map((w) => w.downloads.count)).toEqual([1, 1]); // the next run reused nothing new
  });

  it('passes a Memmap on the sharedFolder as its path: nothing is uploaded', async () => {
    const shared = scratch.file('shared');
    mkdirSync(shared);
    const m = memmap(join(shared, 'data.bin'), { mode: 'w+', dtype: 'float64', shape: [300_000] });
    m.data.fill(3);
    m.flush();
    const before = (await status()).workers.map((w) => w.downloads.count);
    const p = remote({ sharedFolder: shared });
    try {
      const sums = await p.run([0, 1].map((c) => delayed((a: { data: Float64Array; filename: string }, c: number) => `${a.filename}:${a.data[c]! * a.data.length}`)(m, c)));
      expect(sums).toEqual([`${m.filename}:900000`, `${m.filename}:900000`]);
    } finally {
      await p.close();
      m.close();
    }
    expect((await status()).workers.map((w) => w.downloads.count)).toEqual(before);
  });

  it('rebuilds a task error with its class, properties, stack, task index and the host', async () => {
    const p = remote({ batchSize: 1 });
    try {
      const error = await p
        .run([0, 1, 2].map((i) => delayed((n: number) => {
          if (n === 2) throw Object.assign(new RangeError(`bad ${n}`), { detail: { n } });
          return n;
        })(i)))
        .then(() => undefined, (e: unknown) => e as RangeError & Record<string, unknown>);
      if (error === undefined) throw new Error('the run should have failed');
      expect(error).toBeInstanceOf(RangeError);
      expect(error.message).toBe('bad 2');
      expect(error.detail).toEqual({ n: 2 });
      expect(error.taskIndex).toBe(2);
      expect(typeof error.host).toBe('string');
      expect(error.stack).toMatch(/RangeError: bad 2/);
    } finally {
      await p.close();
    }
  });

  it("resolves task() modules in the worker's project, and names host and path when one is missing", async () => {
    const p = remote();
    try {
      const sum = task<[number, number], number>(pathToFileURL(join(parentProject, 'tasks', 'sum.mjs')), 'sum');
      expect(await p.run([delayed(sum)(1, 2)])).toEqual([1003]); // the worker's copy ran
      const missing = task(pathToFileURL(join(parentProject, 'tasks', 'only-here.mjs')), 'f');
      const error = (await p.run([delayed(missing)()]).catch((e: unknown) => e)) as { code: string; message: string };
      expect(error.code).toBe('MEMJOB_ERR_TASK_NOT_FOUND');
      expect(error.message).toContain(join(workerProject, 'tasks', 'only-here.mjs'));
      expect(error.message).toMatch(/on worker host \S+/);
      const outside = task('file:///nonexistent-memjob-folder/mod.mjs', 'f');
      const error2 = (await p.run([delayed(outside)()]).catch((e: unknown) => e)) as { code: string; message: string };
      expect(error2.code).toBe('MEMJOB_ERR_TASK_NOT_FOUND');
      expect(error2.message).toContain('/nonexistent-memjob-folder/mod.mjs');
    } finally {
      await p.close();
    }
  });

  it('refuses a job signed with another secret: the run fails with UNAUTHORIZED naming the host, and the workers count it', async () => {
    const before = (await status()).workers.reduce((n, w) => n + w.rejected, 0);
    const p = remote({ secret: 'another-secret-0123456789abcdef' });
    try {
      const error = (await p.run([delayed((x: number) => x)(1)]).catch((e: unknown) => e)) as { code: string; message: string };
      expect(error.code).toBe('MEMJOB_ERR_UNAUTHORIZED');
      expect(error.message).toMatch(/memjob worker on \S+: refused a job not signed with this worker's secret/);
    } finally {
      await p.close();
    }
    expect((await status()).workers.reduce((n, w) => n + w.rejected, 0)).toBe(before + 1);
    // And a worker without a secret does not start at all.
    const refused = await runCommand(process.execPath, [cli, 'worker', '--broker', redis.url], { MEMJOB_SECRET: '' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('MEMJOB_ERR_UNAUTHORIZED');
    expect(refused.stderr).toContain('--insecure');
  });

  it("keeps Parallel's semantics: returnAs 'unordered' and 'generator', progress, parallelConfig", async () => {
    const p = remote({ returnAs: 'unordered' as const, batchSize: 1 });
    const wait = (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until);
      return ms;
    };
    try {
      const arrived: number[] = [];
      for await (const value of p.run([600, 10, 10, 10].map((ms) => delayed(wait)(ms)))) arrived.push(value as number);
      expect(arrived.at(-1)).toBe(600); // the slow one last
      expect([...arrived].sort((a, b) => a - b)).toEqual([10, 10, 10, 600]);
    } finally {
      await p.close();
    }
    const seen: number[] = [];
    const g = remote({ returnAs: 'generator' as const, progress: (done: number) => seen.push(done) });
    try {
      const inOrder: number[] = [];
      for await (const value of g.run([5, 4, 3, 2, 1].map((n) => delayed((x: number) => x * 2)(n)))) inOrder.push(value as number);
      expect(inOrder).toEqual([10, 8, 6, 4, 2]);
      expect(seen.at(-1)).toBe(5);
    } finally {
      await g.close();
    }
    const viaConfig = await parallelConfig({ backend: 'bullmq', broker: redis.url, secret: SECRET, nJobs: 2, tempFolder: parentRoot }, async () => {
      const c = new Parallel();
      try {
        expect(c.options.backend).toBe('bullmq');
        return await c.run([delayed((x: number) => x + 1)(41)]);
      } finally {
        await c.close();
      }
    });
    expect(viaConfig).toEqual([42]);
  });

  it('taskTimeout stops the task on its worker, timeout ends the run, an AbortSignal cancels it; the workers are free at once', async () => {
    const spin = (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until);
      return ms;
    };
    const p = remote({ taskTimeout: 500, batchSize: 1 });
    try {
      const error = (await p.run([10, 20_000].map((ms) => delayed(spin)(ms))).catch((e: unknown) => e)) as { code: string; taskIndex: number };
      expect(error.code).toBe('MEMJOB_ERR_TIMEOUT');
      expect(error.taskIndex).toBe(1);
    } finally {
      await p.close();
    }
    const q = remote({ timeout: 700 });
    try {
      const error = (await q.run([delayed(spin)(20_000)]).catch((e: unknown) => e)) as { code: string };
      expect(error.code).toBe('MEMJOB_ERR_TIMEOUT');
    } finally {
      await q.close();
    }
    const controller = new AbortController();
    const a = remote({ signal: controller.signal });
    try {
      const run = a.run([delayed(spin)(20_000), delayed(spin)(20_000)]);
      setTimeout(() => controller.abort(), 500);
      expect(((await run.catch((e: unknown) => e)) as Error).name).toBe('AbortError');
    } finally {
      await a.close();
    }
    // The 20 s tasks were stopped where they ran: all four local workers take new work now.
    const started = Date.now();
    const p2 = remote({ batchSize: 1 });
    try {
      expect(await p2.run([1, 2, 3, 4].map((n) => delayed(spin)(n * 100)))).toEqual([100, 200, 300, 400]);
    } finally {
      await p2.close();
    }
    expect(Date.now() - started).toBeLessThan(8_000);
  }, 30_000);

  it('Pool runs on the same workers: map, starmap, imapUnordered, and errors', async () => {
    const pool = new Pool({ backend: 'bullmq', broker: redis.url, secret: SECRET, processes: 4, tempFolder: parentRoot });
    try {
      expect(await pool.map((x: number) => x * x, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toEqual([1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
      expect(await pool.starmap((a: number, b: number) => a - b, [[5, 1], [9, 3]])).toEqual([4, 6]);
      const big = new Float64Array(400_000).fill(1.5); // above maxNbytes: a blob
      const got: number[] = [];
      for await (const v of pool.imapUnordered((c: number) => c, [3, 1, 2])) got.push(v);
      expect(got.sort()).toEqual([1, 2, 3]);
      expect(await pool.apply((a: Float64Array) => a.length * a[7]!, [big])).toBe(600_000);
      const error = (await pool.map((x: number) => { if (x === 2) throw new TypeError('two'); return x; }, [1, 2, 3]).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(TypeError);
      expect(() => new Pool({ backend: 'bullmq', broker: redis.url, secret: SECRET, maxTasksPerChild: 1 })).toThrow(/maxTasksPerChild/);
    } finally {
      pool.close();
      await pool.join();
    }
  });

  it('a forged job (unsigned, signed with another key, or of another format) is refused without running; the refusals are counted', async () => {
    const { Queue, QueueEvents } = await import('bullmq');
    const { Redis } = await import('ioredis');
    const { serialize } = await import('node:v8');
    const { createHmac } = await import('node:crypto');
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue('memjob', { connection, prefix: 'memjob' });
    const events = new QueueEvents('memjob', { connection: connection.duplicate(), prefix: 'memjob' });
    await events.waitUntilReady();
    const marker = scratch.file('forged-ran');
    // What the job would do if it ran: create a file.
    const body = serialize({
      token: 'f'.repeat(32),
      fns: [{ kind: 'source', name: 'evil', source: `function evil() { require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); }` }],
      calls: [{ fn: 0, args: [] }],
      maxNbytes: null,
      mmapMode: 'r',
      taskTimeout: null,
      blobs: [],
      from: 'attacker',
    }).toString('base64');
    const run = 'a'.repeat(32);
    await connection.set(`memjob-run:memjob:${run}:alive`, '1', 'PX', 10_000);
    const forged = [
      { v: 1, run, batch: 1, body, sig: '' },
      { v: 1, run, batch: 2, body, sig: createHmac('sha256', 'not-the-secret-0123456789').update(`job\n1\nmemjob\n${run}\n2\n${body}`).digest('hex') },
      { v: 99, run, batch: 3, body, sig: '' },
    ];
    const before = (await status()).workers.reduce((n, w) => n + w.rejected, 0);
    const reasons = new Map<string, string>();
    const failed = new Promise<void>((resolve) =>
      events.on('failed', ({ jobId, failedReason }) => {
        reasons.set(jobId, failedReason);
        if (reasons.size === forged.length) resolve();
      }),
    );
    try {
      for (const [i, job] of forged.entries()) await queue.add('batch', job, { jobId: `forged-${i}`, removeOnComplete: true, removeOnFail: true });
      await failed;
      expect(reasons.get('forged-0')).toContain('sent without a signature');
      expect(reasons.get('forged-1')).toContain("not signed with this worker's secret");
      expect(reasons.get('forged-2')).toContain('MEMJOB_ERR_VERSION_MISMATCH');
      expect(existsSync(marker)).toBe(false);
      // A worker publishes its counts as it refuses (and with every heartbeat).
      let rejected = before;
      for (let tries = 0; tries < 30 && rejected < before + 3; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        rejected = (await status()).workers.reduce((n, w) => n + w.rejected, 0);
      }
      expect(rejected).toBe(before + 3);
    } finally {
      await connection.del(`memjob-run:memjob:${run}:alive`);
      await events.close();
      await queue.close();
      connection.disconnect();
    }
  });

  it('a worker told to stop (SIGTERM) mid-run finishes its batches first and exits 0; it printed a line for each run it served', async () => {
    const p = remote({ batchSize: 1 });
    const slow = (n: number) => {
      const until = Date.now() + 600;
      while (Date.now() < until);
      return n;
    };
    try {
      const run = p.run([0, 1, 2, 3].map((n) => delayed(slow)(n)));
      await new Promise((resolve) => setTimeout(resolve, 300)); // both machines are running a batch
      const exited = stopWorker(machineB);
      expect(await run).toEqual([0, 1, 2, 3]);
      expect(await exited).toBe(0);
    } finally {
      await p.close();
    }
    expect(machineB.output()).toMatch(/\[memjob worker \S+:\d+\] serving run [0-9a-f]{8} from \S+/);
    expect(machineB.output()).toContain('stopping: finishing the batches in progress');
    const text = await runCommand(process.execPath, [cli, 'cluster', 'status', '--broker', redis.url]);
    expect(text.stdout).toMatch(/^queue 'memjob': \d+ waiting, \d+ active/m);
    expect(text.stdout).toContain(`pid ${machineA.child.pid}:`);
    expect(text.stdout).not.toContain(`pid ${machineB.child.pid}:`); // unregistered as it stopped
    machineB = await startWorker('b', { project: workerProject });
  }, 30_000);

  it('a worker SIGKILLed and another frozen (SIGSTOP) mid-run: their batches go to a third, every result arrives once, and the late answer recreates nothing', async () => {
    const machineC = await startWorker('c', { project: workerProject });
    const p = remote({ batchSize: 1 });
    const slow = (n: number) => {
      const until = Date.now() + 400;
      while (Date.now() < until);
      return new Float64Array(300_000).fill(n); // above maxNbytes: a late answer would upload a blob
    };
    try {
      const run = p.run(Array.from({ length: 10 }, (_, i) => delayed(slow)(i)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await stopWorker(machineA, 'SIGKILL');
      machineB.child.kill('SIGSTOP');
      const results = (await run) as Float64Array[];
      expect(results.map((r) => r[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await p.close();
      machineB.child.kill('SIGCONT');
    }
    // B's batch ends now, after its run: what it tries to upload or report must not reappear (afterEach checks the keys).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await stopWorker(machineC)).toBe(0);
    expect(readdirSync(machineC.root)).toEqual([]);
    machineA = await startWorker('a', { project: workerProject });
  }, 30_000);
});

describe('bullmq backend without a broker', () => {
  it('talks TLS to a rediss:// broker with a private CA (the worker trusts it through NODE_EXTRA_CA_CERTS, the parent through the tls.ca of ioredis options)', async () => {
    const dir = scratch.file('tls');
    mkdirSync(dir);
    const openssl = (...args: string[]) => expect(spawnSync('openssl', args, { cwd: dir }).status).toBe(0);
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=memjob-test-ca');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'ext.cnf');
    const tls = await startRedis({ tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') } });
    const env = { MEMJOB_SECRET: SECRET, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') };
    // This one runs its tasks on worker threads: the blob is mapped in a thread as in a child process.
    const child = spawn(process.execPath, [cli, 'worker', '--broker', tls.url, '--jobs', '1', '--backend', 'threads', '--temp-folder', scratch.file('root-a')], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    started.add(child);
    try {
      await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('serving queue') && resolve()));
      expect(tls.url).toMatch(/^rediss:/);
      const p = new Parallel({ backend: 'bullmq', broker: { host: '127.0.0.1', port: tls.port, tls: { ca: readFileSync(join(dir, 'ca.pem')) } }, secret: SECRET });
      try {
        // A worker thread shares the service's pid (a child process would not).
        expect(await p.run([delayed((a: Float64Array) => [a.length, process.pid])(new Float64Array(200_000))])).toEqual([[200_000, child.pid]]);
      } finally {
        await p.close();
      }
    } finally {
      const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await tls.stop();
    }
  });

  it('fails with BACKEND_UNAVAILABLE within brokerTimeout when nothing listens', async () => {
    const p = new Parallel({ backend: 'bullmq', broker: 'redis://127.0.0.1:1', secret: SECRET, brokerTimeout: 1000 });
    const started = Date.now();
    const error = (await p.run([delayed((x: number) => x)(1)]).catch((e: unknown) => e)) as { code: string; message: string };
    expect(error.code).toBe('MEMJOB_ERR_BACKEND_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(4000);
    await p.close();
  });

  it('fails with BACKEND_UNAVAILABLE within brokerTimeout when the broker dies mid-run', async () => {
    const own = await startRedis({ password: 'redis-password-1' }); // AUTH: the password travels in the URL, for the parent and the worker
    const child = spawn(process.execPath, [cli, 'worker', '--broker', own.url, '--jobs', '1', '--temp-folder', scratch.file('root-a')], {
      env: { ...process.env, MEMJOB_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    started.add(child);
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('serving queue') && resolve()));
    const p = new Parallel({ backend: 'bullmq', broker: own.url, secret: SECRET, nJobs: 1, brokerTimeout: 2000 });
    try {
      const slow = (n: number) => {
        const until = Date.now() + 200;
        while (Date.now() < until);
        return n;
      };
      const run = p.run(Array.from({ length: 50 }, (_, i) => delayed(slow)(i)));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const killed = Date.now();
      await own.kill('SIGKILL');
      const error = (await run.catch((e: unknown) => e)) as { code: string };
      expect(error.code).toBe('MEMJOB_ERR_BACKEND_UNAVAILABLE');
      expect(Date.now() - killed).toBeLessThan(10_000);
      // The broker comes back (empty: no persistence): the worker reconnects and serves the next Parallel.
      await own.restart();
      const again = new Parallel({ backend: 'bullmq', broker: own.url, secret: SECRET, nJobs: 1, brokerTimeout: 8000 });
      try {
        expect(await again.run([delayed((x: number) => x * 3)(7)])).toEqual([21]);
      } finally {
        await again.close();
      }
    } finally {
      await p.close();
      // A worker told to stop while its broker is gone exits anyway (nothing it could finish would reach the broker).
      const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await own.stop();
    }
  }, 30_000);
});
