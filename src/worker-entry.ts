/**
 * The program that runs inside a memjob worker, a worker thread or a child
 * process alike (src/index.ts is the parent's entry; this is the worker's, and
 * like it may import every layer). It runs the initializer once, then batches: resolves each
 * function, maps array references (once per run), awaits each call, and
 * sends the results back, large arrays by transfer or through a file.
 */
import { parentPort } from 'node:worker_threads';
import { ErrorCodes, MemjobError } from './errors.js';
import type { ArgumentUnpacker } from './transport/array-refs.js';
import { cloneable, serializeError } from './transport/error-transport.js';
import { displayUrl, resolveFunction, type FunctionSpec } from './transport/function-resolve.js';
import { adoptReferenceToken } from './transport/walker.js';
import { adoptWorkerMark, onMainReentry, whileImportingTaskModule } from './transport/worker-context.js';
import { callAt, callCount, isPlainValue, type ToParent, type ToWorker } from './parallel/protocol.js';

type Post = (message: ToParent, transfer?: ArrayBuffer[]) => void;

// Before any task module is imported: inWorker() stays true here, and programs tasks spawn do not inherit the mark.
adoptWorkerMark();

// A child whose parent has gone (killed, say) has nobody to answer: it leaves
// quietly instead of dying of an unhandled EPIPE 'error' event.
const post: Post = parentPort
  ? (message, transfer) => parentPort!.postMessage(message, transfer ?? [])
  : (message) => {
      if (!process.connected) process.exit(0);
      process.send!(message, undefined, {}, (error) => {
        if (error !== null && error !== undefined) process.exit(0);
      });
    };

/**
 * memjob's exports a shipped function names: from worker-exports.ts when it
 * has them all (the data API: no source parser, no scheduler), else from the
 * whole public API.
 */
async function memjobExports(names: readonly string[]): Promise<Record<string, unknown>> {
  const light = (await import('./worker-exports.js')) as Record<string, unknown>;
  if (names.every((name) => Object.hasOwn(light, name))) return light;
  return (await import('./index.js')) as unknown as Record<string, unknown>;
}

/** resolveFunction inside the import context: a task module that starts workers when imported is refused (worker-context.ts). */
function resolveInWorker(spec: FunctionSpec): Promise<(...args: unknown[]) => unknown> {
  const what = spec.kind === 'module' ? `the module ${displayUrl(spec.url)}` : 'a task function';
  return whileImportingTaskModule(what, () => resolveFunction(spec, memjobExports));
}

// The parent hears of a refused re-entry at once, even when the module catches the error or leaves it unhandled.
onMainReentry((error) => post({ type: 'main-reentry', error: serializeError(error) }));
// Already reported: an unawaited main() that the refusal rejected need not crash the worker
// (a child process would print it). Any other unhandled rejection still crashes, as Node would.
process.on('unhandledRejection', (reason) => {
  if ((reason as { code?: unknown } | null)?.code === ErrorCodes.MAIN_REENTRY) return;
  throw reason;
});
// Array references and result dumps (and with them the addon, msgpackr, zlib) load with the first
// task that needs them: a worker whose tasks take and return plain values starts about 40 ms sooner.
type ArrayTransport = [typeof import('./transport/array-refs.js'), typeof import('./transport/result-refs.js')];
let arrayTransport: Promise<ArrayTransport> | undefined;
const loadArrayTransport = () =>
  (arrayTransport ??= Promise.all([
    import('./transport/array-refs.js'),
    import('./transport/result-refs.js'),
    // Shared objects (Lock, Value, SharedArray, Queue) register how to revive themselves when their modules load.
    import('./multiprocessing/kinds.js'),
  ]).then(([arrays, results]) => [arrays, results]));
const unpackers = new Map<number, ArgumentUnpacker>();

/** The run's unpacker (its arrays are mapped once per run), made when a call of the run first has a non-plain argument. */
async function unpackerFor(session: number): Promise<ArgumentUnpacker> {
  let unpacker = unpackers.get(session);
  if (unpacker === undefined) {
    const [{ ArgumentUnpacker: Unpacker }] = await loadArrayTransport();
    unpackers.set(session, (unpacker = new Unpacker()));
  }
  return unpacker;
}
let resultCounter = 0;

