// The resource tracker (transport/temp-tracker.ts): a process that dies in any
// way, even stuck in a synchronous loop, dies of the signal at once, and the
// tracker removes its run folder; the tracker never outlives its parent and
// never removes a folder that is not the one registered to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isAlive, waitFor } from './fixtures/parallel-helpers.js';
import { runFolderArgs } from './fixtures/reap-helpers.js';
import { repoRoot, scratchDir, type ChildResult } from './helpers.js';

const scratch = scratchDir('temp-tracker');
afterAll(() => scratch.remove());
/** Children of this test: one that a failed check left running is killed (its busy loop would spin on). */
const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

let counter = 0;
function freshRoot(): string {
  const dir = scratch.file(`root-${++counter}`);
  mkdirSync(dir);
  return dir;
}

interface Info {
  path: string;
  pid: number;
  tracker: number | null;
}

/** Starts the run-folder fixture in `mode`; resolves with its first line once printed. */
function start(root: string, mode: string): Promise<{ child: ChildProcess; info: Info; done: Promise<ChildResult & { at: number }> }> {
  const child = spawn(process.execPath, runFolderArgs(root, mode), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  const done = new Promise<ChildResult & { at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, at: performance.now() })),
  );
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const end = stdout.indexOf('\n');
      if (end >= 0) resolve({ child, info: JSON.parse(stdout.slice(0, end)) as Info, done });
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    void done.then(() => reject(new Error(`the child ended before printing: ${stdout} ${stderr}`)));
  });
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** The tracker process the fixture reported: running, detached, named for its parent. */
function checkTracker(info: Info): number {
  expect(info.tracker).toBeTypeOf('number');
  const tracker = info.tracker!;
  expect(isAlive(tracker)).toBe(true);
  expect(cmdline(tracker)).toContain(`memjob-tracker ${info.pid}`);
  // Its own session: a terminal's Ctrl-C or hang-up reaches the program, not the tracker.
  const stat = readFileSync(`/proc/${tracker}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  expect(Number(fields[3])).toBe(tracker); // session id
  return tracker;
}

describe('a process that dies by a signal', () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGKILL'] as const) {
    it(`${signal} while in a busy synchronous loop: dies at once, and the tracker removes its folder and exits`, async () => {
      const root = freshRoot();
      const { child, info, done } = await start(root, 'busy');
      const tracker = checkTracker(info);
      expect(existsSync(info.path)).toBe(true);
      const sent = performance.now();
      child.kill(signal);
      const result = await done;
      expect(result.signal).toBe(signal);
      // No listener stands between the signal and its default action (the old listeners never ran here at all).
      expect(result.at - sent).toBeLessThan(3000);
      await waitFor(() => !existsSync(info.path), 5000, 'the tracker to remove the folder');
      expect(readdirSync(root)).toEqual([]);
      await waitFor(() => !isAlive(tracker), 5000, 'the tracker to exit');
    });
  }
});

describe('a process that ends normally', () => {
  it('removes its folder itself; its tracker exits with it and nothing is left', async () => {
    const root = freshRoot();
    const { info, done } = await start(root, 'exit');
    const tracker = checkTracker(info);
    expect((await done).code).toBe(0);
    expect(readdirSync(root)).toEqual([]);
    await waitFor(() => !isAlive(tracker), 5000, 'the tracker to exit');
  });

  it('a tracker whose folders were all removed still exits with its parent', async () => {
    const root = freshRoot();
    const { child, info, done } = await start(root, 'removed-wait');
    // The fixture made one folder and removed it; the tracker started with it stays until the process ends.
    const tracker = checkTracker(info);
    expect(existsSync(info.path)).toBe(false);
    child.kill('SIGTERM');
    expect((await done).signal).toBe('SIGTERM');
    await waitFor(() => !isAlive(tracker), 5000, 'the tracker to exit');
    expect(readdirSync(root)).toEqual([]);
  });
});

describe('the tracker removes only the folder registered to it', () => {
  it('a folder replaced under the same name (another inode) is left alone, and so is the moved original', async () => {
    const root = freshRoot();
    const { child, info, done } = await start(root, 'replaced-busy');
    const tracker = checkTracker(info);
    child.kill('SIGKILL');
    await done;
    await waitFor(() => !isAlive(tracker), 5000, 'the tracker to exit');
    expect(readFileSync(`${info.path}/impostor.bin`, 'utf8')).toBe('not the run folder');
    expect(existsSync(`${info.path}.moved`)).toBe(true);
    rmSync(info.path, { recursive: true });
    rmSync(`${info.path}.moved`, { recursive: true });
  });

  it.runIf(process.getuid?.() === 0)("a folder that another user's now is left alone", async () => {
    const root = freshRoot();
    const { child, info, done } = await start(root, 'busy');
    const tracker = checkTracker(info);
    chownSync(info.path, 65534, 65534);
    child.kill('SIGKILL');
    await done;
    await waitFor(() => !isAlive(tracker), 5000, 'the tracker to exit');
    expect(existsSync(info.path)).toBe(true);
    rmSync(info.path, { recursive: true });
  });
});
