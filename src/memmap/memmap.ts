/**
 * Memmap: numpy.memmap for Node. An n-dimensional view (dtype, shape, byte
 * strides, file offset) on a FileMapping. Views made by slice() and chunks()
 * share the mapping; `.data` is created lazily, so a view of a huge file costs
 * nothing until its own window is read.
 */
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import { maxViewBytes, type Advice } from '../native.js';
import { dtypeInfo, type DType, type DTypeArrays, type DTypeInfo, type DTypeScalar } from './dtype.js';
import { readElement, writeElement } from './elements.js';
import type { FileMapping } from './file-mapping.js';
import { contiguity, elementOffset, extent, normalizeSlice, sizeOf, type Order } from './layout.js';
import { arrayRepr, inspectCustom, quote } from './repr.js';

export type MemmapMode = 'r' | 'r+' | 'w+' | 'c';

/** What a Memmap is made of; built by memmap() and by slicing, never by users. */
export interface MemmapLayout<D extends DType> {
  mapping: FileMapping;
  mode: MemmapMode;
  dtype: D;
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
  order: Order;
  base?: Memmap<D>;
}

const internal = Symbol('memjob.Memmap');
/** Arrays up to this size are read by get() through one view of all of them; larger ones through a window this size. */
const ELEMENT_WINDOW_BYTES = 64 * 1024;

export interface ChunksOptions {
  /** Upper bound on each block's nbytes (at least one row is always yielded). Default 64 MiB. */
  maxBytes?: number;
}

export class Memmap<D extends DType = DType> {
  /** Absolute path of the mapped file. */
  readonly filename: string;
  readonly mode: MemmapMode;
  readonly dtype: D;
  readonly shape: readonly number[];
  /** Bytes to step along each axis (numpy's strides). */
  readonly strides: readonly number[];
  /** File offset, in bytes, of this view's first element (for a slice, where the slice starts). */
  readonly offset: number;
  readonly order: Order;
  readonly ndim: number;
  readonly size: number;
  readonly itemsize: number;
  /** size * itemsize: the bytes of the elements, as numpy counts them. */
  readonly nbytes: number;
  /** True in mode 'r': writes through `data` go to private pages and never reach the file. */
  readonly readonly: boolean;

  readonly #mapping: FileMapping;
  readonly #info: DTypeInfo<D>;
  readonly #base: Memmap<D> | undefined;
  #data: DTypeArrays[D] | undefined;
  /** contiguity() of shape and strides, which never change: C, F, or null for a strided view. */
  readonly #layout: Order | null;
  /** get()/set()'s window on a large array: its byte offset from `offset`, and the view. */
  #window: { start: number; array: DTypeArrays[D] } | undefined;

  /** @internal Use memmap() to open a file. */
  constructor(token: typeof internal, layout: MemmapLayout<D>) {
    if (token !== internal) {
      throw new MemjobError(ErrorCodes.INVALID_ARG, 'Memmap: use memmap(filename, options) to open a file');
    }
    this.#mapping = layout.mapping;
    this.#info = dtypeInfo(layout.dtype);
    this.#base = layout.base;
    this.filename = layout.mapping.path;
    this.mode = layout.mode;
    this.dtype = layout.dtype;
    this.shape = Object.freeze([...layout.shape]);
    this.strides = Object.freeze([...layout.strides]);
    this.offset = layout.offset;
    this.order = layout.order;
    this.ndim = layout.shape.length;
    this.size = sizeOf(layout.shape);
    this.itemsize = this.#info.itemsize;
    this.nbytes = this.size * this.itemsize;
    this.readonly = layout.mode === 'r';
    this.#layout = contiguity(this.shape, this.strides, this.itemsize);
  }

  /** @internal */
  static create<D extends DType>(layout: MemmapLayout<D>): Memmap<D> {
    return new Memmap(internal, layout);
  }

  get closed(): boolean {
    return this.#mapping.closed;
  }

