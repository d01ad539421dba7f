/**
 * joblib benchmark: memjob's joblib-file functions (loadJoblibSync,
 * loadJoblib, dumpJoblibSync, dumpJoblib) against joblib.load / joblib.dump
 * in Debian's python3, in one run on one /dev/shm folder, on a dict
 * { features: float64 array, name: 'x' } as a Python team would dump it.
 * Both sides load the same file, written by joblib.dump.
 *
 *   npm run bench -- joblib                        # 1 GiB, zlib 256 MiB, 3 repeats
 *   BENCH_BYTES=64M node build-dev/bench/joblib.js  # quick run (after npm run build:dev)
 *
 * Environment (sizes take K, M, G, T suffixes, base 1024):
 *   BENCH_BYTES       size of the array (default 1G, < 2G, multiple of 8)
 *   BENCH_ZLIB_BYTES  size of the array in the zlib-compressed files (default BENCH_BYTES / 4)
 *   BENCH_REPEATS     rounds of every write and read (default 3)
 *   BENCH_OPENS       timed mapped loads per round (default 20)
 *   BENCH_PYTHON      the python with joblib and numpy (default /usr/bin/python3)
 *
 * This is a script that prints a table, not a test: only a file one side
 * cannot read back with the right values makes it fail.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Memmap, NDArray, dumpJoblib, dumpJoblibSync, loadJoblib, loadJoblibSync } from 'memjob';
import { environmentLines, formatTable, optionsFromEnv } from './memmap.js';
import { withScratch } from './scratch.js';
import { betweenSteps, timed } from './steps.js';
import { names, summarize, type JoblibBenchOptions, type JoblibBenchResult, type Samples } from './joblib-table.js';
import { interopVersions, runInterop, stopInterop } from './joblib-python.js';

export type { JoblibBenchOptions, JoblibBenchResult } from './joblib-table.js';

/** Untimed mapped loads before each round's timed ones (JIT, inline caches, imports). */
const warmupOpens = 5;
/** Untimed mapped loads of a small file before the rounds, each of loadJoblibSync and loadJoblib (see warmUp). */
const mappedWarmups = 200;
/** The zlib level of both sides' compressed files (joblib's compress=3). */
const level = 3;

export function joblibOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): JoblibBenchOptions {
  // memmap's parser, so sizes, limits and messages are the same as the other benchmarks'.
  const { bytes, repeats } = optionsFromEnv({ ...env, BENCH_REPEATS: env.BENCH_REPEATS ?? '3' });
  const zlibText = env.BENCH_ZLIB_BYTES ?? String(Math.max(8, Math.floor(bytes / 4 / 8) * 8));
  const { bytes: zlibBytes } = optionsFromEnv({ BENCH_BYTES: zlibText });
  const opensText = (env.BENCH_OPENS ?? '20').trim();
  if (!/^\d+$/.test(opensText) || Number(opensText) < 1) {
    throw new Error(`BENCH_OPENS: expected a whole number of at least 1, received "${opensText}"`);
  }
  return { bytes, zlibBytes, repeats, opens: Number(opensText), python: env.BENCH_PYTHON ?? '/usr/bin/python3' };
}

/** Every element is 1 + i * 0.5: exact in a double, element 0 is not the 0 of a hole, and zlib shrinks it to about 18%. */
const expected = (i: number) => 1 + i * 0.5;

function makeValue(n: number): { features: Float64Array; name: string } {
  const features = new Float64Array(n);
  for (let i = 0; i < n; i++) features[i] = expected(i);
  return { features, name: 'x' };
}

/**
 * The loaded dict (a Map) holds name 'x' and a float64 array of n elements
 * (an NDArray in memory, a Memmap when mapped) whose first, middle and last
 * elements match the formula; throws otherwise. Returns the array.
 */
