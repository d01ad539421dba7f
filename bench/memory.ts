/**
 * Memory benchmark: memjob's hash() and Memory cached calls against
 * joblib.hash and joblib.Memory (Debian's python3) in one run, on /dev/shm.
 *
 *   npm run bench -- memory
 *   BENCH_BYTES=64M node build-dev/bench/memory.js   # quick run (after npm run build:dev)
 *
 * Environment: BENCH_BYTES (the large array, default 1G), BENCH_REPEATS
 * (rounds of the large cases, default 3), BENCH_SMALL_CALLS (timed small
 * cached calls, default 300), BENCH_PYTHON (default /usr/bin/python3).
 *
 * Measured: hashing throughput; a cached call (a hit) with a large array
 * argument and a large array result, mapped ('r'), to its first element; a
 * cached call with a 1,000-element argument. Goals (issue 15): hashing at
 * least 5x joblib's throughput, the large hit at least 5x faster, the small
 * hit at least 2x faster.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Memory, NDArray, hash } from 'memjob';
import { environmentLines, formatTable, optionsFromEnv, type BenchRow } from './memmap.js';
import { withScratch } from './scratch.js';
import { benchSources } from './paths.js';

const execFileAsync = promisify(execFile);
const goals = { hash: 5, big: 5, small: 2 };
const warmupCalls = 30;

interface PythonResult {
  hash_s: number[];
  big_s: number[];
  small_ms: number[];
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function python(interpreter: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(interpreter, [join(benchSources, 'memory_joblib.py'), ...args], { maxBuffer: 16 << 20 });
  return stdout;
}

function ramp(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = 1 + i * 0.5;
  return a;
}

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export async function main(): Promise<{ rows: BenchRow[]; goals: string[] }> {
  const { bytes } = optionsFromEnv({ ...process.env, BENCH_REPEATS: '1' });
  const repeats = Number(process.env.BENCH_REPEATS ?? 3);
  const smallCalls = Number(process.env.BENCH_SMALL_CALLS ?? 300);
  const interpreter = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
  console.log('## memory\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  const versions = JSON.parse(await python(interpreter, ['--versions'])) as Record<string, string>;
  console.log(`joblib: joblib ${versions.joblib}, numpy ${versions.numpy}, Python ${versions.python} (${interpreter})  `);

  return withScratch(async (folder) => {
    const root = folder('/dev/shm/memjob-bench-memory-');
    const n = bytes / 8;
    const big = ramp(n);
    const hashMs: number[] = [];
    for (let r = 0; r < repeats; r++) hashMs.push(await timeMs(() => hash(big)));

    const memory = new Memory(join(root, 'memjob'), { mmapMode: 'r' });
    const double = memory.cache(function double(a: Float64Array) {
      const out = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) out[i] = a[i]! * 2;
      return new NDArray(out);
    });
    await double(big); // computed and stored, untimed
    const bigMs: number[] = [];
    for (let r = 0; r < repeats; r++) {
      bigMs.push(
        await timeMs(async () => {
          const out = await double(big);
          if (out.get(0) !== 2) throw new Error(`bench memory: the cached result's first element is ${out.get(0)}, expected 2`);
        }),
      );
    }

    const small = Float64Array.from({ length: 1000 }, (_, i) => i);
    const plusOne = memory.cache(function plusOne(a: Float64Array) {
      return new NDArray(a.map((x) => x + 1));
    });
    await plusOne(small);
    for (let i = 0; i < warmupCalls; i++) await plusOne(small);
    const smallMs: number[] = [];
    for (let i = 0; i < smallCalls; i++) smallMs.push(await timeMs(() => plusOne(small)));
    if ((await plusOne(small)).get(999) !== 1000) throw new Error('bench memory: the small cached result is wrong');
    memory.clear();

    process.stderr.write('bench memory: joblib\n');
    const py = JSON.parse(await python(interpreter, [join(root, 'joblib'), String(bytes), String(repeats), String(smallCalls)])) as PythonResult;

    const gb = bytes / 1e9;
    const rows: BenchRow[] = [
      { measurement: 'memjob hash()', bytes, value: gb / (median(hashMs) / 1e3), unit: 'GB/s', note: `${median(hashMs).toFixed(0)} ms median of ${repeats}; XXH3-128, xxHash's code in memjob's addon` },
      { measurement: 'joblib.hash', bytes, value: gb / median(py.hash_s), unit: 'GB/s', note: `${(median(py.hash_s) * 1e3).toFixed(0)} ms median of ${repeats}; md5 of the pickle` },
      { measurement: "memjob cached call, mmapMode 'r'", bytes, value: median(bigMs), unit: 'ms', note: 'a hit: hash the argument, map the stored result, read element 0' },
      { measurement: "joblib.Memory cached call, mmap_mode='r'", bytes, value: median(py.big_s) * 1e3, unit: 'ms', note: 'the same, timed inside python' },
      { measurement: 'memjob cached call, 1,000 float64', bytes: 8000, value: median(smallMs), unit: 'ms', note: `median of ${smallCalls} hits after ${warmupCalls} warm-up` },
      { measurement: 'joblib.Memory cached call, 1,000 float64', bytes: 8000, value: median(py.small_ms), unit: 'ms', note: `median of ${smallCalls} hits` },
    ];
    const ratios = {
      hash: median(py.hash_s) * 1e3 / median(hashMs),
      big: (median(py.big_s) * 1e3) / median(bigMs),
      small: median(py.small_ms) / median(smallMs),
    };
    rows.push(
      { measurement: 'ratio hash() vs joblib.hash', bytes, value: ratios.hash, unit: 'x', note: `joblib time ÷ memjob time; goal ≥ ${goals.hash}` },
      { measurement: 'ratio large cached call', bytes, value: ratios.big, unit: 'x', note: `goal ≥ ${goals.big}` },
      { measurement: 'ratio small cached call', bytes: 8000, value: ratios.small, unit: 'x', note: `goal ≥ ${goals.small}` },
    );
    const line = (label: string, ratio: number, goal: number) => `Goal (${label} ≥ ${goal}× joblib's): ${ratio >= goal ? 'met' : 'MISSED'} — ${ratio.toFixed(2)}×`;
    const goalLines = [
      line('hashing throughput', ratios.hash, goals.hash),
      line('large cached call', ratios.big, goals.big),
      line('small cached call', ratios.small, goals.small),
    ];
    console.log(`Rounds: ${repeats} for the large cases; memjob first, then joblib, on one /dev/shm folder\n`);
    console.log(formatTable(rows));
    console.log('');
    for (const goal of goalLines) console.log(goal);
    return { rows, goals: goalLines };
  });
}

// Also runnable on its own: node build-dev/bench/memory.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
