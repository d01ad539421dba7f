/**
 * Reaping the run folders dead runs left: a folder goes once its `.lock` is
 * free (its holder died, SIGKILL included) and it is older than the minimum
 * age; live folders, young folders, other names, symlinks, files and other
 * users' folders stay. Across PID namespaces: reap-namespaces.test.ts.
 */
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRunFolder } from '../src/transport/temp-folder.js';
import { reapStaleFolders } from '../src/transport/temp-reap.js';
import { age, deadPid, killTracker, runFolderArgs, startJsonChild, type StartedChild } from './fixtures/reap-helpers.js';
import { waitFor } from './fixtures/parallel-helpers.js';
import { rootMaker, runTsChild, scratchDir } from './helpers.js';

const scratch = scratchDir('temp-reap');
afterAll(() => scratch.remove());

/** A fresh folder to use as a temp root. */
const freshRoot = rootMaker(scratch);

/** The run-folder child: creates a folder under `root` and behaves as `mode` says (fixtures/run-folder-child.ts). */
function startChild(root: string, mode: string): Promise<StartedChild> {
  return startJsonChild(process.execPath, runFolderArgs(root, mode));
}

describe('reaping folders of processes that no longer exist', () => {
  it('removes the folder a SIGKILLed process left, once it is older than the minimum age', async () => {
    const root = freshRoot();
    const { child, info, done } = await startChild(root, 'wait');
    expect(readdirSync(info.path).sort()).toEqual(['.lock', '1_data.bin']);
    await killTracker(info); // else it removes the folder itself
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(existsSync(info.path)).toBe(true);
    // Its lock is free now, but a folder this young may be one whose creator has not locked it yet.
    expect(reapStaleFolders(root)).toEqual([]);
    age(info.path);
    expect(reapStaleFolders(root)).toEqual([info.path]);
    expect(existsSync(info.path)).toBe(false);
    expect(reapStaleFolders(root)).toEqual([]);
  });

  it('is done by the next process that creates a run folder under the same root', async () => {
    const root = freshRoot();
    const killed = await startChild(root, 'wait');
    await killTracker(killed.info);
    killed.child.kill('SIGKILL');
    await killed.done;
    expect(existsSync(killed.info.path)).toBe(true);
    age(killed.info.path);
    const next = await startChild(root, 'exit');
    expect((await next.done).code).toBe(0);
    expect(existsSync(killed.info.path)).toBe(false);
    expect(readdirSync(root)).toEqual([]);
  });

  it('never removes the folders of live processes, however old (their lock is held)', async () => {
    const root = freshRoot();
    const own = createRunFolder(root);
    const alive = await startChild(root, 'wait');
    try {
      age(own.path, alive.info.path);
      const result = await runTsChild('run-folder-child.ts', [root, 'reap']);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ removed: [] });
      expect(reapStaleFolders(root)).toEqual([]);
      expect(reapStaleFolders(root, 0)).toEqual([]);
      expect(existsSync(own.path)).toBe(true);
      expect(existsSync(alive.info.path)).toBe(true);
    } finally {
      own.remove();
      alive.child.kill('SIGTERM');
      await alive.done;
    }
    // SIGTERM's default action ends it; its resource tracker then removes the folder.
    await waitFor(() => !existsSync(alive.info.path), 5000, 'the tracker to remove the folder');
  });

  it('never touches other names, symlinks, files or other users’ folders', () => {
    const root = freshRoot();
    const dead = deadPid();
    const outside = scratch.file(`outside-${basename(root)}`);
    mkdirSync(outside);
    writeFileSync(join(outside, 'sentinel'), 'keep');
    const kept = [
      `memjob_${dead}_xyz`, // not hex
      `memjob_${dead}_AB`, // not lower-case hex
      `memjob_${dead}`,
      `memjob-${dead}-ab`,
      `other_${dead}_ab`,
      `memjob_0_ab`,
      `memjob_0${dead}_ab`, // a leading zero: not a pid memjob wrote
      `memjob_99999999999999999999_ab`,
    ];
    for (const name of kept) mkdirSync(join(root, name));
    symlinkSync(outside, join(root, `memjob_${dead}_ab`));
    writeFileSync(join(root, `memjob_${dead}_cd`), 'a file, not a folder');
    const foreign = join(root, `memjob_${dead}_ef`);
    mkdirSync(foreign);
    const isRoot = process.getuid?.() === 0;
    if (isRoot) chownSync(foreign, 4242, 4242);
    const stale = join(root, `memjob_${dead}_0123456789abcdef`);
    mkdirSync(stale);
    writeFileSync(join(stale, 'data'), 'x');
    // Old enough, and without a .lock (its creator died before taking it): dead. Every other entry is old too.
    age(...kept.map((name) => join(root, name)), foreign, stale);
    const young = join(root, `memjob_${dead}_feed`);
    mkdirSync(young); // no lock yet, but too young to judge
    kept.push(`memjob_${dead}_feed`);

    expect(reapStaleFolders(root).sort()).toEqual(isRoot ? [stale] : [foreign, stale].sort());
    const left = readdirSync(root).sort();
    expect(left).toEqual(
      [...kept, `memjob_${dead}_ab`, `memjob_${dead}_cd`, ...(isRoot ? [`memjob_${dead}_ef`] : [])].sort(),
    );
    expect(readFileSync(join(outside, 'sentinel'), 'utf8')).toBe('keep');
    expect(reapStaleFolders(scratch.file('no-such-root'))).toEqual([]);
  });
});
