/**
 * This thread's XXH3-128 hasher (the addon's, native/hash.cc). Callers run
 * init-update-digest without awaiting in between, so uses never interleave.
 */
import { Xxh128 } from '../native.js';

export interface Hasher128 {
  init(): void;
  update(data: Uint8Array): void;
  /** 32 hex digits. */
  digest(): string;
}

let hasher: Hasher128 | undefined;

export function xxh128(): Hasher128 {
  if (hasher === undefined) {
    const native = new Xxh128();
    hasher = { init: () => native.reset(), update: (data) => native.update(data), digest: () => native.digest() };
  }
  return hasher;
}
