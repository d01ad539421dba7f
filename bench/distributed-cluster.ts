/**
 * The loopback cluster of bench/distributed.ts: a throwaway redis-server and
 * `memjob worker` processes (each with its own temp folder, standing for one
 * machine), the `memjob cluster status` reader, and the python side
 * (bench/distributed_dask.py). Everything started here is registered in a
 * Teardown, which stops it and removes its folders however the run ends.
 *
 * Each server runs under a small sh that stops it when its stdin closes:
 * teardown closes that pipe, and so does the kernel if the benchmark itself
 * dies, even by SIGKILL, so nothing started here outlives the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { benchSources, repoRoot } from './paths.js';

export const REDIS_SERVER = process.env.BENCH_REDIS_SERVER ?? '/usr/bin/redis-server';
const cli = join(repoRoot, 'dist', 'cli', 'main.js');

// "$@" runs in the background and the shell exits with its code. A background reader of the shell's stdin (fd 3:
// a non-interactive sh gives background jobs /dev/null as stdin) sends it SIGTERM on a line or EOF there.
const GUARD = 'exec 3<&0; "$@" </dev/null & p=$!; (read _ <&3; kill -TERM "$p" 2>/dev/null) & wait "$p"';

/** What must be undone, newest first: servers to stop, folders to remove. */
export class Teardown {
  readonly #steps: (() => Promise<void>)[] = [];
  #running: Promise<void> | undefined;

  add(step: () => Promise<void>): void {
    this.#steps.push(step);
  }

  folder(prefix: string): string {
    const path = mkdtempSync(prefix);
    this.add(async () => rmSync(path, { recursive: true, force: true }));
    return path;
  }

  /**
   * A folder that goes even if this process is killed (SIGKILL included): a
   * small sh removes it once its stdin closes, which the kernel does when
   * this process dies. Everything else here lives inside it.
   */
  root(prefix: string): string {
    const path = this.folder(prefix);
    const reaper = spawn('/bin/sh', ['-c', 'read _; sleep 1; rm -rf "$1"', 'sh', path], { stdio: ['pipe', 'ignore', 'ignore'] });
    const gone = new Promise((resolve) => reaper.once('exit', resolve));
    this.add(async () => {
      reaper.stdin!.end();
      await gone;
    });
    return path;
  }

