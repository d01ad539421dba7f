/**
 * The long fuzz run for memjob's dump format: load() must never trust a file.
 *
 *   npx tsx test/fuzz/dump-fuzz.ts [--cases N] [--seed S] [--case K]
 *
 *   --cases N  how many mutated files to try (default 200000); Ctrl-C stops
 *              early and still prints the summary
 *   --seed S   the run's seed (default: random, printed at the start); the
 *              same seed gives the same files, case by case
 *   --case K   replay only case K of the seed (prints what was mutated)
 *   --keep-going  do not stop at the first failure: report and save each
 *              (the first 100 files), go on, and exit 1 at the end
 *   --stats    at the end, list the kinds of FORMAT error met and how often
 *              (shows which checks the mutations reach)
 *
 * Each case is a seed dump (written with dumpSync, plain or gzip/zlib/brotli)
 * mutated by test/fuzz/mutations.ts: byte flips, truncation, lying header
 * lengths, rewritten msgpack integers, re-encoded structure trees, raw
 * msgpack fragments, appended garbage. Every file is loaded with loadSync,
 * loadSync({ mmapMode: 'r' }) (every mapped byte is read, so a mapping past
 * the file's end would crash with SIGBUS) and, for compressed files and one
 * plain file in four, await load(). Each must return a value or throw a
 * MemjobError with code MEMJOB_ERR_FORMAT (or MEMJOB_ERR_VIEW_TOO_LARGE for
 * an array too large for memory), within a time bound and without the
 * process's memory passing 1 GiB.
 *
 * The first failure prints the seed, the case number and the mutation, saves
 * the file under tmp/fuzz-failures/ and exits 1 (with --keep-going, every
 * failure is printed and the run goes on). Progress is printed every
 * 10000 cases, and a summary at the end. Scratch files live in a 0700 folder
 * under /dev/shm that is removed on exit, Ctrl-C and SIGTERM.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAGIC } from '../../src/format/header.js';
import { repoRoot } from '../helpers.js';
import {
  MEMORY_LIMIT,
  buildSeeds,
  checkAsync,
  checkSync,
  makeCase,
  memoryInUse,
  randomSeed,
  silenceCompressedMmapWarnings,
  type FuzzCase,
  type Outcome,
  type Verdict,
} from './mutations.js';

interface Args {
  cases: number;
  seed: number;
  only: number | null;
  stats: boolean;
  keepGoing: boolean;
}

const USAGE = 'usage: npx tsx test/fuzz/dump-fuzz.ts [--cases N] [--seed S] [--case K] [--keep-going] [--stats]';

function usage(problem: string): never {
  console.error(`dump-fuzz: ${problem}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = { cases: 200_000, seed: randomSeed(), only: null, stats: false, keepGoing: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const number = (): number => {
      const n = Number(value);
      if (value === undefined || !Number.isSafeInteger(n) || n < 0) usage(`${flag} needs a non-negative integer, received ${value}`);
      i++;
      return n;
    };
    if (flag === '--cases') args.cases = number();
    else if (flag === '--seed') args.seed = number() >>> 0;
    else if (flag === '--case') args.only = number();
    else if (flag === '--stats') args.stats = true;
    else if (flag === '--keep-going') args.keepGoing = true;
    else if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    else usage(`unknown argument ${flag}`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const base = process.platform === 'linux' ? '/dev/shm' : tmpdir();
const scratch = mkdtempSync(join(base, 'memjob-fuzz-')); // mkdtemp makes it 0700
const failuresDir = join(repoRoot, 'tmp', 'fuzz-failures');

let removed = false;
function cleanUp(): void {
  if (removed) return;
  removed = true;
  rmSync(scratch, { recursive: true, force: true });
}
process.on('exit', cleanUp);

const started = performance.now();
const counts: Record<Outcome, number> = { loaded: 0, 'format-error': 0, 'too-large': 0 };
let done = 0;
let failures = 0;
let peakMemory = memoryInUse();
let current: FuzzCase | undefined;
let slowest = { caseNo: -1, ms: 0 };
/** FORMAT messages with numbers and quoted text blanked out, and how often each was met. */
const kinds = new Map<string, number>();

function kindOf(message: string): string {
  return message
    .replace(/^.*? is not a valid memjob dump: /, '')
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\(([^()]*)\)$/, '(…)')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, 'N')
    .slice(0, 110);
}

