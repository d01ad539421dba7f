// The Backend contract: the same cases run on SequentialBackend, ThreadBackend
// and ProcessBackend, each driven through a real Dispatcher by a small owner
// (as Process drives one), with real workers and real files. Where a backend
// legitimately differs (only workers can crash; this thread cannot stop a
// running call), the test says so in its name.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, closeSharedWorkers, delayed } from '../src/index.js';
import type { Backend, ExitInfo, Slot, TaskCall, Transport, TransportOptions } from '../src/parallel/backends/backend.js';
import { SequentialBackend } from '../src/parallel/backends/sequential.js';
import { ProcessBackend, ThreadBackend, type WorkerBackend } from '../src/parallel/backends/worker-backend.js';
import { Dispatcher, type DispatchBatch, type DispatchOwner, type Failure } from '../src/parallel/dispatcher.js';
import { describeFunction } from '../src/transport/functions.js';
import { QuotaError } from './fixtures/parallel-tasks.js';
import { childPids, isAlive, t, waitFor } from './fixtures/parallel-helpers.js';

interface TestBatch extends DispatchBatch {
  label: string;
}

/** What one dispatch of a list of batches gave. */
interface Outcome {
  done: { label: string; results: unknown[]; failure?: { index: number; error: Error } }[];
  lost: { labels: string[]; slot: Slot; info: ExitInfo }[];
  setupFailed: Error[];
  timedOut: { label: string; index: number }[];
  starts: { batchId: number; index: number }[];
  problems: unknown[];
}

/** Records onTaskStart before the Dispatcher sets its timer. */
class RecordingDispatcher extends Dispatcher<TestBatch> {
  readonly starts: { batchId: number; index: number }[] = [];
  override onTaskStart(slot: Slot, batchId: number, index: number): void {
    this.starts.push({ batchId, index });
    super.onTaskStart(slot, batchId, index);
  }
}

/**
 * A minimal DispatchOwner: sends `batches` in order and settles once every
 * batch ended, or at the first failure of the setup, a lost batch or a timeout
 * (then the dispatcher is stopped, as Run stops it).
 */
function dispatch(backend: Backend, transport: Transport, batches: { label: string; calls: TaskCall[] }[], taskTimeout: number | null = null) {
  const queue: TestBatch[] = batches.map(({ label, calls }) => ({ label, batch: transport.encode(calls) }));
  const outcome: Outcome = { done: [], lost: [], setupFailed: [], timedOut: [], starts: [], problems: [] };
  let remaining = queue.length;
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const pending: Promise<unknown>[] = [];
  // A failure stops the dispatcher at once (as Run does): nothing more is sent or started.
  let ended = false;
  const end = async (failed: boolean) => {
    if (ended) return;
    ended = true;
    const stopped = failed ? dispatcher.stop() : undefined;
    await Promise.all(pending);
    await stopped;
    dispatcher.detach();
    // As Run ends a run: the workers release what they mapped for it (nothing is kept: cacheDumps is off).
    backend.endRun(transport.id, transport.keptDumps());
    outcome.starts = dispatcher.starts;
    settle();
  };
  const owner: DispatchOwner<TestBatch> = {
    where: 'Contract',
    maxInFlight: 4,
    waiting: () => queue.length > 0,
    next: () => queue.shift(),
    wantedSlots: () => batches.length,
    batchDone: (batch, results, failure: Failure | undefined) => {
      const entry: Outcome['done'][number] = { label: batch.label, results };
      outcome.done.push(entry);
      if (failure !== undefined) pending.push(failure.error.then((error) => void (entry.failure = { index: failure.index, error })));
      if (--remaining === 0 || failure !== undefined) void end(failure !== undefined);
    },
    batchesLost: (lost, slot, info) => {
      outcome.lost.push({ labels: lost.map((b) => b.label), slot, info });
      void end(true);
    },
    setupFailed: (error) => {
      pending.push(error.then((e) => void outcome.setupFailed.push(e)));
      void end(true);
    },
    pullFailed: (error) => void outcome.problems.push(error),
    sendFailed: (_batch, error) => void outcome.problems.push(error),
    taskTimedOut: (batch, index) => {
      outcome.timedOut.push({ label: batch.label, index });
      void end(true);
    },
    changed: () => undefined,
  };
  const dispatcher = new RecordingDispatcher(backend, transport, owner, taskTimeout);
  dispatcher.attach();
  void dispatcher.pump();
  return { dispatcher, done: settled.then(() => outcome) };
}

const double = (x: number) => x * 2;
const sleepThen = t<[number, unknown], unknown>('sleepThen');
const call = (fn: unknown, ...args: unknown[]): TaskCall => ({ fn, args });

