/**
 * The resource tracker, as loky's: a small child process that removes this
 * process's run folders once this process is gone, however it went (SIGKILL,
 * the OOM killer, a signal's default action, a crash, a normal exit). Signal
 * listeners cannot do this: a listener replaces the signal's default action
 * and only runs when the event loop turns, so a process stuck in a
 * synchronous loop or in Lock.acquire() would ignore SIGTERM, and SIGKILL
 * runs nothing at all.
 *
 * One tracker per process, started with the first run folder (main thread
 * only, like the 'exit' listener: a worker thread's folders are its owner's
 * to remove, and reaped otherwise). It is `node -e` with the short script
 * below, detached (its own process group and session: Ctrl-C at a terminal
 * and SIGHUP reach the program, not the tracker), with no stdout or stderr,
 * and unref'd, so it never keeps this process alive. This process writes one
 * JSON line per folder to the tracker's stdin: `add` with the folder's device
 * and inode, `remove` when the folder is gone. The pipe's write end is
 * close-on-exec and held by nobody else, so the tracker reads end-of-file
 * exactly when this process has died (or closed it): then, once this
 * process's pid is gone or a zombie, it removes each folder still registered
 * that is still the same real folder (device and inode, no symlink), owned by
 * this user and named memjob_<this pid>_<hex>, and exits. A folder that is
 * anything else is left alone: the tracker never removes what it was not
 * given.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isMainThread } from 'node:worker_threads';

/**
 * The tracker itself (plain CommonJS, no imports of memjob: it must run the
 * same from src/ under tsx and from dist/). argv[1] is 'memjob-tracker', a
 * name for ps and /proc to show, argv[2] the parent's pid.
 */
const TRACKER_SOURCE = String.raw`'use strict';
const { lstatSync, readFileSync, rmSync } = require('node:fs');
const { basename, isAbsolute } = require('node:path');
const parent = Number(process.argv[2]);
const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
const folderName = new RegExp('^memjob_' + parent + '_[0-9a-f]+$');
const folders = new Map();
// What ps shows instead of this script.
process.title = 'memjob-tracker ' + parent;
// Ctrl-C and hang-ups are the program's business; the tracker outlives them to clean up after it.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
    const line = pending.slice(0, end);
    pending = pending.slice(end + 1);
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      continue;
    }
    if (message === null || typeof message !== 'object' || typeof message.path !== 'string') continue;
    if (message.op === 'add' && typeof message.id === 'string') folders.set(message.path, message.id);
    else if (message.op === 'remove') folders.delete(message.path);
  }
});
process.stdin.on('error', () => {});
process.stdin.on('close', () => whenParentGone(0));
// Linux: a process that has exited is a zombie ('Z') until its parent reaps it.
// Without /proc (or once the pid is gone) end-of-file is taken as its death.
function parentAlive() {
  let stat;
  try {
    stat = readFileSync('/proc/' + parent + '/stat', 'utf8');
  } catch {
    return false;
  }
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state !== 'Z' && state !== 'X';
}
// The pipe closed while the parent still runs: someone closed its end. The parent's own 'exit' listener cleans up then.
function whenParentGone(waited) {
  if (!parentAlive()) return removeAll();
  if (waited >= 5000) process.exit(0);
  setTimeout(() => whenParentGone(waited + 50), 50);
}
function removeAll() {
  for (const [path, id] of folders) {
    try {
      if (!isAbsolute(path) || !folderName.test(basename(path))) continue;
      const stats = lstatSync(path, { bigint: true });
      if (!stats.isDirectory() || stats.dev + ':' + stats.ino !== id) continue;
      if (uid !== undefined && Number(stats.uid) !== uid) continue;
      rmSync(path, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // Gone already (the parent's 'exit' listener, a reaper), or not removable: a later reaper's job.
    }
  }
  process.exit(0);
}
`;

/** Folders registered with the tracker: path -> "dev:ino". Replayed to a new tracker if the old one died. */
const tracked = new Map<string, string>();
let tracker: ChildProcess | undefined;

/** The environment for the tracker: NODE_OPTIONS may load loaders (tsx) or preload modules the tracker has no use for. */
function trackerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

function send(message: { op: 'add'; path: string; id: string } | { op: 'remove'; path: string }): void {
  // A write to an empty pipe happens at once (libuv tries it synchronously), so a SIGKILL right after still finds it there.
  tracker?.stdin?.write(`${JSON.stringify(message)}\n`);
}

function start(): ChildProcess | undefined {
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['-e', TRACKER_SOURCE, 'memjob-tracker', String(process.pid)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: trackerEnv(),
      windowsHide: true,
    });
  } catch {
    // No tracker (no process could be started): the 'exit' listener and the reapers still clean up.
    return undefined;
  }
  const forget = () => {
    if (tracker === child) tracker = undefined;
  };
  child.on('error', forget);
  child.on('exit', forget);
  child.stdin?.on('error', forget);
  child.unref();
  (child.stdin as { unref?: () => void } | null)?.unref?.();
  return child;
}

/**
 * Registers a run folder (`dev`/`ino` from its lstat) so that the tracker
 * removes it if this process dies before removing it itself. Main thread
 * only; never throws.
 */
export function trackFolder(path: string, dev: bigint, ino: bigint): void {
  if (!isMainThread) return;
  tracked.set(path, `${dev}:${ino}`);
  if (tracker === undefined) {
    tracker = start();
    // A new tracker (the first, or one after the old died) learns every folder still live.
    for (const [known, id] of tracked) send({ op: 'add', path: known, id });
    return;
  }
  send({ op: 'add', path, id: `${dev}:${ino}` });
}

/** The folder was removed by this process: the tracker forgets it. */
export function untrackFolder(path: string): void {
  if (!tracked.delete(path)) return;
  send({ op: 'remove', path });
}

/** @internal The tracker's pid, for tests; undefined when none runs. */
export function trackerPid(): number | undefined {
  return tracker?.pid;
}
