/**
 * Warm workers shared between Parallels, as joblib shares loky's reusable
 * executor: a Parallel takes a backend for a run and gives it back when the
 * run ends, so the next Parallel with the same worker options (backend,
 * nJobs, initializer, resource limits) starts no workers at all. Idle
 * backends are unreferenced (they never keep the process alive) and closed
 * after IDLE_MS, as loky's idle workers time out.
 */
import type { FunctionSpec } from '../transport/functions.js';
import type { ResourceLimits } from 'node:worker_threads';
import { ProcessBackend, ThreadBackend, type WorkerBackend } from './backends/worker-backend.js';
import { nestingDepth } from './nesting.js';

/** How long an idle shared backend keeps its workers (loky: 300 s). */
const IDLE_MS = 300_000;

interface Idle {
  backend: WorkerBackend;
  timer: NodeJS.Timeout;
}
const idle = new Map<string, Idle>();

export interface WorkerOptions {
  backend: 'threads' | 'processes';
  nJobs: number;
  initializer: { fn: FunctionSpec; args: unknown[] } | undefined;
  resourceLimits: ResourceLimits | undefined;
}

/** Workers of their own (a Parallel with reuse: false, a Pool, a Process). */
export function makeWorkerBackend(options: WorkerOptions, perSlot?: number): WorkerBackend {
  const { backend, nJobs: size, initializer, resourceLimits } = options;
  const spawn = { level: nestingDepth() + 1, ...(resourceLimits ? { resourceLimits } : {}) };
  const settings = { size, initializer, spawn, ...(perSlot === undefined ? {} : { perSlot }) };
  return backend === 'threads' ? new ThreadBackend(settings) : new ProcessBackend(settings);
}

/** The key under which matching workers are shared; undefined when the initializer's arguments are not plain JSON (then nothing is shared). */
function keyOf(options: WorkerOptions): string | undefined {
  const { initializer } = options;
  if (initializer !== undefined && !initializer.args.every(isJson)) return undefined;
  return JSON.stringify([options.backend, options.nJobs, nestingDepth(), options.resourceLimits ?? null, initializer ?? null]);
}

function isJson(value: unknown): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value) && !Object.is(value, -0);
  if (Array.isArray(value)) return value.every(isJson);
  if (typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false;
  return Object.values(value).every(isJson);
}

/** Shared workers for `options`: an idle backend with the same worker options, or a new one. */
export function takeBackend(options: WorkerOptions): WorkerBackend {
  const key = keyOf(options);
  const entry = key === undefined ? undefined : idle.get(key);
  if (entry !== undefined) {
    idle.delete(key!);
    clearTimeout(entry.timer);
    if (!entry.backend.closed) return entry.backend;
  }
  return makeWorkerBackend(options);
}

/** Gives back a backend taken with takeBackend(): it stays warm for the next taker, or closes when one already waits. */
export function giveBack(options: WorkerOptions, backend: WorkerBackend): void {
  const key = keyOf(options);
  if (key === undefined || backend.closed || idle.has(key)) {
    void backend.close();
    return;
  }
  backend.listener = null;
  backend.setActive(false);
  const timer = setTimeout(() => {
    if (idle.get(key)?.backend === backend) idle.delete(key);
    void backend.close();
  }, IDLE_MS);
  timer.unref();
  idle.set(key, { backend, timer });
}

/** Closes every idle shared backend (tests, and programs that want their workers gone now). */
export async function closeSharedWorkers(): Promise<void> {
  const entries = [...idle.values()];
  idle.clear();
  for (const entry of entries) clearTimeout(entry.timer);
  await Promise.all(entries.map((entry) => entry.backend.close()));
}