  /** Runs every step once, newest first; a second call (the signal handler's and the finally's) waits for the same. */
  run(): Promise<void> {
    this.#running ??= (async () => {
      for (const step of this.#steps.splice(0).reverse()) await step().catch((error: unknown) => process.stderr.write(`bench distributed: teardown: ${String(error)}\n`));
    })();
    return this.#running;
  }

  /** SIGINT/SIGTERM run the teardown and exit; the returned function removes the handlers. */
  install(): () => void {
    const onSignal = (signal: NodeJS.Signals) => {
      void this.run().finally(() => {
        process.stderr.write(`\nbench distributed: ${signal}, servers stopped and scratch folders removed\n`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    return () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }
}

export interface Guarded {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Stops it (SIGTERM through its guard) and resolves to its exit code; idempotent. */
  stop(): Promise<number | null>;
}

/** Starts `command args` under the guard; resolves once `ready(output)` is true, rejects if it exits first or after timeoutMs. */
async function startGuarded(teardown: Teardown, what: string, command: string, args: string[], env: NodeJS.ProcessEnv, ready: (output: string) => Promise<boolean> | boolean, timeoutMs: number): Promise<Guarded> {
  const child = spawn('/bin/sh', ['-c', GUARD, 'sh', command, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  const keep = (data: Buffer) => (text = (text + data.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const guarded: Guarded = {
    child,
    output: () => text,
    stop: async () => {
      child.stdin!.end(); // also after an exit: the guard's reader goes with it
      return exited;
    },
  };
  teardown.add(async () => void (await guarded.stop()));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`bench distributed: ${what} exited with ${exitCode} before it was ready: ${text.slice(-2000)}`);
    if (await ready(text)) return guarded;
    if (Date.now() > deadline) throw new Error(`bench distributed: ${what} not ready within ${timeoutMs} ms: ${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A redis-server on a free port of 127.0.0.1, no persistence, its own folder; resolves to its URL. */
export async function startRedis(teardown: Teardown, root: string): Promise<string> {
  const port = await freePort();
  const dir = teardown.folder(join(root, 'redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''];
  await startGuarded(teardown, 'redis-server', REDIS_SERVER, args, process.env, (out) => /Ready to accept connections/.test(out), 10_000);
  return `redis://127.0.0.1:${port}`;
}

/** One `memjob worker --jobs 1 --backend processes` with its own temp folder: one "machine". */
export async function startMemjobWorker(teardown: Teardown, broker: string, secret: string, tempFolder: string): Promise<Guarded> {
  const args = [cli, 'worker', '--broker', broker, '--jobs', '1', '--backend', 'processes', '--temp-folder', tempFolder];
  return startGuarded(teardown, 'memjob worker', process.execPath, args, { ...process.env, MEMJOB_SECRET: secret }, (out) => out.includes('serving queue'), 20_000);
}

export interface WorkerStatus {
  host: string;
  pid: number;
  downloads: { count: number; bytes: number };
  rejected: number;
}

/** `memjob cluster status --json`: the workers' own records (refreshed by their heartbeat, every 2 s). */
export async function clusterStatus(broker: string): Promise<WorkerStatus[]> {
  const { code, stdout, stderr } = await runProcess(process.execPath, [cli, 'cluster', 'status', '--broker', broker, '--json']);
  if (code !== 0) throw new Error(`bench distributed: memjob cluster status exited with ${code}: ${stderr.trim()}`);
  return (JSON.parse(stdout) as { workers: WorkerStatus[] }).workers;
}

/** Each live process's parent and CPU time so far (user + system, ms), from /proc. */
function processTable(): Map<number, { ppid: number; cpuMs: number; command: string }> {
  const table = new Map<number, { ppid: number; cpuMs: number; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after "(comm) ": state ppid ... utime (12th) stime (13th), in clock ticks of 10 ms.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      table.set(Number(entry), { ppid: Number(fields[1]), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10, command });
    } catch {
      // Gone meanwhile.
    }
  }
  return table;
}

/**
 * CPU time so far (ms) of this process's descendants, by role: memjob worker
 * services, their local workers (worker-entry.js under a service), this
 * process's own local workers, and redis-server. Exited processes no longer count,
 * so take it before and after work that starts none.
 */
export function descendantsCpu(): { services: number; serviceWorkers: number; ownWorkers: number; redis: number } {
  const table = processTable();
  const under = (pid: number, ancestor: number): boolean => {
    for (let p = table.get(pid)?.ppid; p !== undefined && p > 1; p = table.get(p)?.ppid) if (p === ancestor) return true;
    return false;
  };
  const totals = { services: 0, serviceWorkers: 0, ownWorkers: 0, redis: 0 };
  const services = [...table].filter(([pid, p]) => / worker --broker /.test(p.command) && under(pid, process.pid)).map(([pid]) => pid);
  for (const [pid, p] of table) {
    if (!under(pid, process.pid)) continue;
    if (services.includes(pid)) totals.services += p.cpuMs;
    else if (/redis-server/.test(p.command) && !p.command.startsWith('/bin/sh')) totals.redis += p.cpuMs;
    else if (/worker-entry/.test(p.command)) {
      if (services.some((service) => under(pid, service))) totals.serviceWorkers += p.cpuMs;
      else totals.ownWorkers += p.cpuMs;
    }
  }
  return totals;
}

/** The workers' heartbeat period (remote/keys.ts WORKER_HEARTBEAT_MS) plus a margin: status read after this shows what they did. */
export const STATUS_SETTLE_MS = 2_600;

function runProcess(command: string, args: string[], forward?: (line: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      forward?.(chunk);
    });
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs bench/distributed_dask.py `args` under the guard (so the python, and
 * the LocalCluster it closes on SIGTERM, go with this process); forwards its
 * progress lines to stderr and resolves to the JSON it prints.
 */
export async function runDask<T>(teardown: Teardown, python: string, args: string[]): Promise<T> {
  const script = join(benchSources, 'distributed_dask.py');
  const child = spawn('/bin/sh', ['-c', GUARD, 'sh', python, script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  teardown.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      await gone;
    }
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err = (err + chunk).slice(-20_000);
    for (const line of chunk.split('\n')) if (line.startsWith('bench distributed:')) process.stderr.write(`${line}\n`);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
  // Its stdin is no longer needed: closing it lets the guard's read end (the python has exited).
  child.stdin!.end();
  if (code !== 0) throw new Error(`${python} ${script} ${args.join(' ')} exited with ${code}: ${err.trim().split('\n').slice(-15).join('\n') || '(no output)'}`);
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`${python} ${script} printed no JSON: ${out.trim().slice(-2000) || '(nothing)'}`);
  }
}
