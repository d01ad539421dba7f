// A temp root other users can write to is refused unless it has the sticky
// bit (another user could rename a live run folder and plant a symlink in its
// place); /dev/shm and /tmp (sticky) still serve. `memjob clean` exits 1 on a
// --temp-folder it cannot use, as docs/cli.md says.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, Parallel, delayed, hasShareableMemory } from '../src/index.js';
import { TEMP_FOLDER_ENV, chooseTempRoot, tempRootCandidates } from '../src/transport/temp-root.js';
import { rejection } from './fixtures/parallel-helpers.js';
import { failure, repoRoot, runCommand, scratchDir } from './helpers.js';

const scratch = scratchDir('temp-root-safety');
afterAll(() => scratch.remove());
const savedEnv = process.env[TEMP_FOLDER_ENV];
afterEach(() => {
  if (savedEnv === undefined) delete process.env[TEMP_FOLDER_ENV];
  else process.env[TEMP_FOLDER_ENV] = savedEnv;
});

let counter = 0;
/** A fresh folder with exactly `mode` (chmod: the umask does not apply). */
function folder(mode: number): string {
  const dir = scratch.file(`root-${++counter}-${mode.toString(8)}`);
  mkdirSync(dir);
  chmodSync(dir, mode);
  expect(statSync(dir).mode & 0o7777).toBe(mode);
  return dir;
}

describe('a root other users can write to', () => {
  it('0777 without the sticky bit is refused as the tempFolder option and as MEMJOB_TEMP_FOLDER', () => {
    const open = folder(0o777);
    const error = failure(() => chooseTempRoot(open));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toBe(
      `memjob temp folder: expected ${open} (the tempFolder option) to be a folder other users cannot write to, or one with the sticky bit (as /tmp), received mode 0777: any user can write to it, and it has no sticky bit`,
    );
    expect(error.path).toBe(open);
    process.env[TEMP_FOLDER_ENV] = open;
    expect(failure(() => chooseTempRoot()).message).toContain(`${open} (from ${TEMP_FOLDER_ENV})`);
    const [candidate] = tempRootCandidates();
    expect(candidate).toMatchObject({ root: open, source: 'env', usable: false });
    expect(candidate!.reason).toContain('is not safe (mode 0777');
  });

  it('group-writable without the sticky bit is refused too', () => {
    expect(failure(() => chooseTempRoot(folder(0o770))).message).toContain('mode 0770: its group can write to it');
  });

  it.runIf(process.getuid?.() === 0)("a folder another user owns is refused (its owner can rename what is in it)", () => {
    const theirs = folder(0o755);
    chownSync(theirs, 65534, 65534);
    expect(failure(() => chooseTempRoot(theirs)).message).toContain('owned by uid 65534: another user owns it');
  });

  it('the same folder with the sticky bit, or 0700, or 0755 owned by this user, is used', () => {
    for (const mode of [0o1777, 0o1770, 0o700, 0o755]) {
      const dir = folder(mode);
      expect(chooseTempRoot(dir).root).toBe(dir);
    }
  });

  it('a Parallel with such a tempFolder fails with the same error, and creates nothing there', async () => {
    const open = folder(0o777);
    await using p = new Parallel({ backend: 'threads', nJobs: 2, tempFolder: open });
    const error = await rejection(p.run([delayed(hasShareableMemory)(new Float64Array(300_000))]));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toContain('any user can write to it');
    expect(readdirSync(open)).toEqual([]);
    // Made safe, the same folder serves.
    chmodSync(open, 0o1777);
    expect(await p.run([delayed(hasShareableMemory)(new Float64Array(300_000))])).toEqual([true]);
  });
});

describe('the sticky shared roots', () => {
  for (const root of ['/dev/shm', '/tmp']) {
    it.runIf(existsSync(root) && (statSync(root).mode & 0o1000) !== 0)(`${root} (world-writable, sticky) is still used`, () => {
      expect(chooseTempRoot(root).root).toBe(root);
      delete process.env[TEMP_FOLDER_ENV];
      const candidates = tempRootCandidates();
      expect(candidates.find((c) => c.root === root)?.reason ?? '').not.toContain('not safe');
    });
  }
});

function memjob(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], env);
}

describe('memjob clean on a root it cannot use', () => {
  it('--temp-folder /nonexistent exits 1 with ENOENT', async () => {
    const missing = scratch.file('nonexistent');
    const run = await memjob(['clean', '--temp-folder', missing]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`'${missing}'`);
    expect(run.stderr).toContain('memjob: error code ENOENT');
  });

  it('an unsafe MEMJOB_TEMP_FOLDER exits 1; a usable one exits 0', async () => {
    const open = folder(0o777);
    const refused = await memjob(['clean'], { [TEMP_FOLDER_ENV]: open });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('memjob: error code MEMJOB_ERR_INVALID_ARG');
    const fine = await memjob(['clean', '--temp-folder', folder(0o700)]);
    expect(fine.stderr).toBe('');
    expect(fine.code).toBe(0);
  });
});
