/**
 * The one importer of the C++ addon (native/). Everything else reaches the
 * operating system's mapping calls through the typed functions below, which
 * turn the addon's errno-carrying errors into MemjobErrors.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, MemjobError, systemError } from './errors.js';

/**
 * An opaque handle on one mmap(2) region; released by unmap(), or once the
 * garbage collector has taken the handle and every view: the next map() call
 * unmaps it (so a loop that never yields to the event loop still releases it),
 * or its finalizers do, whichever comes first.
 */
export type RegionHandle = { readonly __region: unique symbol };
export type Advice = 'normal' | 'random' | 'sequential' | 'willneed' | 'dontneed';
export type LockOperation = 'exclusive' | 'shared' | 'unlock';

interface Addon {
  setMaxViewLength(bytes: number): void;
  pageSize(): number;
  map(fd: number, offset: number, length: number, shared: boolean): RegionHandle;
  view(handle: RegionHandle, byteOffset: number, byteLength: number): ArrayBuffer;
  unmap(handle: RegionHandle): void;
  sync(handle: RegionHandle, byteOffset: number, byteLength: number, async: boolean): void;
  advise(handle: RegionHandle, byteOffset: number, byteLength: number, advice: Advice): void;
  incore(handle: RegionHandle, byteOffset: number, byteLength: number): [number, number];
  hole(handle: RegionHandle, path: string, fileOffset: number, byteLength: number): boolean;
  flock(fd: number, operation: LockOperation): boolean;
  allocateLarge(length: number): ArrayBuffer;
  xxh128Create(): HashState;
  xxh128Reset(state: HashState): void;
  xxh128Update(state: HashState, data: ArrayBufferView): void;
  xxh128Digest(state: HashState): string;
}

/** An XXH3-128 streaming state (native/hash.cc), freed with its handle. */
export type HashState = { readonly __hashState: unique symbol };

// src/native.ts and dist/native.js both sit one folder below the package
// root. node-gyp-build looks in native/ for build/ (a local build) and then
// prebuilds/ (the shipped binaries); binding.gyp lives there too, because a
// binding.gyp at the package root makes npm compile on install.
const addonDir = fileURLToPath(new URL('../native/', import.meta.url));

function loadAddon(): Addon {
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => Addon;
    return nodeGypBuild(addonDir);
  } catch (cause) {
    throw new MemjobError(
      ErrorCodes.NATIVE_LOAD,
      `memjob: the native mapping addon could not be loaded from ${addonDir}: expected a prebuilt binary ` +
        `for ${process.platform}-${process.arch} (memjob ships linux-x64 and linux-arm64, glibc) or a build/ folder. ` +
        `Build it from source once, in your project: "npm explore memjob -- npm run build:native" ` +
        `(needs Python 3, make and a C++17 compiler); see native-notes/README.md. Cause: ${(cause as Error).message}`,
      { cause },
    );
  }
}

const addon = loadAddon();

/** The largest ArrayBuffer, so the largest single view, this Node can make. */
export const maxViewBytes: number = bufferConstants.MAX_LENGTH;
addon.setMaxViewLength(maxViewBytes);

export const pageSize: number = addon.pageSize();

function call<T>(where: string, path: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw systemError(where, error, path);
  }
}

export function mapRegion(fd: number, offset: number, length: number, shared: boolean, path: string): RegionHandle {
  try {
    return addon.map(fd, offset, length, shared);
  } catch (error) {
    // The addon refuses a mapping past its limit (after unmapping what the
    // garbage collector has taken), rather than let mmap or malloc fail.
    const limit = (error as { mappingLimit?: unknown }).mappingLimit;
    if (typeof limit !== 'number') throw systemError('memmap', error, path);
    throw new MemjobError(
      ErrorCodes.MAPPING_LIMIT,
      `memmap: expected at most ${limit} file mappings held at once by this process, received one more for '${path}'; ` +
        'close() the Memmaps and drop the arrays of mapped loads that are no longer needed',
      { path, cause: error },
    );
  }
}

export function viewRegion(handle: RegionHandle, byteOffset: number, byteLength: number, path: string): ArrayBuffer {
  return call('view', path, () => addon.view(handle, byteOffset, byteLength));
}

export function unmapRegion(handle: RegionHandle, path: string): void {
  call('close', path, () => addon.unmap(handle));
}

export function syncRegion(handle: RegionHandle, byteOffset: number, byteLength: number, path: string): void {
  call('flush', path, () => addon.sync(handle, byteOffset, byteLength, false));
}

export function adviseRegion(handle: RegionHandle, byteOffset: number, byteLength: number, advice: Advice, path: string): void {
  call('advise', path, () => addon.advise(handle, byteOffset, byteLength, advice));
}

export function residentPages(handle: RegionHandle, byteOffset: number, byteLength: number, path: string): [number, number] {
  return call('incore', path, () => addon.incore(handle, byteOffset, byteLength));
}

/**
 * True when the file at `path` is still the one the region maps and holds no
 * data in [fileOffset, fileOffset + byteLength): reading it would give only
 * zeros. False when it may hold data, or cannot tell.
 */
export function isFileHole(handle: RegionHandle, path: string, fileOffset: number, byteLength: number): boolean {
  return call('hole', path, () => addon.hole(handle, path, fileOffset, byteLength));
}

/**
 * flock(2) on `fd`, never blocking: true when the lock was taken (or
 * released), false when another open file description holds a conflicting
 * lock (this process's own other descriptors of the file included). Other
 * failures throw a MemjobError with the OS code.
 */
export function tryFlock(fd: number, operation: LockOperation, path: string): boolean {
  return call('flock', path, () => addon.flock(fd, operation));
}

/**
 * A streaming XXH3-128 hasher (xxHash's reference code, in the addon): it
 * reads each update's bytes where they are. The digest is 32 hex digits.
 */
export class Xxh128 {
  readonly #state = addon.xxh128Create();

  reset(): void {
    addon.xxh128Reset(this.#state);
  }

  update(data: ArrayBufferView): void {
    addon.xxh128Update(this.#state, data);
  }

  digest(): string {
    return addon.xxh128Digest(this.#state);
  }
}

/**
 * An ArrayBuffer of `length` fresh bytes (zeros) in anonymous pages the
 * kernel is asked to back with huge pages, as numpy allocates large arrays:
 * a file read into it takes about half the time (fewer page faults). For
 * arrays read into memory whole; it cannot be transferred to another thread
 * (postMessage copies it instead when not listed in transferList).
 */
export function allocateLarge(length: number): ArrayBuffer {
  try {
    return addon.allocateLarge(length);
  } catch (error) {
    throw new MemjobError('ENOMEM', `memjob: could not allocate ${length} bytes: ${(error as Error).message}`, { cause: error });
  }
}
