/**
 * `memjob cache ls|size|clear [location]`: what a Memory cache folder holds,
 * read with the same code Memory uses (src/memory/store.ts), and clearing it.
 * `clear` removes only entries memjob made (folders with metadata), so a
 * location pointed at the wrong folder loses nothing else.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, MemjobError } from '../errors.js';
import { Memory } from '../memory/memory.js';
import { formatBytes, print, printJson, table } from './output.js';


function openLocation(location: string): Memory {
  const path = resolve(location);
  let isFolder = false;
  try {
    isFolder = statSync(path).isDirectory();
  } catch {
    isFolder = false;
  }
  if (!isFolder) throw new MemjobError(ErrorCodes.INVALID_ARG, `memjob cache: expected a cache folder, received '${path}', which is not a folder`, { path });
  return new Memory(path);
}

export function runCacheList(location: string, options: { json?: boolean }): void {
  const entries = openLocation(location).entries().sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
  if (options.json === true) {
    printJson(entries.map((e) => ({ ...e, createdAt: e.createdAt.toISOString(), lastUsed: e.lastUsed.toISOString() })));
    return;
  }
  if (entries.length === 0) {
    print(`${resolve(location)}: no cached results`);
    return;
  }
  const rows = [['function', 'key', 'size', 'created', 'last used', 'took']];
  for (const e of entries) {
    rows.push([e.function, e.key.slice(0, 12), formatBytes(e.size), e.createdAt.toISOString(), e.lastUsed.toISOString(), e.duration === undefined ? '?' : `${e.duration.toFixed(2)}s`]);
  }
  print(table(rows));
}

export function runCacheSize(location: string, options: { json?: boolean }): void {
  const entries = openLocation(location).entries();
  const bytes = entries.reduce((n, e) => n + e.size, 0);
  const functions = new Set(entries.map((e) => e.functionFolder)).size;
  if (options.json === true) printJson({ location: resolve(location), entries: entries.length, functions, bytes });
  else print(`${resolve(location)}: ${entries.length} cached results of ${functions} functions, ${formatBytes(bytes)}`);
}

export function runCacheClear(location: string, options: { json?: boolean }): void {
  const memory = openLocation(location);
  const count = memory.entries().length;
  memory.clear();
  if (options.json === true) printJson({ location: resolve(location), removed: count });
  else print(`${resolve(location)}: removed ${count} cached results`);
}