function check(label: string, value: unknown, n: number, mapped = false): NDArray | Memmap {
  if (!(value instanceof Map) || value.size !== 2 || value.get('name') !== 'x') {
    throw new Error(`bench: ${label} did not return a Map of 'features' and 'name': 'x'`);
  }
  const found: unknown = value.get('features');
  const kind = mapped ? 'Memmap' : 'NDArray';
  const array = (mapped ? found instanceof Memmap : found instanceof NDArray) ? (found as NDArray | Memmap) : undefined;
  if (array === undefined || array.dtype !== 'float64' || array.shape.length !== 1 || array.shape[0] !== n) {
    throw new Error(`bench: ${label} did not return 'features' as a float64 ${kind} of ${n} elements`);
  }
  for (const i of [0, Math.floor(n / 2), n - 1]) {
    const got = array.get(i);
    if (got !== expected(i)) throw new Error(`bench: ${label} element ${i} is ${String(got)}, expected ${expected(i)}`);
  }
  return array;
}

interface Files {
  /** joblib.dump's uncompressed and compress=3 files: both sides load these. */
  plain: string;
  zlib: string;
  dir: string;
}

/**
 * Times each step, their order alternating from round to round; `after`
 * checks what each returned. With `fresh`, that file is removed (untimed)
 * before each step, so every write lands on fresh tmpfs pages, as joblib's do.
 */
async function inTurn(round: number, steps: [() => unknown, number[], (value: unknown) => void][], fresh?: string): Promise<void> {
  if (round % 2 === 1) steps.reverse();
  for (const [step, samples, after] of steps) {
    if (fresh !== undefined) rmSync(fresh, { force: true });
    const { ms, value } = await timed(step);
    after(value);
    samples.push(ms);
  }
  if (fresh !== undefined) rmSync(fresh, { force: true });
}

/** One round of memjob: both writers, both readers, the mapped loads, then the same for the compressed files. */
async function memjobRound(files: Files, value: ReturnType<typeof makeValue>, zValue: ReturnType<typeof makeValue>, round: number, opens: number, s: Samples): Promise<void> {
  const n = value.features.length;
  const nz = zValue.features.length;
  const out = join(files.dir, 'memjob-round.pkl');
  // Each write is checked through a mapping of what it wrote.
  const wrote = (label: string) => () => (check(label, loadJoblibSync(out, { mmapMode: 'r' }), n, true) as Memmap).close();
  await inTurn(round, [
    [() => dumpJoblibSync(value, out), s.dumpSync, wrote('dumpJoblibSync()')],
    [() => dumpJoblib(value, out), s.dump, wrote('dumpJoblib()')],
  ], out);
  await inTurn(round, [
    [() => loadJoblibSync(files.plain), s.loadSync, (v) => check('loadJoblibSync()', v, n)],
    [() => loadJoblib(files.plain), s.load, (v) => check('loadJoblib()', v, n)],
  ]);
  // The read alone, for reference: what loadJoblibSync pays before it parses and copies the array out.
  const { ms } = await timed(() => readFileSync(files.plain).byteLength);
  s.readFileSync.push(ms);

  // Open → element 0 read, as joblib.load(f, mmap_mode='r')['features'][0].
  // close() after the timer stops releases the mapping, as python's `del m`
  // does. No gc() between opens: a forced full collection just before made
  // every open slower (about 6 ms instead of 0.3 to 3 ms at 64 MiB), which
  // no program that simply opens files one after another would see.
  await betweenSteps(); // the in-memory loads' garbage goes before the opens, not during them
  const mapped: [() => unknown, number[]][] = [
    [() => loadJoblibSync(files.plain, { mmapMode: 'r' }), s.mmapSync],
    [() => loadJoblib(files.plain, { mmapMode: 'r' }), s.mmap],
  ];
  for (const [open, samples] of mapped) {
    for (let k = 0; k < warmupOpens + opens; k++) {
      await new Promise<void>((resolve) => setImmediate(resolve)); // lets a signal in
      const start = performance.now();
      const loaded = (await open()) as Map<string, Memmap>;
      const first = loaded.get('features')!.get(0);
      const elapsed = performance.now() - start;
      if (first !== expected(0)) throw new Error(`bench: mapped element 0 is ${String(first)}, expected ${expected(0)}`);
      if (k === 0) check("loadJoblibSync(file, { mmapMode: 'r' })", loaded, n, true);
      loaded.get('features')!.close();
      if (k >= warmupOpens) samples.push(elapsed);
    }
  }

  const zOut = join(files.dir, 'memjob-round.pkl.z3');
  const options = { compress: level };
  // The same calls' files were loaded by joblib before the rounds (crossCheck); here they are only timed.
  await inTurn(round, [
    [() => dumpJoblibSync(zValue, zOut, options), s.zDumpSync, () => undefined],
    [() => dumpJoblib(zValue, zOut, options), s.zDump, () => undefined],
  ], zOut);
  await inTurn(round, [
    [() => loadJoblibSync(files.zlib), s.zLoadSync, (v) => check('loadJoblibSync() of the compressed file', v, nz)],
    [() => loadJoblib(files.zlib), s.zLoad, (v) => check('loadJoblib() of the compressed file', v, nz)],
  ]);
  await betweenSteps();
}

