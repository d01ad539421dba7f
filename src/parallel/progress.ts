/**
 * Progress reporting: joblib's verbose messages on stderr, a cli-progress
 * bar, or a user callback. The callback is called on every completion, for
 * every backend.
 */
import cliProgress from 'cli-progress';

export type ProgressCallback = (done: number, total: number | undefined) => void;

export interface ProgressReporter {
  /** `total` is known at the start for an array input. */
  start(total?: number): void;
  /** `done` tasks have completed; `total` is known once the input is exhausted. */
  update(done: number, total: number | undefined, dispatched: number): void;
  finish(done: number): void;
}

function shortTime(seconds: number): string {
  return seconds > 60 ? `${(seconds / 60).toFixed(1).padStart(4)}min` : ` ${seconds.toFixed(1).padStart(5)}s`;
}

/** joblib's _verbosity_filter: print less and less often as tasks complete. */
function filtered(index: number, verbose: number): boolean {
  if (verbose > 10) return false;
  if (index === 0) return false;
  const scale = 0.5 * (11 - verbose) ** 2;
  return Math.trunc(Math.sqrt(index / scale)) === Math.trunc(Math.sqrt((index + 1) / scale));
}

/** joblib's messages, `[Parallel(nJobs=2)]: Done  10 out of  10 | elapsed:    0.1s finished`. */
class VerboseReporter implements ProgressReporter {
  #started = 0;
  constructor(
    readonly label: string,
    readonly verbose: number,
    readonly backendLine: string,
  ) {}

  #print(message: string): void {
    (this.verbose >= 50 ? process.stdout : process.stderr).write(`[${this.label}]: ${message}\n`);
  }

  start(): void {
    this.#started = performance.now();
    this.#print(this.backendLine);
  }

  update(done: number, total: number | undefined, dispatched: number): void {
    const elapsed = (performance.now() - this.#started) / 1000;
    if (total === undefined || done < total) {
      if (total === undefined) {
        if (filtered(done - 1, this.verbose)) return;
        this.#print(`Done ${String(done).padStart(3)} tasks      | elapsed: ${shortTime(elapsed)}`);
      } else {
        const frequency = Math.floor(total / this.verbose) + 1;
        if (done !== 1 && (total - done) % frequency !== 0) return;
        const remaining = (elapsed / done) * (dispatched - done);
        this.#print(`Done ${String(done).padStart(3)} out of ${String(total).padStart(3)} | elapsed: ${shortTime(elapsed)} remaining: ${shortTime(remaining)}`);
      }
    }
  }

  finish(done: number): void {
    const elapsed = (performance.now() - this.#started) / 1000;
    this.#print(`Done ${String(done).padStart(3)} out of ${String(done).padStart(3)} | elapsed: ${shortTime(elapsed)} finished`);
  }
}

// Until the input is exhausted the total is not known: the bar shows a count,
// not a percentage of a guess (a first frame of `100% | 0/0` would be a lie).
const KNOWN_TOTAL = '{bar} {percentage}% | {value}/{total} tasks | {duration_formatted} elapsed, ETA {eta_formatted}';
const COUNT_ONLY = '{value} tasks done | {duration_formatted} elapsed';

class BarReporter implements ProgressReporter {
  readonly #bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: (options, params, payload: { totalKnown?: boolean }) =>
        cliProgress.Format.Formatter({ ...options, format: payload.totalKnown === true ? KNOWN_TOTAL : COUNT_ONLY }, params, payload),
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  #total: number | undefined;

  start(total?: number): void {
    this.#total = total;
    this.#bar.start(total ?? 0, 0, { totalKnown: total !== undefined });
  }

  update(done: number, total: number | undefined): void {
    if (total !== undefined && total !== this.#total) this.#bar.setTotal((this.#total = total));
    this.#bar.update(done, { totalKnown: this.#total !== undefined });
  }

  finish(done: number): void {
    this.#bar.setTotal((this.#total = done));
    this.#bar.update(done, { totalKnown: true });
    this.#bar.stop();
  }
}

class CallbackReporter implements ProgressReporter {
  constructor(readonly callback: ProgressCallback) {}
  start(): void {}
  update(done: number, total: number | undefined): void {
    this.callback(done, total);
  }
  finish(): void {}
}

class Reporters implements ProgressReporter {
  constructor(readonly all: ProgressReporter[]) {}
  start(total?: number): void {
    for (const r of this.all) r.start(total);
  }
  update(done: number, total: number | undefined, dispatched: number): void {
    for (const r of this.all) r.update(done, total, dispatched);
  }
  finish(done: number): void {
    for (const r of this.all) r.finish(done);
  }
}

export function createProgress(options: {
  verbose: number;
  progress: boolean | ProgressCallback;
  label: string;
  backendLine: string;
}): ProgressReporter {
  const all: ProgressReporter[] = [];
  if (options.verbose > 0) all.push(new VerboseReporter(options.label, options.verbose, options.backendLine));
  if (typeof options.progress === 'function') all.push(new CallbackReporter(options.progress));
  // A bar only where someone watches: on a terminal.
  else if (options.progress === true && process.stderr.isTTY) all.push(new BarReporter());
  return new Reporters(all);
}
