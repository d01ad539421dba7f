/**
 * Workers must be able to import TypeScript when the parent can: when memjob
 * itself runs from its .ts sources (its tests), or when the parent runs
 * under tsx and task() points at a .ts module. Node 20 does not carry a
 * parent's --import hooks into worker threads, so memjob finds tsx and
 * registers it in each worker explicitly.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** true when this file is running as TypeScript source, not from dist/. */
export const runningFromSource = import.meta.url.endsWith('.ts');

function underTsx(): string | undefined {
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  const match = /(\S*?[/\\]tsx[/\\])dist[/\\]/.exec(flags);
  return match?.[1]?.replace(/^file:\/\//, '');
}

let cached: { loader: string; api: string } | null | undefined;

/** tsx's loader (for `--import`) and API (for register()) as file: URLs, or null when tsx cannot be found. */
export function findTsx(): { loader: string; api: string } | null {
  if (cached !== undefined) return cached;
  cached = null;
  const root = underTsx();
  if (root !== undefined) {
    cached = { loader: pathToFileURL(join(root, 'dist/loader.mjs')).href, api: pathToFileURL(join(root, 'dist/esm/api/index.mjs')).href };
    return cached;
  }
  for (const base of [import.meta.url, pathToFileURL(join(process.cwd(), 'package.json')).href]) {
    try {
      const require = createRequire(base);
      const pkg = require.resolve('tsx/package.json');
      const dir = pkg.slice(0, -'package.json'.length);
      cached = { loader: pathToFileURL(join(dir, 'dist/loader.mjs')).href, api: pathToFileURL(join(dir, 'dist/esm/api/index.mjs')).href };
      return cached;
    } catch {
      // not resolvable from here; try the next base
    }
  }
  return cached;
}

/** Whether workers need TypeScript support: memjob from source, or a parent running under tsx. */
export function workersNeedTs(): boolean {
  return runningFromSource || underTsx() !== undefined;
}