  /** True when the elements lie back to back in C or F order, so `data` can view them. */
  get contiguous(): boolean {
    return this.#layout !== null;
  }

  /**
   * A TypedArray over the mapped bytes, in the array's storage order (zero
   * copy). Throws for a strided view, and for an extent larger than one
   * ArrayBuffer can hold: use slice() or chunks() to work in windows.
   */
  get data(): DTypeArrays[D] {
    this.#checkOpen();
    if (this.#data !== undefined && this.#data.buffer.byteLength > 0) return this.#data;
    if (!this.contiguous) {
      throw new MemjobError(
        ErrorCodes.NOT_CONTIGUOUS,
        `memmap: this view (shape [${this.shape}], strides [${this.strides}]) is not contiguous, so no TypedArray ` +
          'can view it; read elements with get(), or copy it with toArray()',
        { path: this.filename },
      );
    }
    if (this.nbytes > maxViewBytes) {
      throw new MemjobError(
        ErrorCodes.VIEW_TOO_LARGE,
        `memmap: .data would span ${this.nbytes} bytes, more than the ${maxViewBytes} one ArrayBuffer can hold in ` +
          'this Node; take a window with slice(start, end) or iterate with chunks({ maxBytes })',
        { path: this.filename },
      );
    }
    this.#data = this.#shareBaseData() ?? this.#viewOwnWindow();
    return this.#data;
  }

  /**
   * A view of rows [start, end) along axis 0, stepping by `step` (Python's
   * slice semantics: negative indices count from the end, bounds clamp). It
   * shares this memmap's mapping: writes through either are seen by both.
   */
  slice(start?: number, end?: number, step?: number): Memmap<D> {
    this.#checkOpen();
    const rows = this.shape[0];
    const rowStride = this.strides[0];
    if (rows === undefined || rowStride === undefined) {
      throw new MemjobError(ErrorCodes.INVALID_ARG, 'memmap: slice() needs at least one axis; this memmap is 0-d');
    }
    const range = normalizeSlice(rows, start, end, step, 'memmap.slice');
    return Memmap.create({
      mapping: this.#mapping,
      mode: this.mode,
      dtype: this.dtype,
      shape: [range.length, ...this.shape.slice(1)],
      strides: [rowStride * range.step, ...this.strides.slice(1)],
      offset: range.length === 0 ? this.offset : this.offset + range.start * rowStride,
      order: this.order,
      base: this,
    });
  }

  /** Row blocks along axis 0, each a view of at most `maxBytes` (and at least one row). */
  *chunks(options: ChunksOptions = {}): Generator<Memmap<D>, void, undefined> {
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new MemjobError(
        ErrorCodes.INVALID_ARG,
        `memmap.chunks: expected "maxBytes" to be a positive integer, received ${describe(maxBytes)}`,
      );
    }
    const rows = this.shape[0];
    if (rows === undefined) {
      yield this;
      return;
    }
    const rowBytes = rows === 0 ? this.itemsize : this.nbytes / rows;
    const step = Math.max(1, Math.floor(maxBytes / Math.max(rowBytes, 1)));
    for (let row = 0; row < rows; row += step) yield this.slice(row, row + step);
  }

