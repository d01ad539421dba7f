/**
 * loadJoblibSync / loadJoblib never trust a file: mutations of real joblib
 * files, written to disk and loaded the three ways a user loads them (in
 * memory, mapped with mmapMode 'r', and async), either give a value whose
 * arrays read back, or fail with a MemjobError; never another error, a crash
 * (a mapping past the end of the file would be SIGBUS), a hang, or a huge
 * allocation. test/pickle-unpickler.test.ts fuzzes the unpickler alone, over
 * bytes in memory; this goes through the file paths: the windowed reader,
 * arrays read from the descriptor or mapped where the pickle says they lie.
 *
 * Deterministic: MEMJOB_FUZZ_SEED (default below) and the case number in a
 * failure message rebuild the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Memmap, MemjobError, NDArray, loadJoblib, loadJoblibSync } from '../src/index.js';
import { MEMORY_LIMIT, caseRng, memoryInUse, silenceCompressedMmapWarnings, type Rng } from './fuzz/mutations.js';
import { scratchDir } from './helpers.js';

const SEED = process.env.MEMJOB_FUZZ_SEED === undefined ? 0x6a6f626c : Number(process.env.MEMJOB_FUZZ_SEED) >>> 0;
const CASES = 2000;
/** What a refused file may fail with: a broken pickle, a refused global, an unsupported dtype, a shape that does not fit. */
const ALLOWED = new Set(['MEMJOB_ERR_FORMAT', 'MEMJOB_ERR_UNSAFE_PICKLE', 'MEMJOB_ERR_DTYPE', 'MEMJOB_ERR_SHAPE', 'MEMJOB_ERR_VIEW_TOO_LARGE']);

// joblib 1.2's files of every pickle protocol (arrays inline, 16-byte aligned), 0.10 and 0.11's
// (inline, unaligned), and two compressed ones (the pickle decompressed first).
const SEED_FILES = [
  'joblib_1.2_p2.pkl',
  'joblib_1.2_p3.pkl',
  'joblib_1.2_p4.pkl',
  'joblib_1.2_p5.pkl',
  'joblib_0.10.0_pickle_py27_np17.pkl',
  'joblib_0.11.0_pickle_py36_np111.pkl',
  'joblib_1.2_zlib.pkl',
  'joblib_1.2_gzip.pkl',
];

const scratch = scratchDir('joblib-file-fuzz');
let restoreWarnings: () => void = () => {};
beforeAll(() => {
  restoreWarnings = silenceCompressedMmapWarnings();
});
afterAll(() => {
  restoreWarnings();
  scratch.remove();
});

const seeds = SEED_FILES.map((name) => ({ name, bytes: new Uint8Array(readFileSync(new URL(`./fixtures/pickle/${name}`, import.meta.url))) }));

/** One to three corruptions: bit flips, random bytes, truncation, and 4- and 8-byte length fields of 2^31 - 1 inserted. */
function mutate(bytes: Uint8Array, rng: Rng): Uint8Array {
  let b = Array.from(bytes);
  for (let k = rng.range(1, 3); k > 0; k--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(5)) {
      case 0: if (b.length > 0) b[at % b.length]! ^= 1 << rng.int(8); break;
      case 1: b = b.slice(0, at); break;
      case 2: b.splice(at, 0, 0xff, 0xff, 0xff, 0x7f); break;
      case 3: b.splice(at, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0); break;
      default: if (b.length > 0) b[at % b.length] = rng.int(256); break;
    }
  }
  return new Uint8Array(b);
}

/** Reads the first and last element of every array in the value (a mapped one past its file would crash here), and closes the Memmaps. */
function touchAndClose(value: unknown, seen = new Set<unknown>()): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Memmap || value instanceof NDArray) {
    if (value.size > 0 && value.ndim > 0) {
      const data = value.shape.map(() => 0);
      void value.get(...data);
      void value.get(...value.shape.map((n) => n - 1));
    }
    if (value instanceof Memmap) value.close();
    return;
  }
  const items = value instanceof Map ? [...value.values()] : value instanceof Set ? [...value] : Array.isArray(value) ? value : [];
  for (const item of items) touchAndClose(item, seen);
}

type Outcome = 'value' | string;

function judge(run: () => unknown, where: string): Outcome {
  try {
    touchAndClose(run());
    return 'value';
  } catch (error) {
    if (!(error instanceof MemjobError) || !ALLOWED.has(error.code)) throw new Error(`${where} threw ${String(error)}`, { cause: error });
    return error.code;
  }
}

describe('fuzzed joblib files', () => {
  it('the seed files load, in memory, mapped and async', async () => {
    for (const seed of seeds) {
      const file = scratch.file(`seed-${seed.name}`);
      writeFileSync(file, seed.bytes);
      expect(judge(() => loadJoblibSync(file), seed.name)).toBe('value');
      expect(judge(() => loadJoblibSync(file, { mmapMode: 'r' }), seed.name)).toBe('value');
      touchAndClose(await loadJoblib(file));
    }
  });

  it(`${CASES} mutated files, each loaded three ways, give a value or a MemjobError (seed ${SEED})`, async () => {
    const outcomes: Record<string, number> = {};
    const count = (outcome: Outcome) => (outcomes[outcome] = (outcomes[outcome] ?? 0) + 1);
    const before = memoryInUse();
    let peak = 0;
    let slowest = 0;
    const file = scratch.file('case.pkl');
    for (let caseNo = 0; caseNo < CASES; caseNo++) {
      const seed = seeds[caseNo % seeds.length]!;
      writeFileSync(file, mutate(seed.bytes, caseRng(SEED, caseNo)));
      const where = `case ${caseNo} (seed ${SEED}, from ${seed.name})`;
      const started = performance.now();
      count(judge(() => loadJoblibSync(file), `${where}, loadJoblibSync`));
      count(judge(() => loadJoblibSync(file, { mmapMode: 'r' }), `${where}, loadJoblibSync mmapMode 'r'`));
      try {
        touchAndClose(await loadJoblib(file));
        count('value');
      } catch (error) {
        if (!(error instanceof MemjobError) || !ALLOWED.has(error.code)) throw new Error(`${where}, loadJoblib threw ${String(error)}`, { cause: error });
        count(error.code);
      }
      slowest = Math.max(slowest, performance.now() - started);
      if (caseNo % 50 === 0) peak = Math.max(peak, memoryInUse() - before);
    }
    // A guard against hangs and huge allocations, not a speed measurement (benchmarks live in bench/).
    expect(slowest).toBeLessThan(2000);
    expect(peak).toBeLessThan(MEMORY_LIMIT);
    // The mutations reach both outcomes, and the parser's own refusals.
    expect(outcomes.value).toBeGreaterThan(100);
    expect(outcomes.MEMJOB_ERR_FORMAT).toBeGreaterThan(300);
  });
});
