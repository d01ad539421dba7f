/**
 * The Redis broker the bullmq backend and `memjob worker` talk through: the
 * `broker` option (a redis:// or rediss:// URL, or ioredis options), how it
 * is named in messages (never with its password), and a connection that is
 * known to be ready, or a BACKEND_UNAVAILABLE error, within a deadline.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { ErrorCodes, MemjobError, clip, invalidArg } from '../errors.js';

/** A 'redis://' or 'rediss://' URL, or an ioredis options object. */
export type BrokerOption = string | RedisOptions;

const URL_SCHEME = /^rediss?:\/\//i;

/** Checks the broker option and returns it unchanged; MemjobError INVALID_ARG otherwise. */
export function parseBroker(where: string, value: unknown): BrokerOption {
  const expected = "a 'redis://' or 'rediss://' URL or an ioredis options object";
  if (typeof value === 'string') {
    if (!URL_SCHEME.test(value) || !URL.canParse(value)) throw invalidArg(where, 'broker', expected, redactText(value));
    return value;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArg(where, 'broker', expected, value);
  const proto = Object.getPrototypeOf(value) as unknown;
  // A class instance (a Redis client, a Map) is not options: ioredis would read its fields as such and misbehave quietly.
  if (proto !== Object.prototype && proto !== null) throw invalidArg(where, 'broker', expected, value);
  const { host, port, path } = value as { host?: unknown; port?: unknown; path?: unknown };
  if (host !== undefined && (typeof host !== 'string' || host === '')) throw invalidArg(where, 'broker.host', 'a non-empty string', host);
  if (port !== undefined && !(Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536)) {
    throw invalidArg(where, 'broker.port', 'an integer port from 1 to 65535', port);
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) throw invalidArg(where, 'broker.path', 'a non-empty socket path', path);
  return value as RedisOptions;
}

/** The broker for messages: the URL with any password replaced by '***', or 'host:port' (or the socket path) for options. */
export function describeBroker(broker: BrokerOption): string {
  if (typeof broker === 'string') return redactText(broker);
  if (typeof broker.path === 'string') return broker.path;
  const sentinels = (broker as { sentinels?: unknown }).sentinels;
  if (Array.isArray(sentinels) && sentinels.length > 0) {
    return `sentinel group ${String((broker as { name?: unknown }).name ?? 'mymaster')} via ${sentinels.length} sentinel(s)`;
  }
  const host = broker.host ?? 'localhost';
  return `${host.includes(':') ? `[${host}]` : host}:${broker.port ?? 6379}`;
}

/** A URL without its password (in the user part or a `password=` query parameter). */
function redactText(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    if (url.searchParams.has('password')) url.searchParams.set('password', '***');
    return url.href;
  } catch {
    // Not parseable: cut anything between '//' and '@' that has a ':' (user:password), keep the rest for the reader.
    return clip(text.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@'));
  }
}

export interface ConnectOptions {
  /** How long to wait for the connection to be ready, in ms. */
  timeoutMs: number;
  /** Who is connecting, for the error message ('Parallel', 'memjob worker'). */
  name: string;
  /** More ioredis options (connectionName, ...); the three connectBroker sets itself (lazyConnect, maxRetriesPerRequest, retryStrategy) win. */
  extra?: RedisOptions;
}

/** Replies that waiting cannot change: fail at once instead of retrying until the deadline. */
const FATAL_REPLY = /^(WRONGPASS|NOAUTH|NOPERM|ERR (AUTH|invalid password|Client sent AUTH))/;

/** The delay before reconnect attempt `attempt` (1, 2, ...): 200 ms more each time, at most 2 s. */
function retryDelay(attempt: number): number {
  return Math.min(attempt * 200, 2000);
}

/**
 * Opens an ioredis connection and resolves once it is 'ready'; rejects with
 * BACKEND_UNAVAILABLE, leaving no timer or socket behind, when it is not
 * ready within timeoutMs, or at once when the broker refuses the credentials.
 * Once ready, the connection reconnects by itself after any later loss.
 */
export async function connectBroker(broker: BrokerOption, options: ConnectOptions): Promise<Redis> {
  const { timeoutMs, name } = options;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw invalidArg(name, 'timeoutMs', 'a positive number of ms', timeoutMs);
  let established = false;
  const settings: RedisOptions = {
    ...options.extra,
    // Created idle so that nothing connects before the deadline below is armed.
    lazyConnect: true,
    // BullMQ requires it for workers (blocking commands must wait out a reconnect, not fail after 20 retries).
    maxRetriesPerRequest: null,
    // After the first 'ready', keep reconnecting: the broker may come back (a restart, a failover). Before it, the
    // attempts are made below instead: ioredis' own reconnect timer can only be cancelled by disconnect(), which on a
    // socket already closed arms a 2 s timer that nothing clears, and the process would linger that long.
    retryStrategy: (attempt: number) => (established ? retryDelay(attempt) : null),
  };
  // Imported here, not at the top: ioredis takes about 0.2 s to load, and only the bullmq backend and the worker need it.
  const { Redis } = await import('ioredis');
  const redis = typeof broker === 'string' ? new Redis(broker, settings) : new Redis({ ...broker, ...settings });
  let lastError: Error | undefined;
  // ioredis prints unhandled 'error' events; this listener stays for the connection's life, so later
  // reconnect errors are kept quiet too (the backend notices a lost broker by its commands stalling).
  redis.on('error', (error: Error) => {
    lastError = error;
  });
  let refused = false;
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let retryTimer: NodeJS.Timeout | undefined;
      const finish = (failed: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(retryTimer);
        redis.off('error', onError);
        if (failed) reject(new Error('not ready'));
        else resolve();
      };
      const onError = (error: Error): void => {
        refused = FATAL_REPLY.test(error.message);
        if (refused) finish(true);
      };
      const deadline = setTimeout(() => finish(true), timeoutMs);
      let attempt = 0;
      const tryOnce = (): void => {
        attempt += 1;
        // A failed attempt rejects with "Connection is closed." after the 'error' event that says why; the
        // connection is then in status 'end', holding nothing, until the next attempt.
        redis.connect().then(
          () => finish(false),
          () => {
            if (!settled) retryTimer = setTimeout(tryOnce, retryDelay(attempt));
          },
        );
      };
      redis.on('error', onError);
      tryOnce();
    });
  } catch {
    // Between attempts (status 'end') nothing is open; during one, disconnect() closes the socket it opened.
    if (redis.status !== 'end') redis.disconnect();
    const reason = lastError === undefined ? 'no answer' : clip(lastError.message);
    const within = refused ? ' (it refused the credentials)' : ` within ${timeoutMs} ms`;
    throw new MemjobError(
      ErrorCodes.BACKEND_UNAVAILABLE,
      `${name}: cannot reach the Redis broker at ${describeBroker(broker)}${within}: ${reason}`,
      lastError === undefined ? {} : { cause: lastError },
    );
  }
  established = true;
  return redis;
}