function freshRoot(): string {
  return mkdtempSync(join(tmpdir(), 'memjob-contract-'));
}

function transportOf(backend: Backend, options: Partial<TransportOptions> = {}): Transport {
  return backend.transport({ maxNbytes: 1024 * 1024, mmapMode: 'r', tempFolder: undefined, cacheDumps: false, ...options });
}

type Kind = 'sequential' | 'threads' | 'processes';
interface Case {
  kind: Kind;
  make: (initializer?: () => unknown) => Backend;
}

const cases: Case[] = [
  { kind: 'sequential', make: (init) => new SequentialBackend(init === undefined ? undefined : delayed(init)()) },
  { kind: 'threads', make: (init) => new ThreadBackend({ size: 2, ...(init === undefined ? {} : { initializer: { fn: describeFunction(init, {}), args: [] } }) }) },
  { kind: 'processes', make: (init) => new ProcessBackend({ size: 2, ...(init === undefined ? {} : { initializer: { fn: describeFunction(init, {}), args: [] } }) }) },
];

afterEach(async () => {
  await closeSharedWorkers();
});

describe.each(cases)('Backend contract: $kind', ({ kind, make }) => {
  const isWorker = kind !== 'sequential';
  // One warm backend for the cases that do not stop or close it.
  let backend: Backend;
  beforeAll(() => {
    backend = make();
  });
  afterAll(async () => {
    await backend.close();
    expect(childPids()).toEqual([]);
  });

  it('a batch of calls returns its results in order (a self-contained function and a task() reference)', async () => {
    const transport = transportOf(backend);
    const { done } = dispatch(backend, transport, [
      { label: 'a', calls: [1, 2, 3].map((x) => call(double, x)) },
      { label: 'b', calls: [call(sleepThen, 30, 'slow'), call(double, 21), call(sleepThen, 0, { nested: [1] })] },
    ]);
    const outcome = await done;
    expect(outcome.problems).toEqual([]);
    const byLabel = Object.fromEntries(outcome.done.map((d) => [d.label, d]));
    expect(byLabel.a).toEqual({ label: 'a', results: [2, 4, 6] });
    expect(byLabel.b).toEqual({ label: 'b', results: ['slow', 42, { nested: [1] }] });
    expect(outcome.starts).toEqual([]); // no taskTimeout: no start reports
    transport.close();
  });

  it('a throwing call fails its batch at its index, with the results before it and the error rebuilt (class, message, properties)', async () => {
    const transport = transportOf(backend);
    const { done } = dispatch(backend, transport, [{ label: 'x', calls: [call(double, 1), call(double, 2), call(t('throwQuota'), 7), call(double, 4)] }]);
    const [batch] = (await done).done;
    expect(batch!.results).toEqual([2, 4]);
    expect(batch!.failure!.index).toBe(2);
    const error = batch!.failure!.error;
    expect(error).toBeInstanceOf(QuotaError);
    expect(error.message).toBe('over the quota of 7');
    expect(error).toMatchObject({ name: 'QuotaError', code: 'E_QUOTA', limit: 7 });
    transport.close();
  });

  it('a Float64Array above maxNbytes arrives with its content; the transport leaves no file after endRun(false) and close()', async () => {
    const root = freshRoot();
    try {
      const transport = transportOf(backend, { maxNbytes: 1024, tempFolder: root });
      const data = Float64Array.from({ length: 50_000 }, (_, i) => i * 0.5);
      const { done } = dispatch(backend, transport, [{ label: 'big', calls: [call(t('describeArg'), data), call(t('sum'), data)] }]);
      const [batch] = (await done).done;
      expect(batch!.failure).toBeUndefined();
      expect(batch!.results[0]).toMatchObject({ kind: 'Float64Array', length: 50_000, first: 0, last: 49_999 * 0.5, shareable: isWorker });
      expect(batch!.results[1]).toBe(data.reduce((a, b) => a + b, 0));
      // Workers get a dump in the transport's folder; this thread uses the caller's array and writes nothing.
      expect(readdirSync(root).length).toBe(isWorker ? 1 : 0);
      transport.endRun(false);
      transport.close();
      transport.close();
      expect(readdirSync(root)).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('an initializer that throws gives setupFailed with MEMJOB_ERR_INITIALIZER, and no worker is left', async () => {
    const failing = make(() => {
      throw new RangeError('the initializer refuses');
    });
    const transport = transportOf(failing);
    const outcome = await dispatch(failing, transport, [{ label: 'never', calls: [call(double, 1)] }]).done;
    expect(outcome.done).toEqual([]);
    const [error] = outcome.setupFailed;
    expect(error).toBeInstanceOf(MemjobError);
    expect(error).toMatchObject({ code: ErrorCodes.INITIALIZER });
    expect(error!.message).toMatch(/the initializer failed in .*: the initializer refuses/);
    expect(error!.cause).toBeInstanceOf(RangeError);
    await failing.close();
    transport.close();
    if (kind === 'processes') await waitFor(() => childPids().length <= 2, 5000, 'the failed workers to exit'); // the warm backend's 2 stay
    if (failing instanceof ThreadBackend || failing instanceof ProcessBackend) expect(failing.slots).toEqual([]);
  });

  it('with taskTimeout every call reports its start, and a call that runs too long is reported to the owner', async () => {
    const transport = transportOf(backend);
    // Self-contained calls: a first call of a task() function imports its module, which counts against the limit.
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const { done } = dispatch(backend, transport, [{ label: 'slow', calls: [call(sleep, 10), call(double, 5), call(sleep, 3000)] }], 400);
    const outcome = await done;
    expect(outcome.timedOut).toEqual([{ label: 'slow', index: 2 }]);
    expect(outcome.done).toEqual([]);
    expect(outcome.starts.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(new Set(outcome.starts.map((s) => s.batchId)).size).toBe(1);
    transport.close();
  });

  if (isWorker) {
    it(`${kind} only (a worker can die): a crash loses the batches sent to it; the next batch gets a new worker`, async () => {
      const transport = transportOf(backend);
      const first = await dispatch(backend, transport, [{ label: 'dies', calls: [call(double, 1), call(t('exitWith'), 7)] }]).done;
      expect(first.done).toEqual([]);
      expect(first.lost).toHaveLength(1);
      expect(first.lost[0]!.labels).toEqual(['dies']);
      expect(first.lost[0]!.info).toMatchObject({ code: 7, signal: null });
      const again = await dispatch(backend, transport, [{ label: 'after', calls: [call(double, 8)] }]).done;
      expect(again.done).toEqual([{ label: 'after', results: [16] }]);
      transport.close();
    });

    it(`${kind}: stopBusy() after a long call was sent resolves once its worker is gone`, async () => {
      const own = make() as WorkerBackend;
      const transport = transportOf(own);
      const { dispatcher, done } = dispatch(own, transport, [{ label: 'long', calls: [call(sleepThen, 20_000, 'never')] }], 60_000);
      await waitFor(() => dispatcher.starts.length === 1, 20_000, 'the long call to start');
      const [slot] = own.slots;
      const pid = slot!.pid;
      const started = performance.now();
      await own.stopBusy();
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(slot!.handle.alive).toBe(false);
      expect(own.slots).toEqual([]);
      if (kind === 'processes') expect(isAlive(pid!)).toBe(false);
      await dispatcher.stop();
      dispatcher.detach();
      await own.close();
      transport.close();
      void done; // never settles: the owner was not told, stopBusy() was called from outside
    });
  } else {
    it('sequential (this thread cannot stop a running call): stopBusy() resolves at once, and the call it abandoned is never reported', async () => {
      const own = make();
      const transport = transportOf(own);
      const { dispatcher } = dispatch(own, transport, [{ label: 'long', calls: [call(sleepThen, 300, 'late'), call(double, 1)] }], 60_000);
      await waitFor(() => dispatcher.starts.length === 1, 5000, 'the long call to start');
      const reported: unknown[] = [];
      own.listener = {
        onBatchDone: (_slot, outcome) => void reported.push(outcome),
        onTaskStart: (_slot, batchId, index) => void reported.push({ batchId, index }),
        onSlotExit: () => undefined,
        onInitError: () => undefined,
        onMainReentry: () => undefined,
      onBackendFailed: () => undefined,
      };
      await own.stopBusy();
      expect(own.hasRoom()).toBe(true); // the slot is free for the next run at once
      await new Promise((resolve) => setTimeout(resolve, 500)); // the abandoned call has ended by now
      expect(reported).toEqual([]); // neither its end nor the call after it
      await own.close();
    });
  }

  it('close() is idempotent and leaves the backend closed with nothing running', async () => {
    const own = make();
    const transport = transportOf(own);
    const outcome = await dispatch(own, transport, [{ label: 'one', calls: [call(double, 3)] }]).done;
    expect(outcome.done).toEqual([{ label: 'one', results: [6] }]);
    const pids = own instanceof ThreadBackend || own instanceof ProcessBackend ? own.slots.map((s) => s.pid) : [];
    await own.close();
    await own.close();
    expect(own.closed).toBe(true);
    transport.close();
    transport.close();
    if (own instanceof ThreadBackend || own instanceof ProcessBackend) expect(own.slots).toEqual([]);
    if (kind === 'processes') for (const pid of pids) expect(isAlive(pid!)).toBe(false);
  });
});
