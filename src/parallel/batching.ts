/**
 * joblib's auto-batching: start with one task per batch, then size batches
 * so that each takes between 0.2 s and 2 s, doubling quickly while tasks are
 * tiny and halving when a batch runs long (joblib/_parallel_backends.py,
 * AutoBatchingMixin).
 */
const MIN_IDEAL_BATCH_MS = 200;
const MAX_IDEAL_BATCH_MS = 2000;
/**
 * The most calls in one auto batch. Tasks that take microseconds would
 * otherwise double the size on every batch without end over an endless input
 * (joblib's own sizes stop growing only when a batch reaches 0.2 s), and the
 * parent would spend its time pulling calls instead of reading results.
 */
export const MAX_AUTO_BATCH = 100_000;
/** Growth per batch on the bullmq backend: a few milliseconds per round trip make joblib's doubling from one task cost a tenth of a short run. */
export const REMOTE_BATCH_GROWTH = 16;
/** The shortest batch worth a broker round trip at the end of a run (a round trip is about 7 ms on loopback). */
export const REMOTE_MIN_BATCH_MS = 25;

export class AutoBatcher {
  #size = 1;
  #smoothedMs = 0;
  /** ms per task in the last batch that finished (0: none yet). */
  #perTaskMs = 0;

  /**
   * `growth`: how much larger one batch may be than the last (joblib: 2).
   * A backend whose round trip takes milliseconds (a broker) would spend many
   * round trips ramping up from one task at 2x; it grows faster.
   */
  constructor(readonly growth = 2) {}

  get size(): number {
    return this.#size;
  }

  /** Tasks that take about `ms` by the last batch's pace (1 before any batch finished). */
  sizeLasting(ms: number): number {
    return this.#perTaskMs > 0 ? Math.max(1, Math.ceil(ms / this.#perTaskMs)) : 1;
  }

  /** Called when a batch finishes: `size` tasks took `durationMs`. */
  record(size: number, durationMs: number): void {
    if (size > 0 && durationMs > 0) this.#perTaskMs = durationMs / size;
    // Only batches of the current size say something about it.
    if (size !== this.#size) return;
    const duration = this.#smoothedMs === 0 ? durationMs : 0.8 * this.#smoothedMs + 0.2 * durationMs;
    this.#smoothedMs = duration;
    if (duration <= 0) return;
    if (duration < MIN_IDEAL_BATCH_MS) {
      const ideal = Math.trunc((size * MIN_IDEAL_BATCH_MS) / duration) * 2;
      this.#size = Math.max(1, Math.min(this.growth * size, ideal, MAX_AUTO_BATCH));
      if (this.#size !== size) this.#smoothedMs = 0; // a new size starts a new estimate
    } else if (duration > MAX_IDEAL_BATCH_MS && size > 1) {
      this.#size = Math.max(1, Math.floor(size / 2));
      this.#smoothedMs = 0;
    }
  }
}

export class FixedBatcher {
  constructor(readonly size: number) {}
  record(): void {}
}
