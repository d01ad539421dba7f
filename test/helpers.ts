/** Shared test helpers: scratch folders, TypeScript workers and child processes, MemjobError checks. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { expect } from 'vitest';
import { MemjobError } from '../src/index.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** A function that makes a fresh folder `root-N` inside `scratch` on each call (a temp root for one test). */
export function rootMaker(scratch: { file: (name: string) => string }): () => string {
  let counter = 0;
  return () => {
    const dir = scratch.file(`root-${++counter}`);
    mkdirSync(dir);
    return dir;
  };
}

/** A fresh 0700 folder under the repository's tmp/, and a function that removes it. */
export function scratchDir(label: string): { dir: string; file: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(repoRoot, 'tmp', `test-${label}-`));
  return { dir, file: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts a worker thread running a TypeScript module from test/fixtures.
 * Node 20 resolves a worker's entry before --import hooks apply, so a small
 * .mjs bootstrap registers tsx and then imports the module.
 */
export function startTsWorker(fixture: string, workerData: unknown): Worker {
  const entry = new URL(`./fixtures/${fixture}`, import.meta.url).href;
  return new Worker(new URL('./fixtures/ts-worker.mjs', import.meta.url), { workerData: { entry, workerData } });
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript fixture in a child Node process (under tsx) and collects its output. */
export function runTsChild(fixture: string, args: string[] = [], nodeFlags: string[] = []): Promise<ChildResult> {
  const script = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  return runCommand(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args]);
}

/** Runs `command args` in the repository (with `env` added to the environment) to the end and collects its output. */
export function runCommand(command: string, args: string[], env: Record<string, string> = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A child started by startJsonChild: its first line, parsed, and how it ended. */
export interface JsonChild<Info> {
  child: ChildProcess;
  info: Info;
  done: Promise<ChildResult>;
}

/**
 * Starts `command args` in the repository and resolves once it has printed
 * its first line, a JSON value. `onSpawn` sees the child at once (to kill it
 * if the test fails before that line).
 */
export function startJsonChild<Info>(command: string, args: string[], onSpawn?: (child: ChildProcess) => void): Promise<JsonChild<Info>> {
  const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  onSpawn?.(child);
  let stdout = '';
  let stderr = '';
  const done = new Promise<ChildResult>((resolveDone, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolveDone({ code, signal, stdout, stderr }));
  });
  return new Promise((resolveStart, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const before = stdout;
      stdout += d.toString();
      if (!before.includes('\n') && stdout.includes('\n')) resolveStart({ child, info: JSON.parse(stdout.slice(0, stdout.indexOf('\n'))) as Info, done });
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    void done.then((result) => {
      if (!result.stdout.includes('\n')) reject(new Error(`the child ended before printing: ${JSON.stringify(result)}`));
    });
  });
}

/**
 * Debian's interpreter, when numpy imports there, else null. The python3
 * first on PATH may be another interpreter (pyenv) without numpy, so this
 * never looks it up by name.
 */
export function numpyPython(): string | null {
  const python = '/usr/bin/python3';
  const result = spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore', timeout: 60_000 });
  return result.status === 0 ? python : null;
}

/** Runs `fn`, expecting a MemjobError, and returns it for checks on its code and message. */
export function failure(fn: () => unknown): MemjobError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MemjobError);
    return error as MemjobError;
  }
  throw new Error('expected a MemjobError, but nothing was thrown');
}

/** failure() for a promise: the MemjobError `fn` rejects with. */
export async function asyncFailure(fn: () => Promise<unknown>): Promise<MemjobError> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MemjobError);
    return error as MemjobError;
  }
  throw new Error('expected a MemjobError, but nothing was rejected');
}
