/**
 * Exact-length reads from a stream of chunks (a decompressor's output), for
 * loading compressed dumps without holding the whole file in memory.
 */
export class StreamReader {
  readonly #chunks: AsyncIterator<Buffer>;
  #pending: Buffer = Buffer.alloc(0);
  /** Bytes consumed so far: the position in the decompressed file. */
  position = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.#chunks = source[Symbol.asyncIterator]();
  }

  /** Fills `target` completely; resolves false if the stream ends first. */
  async readInto(target: Uint8Array): Promise<boolean> {
    let filled = 0;
    while (filled < target.length) {
      if (this.#pending.length === 0 && !(await this.#pull())) return false;
      const take = Math.min(this.#pending.length, target.length - filled);
      target.set(this.#pending.subarray(0, take), filled);
      this.#pending = this.#pending.subarray(take);
      filled += take;
      this.position += take;
    }
    return true;
  }

  /**
   * Reads `length` bytes into pieces as they arrive, so memory follows what
   * the stream really holds rather than what a header claims. `onPiece`
   * sees each piece as it arrives, and may throw to stop reading.
   */
  async readPieces(length: number, onPiece?: (piece: Buffer) => void): Promise<Buffer[] | null> {
    const pieces: Buffer[] = [];
    let remaining = length;
    while (remaining > 0) {
      if (this.#pending.length === 0 && !(await this.#pull())) return null;
      const piece = this.#pending.subarray(0, Math.min(this.#pending.length, remaining));
      onPiece?.(piece);
      pieces.push(piece);
      this.#pending = this.#pending.subarray(piece.length);
      remaining -= piece.length;
      this.position += piece.length;
    }
    return pieces;
  }

  /** Skips `length` bytes; resolves false if the stream ends first. */
  async skip(length: number): Promise<boolean> {
    let remaining = length;
    while (remaining > 0) {
      if (this.#pending.length === 0 && !(await this.#pull())) return false;
      const take = Math.min(this.#pending.length, remaining);
      this.#pending = this.#pending.subarray(take);
      remaining -= take;
      this.position += take;
    }
    return true;
  }

  async close(): Promise<void> {
    await this.#chunks.return?.();
  }

  async #pull(): Promise<boolean> {
    const next = await this.#chunks.next();
    if (next.done === true) return false;
    this.#pending = next.value;
    return true;
  }
}