  /** The element at `index` (one integer per axis; negative counts from the end). */
  get(...index: number[]): DTypeScalar<D> {
    const raw = this.#elementArray(elementOffset(this.shape, this.strides, index, 'memmap.get'));
    return readElement(this.#info, raw.array, raw.index) as DTypeScalar<D>;
  }

  /** Writes `value` at `index` (one integer per axis). */
  set(index: number | readonly number[], value: DTypeScalar<D>): void {
    const where = typeof index === 'number' ? [index] : [...index];
    const raw = this.#elementArray(elementOffset(this.shape, this.strides, where, 'memmap.set'));
    writeElement(this.#info, raw.array, raw.index, value, 'memmap.set');
  }

  /** An owned copy of the elements in C (row-major) order, detached from the file. */
  toArray(): DTypeArrays[D] {
    this.#checkOpen();
    const { lanes } = this.#info;
    const out = new this.#info.arrayType(this.size * lanes);
    if (this.size === 0) return out;
    if (this.#layout === 'C') {
      out.set(this.data as never);
      return out;
    }
    const source = this.#spanArray();
    // Elements are copied as unsigned integer words, never through JS numbers:
    // reading a float32 signalling NaN as a number quiets it (0x7f800001 comes
    // back 0x7fc00001), and a saved file must keep every bit. Words of at most
    // 4 bytes, so no BigInt is made per element.
    const Word = this.itemsize % 4 === 0 ? Uint32Array : this.itemsize % 2 === 0 ? Uint16Array : Uint8Array;
    const wordBytes = Word.BYTES_PER_ELEMENT;
    const words = this.itemsize / wordBytes;
    const from = new Word(source.array.buffer as ArrayBuffer, source.array.byteOffset, source.array.byteLength / wordBytes);
    const to = new Word(out.buffer as ArrayBuffer, out.byteOffset, out.byteLength / wordBytes);
    const wordStrides = this.strides.map((s) => s / wordBytes);
    const counters = new Array<number>(this.ndim).fill(0);
    let at = (source.index * source.array.BYTES_PER_ELEMENT) / wordBytes;
    for (let i = 0; i < this.size; i++) {
      for (let w = 0; w < words; w++) to[i * words + w] = from[at + w]!;
      // Odometer over the axes, last axis fastest (C order).
      for (let axis = this.ndim - 1; axis >= 0; axis--) {
        const n = this.shape[axis] as number;
        const stride = wordStrides[axis] as number;
        if (++counters[axis]! < n) {
          at += stride;
          break;
        }
        counters[axis] = 0;
        at -= (n - 1) * stride;
      }
    }
    return out;
  }

  /** Writes this view's dirty pages to the file (msync). Nothing to do for 'r' and 'c'. */
  flush(): void {
    this.#checkOpen();
    if (!this.#mapping.shared || this.size === 0) return;
    const span = this.#byteSpan();
    this.#mapping.sync(span.start, span.length);
  }

  /** Tells the kernel how this view will be read (madvise): 'sequential', 'random', 'willneed', 'dontneed', 'normal'. */
  advise(advice: Advice): void {
    this.#checkOpen();
    const valid: readonly Advice[] = ['normal', 'random', 'sequential', 'willneed', 'dontneed'];
    if (!valid.includes(advice)) {
      throw new MemjobError(
        ErrorCodes.INVALID_ARG,
        `memmap.advise: expected one of ${valid.join(', ')}, received ${describe(advice)}`,
      );
    }
    if (this.size === 0) return;
    const span = this.#byteSpan();
    this.#mapping.advise(span.start, span.length, advice);
  }

  /** How much of this view is in memory right now (mincore), in pages of `pageSize` bytes. */
  residency(): { residentPages: number; totalPages: number } {
    this.#checkOpen();
    if (this.size === 0) return { residentPages: 0, totalPages: 0 };
    const span = this.#byteSpan();
    const { resident, total } = this.#mapping.residentPages(span.start, span.length);
    return { residentPages: resident, totalPages: total };
  }

  /**
   * Unmaps the file for this memmap and every view that shares its mapping
   * (slices, chunks, and the memmap they came from). Old `data` arrays are
   * detached first, so they read as empty instead of crashing. Idempotent.
   */
  close(): void {
    this.#mapping.close();
    this.#data = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** numpy's repr: `memmap([0., 1., 2.], dtype=float64, mode='r', file='/data/x.f64')`; reads only the elements shown. */
  toString(): string {
    const extras = [`mode='${this.mode}'`, ...(this.offset === 0 ? [] : [`offset=${this.offset}`]), `file=${quote(this.filename)}`];
    const read = this.closed ? null : (index: readonly number[]) => this.get(...index);
    return arrayRepr({ name: 'memmap', dtype: this.dtype, shape: this.shape, read, extras });
  }

  [inspectCustom](): string {
    return this.toString();
  }

  /** Bytes of one TypedArray slot: the itemsize, except for complex (half) and strings (a byte or a code point). */
  get #slotBytes(): number {
    return this.#info.arrayType.BYTES_PER_ELEMENT;
  }

  #checkOpen(): void {
    if (this.#mapping.closed) {
      throw new MemjobError(ErrorCodes.CLOSED, `memmap: '${this.filename}' was closed; open it again with memmap()`, {
        path: this.filename,
      });
    }
  }

  /** The file bytes this view's elements span: [start, start + length). */
  #byteSpan(): { start: number; length: number } {
    const { low, high } = extent(this.shape, this.strides, this.itemsize);
    return { start: this.offset + low, length: high - low };
  }

  // A slice of a memmap whose data is already viewed reuses that ArrayBuffer,
  // so `small.data.buffer === large.data.buffer`, as numpy's base chain.
  #shareBaseData(): DTypeArrays[D] | undefined {
    for (let base = this.#base; base !== undefined; base = base.#base) {
      const data = base.#data;
      if (data === undefined || data.buffer.byteLength === 0) continue;
      const delta = this.offset - base.offset;
      if (delta < 0 || delta % this.itemsize !== 0 || delta + this.nbytes > data.byteLength) continue;
      return new this.#info.arrayType(data.buffer, data.byteOffset + delta, this.size * this.#info.lanes);
    }
    return undefined;
  }

