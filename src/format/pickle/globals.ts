/** What a pickle's GLOBAL names turn into: the contract between the unpickler and an allowlist. */
import type { PickleReader } from './reader.js';

/**
 * What an allowlisted global may do. The unpickler never runs anything else: REDUCE, NEWOBJ, NEWOBJ_EX,
 * INST and OBJ go to `call`, and BUILD on an object that `call` returned goes to that global's `build`.
 * A global with neither is a plain reference (a class passed as an argument, such as `numpy.ndarray`).
 */
export interface PickleGlobal {
  call?(args: unknown[], kwargs?: Map<unknown, unknown>): unknown;
  /**
   * Applies BUILD's `state` to `obj` and returns what replaces it on the stack. `reader` is positioned just
   * after the BUILD opcode: a handler may consume bytes that the writer put there raw (joblib's inline arrays).
   */
  build?(obj: unknown, state: unknown, reader: PickleReader): unknown;
}

/** A global as a value on the stack (and inside the result, when a class is itself pickled). */
export class PickleGlobalRef {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: PickleGlobal,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Returns the handler of an allowed global, or throws MEMJOB_ERR_UNSAFE_PICKLE naming it. */
export type PickleResolver = (module: string, name: string) => PickleGlobal;
