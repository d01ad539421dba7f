/**
 * Task results on their way back to the parent. Threads transfer the
 * buffers of large typed arrays (no copy); child processes write large
 * arrays to a file in the run's folder that the parent reads once and
 * removes. A Memmap travels as a reference to its file; an NDArray keeps its
 * shape and order (structured clone would lose its class). The walk is
 * walker.ts's; the kinds of reference are ref-kinds.ts's RESULT_KINDS.
 */
import { DEFAULT_MAX_NBYTES } from './options.js';
import { RESULT_KINDS, type ResultPackContext, type UnpackContext } from './ref-kinds.js';
import { packValue, unpackValue } from './walker.js';

export interface ResultPackOptions {
  maxNbytes: number | null;
  /** Child processes: folder for large results. Threads: undefined, and buffers are transferred. */
  resultFolder: string | undefined;
  nextName: () => string;
}

/** In the worker: the value to post, and the buffers to transfer with it. */
export function packResult(value: unknown, options: ResultPackOptions): { value: unknown; transfer: ArrayBuffer[] } {
  const context: ResultPackContext = {
    threshold: options.maxNbytes ?? DEFAULT_MAX_NBYTES,
    resultFolder: options.resultFolder,
    nextName: options.nextName,
    transfer: new Set(),
  };
  const packed = packValue(value, RESULT_KINDS, context, 'result');
  return { value: packed, transfer: [...context.transfer] };
}

/**
 * In the parent. A Memmap inside the run's own temp folders (`ownedByRun`)
 * is copied into memory (those folders are removed when the run ends); one
 * on the caller's own file is mapped again, so writes stay shared.
 */
export function unpackResult(value: unknown, ownedByRun: (path: string) => boolean): unknown {
  // Equal references within one result open once: a dumped result file is read and removed once.
  const opened = new Map<string, unknown>();
  const context: UnpackContext = {
    open: <T>(ref: object, open: () => T): T => {
      const key = JSON.stringify(ref);
      if (!opened.has(key)) opened.set(key, open());
      return opened.get(key) as T;
    },
    // The caller owns what a result maps: nothing to unmap at the end of the run.
    keep: (mapping) => mapping,
    ownedByRun,
  };
  return unpackValue(value, RESULT_KINDS, context, 'result');
}