  #viewOwnWindow(): DTypeArrays[D] {
    if (this.size === 0) return new this.#info.arrayType(0);
    return new this.#info.arrayType(this.#mapping.view(this.offset, this.nbytes));
  }

  // A TypedArray covering every element of a strided view, with the index of
  // element [0, ..., 0] in it; for contiguous views this is `data` itself.
  #spanArray(): { array: DTypeArrays[D]; index: number } {
    if (this.contiguous) return { array: this.data, index: 0 };
    const span = this.#byteSpan();
    if (span.length > maxViewBytes) {
      throw new MemjobError(
        ErrorCodes.VIEW_TOO_LARGE,
        `memmap: this strided view spans ${span.length} bytes, more than one ArrayBuffer can hold; slice it first`,
        { path: this.filename },
      );
    }
    const array = new this.#info.arrayType(this.#mapping.view(span.start, span.length));
    return { array, index: (this.offset - span.start) / this.#slotBytes };
  }

  #elementArray(byteOffset: number): { array: DTypeArrays[D]; index: number } {
    this.#checkOpen();
    if (this.contiguous && (this.#data !== undefined || this.nbytes <= ELEMENT_WINDOW_BYTES)) {
      return { array: this.data, index: byteOffset / this.#slotBytes };
    }
    if (this.contiguous) {
      // A large array read element by element: a window of about 64 KiB around the element, reused
      // while the indices stay in it. A view of the whole array would cost far more than the read
      // (V8 counts a large external buffer against its heap and may start a collection).
      const window = this.#window;
      if (window !== undefined && byteOffset >= window.start && byteOffset + this.itemsize <= window.start + window.array.byteLength) {
        return { array: window.array, index: (byteOffset - window.start) / this.#slotBytes };
      }
      const span = this.itemsize * Math.max(1, Math.floor(ELEMENT_WINDOW_BYTES / this.itemsize));
      const start = Math.floor(byteOffset / span) * span;
      const array = new this.#info.arrayType(this.#mapping.view(this.offset + start, Math.min(span, this.nbytes - start)));
      this.#window = { start, array };
      return { array, index: (byteOffset - start) / this.#slotBytes };
    }
    // A strided view: map just this element's bytes.
    const array = new this.#info.arrayType(this.#mapping.view(this.offset + byteOffset, this.itemsize));
    return { array, index: 0 };
  }
}
