/**
 * The python half of bench/joblib.ts: runs bench/joblib_interop.py (joblib's
 * reference files, the check of memjob's files, and joblib's timed rounds)
 * and keeps the running interpreter so a signal can stop it.
 */
import { join } from 'node:path';
import { joblibVersions, runPython, stopPython } from './dump-joblib.js';
import { benchSources } from './paths.js';

const script = join(benchSources, 'joblib_interop.py');

/** Runs bench/joblib_interop.py and parses the JSON line it prints; rejects with its stderr. */
export async function runInterop<T>(python: string, args: string[]): Promise<T> {
  const out = await runPython(python, args, script);
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`${python} ${script} ${args[0]} printed no JSON: ${out.trim() || '(nothing)'}`);
  }
}

/** joblib, numpy and python versions, or (ok: false) why they cannot be imported. */
export function interopVersions(python: string): Promise<{ text: string; ok: boolean }> {
  return joblibVersions(python, script);
}

/** Kills the running python, if any (before the scratch folder goes). */
export const stopInterop = stopPython;