function summary(reason: string): void {
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `dump-fuzz ${reason}: seed ${args.seed}, ${done} cases in ${seconds.toFixed(1)} s (${Math.round(done / Math.max(seconds, 1e-9))}/s): ` +
      `${counts.loaded} loaded ok, ${counts['format-error']} FORMAT errors, ${counts['too-large']} too large for memory, ${failures} failures; ` +
      `peak rss+arrayBuffers ${Math.round(peakMemory / 2 ** 20)} MiB; slowest case ${slowest.caseNo} (${Math.round(slowest.ms)} ms)`,
  );
  if (args.stats) {
    console.log('FORMAT errors by kind (first loadSync of each case):');
    for (const [kind, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(7)}  ${kind}`);
  }
}

/** Reports a failing case and saves its file; stops the run unless --keep-going (memory over the limit always stops it). */
function fail(c: FuzzCase, how: string, problem: string, fatal = false): void {
  failures++;
  let saved = '(not saved: over 100 failures)';
  if (failures <= 100) {
    mkdirSync(failuresDir, { recursive: true });
    saved = join(failuresDir, `seed-${args.seed}-case-${c.caseNo}.bin`);
    writeFileSync(saved, c.bytes);
  }
  console.error(
    `\nFAILURE at seed ${args.seed} case ${c.caseNo} (from seed file ${c.seedName})\n` +
      `  mutation: ${c.mutation}\n` +
      `  ${how}: ${problem}\n` +
      `  file (${c.bytes.length} bytes) saved as ${saved}\n` +
      `  replay: npx tsx test/fuzz/dump-fuzz.ts --seed ${args.seed} --case ${c.caseNo}`,
  );
  if (args.keepGoing && current !== undefined && !fatal) return;
  summary('stopped at a failure');
  process.exit(1);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    summary(`interrupted by ${signal}`);
    cleanUp();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (current !== undefined) {
      const c = current;
      current = undefined; // an error outside a case's own calls cannot be resumed from
      fail(c, event, detail);
    }
    console.error(`dump-fuzz: ${event} outside any case: ${detail}`);
    cleanUp();
    process.exit(1);
  });
}

silenceCompressedMmapWarnings();
const seeds = buildSeeds(scratch);
console.log(
  `dump-fuzz: seed ${args.seed}, ${args.only === null ? `${args.cases} cases` : `case ${args.only} only`}, ` +
    `${seeds.length} seed files (${seeds.map((s) => `${s.name} ${s.bytes.length} B`).join(', ')}), scratch ${scratch}`,
);

async function runCase(caseNo: number): Promise<void> {
  const caseStarted = performance.now();
  const c = makeCase(seeds, args.seed, caseNo);
  current = c;
  if (args.only !== null) console.log(`case ${caseNo} from ${c.seedName}: ${c.mutation}`);
  const file = join(scratch, `case-${caseNo}.bin`);
  writeFileSync(file, c.bytes);
  const compressed = c.bytes.length < MAGIC.length || !MAGIC.equals(c.bytes.subarray(0, MAGIC.length));
  const runs: [string, () => Verdict | Promise<Verdict>][] = [
    ['loadSync', () => checkSync(file, null)],
    ["loadSync mmapMode 'r'", () => checkSync(file, 'r')],
  ];
  if (compressed || caseNo % 4 === 0 || args.only !== null) runs.push(['await load', () => checkAsync(file)]);
  for (const [how, run] of runs) {
    const verdict = await run();
    if (!verdict.ok) {
      fail(c, how, verdict.problem);
      break;
    }
    if (how === 'loadSync') {
      counts[verdict.outcome]++;
      if (args.stats && verdict.message !== undefined) {
        const kind = kindOf(verdict.message);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
    }
    if (args.only !== null) console.log(`  ${how}: ${verdict.outcome}${verdict.message === undefined ? '' : `: ${verdict.message}`}`);
  }
  rmSync(file, { force: true });
  const used = memoryInUse();
  peakMemory = Math.max(peakMemory, used);
  if (used > MEMORY_LIMIT) fail(c, 'memory', `rss + arrayBuffers reached ${used} bytes, over ${MEMORY_LIMIT}`, true);
  current = undefined;
  done++;
  const ms = performance.now() - caseStarted;
  if (ms > slowest.ms) slowest = { caseNo, ms };
}

if (args.only !== null) {
  await runCase(args.only);
} else {
  for (let caseNo = 0; caseNo < args.cases; caseNo++) {
    await runCase(caseNo);
    // Let signals (Ctrl-C) and timers in between cases even when no load was async.
    if (caseNo % 64 === 63) await new Promise((resolve) => setImmediate(resolve));
    if ((caseNo + 1) % 10_000 === 0) {
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `  ${caseNo + 1} cases, ${seconds.toFixed(0)} s: ${counts.loaded} loaded, ${counts['format-error']} FORMAT errors, ` +
          `${counts['too-large']} too large; rss+arrayBuffers ${Math.round(memoryInUse() / 2 ** 20)} MiB`,
      );
    }
  }
}
summary('done');
cleanUp();
process.exit(failures === 0 ? 0 : 1);
