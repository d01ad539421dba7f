/**
 * A real redis-server for tests: its own port, its own folder under tmp/, no
 * persistence. It runs under a small sh watchdog that kills it when this
 * process's pipe to the watchdog closes, so a test process that dies (even by
 * SIGKILL) leaves no redis-server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { repoRoot } from './helpers.js';

export interface RedisServer {
  port: number;
  /** redis://[:password@]127.0.0.1:<port> */
  url: string;
  dir: string;
  /** Stops the server and removes its folder; idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) to redis-server and waits for it to be gone; the folder stays, for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (killing it first if it runs). */
  restart(): Promise<void>;
  /** Keys matching `pattern` (default '*'), read by a short-lived client. */
  keys(pattern?: string): Promise<string[]>;
}

export const REDIS_SERVER = process.env.MEMJOB_TEST_REDIS_SERVER ?? '/usr/bin/redis-server';

// "$@" is redis-server and its arguments. Its pid goes to stderr (redis logs to stdout); the shell exits with it.
// A background reader of fd 3 (this process's stdin pipe) is the watchdog: kill() writes a line to stand it down
// before stopping the server itself; a pipe closed without a line means this process died (or the start failed),
// so the watchdog kills the server and removes its folder.
const WATCHDOG =
  'exec 3<&0; "$@" </dev/null & p=$!; echo "redis-pid=$p" >&2; ' +
  '(if ! read _ <&3; then kill -9 "$p" 2>/dev/null; sleep 0.2; rm -rf "$MEMJOB_TEST_REDIS_DIR"; fi) & wait "$p"';

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

/** Whether something answers a RESP PING on the port (+PONG, or -NOAUTH when a password is set); over TLS when given its CA. */
function answersPing(port: number, ca: Buffer | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = ca === undefined ? connect(port, '127.0.0.1') : tlsConnect({ port, host: '127.0.0.1', ca });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once(ca === undefined ? 'connect' : 'secureConnect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.once('data', (data: Buffer) => done(/^(\+PONG|-NOAUTH)/.test(data.toString())));
  });
}

interface Running {
  shell: ChildProcess;
  pid: number;
  exited: Promise<void>;
}

async function launch(port: number, dir: string, args: string[], ca?: Buffer): Promise<Running> {
  const shell = spawn('/bin/sh', ['-c', WATCHDOG, 'sh', REDIS_SERVER, ...args], {
    cwd: dir,
    env: { ...process.env, MEMJOB_TEST_REDIS_DIR: dir },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  let exitedEarly = false;
  const exited = new Promise<void>((resolve) =>
    shell.once('exit', () => {
      exitedEarly = true;
      resolve();
    }),
  );
  let pid = 0;
  // Only the tail is kept (for an error message); the pid is taken as soon as it is printed.
  const collect = (data: Buffer): void => {
    output = (output + data.toString()).slice(-20_000);
    if (pid === 0) pid = Number(/redis-pid=(\d+)\n/.exec(output)?.[1] ?? 0);
  };
  shell.stdout!.on('data', collect);
  shell.stderr!.on('data', collect);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (pid > 0 && (await answersPing(port, ca))) return { shell, pid, exited };
    if (exitedEarly || Date.now() > deadline) {
      shell.stdin!.end(); // the watchdog kills a server that started but does not answer
      if (!exitedEarly) shell.kill('SIGKILL');
      throw new Error(`redis-server did not start on port ${port} (${exitedEarly ? 'it exited' : 'no PING answer within 10 s'}): ${output.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts redis-server on a free port of 127.0.0.1, with its own folder under tmp/ and no persistence; resolves once it answers PING. */
export async function startRedis(options: { password?: string; args?: string[]; tls?: { cert: string; key: string; ca: string } } = {}): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) {
    // Never a silent skip: the broker tests must run where CI says they do.
    throw new Error(`startRedis: expected redis-server at ${REDIS_SERVER}, received nothing there; install it (apt-get install redis-server) or set MEMJOB_TEST_REDIS_SERVER`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(repoRoot, 'tmp', 'test-redis-'));
  const { tls } = options;
  // With tls: only the TLS port listens (clients need not present a certificate).
  const listen = tls === undefined ? ['--port', String(port)] : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no'];
  const ca = tls === undefined ? undefined : readFileSync(tls.ca);
  const args = [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''];
  if (options.password !== undefined) args.push('--requirepass', options.password);
  args.push(...(options.args ?? []));
  let running: Running | undefined;
  let stopped = false;
  try {
    running = await launch(port, dir, args, ca);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const current = running;
    if (current === undefined) return;
    running = undefined;
    // First the line that stands the watchdog down (Node destroys a child's stdin when it exits, so not after).
    current.shell.stdin!.end('stopping\n');
    try {
      process.kill(current.pid, signal);
    } catch {
      // Already gone.
    }
    await current.exited;
  };
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  return {
    port,
    url: `${tls === undefined ? 'redis' : 'rediss'}://${auth}127.0.0.1:${port}`,
    dir,
    kill,
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      if (stopped) throw new Error('restart: expected a server not stopped, received one stopped');
      await kill('SIGKILL');
      running = await launch(port, dir, args, ca);
    },
    async keys(pattern = '*') {
      const client = new Redis({ port, host: '127.0.0.1', password: options.password, lazyConnect: true, maxRetriesPerRequest: 0, ...(ca === undefined ? {} : { tls: { ca } }) });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return (await client.keys(pattern)).sort();
      } finally {
        client.disconnect();
      }
    },
  };
}
