// No space (ENOSPC) while dumping an argument: the run falls back to the next
// temp root, or fails with a clear error; it never hangs, and no folder stays.
// A full file system is simulated: dumpScratchSync (the format layer) fails
// with ENOSPC for targets under `full`, after leaving nothing behind, as the
// real one does.
import { mkdirSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, MemjobError, Parallel, delayed, hasShareableMemory } from '../src/index.js';
import { packResult } from '../src/transport/result-refs.js';
import { SHM_ROOT, tempRootCandidates } from '../src/transport/temp-root.js';
import { t } from './fixtures/parallel-helpers.js';
import { scratchDir } from './helpers.js';

const state = vi.hoisted(() => ({ full: [] as string[], attempts: [] as string[] }));

vi.mock('../src/format/dump.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/format/dump.js')>();
  return {
    ...original,
    dumpScratchSync: (value: unknown, target: string) => {
      state.attempts.push(target);
      if (state.full.some((prefix) => target.startsWith(prefix))) {
        throw new MemjobError('ENOSPC', `dump: write failed for '${target}': no space left on device (ENOSPC)`, { syscall: 'write', path: target });
      }
      original.dumpScratchSync(value, target);
    },
  };
});

let scratch: ReturnType<typeof scratchDir>;
beforeAll(() => {
  scratch = scratchDir('parallel-nospace');
});
afterAll(() => scratch.remove());

const big = new Float64Array(200_000).fill(0.5); // 1.6 MB: dumped

describe.each(['threads', 'processes'] as const)('%s', (backend) => {
  it('an explicit tempFolder that is full fails the run with a clear ENOSPC error, and the Parallel goes on', async () => {
    const root = scratch.file(`full-${backend}`);
    mkdirSync(root);
    state.full = [root];
    try {
      await using p = new Parallel({ backend, nJobs: 2, tempFolder: root });
      const started = performance.now();
      const error = (await p.run([delayed(t('sum'))(big)]).catch((e: unknown) => e)) as MemjobError;
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(error).toBeInstanceOf(MemjobError);
      expect(error.code).toBe(ErrorCodes.NO_SPACE);
      expect(error.message).toMatch(/no space left to dump an array of 1600000 bytes for the workers \(tried .*full-/);
      expect(error.message).toMatch(/maxNbytes: null/);
      expect(readdirSync(root)).toEqual([]);
      // Small arrays need no file: the same Parallel still runs them.
      expect(await p.run([delayed(t('sum'))(new Float64Array(10).fill(1))])).toEqual([10]);
    } finally {
      state.full = [];
    }
  });

  const shm = tempRootCandidates()[0];
  it.skipIf(shm?.root !== SHM_ROOT || !shm.usable)('when /dev/shm is full, the dump falls back to os.tmpdir()', async () => {
    const tmp = scratch.file(`tmpdir-${backend}`);
    mkdirSync(tmp);
    const saved = { TMPDIR: process.env.TMPDIR, MEMJOB_TEMP_FOLDER: process.env.MEMJOB_TEMP_FOLDER };
    process.env.TMPDIR = tmp;
    delete process.env.MEMJOB_TEMP_FOLDER;
    state.full = [`${SHM_ROOT}/`];
    state.attempts = [];
    try {
      // reuse: false, so that close() stops these workers: idle shared ones would live on with
      // TMPDIR pointing into this test's scratch folder (tsx recreated its cache there after afterAll).
      await using p = new Parallel({ backend, nJobs: 2, reuse: false });
      expect(await p.run([delayed(t('sum'))(big), delayed(hasShareableMemory)(big)])).toEqual([100_000, true]);
      expect(state.attempts.map((path) => (path.startsWith(SHM_ROOT) ? 'shm' : path.startsWith(tmp) ? 'tmpdir' : path))).toEqual(['shm', 'tmpdir']);
      await p.close(); // the dump cache lives until close()
      expect(readdirSync(tmp).filter((name) => name.startsWith('memjob_'))).toEqual([]); // (tsx keeps its cache there too)
      expect(readdirSync(SHM_ROOT).filter((name) => name.startsWith(`memjob_${process.pid}_`))).toEqual([]);
    } finally {
      state.full = [];
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

it('a worker whose result file finds no space sends the array through the channel instead', () => {
  const folder = scratch.file('results-full');
  mkdirSync(folder);
  state.full = [folder];
  try {
    const result = new Float64Array(300_000).fill(2);
    const packed = packResult(result, { maxNbytes: 1e6, resultFolder: folder, nextName: () => 'result-1.mjdump' });
    expect(packed.value).toBe(result);
    expect(packed.transfer).toEqual([]);
    expect(readdirSync(folder)).toEqual([]);
  } finally {
    state.full = [];
  }
});
