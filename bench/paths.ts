/**
 * Where the benchmarks' files are, whether they run compiled from
 * build-dev/bench/ (`npm run bench`) or as sources under tsx: python
 * scripts, results.md, charts and the tmp/ scratch root stay in the
 * repository, and worker modules are taken in the form this run uses.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The repository root: memjob's own package.json, found by self-reference (its exports list it). */
export const repoRoot = dirname(createRequire(import.meta.url).resolve('memjob/package.json'));

/** bench/ in the repository (not build-dev/bench/): python scripts, results.md, charts. */
export const benchSources = join(repoRoot, 'bench');

/** true when this run is the TypeScript sources under tsx, false when compiled (build-dev/). */
export const fromSource = import.meta.url.endsWith('.ts');

/** A benchmark module beside this one, as .ts under tsx and .js compiled: for workers and child processes to load. */
export const sibling = (name: string): URL => new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, import.meta.url);
