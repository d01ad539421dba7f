/**
 * The only code that runs inside a memjob worker, a worker thread or a child
 * process alike. It runs the initializer once, then batches: resolves each
 * function, maps array references (once per run), awaits each call, and
 * sends the results back, large arrays by transfer or through a file.
 */
import { parentPort } from 'node:worker_threads';
import { ErrorCodes, MemjobError } from '../errors.js';
import { ArgumentUnpacker } from '../transport/array-refs.js';
import { cloneable, serializeError } from '../transport/error-transport.js';
import { resolveFunction, type FunctionSpec } from '../transport/function-resolve.js';
import { packResult } from '../transport/result-refs.js';
import { callAt, callCount, type ToParent, type ToWorker } from './protocol.js';

type Post = (message: ToParent, transfer?: ArrayBuffer[]) => void;

const post: Post = parentPort
  ? (message, transfer) => parentPort!.postMessage(message, transfer ?? [])
  : (message) => void process.send!(message);

const memjobExports = () => import('../index.js') as unknown as Promise<Record<string, unknown>>;
const unpackers = new Map<number, ArgumentUnpacker>();
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
  let unpacker = unpackers.get(message.runId);
  if (unpacker === undefined) unpackers.set(message.runId, (unpacker = new ArgumentUnpacker()));
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
      const fn = (fns[fnIndex] ??= await resolveFunction(spec, memjobExports));
      let value: unknown;
      if (single !== undefined) value = fn(single.values[index]);
      else {
        const call = callAt(calls, index);
        value = fn(...(call.args.every(isPlain) ? call.args : (unpacker.unpack(call.args) as unknown[])));
      }
      if (value instanceof Promise || (typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function')) value = await value;
      if (isPlain(value)) {
        results.push(value);
        continue;
      }
      const packed = packResult(value, packOptions);
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

/** Numbers, strings, booleans, null...: nothing to map or pack. */
function isPlain(value: unknown): boolean {
  return typeof value !== 'object' || value === null;
}


async function init(message: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  if (message.initializer !== undefined) {
    const { fn: spec, args } = message.initializer;
    try {
      const fn = await resolveFunction(spec, memjobExports);
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
      unpackers.get(message.runId)?.close();
      unpackers.delete(message.runId);
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