interface PythonRound {
  dump_s: number;
  load_s: number;
  mmap_ms: number[];
  zdump_s: number;
  zload_s: number;
}

async function joblibRound(files: Files, n: number, nz: number, opens: number, python: string, s: Samples): Promise<void> {
  await betweenSteps();
  const args = ['--round', files.plain, files.zlib, String(n), String(nz), files.dir, String(opens), String(warmupOpens)];
  const r = await runInterop<PythonRound>(python, args);
  s.joblibDump.push(r.dump_s * 1e3);
  s.joblibLoad.push(r.load_s * 1e3);
  s.joblibMmap.push(...r.mmap_ms);
  s.joblibZDump.push(r.zdump_s * 1e3);
  s.joblibZLoad.push(r.zload_s * 1e3);
}

/**
 * Untimed: memjob's files loaded by joblib (in memory, with mmap_mode='r',
 * and compressed), from both dumpJoblibSync and dumpJoblib. The other way
 * (memjob loading joblib's files) is checked at every load of the rounds.
 */
async function crossCheck(dir: string, value: ReturnType<typeof makeValue>, zValue: ReturnType<typeof makeValue>, python: string): Promise<string> {
  const [plain, zlib] = [join(dir, 'memjob.pkl'), join(dir, 'memjob.pkl.z3')];
  const n = String(value.features.length);
  const nz = String(zValue.features.length);
  dumpJoblibSync(value, plain);
  dumpJoblibSync(zValue, zlib, { compress: level });
  await runInterop(python, ['--check', plain, zlib, n, nz]);
  await dumpJoblib(value, plain);
  await dumpJoblib(zValue, zlib, { compress: level });
  await runInterop(python, ['--check', plain, zlib, n, nz]);
  rmSync(plain);
  rmSync(zlib);
  return (
    "Files cross: joblib.load read dumpJoblibSync's and dumpJoblib's files (plain, with mmap_mode='r' as np.memmap, and compress=3), " +
    "and memjob read joblib.dump's at every load; first, middle and last elements checked"
  );
}

