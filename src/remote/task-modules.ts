/**
 * Task modules across machines. A parent's `task(import.meta.url, 'fn')`
 * names a file by its absolute path, which means nothing on a worker whose
 * copy of the project lives elsewhere. The parent sends the path relative to
 * its project root (the folder of the nearest package.json): `project:dist/tasks.js`;
 * the worker resolves it against its own project root. A module outside any
 * project keeps its absolute path. Either way a module missing on the
 * worker is MEMJOB_ERR_TASK_NOT_FOUND naming the host and the path it looked at.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, MemjobError } from '../errors.js';
import type { FunctionSpec } from '../transport/function-resolve.js';

const PROJECT = 'project:';

/** The folder of the nearest package.json at or above `start`, or undefined. */
export function projectRoot(start: string): string | undefined {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

const rootCache = new Map<string, string | undefined>();

/** The parent's side: a module spec whose path is relative to its project. */
export function portableSpec(spec: FunctionSpec): FunctionSpec {
  if (spec.kind !== 'module' || !spec.url.startsWith('file:')) return spec;
  const path = fileURLToPath(spec.url);
  const folder = dirname(path);
  if (!rootCache.has(folder)) rootCache.set(folder, projectRoot(folder));
  const root = rootCache.get(folder);
  if (root === undefined) return spec;
  return { ...spec, url: PROJECT + relative(root, path).split(sep).join('/') };
}

/** The worker's side: the spec with a file: URL on this machine, or MEMJOB_ERR_TASK_NOT_FOUND. */
export function localSpec(spec: FunctionSpec, root: string, host: string): FunctionSpec {
  if (spec.kind !== 'module') return spec;
  let path: string;
  if (spec.url.startsWith(PROJECT)) {
    const rel = spec.url.slice(PROJECT.length);
    path = resolve(root, rel);
    if (isAbsolute(rel) || relative(root, path).startsWith('..')) {
      throw new MemjobError(ErrorCodes.TASK_NOT_FOUND, `task module ${rel}: expected a path inside the project on ${host} (${root}), received one outside it`);
    }
  } else if (spec.url.startsWith('file:')) {
    path = fileURLToPath(spec.url);
  } else {
    return spec; // a package specifier or node: URL: the worker's own resolution applies
  }
  if (!existsSync(path)) {
    const sent = spec.url.startsWith(PROJECT) ? `${spec.url.slice(PROJECT.length)} (relative to the project root)` : `${path} (outside any project on the parent)`;
    throw new MemjobError(
      ErrorCodes.TASK_NOT_FOUND,
      `task(…, "${spec.name}"): the module ${sent} does not exist on worker host ${host}: looked for ${path}. ` +
        'Deploy the same project (built) on every worker machine and start `memjob worker` in it, or pass --project',
      { path },
    );
  }
  return { ...spec, url: pathToFileURL(path).href };
}
