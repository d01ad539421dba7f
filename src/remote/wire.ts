/**
 * What crosses the broker between a parent and `memjob worker`s: jobs
 * (batches of calls) and their results, each a v8-serialized body signed
 * with HMAC-SHA256 under the shared secret. Anyone who can write to the
 * queue could otherwise make every worker run code of their choosing
 * (functions travel as source), so a worker checks the signature before it
 * even deserializes the body, and the parent checks the signature of every
 * result. A job and a result are signed with different labels, so one can
 * never pass for the other, and the queue, run and batch are signed with the
 * body, so a job cannot be moved to another run.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { deserialize, serialize } from 'node:v8';
import { ErrorCodes, MemjobError, describe, systemError } from '../errors.js';

/** The wire format's version: a worker refuses a job of another (MEMJOB_ERR_VERSION_MISMATCH). */
export const WIRE_VERSION = 1;
/** The environment variable both sides read the shared secret from. */
export const SECRET_ENV = 'MEMJOB_SECRET';
/** Fewer bytes than this is no secret: HMAC keys shorter than its output can be guessed. */
const MIN_SECRET_BYTES = 16;

/** The shared secret, or null on a network the user declared trusted (insecure). */
export type Secret = Buffer | null;

/** A job as BullMQ stores it (JSON): the signed, serialized batch. */
export interface JobEnvelope {
  v: number;
  run: string;
  batch: number;
  /** base64 of the v8-serialized body. */
  body: string;
  /** hex HMAC-SHA256, or '' when sent without a secret. */
  sig: string;
}

/** A result as the worker returns it (BullMQ's returnvalue, JSON). */
export interface ResultEnvelope {
  v: number;
  host: string;
  body: string;
  sig: string;
}

export const hostName = hostname();

/**
 * The secret from `secret` (an option), else `--secret-file`, else MEMJOB_SECRET.
 * None: an error saying how to give one, unless `insecure`.
 */
