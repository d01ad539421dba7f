/**
 * The one check of a filename argument, for every entry point that takes
 * one (memmap, dump, load, saveNpy/loadNpy...): a non-empty string (resolved
 * against the working directory) or a file: URL.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { invalidArg } from '../errors.js';

/** The absolute path `filename` names; MEMJOB_ERR_INVALID_ARG for anything else. */
export function parseFilename(filename: unknown, where: string): string {
  if (typeof filename === 'string' && filename.length > 0) return resolve(filename);
  if (filename instanceof URL && filename.protocol === 'file:') return fileURLToPath(filename);
  throw invalidArg(where, 'filename', 'a non-empty string or a file: URL', filename);
}
