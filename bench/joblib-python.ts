/**
 * The python half of bench/joblib.ts: runs bench/joblib_interop.py (joblib's
 * reference files, the check of memjob's files, and joblib's timed rounds)
 * and keeps the running interpreter so a signal can stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { benchSources } from './paths.js';

const script = join(benchSources, 'joblib_interop.py');

// The running python, so a signal can stop it before the folder goes.
let child: ChildProcess | undefined;

/** Runs bench/joblib_interop.py and parses the JSON line it prints; rejects with its stderr. */
export function runInterop<T>(python: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const proc = spawn(python, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    proc.on('error', (error) => {
      child = undefined;
      reject(error);
    });
    proc.on('close', (code, signal) => {
      child = undefined;
      if (code !== 0) {
        reject(new Error(`${python} ${script} ${args[0]} exited with ${signal ?? code}: ${err.trim() || '(no output)'}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new Error(`${python} ${script} ${args[0]} printed no JSON: ${out.trim() || '(nothing)'}`));
      }
    });
  });
}

/** joblib, numpy and python versions, or (ok: false) why they cannot be imported. */
export async function interopVersions(python: string): Promise<{ text: string; ok: boolean }> {
  try {
    const v = await runInterop<{ python: string; joblib: string; numpy: string }>(python, ['--versions']);
    return { ok: true, text: `joblib ${v.joblib}, numpy ${v.numpy}, Python ${v.python} (${python})` };
  } catch (error) {
    const reason = (error as Error).message.trim().split('\n').at(-1);
    return { ok: false, text: `skipped: ${python} cannot run joblib with numpy (${reason})` };
  }
}

/** Kills the running python, if any (before the scratch folder goes). */
export function stopInterop(): void {
  child?.kill('SIGKILL');
}