export function resolveSecret(where: string, options: { secret?: unknown; secretFile?: string | undefined; insecure?: boolean | undefined }): Secret {
  let text: string | undefined;
  if (options.secret !== undefined && options.secret !== null) {
    if (typeof options.secret !== 'string') throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected secret to be a string, received ${describe(options.secret)}`);
    text = options.secret;
  } else if (options.secretFile !== undefined) {
    try {
      text = readFileSync(options.secretFile, 'utf8').trim();
    } catch (error) {
      throw systemError(where, error, options.secretFile);
    }
  } else {
    text = process.env[SECRET_ENV];
  }
  if (text === undefined || text === '') {
    if (options.insecure === true) return null;
    throw new MemjobError(
      ErrorCodes.UNAUTHORIZED,
      `${where}: expected a shared secret in ${SECRET_ENV} (or the secret option / --secret-file), received none. ` +
        'Jobs carry code that workers run, so they are signed with it; give the same secret to the parent and every worker ' +
        '(for example MEMJOB_SECRET=$(openssl rand -hex 32)), or accept unsigned jobs on a trusted network with insecure: true / --insecure',
    );
  }
  if (Buffer.byteLength(text) < MIN_SECRET_BYTES) {
    throw new MemjobError(ErrorCodes.UNAUTHORIZED, `${where}: expected a secret of at least ${MIN_SECRET_BYTES} bytes, received ${Buffer.byteLength(text)}`);
  }
  return Buffer.from(text);
}

function mac(secret: Buffer, parts: readonly (string | number)[], body: string): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(parts.join('\n') + '\n');
  hmac.update(body);
  return hmac.digest('hex');
}

function sameMac(expected: string, received: unknown): boolean {
  if (typeof received !== 'string' || received.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(received));
}

export function sealJob(secret: Secret, queue: string, run: string, batch: number, body: unknown): JobEnvelope {
  const encoded = serialize(body).toString('base64');
  const sig = secret === null ? '' : mac(secret, ['job', WIRE_VERSION, queue, run, batch], encoded);
  return { v: WIRE_VERSION, run, batch, body: encoded, sig };
}

/** The job's shape, checked before anything else is read: data from the broker is untrusted. */
export function jobHeader(data: unknown): JobEnvelope {
  const job = data as Partial<JobEnvelope> | null;
  if (typeof job !== 'object' || job === null || typeof job.v !== 'number') {
    throw new MemjobError(ErrorCodes.FORMAT, `memjob worker: expected a memjob job, received ${describe(data)}`);
  }
  if (job.v !== WIRE_VERSION) {
    throw new MemjobError(
      ErrorCodes.VERSION_MISMATCH,
      `memjob worker on ${hostName}: expected a job of wire format ${WIRE_VERSION}, received format ${job.v}; run the same memjob version on the parent and the workers`,
    );
  }
  if (typeof job.run !== 'string' || !/^[0-9a-f]{32}$/.test(job.run) || !Number.isSafeInteger(job.batch) || typeof job.body !== 'string' || typeof job.sig !== 'string') {
    throw new MemjobError(ErrorCodes.FORMAT, `memjob worker: expected a job with run, batch, body and sig, received ${describe(data)}`);
  }
  return job as JobEnvelope;
}

/** Checks a job's signature, then deserializes its body (never before: v8.deserialize of a forged body is not safe to attempt). */
export function openJob(secret: Secret, queue: string, job: JobEnvelope): unknown {
  if (secret !== null && !sameMac(mac(secret, ['job', job.v, queue, job.run, job.batch], job.body), job.sig)) {
    throw new MemjobError(
      ErrorCodes.UNAUTHORIZED,
      `memjob worker on ${hostName}: refused a job ${job.sig === '' ? 'sent without a signature' : 'not signed with this worker\'s secret'} (run ${job.run}); ` +
        `give the parent and the workers the same ${SECRET_ENV}`,
    );
  }
  return deserialize(Buffer.from(job.body, 'base64'));
}

export function sealResult(secret: Secret, queue: string, run: string, batch: number, body: unknown): ResultEnvelope {
  const encoded = serialize(body).toString('base64');
  const sig = secret === null ? '' : mac(secret, ['result', WIRE_VERSION, queue, run, batch], encoded);
  return { v: WIRE_VERSION, host: hostName, body: encoded, sig };
}

/** The parent's side: a result of this run's batch, signed with the secret, or MEMJOB_ERR_UNAUTHORIZED. */
export function openResult(secret: Secret, queue: string, run: string, batch: number, value: unknown): { host: string; body: unknown } {
  const result = (typeof value === 'string' ? safeJson(value) : value) as Partial<ResultEnvelope> | null;
  if (typeof result !== 'object' || result === null || typeof result.body !== 'string') {
    throw new MemjobError(ErrorCodes.FORMAT, `Parallel: expected a memjob result from a worker, received ${describe(value)}`);
  }
  const host = typeof result.host === 'string' ? result.host.slice(0, 255) : '?';
  if (result.v !== WIRE_VERSION) {
    throw new MemjobError(ErrorCodes.VERSION_MISMATCH, `Parallel: the worker on ${host} answered in wire format ${String(result.v)}, expected ${WIRE_VERSION}; run the same memjob version everywhere`);
  }
  if (secret !== null && !sameMac(mac(secret, ['result', WIRE_VERSION, queue, run, batch], result.body), result.sig)) {
    throw new MemjobError(ErrorCodes.UNAUTHORIZED, `Parallel: refused a result from ${host} not signed with this run's secret (${SECRET_ENV})`);
  }
  return { host, body: deserialize(Buffer.from(result.body, 'base64')) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A refusal a worker reports through BullMQ's failedReason: JSON, so the parent rebuilds it with its code. */
export function refusalReason(error: MemjobError): string {
  return JSON.stringify({ memjob: true, code: error.code, message: error.message, host: hostName });
}

/** The parent's side of refusalReason(); any other failedReason becomes an INTERNAL error quoting it. */
export function refusalError(reason: unknown): MemjobError {
  const text = typeof reason === 'string' ? reason : '';
  const parsed = safeJson(text) as { memjob?: unknown; code?: unknown; message?: unknown; host?: unknown } | string;
  if (typeof parsed === 'object' && parsed !== null && parsed.memjob === true && typeof parsed.code === 'string' && typeof parsed.message === 'string') {
    const known = Object.values(ErrorCodes) as string[];
    const code = (known.includes(parsed.code) ? parsed.code : ErrorCodes.INTERNAL) as MemjobError['code'];
    const error = new MemjobError(code, parsed.message.slice(0, 2000));
    return Object.assign(error, { host: typeof parsed.host === 'string' ? parsed.host.slice(0, 255) : '?' });
  }
  return new MemjobError(ErrorCodes.INTERNAL, `Parallel: a worker failed a job: ${text.slice(0, 2000)}`);
}
