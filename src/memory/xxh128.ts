/**
 * XXH3-128, streaming: xxhash-addon's native binding (prebuilt for Linux,
 * macOS and Windows; measured 2 to 2.5x faster than WebAssembly here, which
 * copies every byte into its own memory first), or hash-wasm's WebAssembly
 * build where the native one cannot load. Both are the reference XXH128 with
 * seed 0, so keys are the same whichever runs. native-notes/memory-hash.md
 * has the measurements.
 */
import { createRequire } from 'node:module';
import { createXXHash128 } from 'hash-wasm';

export interface Hasher128 {
  init(): void;
  update(data: Uint8Array): void;
  /** 32 hex digits. */
  digest(): string;
}

interface NativeXXH128 {
  update(data: Buffer): void;
  digest(): Buffer;
  reset(): void;
}

function nativeHasher(): Hasher128 | undefined {
  try {
    const { XXHash128 } = createRequire(import.meta.url)('xxhash-addon') as { XXHash128: new (seed: Buffer) => NativeXXH128 };
    // A seed must be given: xxhash-addon 2.1 crashes the process when constructed without one.
    const native = new XXHash128(Buffer.alloc(4));
    return {
      init: () => native.reset(),
      // It takes Buffers: a view of the same memory, not a copy.
      update: (data) => native.update(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
      digest: () => native.digest().toString('hex'),
    };
  } catch {
    return undefined; // no prebuilt binary for this platform: the WebAssembly build below
  }
}

let hasher: Promise<Hasher128> | undefined;

/** This thread's hasher. Callers run init-update-digest without awaiting in between, so uses never interleave. */
export function xxh128(): Promise<Hasher128> {
  hasher ??= (async () => {
    const native = nativeHasher();
    if (native !== undefined) return native;
    const wasm = await createXXHash128();
    return { init: () => void wasm.init(), update: (data) => void wasm.update(data), digest: () => wasm.digest('hex') };
  })();
  return hasher;
}
