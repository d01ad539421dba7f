/**
 * Memory's files. One folder per function, one folder per call inside it:
 *
 *   <location>/<function folder>/function.json     who the function is, and a hash of its source
 *   <location>/<function folder>/<key>/output.dump  the result, in memjob's dump format (arrays map on reload)
 *   <location>/<function folder>/<key>/metadata.json
 *
 * An entry is written whole into a hidden temp folder beside it and renamed
 * into place (as joblib's store does), so readers never see half of one; when
 * two writers race on one key, the first rename wins and the other's folder
 * is removed. Its modification time is the entry's last use. Folders are
 * 0700 and files 0600: a cache holds the user's data.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompressOption } from '../format/compression.js';
import { dumpSync } from '../format/dump.js';
import { loadSync, type LoadMmapMode } from '../format/load.js';

export const OUTPUT = 'output.dump';
export const METADATA = 'metadata.json';
export const FUNCTION_FILE = 'function.json';
const TEMP_PREFIX = '.tmp-';
/** A temp folder this old belongs to a writer that died. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export interface EntryMetadata {
  /** The function's name, as its folder shows it. */
  function: string;
  /** Short reprs of the arguments, for people reading the cache. */
  args: string;
  /** Seconds the original call took. */
  duration: number;
  /** When the entry was written (ms since the epoch). */
  createdAt: number;
}

export interface EntryInfo {
  functionFolder: string;
  key: string;
  path: string;
  /** Bytes of its files. */
  size: number;
  createdAt: Date;
  lastUsed: Date;
  metadata: EntryMetadata | undefined;
}

export function ensureFolder(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
}

/** Writes an entry atomically; false when another writer's entry for this key got there first. */
export function writeEntry(functionPath: string, key: string, result: unknown, metadata: EntryMetadata, compress?: CompressOption): boolean {
  ensureFolder(functionPath);
  const temp = join(functionPath, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(temp, { mode: 0o700 });
  try {
    dumpSync(result, join(temp, OUTPUT), compress === undefined ? {} : { compress });
    chmodSync(join(temp, OUTPUT), 0o600);
    writeFileSync(join(temp, METADATA), JSON.stringify(metadata), { mode: 0o600, flag: 'wx' });
    try {
      renameSync(temp, join(functionPath, key));
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw error;
    }
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

/** The stored result (arrays mapped with `mmapMode`), or undefined when there is no entry; throws when the entry is damaged. */
export function readEntry(entryPath: string, mmapMode: LoadMmapMode | null): { value: unknown; metadata: EntryMetadata } | undefined {
  let metadataText: string;
  try {
    metadataText = readFileSync(join(entryPath, METADATA), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const metadata = parseMetadata(metadataText);
  if (metadata === undefined) throw new Error(`${METADATA} is not valid`);
  const value = loadSync(join(entryPath, OUTPUT), mmapMode === null ? {} : { mmapMode });
  touch(entryPath);
  return { value, metadata };
}

export function hasEntry(entryPath: string): boolean {
  try {
    return statSync(join(entryPath, METADATA)).isFile();
  } catch {
    return false;
  }
}

/** Marks an entry used now (reduceSize removes the least recently used first). */
function touch(entryPath: string): void {
  try {
    const now = new Date();
    utimesSync(entryPath, now, now);
  } catch {
    // removed meanwhile, or a read-only cache: the entry was still read
  }
}

function parseMetadata(text: string): EntryMetadata | undefined {
  try {
    const m = JSON.parse(text) as Partial<EntryMetadata>;
    if (typeof m.function === 'string' && typeof m.args === 'string' && typeof m.duration === 'number' && typeof m.createdAt === 'number') {
      return m as EntryMetadata;
    }
  } catch {
    // fall through: not an entry's metadata
  }
  return undefined;
}

/** Removes an entry; a damaged one is renamed away first, so a writer recreating the key is not hit. */
export function removeEntry(entryPath: string): void {
  const doomed = `${entryPath}.${TEMP_PREFIX}removed-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(entryPath, doomed);
  } catch {
    return; // already gone
  }
  rmSync(doomed, { recursive: true, force: true });
}

function folderSize(path: string): number {
  let size = 0;
  for (const name of safeReaddir(path)) {
    try {
      const stat = statSync(join(path, name));
      size += stat.isDirectory() ? folderSize(join(path, name)) : stat.blocks * 512 || stat.size;
    } catch {
      // removed meanwhile
    }
  }
  return size;
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Every entry under `location` (or only `functionFolder`'s), removing temp folders left by dead writers. */
export function listEntries(location: string, functionFolder?: string): EntryInfo[] {
  const entries: EntryInfo[] = [];
  const folders = functionFolder === undefined ? safeReaddir(location) : [functionFolder];
  for (const folder of folders) {
    const folderPath = join(location, folder);
    for (const key of safeReaddir(folderPath)) {
      const path = join(folderPath, key);
      if (key.includes(TEMP_PREFIX)) {
        removeIfStale(path);
        continue;
      }
      if (key === FUNCTION_FILE) continue;
      let stat;
      try {
        stat = statSync(path);
      } catch {
        continue;
      }
      if (!stat.isDirectory()) continue;
      let metadata: EntryMetadata | undefined;
      try {
        metadata = parseMetadata(readFileSync(join(path, METADATA), 'utf8'));
      } catch {
        metadata = undefined;
      }
      entries.push({
        functionFolder: folder,
        key,
        path,
        size: folderSize(path),
        createdAt: new Date(metadata?.createdAt ?? stat.birthtimeMs),
        lastUsed: stat.mtime,
        metadata,
      });
    }
  }
  return entries;
}

function removeIfStale(path: string): void {
  try {
    if (Date.now() - statSync(path).mtimeMs > STALE_TEMP_MS) rmSync(path, { recursive: true, force: true });
  } catch {
    // gone already
  }
}
