/**
 * Who a cached function is, and whether it changed. A task() function is its
 * module file and export name; any other function is its name and the file
 * that called memory.cache() on it (where it is almost always defined). Its
 * source text, hashed, tells a changed function from the one that wrote the
 * entries: as joblib does, the old entries are then cleared with a warning.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceOrigin } from '../transport/call-site.js';

export interface FunctionIdentity {
  /** For people: 'extractFeatures'. */
  name: string;
  /** What tells it apart from other functions of that name: a module path and export, or a file and name. */
  id: string;
  /** Folder name under the cache location: readable, and unique by `id`. */
  folder: string;
  /** The function's source, for change detection; a task()'s is read from its module on first use. */
  source: () => Promise<string>;
}

interface TaskLike {
  moduleUrl?: unknown;
  exportName?: unknown;
}

export function identify(fn: Function): FunctionIdentity {
  const { moduleUrl, exportName } = fn as TaskLike;
  if (typeof moduleUrl === 'string' && typeof exportName === 'string') {
    const file = fileURLToPath(moduleUrl);
    return {
      name: exportName,
      id: `${file}#${exportName}`,
      folder: folderName(`${basename(file)}-${exportName}`, `${file}#${exportName}`),
      source: async () => {
        const module = (await import(moduleUrl)) as Record<string, unknown>;
        const target = module[exportName];
        return typeof target === 'function' ? Function.prototype.toString.call(target) : '';
      },
    };
  }
  const text = Function.prototype.toString.call(fn);
  const name = fn.name === '' ? 'anonymous' : fn.name;
  const file = sourceOrigin(fn, text)?.file ?? '';
  return {
    name,
    id: `${file}#${name}`,
    folder: folderName(file === '' ? name : `${basename(file)}-${name}`, `${file}#${name}`),
    source: async () => text,
  };
}

/** A name safe in any file system, with a hash that keeps two functions apart when their names sanitize alike. */
function folderName(readable: string, id: string): string {
  const safe = readable.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${safe}-${sha256(id).slice(0, 10)}`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
