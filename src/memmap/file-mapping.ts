/**
 * One mapped window of one file, and the views (ArrayBuffers) made from it.
 * A Memmap and every slice derived from it share one FileMapping, so writes
 * through any of them are seen by all, in every mode ('c' included), and one
 * close() releases them together.
 */
import { ErrorCodes, MemjobError } from '../errors.js';
import {
  adviseRegion,
  isFileHole,
  mapRegion,
  pageSize,
  residentPages,
  syncRegion,
  unmapRegion,
  viewRegion,
  type Advice,
  type RegionHandle,
} from '../native.js';

/** Where a mapped ArrayBuffer's bytes live, so it can be sent to a worker as a reference. */
export interface MappedBufferOrigin {
  path: string;
  fileOffset: number;
  shared: boolean;
  /** The mapping the buffer was made from (for isUnwrittenFileRange). */
  mapping: FileMapping;
}

// Every ArrayBuffer that views a file mapping, for hasShareableMemory() and
// for passing mapped arrays to workers by reference.
const mappedBuffers = new WeakMap<ArrayBuffer, MappedBufferOrigin>();

/**
 * True when `bytes` view a shared file mapping over a hole of its file (a
 * sparse file's unwritten range): they read as zeros, and a writer may leave
 * a hole instead of reading them (saveNpy of a sparse 'w+' memmap). Private
 * mappings ('r', 'c') answer false: their pages may hold writes the file has not.
 */
export function isUnwrittenFileRange(bytes: ArrayBufferView): boolean {
  const origin = mappedBufferOrigin(bytes.buffer);
  if (origin === undefined || !origin.shared || bytes.byteLength === 0) return false;
  return origin.mapping.isHole(origin.fileOffset + bytes.byteOffset, bytes.byteLength);
}

/** True when `buffer` views a live file mapping (a closed mapping's views are detached, so empty). */
export function isMappedBuffer(buffer: ArrayBufferLike): boolean {
  return buffer.byteLength > 0 && mappedBuffers.has(buffer as ArrayBuffer);
}

/** The file and offset a live mapped buffer views, or undefined. */
export function mappedBufferOrigin(buffer: ArrayBufferLike): MappedBufferOrigin | undefined {
  return buffer.byteLength > 0 ? mappedBuffers.get(buffer as ArrayBuffer) : undefined;
}

export class FileMapping {
  readonly path: string;
  /** MAP_SHARED (writes reach the file) or MAP_PRIVATE (copy-on-write). */
  readonly shared: boolean;
  /** File offset where the region starts: the caller's offset rounded down to a page. */
  readonly start: number;
  /** File offset one past the region's last byte. */
  readonly end: number;
  #handle: RegionHandle | null;

  /**
   * Maps [byteOffset, byteOffset + byteLength) of the open file `fd`; the
   * caller has checked that the range lies inside the file (so no access can
   * raise SIGBUS) and may close `fd` afterwards: the mapping keeps the file.
   */
  constructor(fd: number, path: string, byteOffset: number, byteLength: number, shared: boolean) {
    this.path = path;
    this.shared = shared;
    // mmap(2) wants a page-aligned offset: map from the page boundary and
    // let views start at the delta.
    this.start = byteOffset - (byteOffset % pageSize);
    this.end = byteOffset + byteLength;
    this.#handle = mapRegion(fd, this.start, this.end - this.start, shared, path);
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** An ArrayBuffer over file bytes [fileOffset, fileOffset + byteLength), no copy. */
  view(fileOffset: number, byteLength: number): ArrayBuffer {
    const buffer = viewRegion(this.#live(), fileOffset - this.start, byteLength, this.path);
    mappedBuffers.set(buffer, { path: this.path, fileOffset, shared: this.shared, mapping: this });
    return buffer;
  }

  /** True when the file holds no data in [fileOffset, fileOffset + byteLength) (see isUnwrittenFileRange). */
  isHole(fileOffset: number, byteLength: number): boolean {
    if (this.#handle === null || fileOffset < this.start || fileOffset + byteLength > this.end) return false;
    return isFileHole(this.#handle, this.path, fileOffset, byteLength);
  }

  sync(fileOffset: number, byteLength: number): void {
    syncRegion(this.#live(), fileOffset - this.start, byteLength, this.path);
  }

  advise(fileOffset: number, byteLength: number, advice: Advice): void {
    adviseRegion(this.#live(), fileOffset - this.start, byteLength, advice, this.path);
  }

  /** How many of the pages under [fileOffset, fileOffset + byteLength) are in memory now. */
  residentPages(fileOffset: number, byteLength: number): { resident: number; total: number } {
    const [resident, total] = residentPages(this.#live(), fileOffset - this.start, byteLength, this.path);
    return { resident, total };
  }

  /** Detaches every view made from this mapping (they then read as empty), then unmaps. Idempotent. */
  close(): void {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    unmapRegion(handle, this.path);
  }

  #live(): RegionHandle {
    if (this.#handle === null) {
      throw new MemjobError(ErrorCodes.CLOSED, `memmap: '${this.path}' was closed; open it again with memmap()`, {
        path: this.path,
      });
    }
    return this.#handle;
  }
}