/** Tiny untimed round of every Node call, so the first timed one does not pay for JIT or loading the addon. */
async function warmUp(dir: string): Promise<void> {
  const n = 1 << 17; // 1 MiB
  const value = makeValue(n);
  const file = join(dir, 'warmup.pkl');
  for (let i = 0; i < 3; i++) {
    for (const compress of [0, level]) {
      dumpJoblibSync(value, file, { compress });
      await dumpJoblib(value, file, { compress });
      check('warm-up loadJoblibSync()', loadJoblibSync(file), n);
      check('warm-up loadJoblib()', await loadJoblib(file), n);
    }
    dumpJoblibSync(value, file);
    (check('warm-up mapped loadJoblibSync()', loadJoblibSync(file, { mmapMode: 'r' }), n, true) as Memmap).close();
    (check('warm-up mapped loadJoblib()', await loadJoblib(file, { mmapMode: 'r' }), n, true) as Memmap).close();
    readFileSync(file);
  }
  // The mapped loads are timed in steady state, as a program that opens files one after another
  // runs: V8 optimizes the parser only after some hundred loads. Measured here (2026-11-28), the
  // first 25 loads of a process took 300 to 440 µs each, later ones 60 to 125 µs.
  dumpJoblibSync(value, file);
  for (let i = 0; i < mappedWarmups; i++) {
    (loadJoblibSync(file, { mmapMode: 'r' }) as Map<string, Memmap>).get('features')!.close();
    ((await loadJoblib(file, { mmapMode: 'r' })) as Map<string, Memmap>).get('features')!.close();
  }
  rmSync(file, { force: true });
}

/** Runs every round and returns the rows and goal lines (for main(), or bench/run.ts's report). */
export async function runJoblibBench(options: JoblibBenchOptions = joblibOptionsFromEnv()): Promise<JoblibBenchResult & { crossed: string }> {
  // As bench/dump.ts: a 0700 mkdtemp folder, removed however the run ends; a signal also stops a running python first.
  return withScratch(async (folder) => {
    const versions = await interopVersions(options.python);
    if (!versions.ok) {
      const goals = ['Goals (memjob at least as fast as joblib; mapped load at most its time): not measured, joblib was skipped'];
      return { rows: [], goals, joblib: `${versions.text}; every row compares with joblib, so nothing was measured`, crossed: '' };
    }
    const dir = folder('/dev/shm/memjob-bench-joblib-');
    const [n, nz] = [options.bytes / 8, options.zlibBytes / 8];
    const files: Files = { plain: join(dir, 'joblib.pkl'), zlib: join(dir, 'joblib.pkl.z3'), dir };
    await warmUp(dir);
    const value = makeValue(n);
    const zValue = makeValue(nz);
    process.stderr.write('bench joblib: writing joblib reference files, cross-checking memjob files\n');
    await runInterop(options.python, ['--write', files.plain, files.zlib, String(n), String(nz)]);
    const crossed = await crossCheck(dir, value, zValue, options.python);

    const s = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Samples;
    for (let round = 0; round < options.repeats; round++) {
      // Alternate which side goes first, so neither is always first on fresh memory.
      const memjobFirst = round % 2 === 0;
      process.stderr.write(`bench joblib: round ${round + 1}/${options.repeats}: ${memjobFirst ? 'memjob, joblib' : 'joblib, memjob'}\n`);
      for (const side of memjobFirst ? ['memjob', 'joblib'] : ['joblib', 'memjob']) {
        if (side === 'memjob') await memjobRound(files, value, zValue, round, options.opens, s);
        else await joblibRound(files, n, nz, options.opens, options.python, s);
      }
    }
    return { ...summarize(s, options, warmupOpens, level), joblib: versions.text, crossed };
  }, stopInterop);
}

/** Prints the table and goal lines; returns the result for bench/run.ts's report. */
export async function main(): Promise<JoblibBenchResult> {
  const options = joblibOptionsFromEnv();
  console.log('## joblib\n');
  for (const line of environmentLines()) console.log(`${line}  `);
  const { crossed, ...result } = await runJoblibBench(options);
  console.log(`joblib: ${result.joblib}  `);
  console.log(`Rounds: ${options.repeats}, memjob and joblib alternately first; /dev/shm files removed before every write`);
  console.log('');
  if (result.rows.length > 0) {
    console.log(formatTable(result.rows));
    console.log('');
  }
  if (crossed !== '') console.log(`${crossed}: met`);
  for (const goal of result.goals) console.log(goal);
  return result;
}

// Also runnable on its own: node build-dev/bench/joblib.js (after npm run build:dev)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