async function moduleOf(spec: FunctionSpec): Promise<{ url: string; exports: Record<string, unknown> } | undefined> {
  if (spec.kind !== 'module') return undefined;
  try {
    return { url: spec.url, exports: (await import(spec.url)) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

async function runBatch(message: Extract<ToWorker, { type: 'batch' }>): Promise<void> {
  const results: unknown[] = [];
  const transfer: ArrayBuffer[] = [];
  const packOptions = {
    maxNbytes: message.maxNbytes,
    resultFolder: message.resultFolder,
    nextName: () => `result-${process.pid}-${resultCounter++}.mjdump`,
  };
  // Each function once per batch, not once per call: a batch of tiny tasks is a tight loop.
  const fns: ((...args: unknown[]) => unknown)[] = [];
  const { calls } = message;
  const count = callCount(calls);
  // Flat single-argument calls (Pool.map of numbers, say) skip building an argument list per call.
  const single = !Array.isArray(calls) && calls.arity === 1 ? calls : undefined;
  for (let index = 0; index < count; index++) {
    const fnIndex = single !== undefined ? single.fn : callAt(calls, index).fn;
    const spec = message.fns[fnIndex]!;
    try {
      const fn = (fns[fnIndex] ??= await resolveInWorker(spec));
      // After the import: loading a task's module is the worker's start-up, which taskTimeout does not count.
      if (message.reportStarts === true) post({ type: 'task-start', batchId: message.batchId, index });
      let value: unknown;
      if (single !== undefined) value = fn(single.values[index]);
      else {
        const call = callAt(calls, index);
        value = fn(...(call.args.every(isPlainValue) ? call.args : ((await unpackerFor(message.session)).unpack(call.args) as unknown[])));
      }
      if (value instanceof Promise || (typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function')) value = await value;
      if (isPlainValue(value)) {
        results.push(value);
        continue;
      }
      const packed = (await loadArrayTransport())[1].packResult(value, packOptions);
      results.push(packed.value);
      for (const buffer of packed.transfer) if (!transfer.includes(buffer)) transfer.push(buffer);
    } catch (error) {
      post({ type: 'batch-done', batchId: message.batchId, results, error: { index, error: serializeError(error, await moduleOf(spec)) } });
      return;
    }
  }
  try {
    post({ type: 'batch-done', batchId: message.batchId, results }, transfer);
  } catch (error) {
    // Nothing was sent (and nothing transferred): a result structured clone cannot copy. Report it as that task's error.
    const index = Math.max(0, results.findIndex((value) => !cloneable(value)));
    const problem = new MemjobError(
      ErrorCodes.UNSUPPORTED_VALUE,
      `Parallel: the result of the task cannot be sent back to the parent (${error instanceof Error ? error.message : String(error)}); return plain data, arrays, Memmaps or NDArrays`,
      { cause: error },
    );
    post({ type: 'batch-done', batchId: message.batchId, results: results.slice(0, index), error: { index, error: serializeError(problem) } });
  }
}



async function init(message: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  adoptReferenceToken(message.token);
  if (message.initializer !== undefined) {
    const { fn: spec, args } = message.initializer;
    try {
      const fn = await resolveInWorker(spec);
      await fn(...args);
    } catch (error) {
      post({ type: 'init-error', error: serializeError(error, await moduleOf(spec)) });
      return;
    }
  }
  post({ type: 'ready' });
}

// Messages are handled one at a time, in order: a batch never overlaps another.
let queue: Promise<void> = Promise.resolve();
function onMessage(message: ToWorker): void {
  queue = queue.then(async () => {
    if (message.type === 'init') await init(message);
    else if (message.type === 'batch') await runBatch(message);
    else if (message.type === 'run-end') {
      const unpacker = unpackers.get(message.session);
      if (message.keep === null) {
        unpacker?.close();
        unpackers.delete(message.session);
      } else {
        unpacker?.endRun(new Set(message.keep));
      }
    } else {
      for (const unpacker of unpackers.values()) unpacker.close();
      process.exit(0);
    }
  });
}

if (parentPort) parentPort.on('message', onMessage);
else {
  process.on('message', onMessage as (message: unknown) => void);
  // The parent going away (even by SIGKILL) closes the IPC channel: follow it.
  process.on('disconnect', () => process.exit(0));
}
