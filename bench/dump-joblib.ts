/**
 * The python half of bench/dump.ts: runs bench/joblib_dump.py (joblib.dump,
 * joblib.load and mapped loads of a numpy array, timed inside python) and
 * keeps the running interpreter so a signal can stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { benchSources } from './paths.js';

const defaultScript = join(benchSources, 'joblib_dump.py');

// The running python, so a signal can stop it before the folder goes.
let child: ChildProcess | undefined;

/** Runs a python script of bench/ (by default joblib_dump.py); resolves to its stdout, rejects with its stderr. */
export function runPython(python: string, args: string[], joblibScript = defaultScript): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(python, [joblibScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (code === 0) resolve(out);
      else reject(new Error(`${python} ${joblibScript} exited with ${signal ?? code}: ${err.trim() || '(no output)'}`));
    });
  });
}

/** joblib, numpy and python versions, or (ok: false) why they cannot be imported. */
export async function joblibVersions(python: string, script = defaultScript): Promise<{ text: string; ok: boolean }> {
  try {
    const v = JSON.parse(await runPython(python, ['--versions'], script)) as { python: string; joblib: string; numpy: string };
    return { ok: true, text: `joblib ${v.joblib}, numpy ${v.numpy}, Python ${v.python} (${python})` };
  } catch (error) {
    const reason = (error as Error).message.trim().split('\n').at(-1);
    return { ok: false, text: `skipped: ${python} cannot run joblib with numpy (${reason}); no joblib figures` };
  }
}

/** Kills the running python, if any (before the scratch folder goes). */
export function stopPython(): void {
  child?.kill('SIGKILL');
}
