/**
 * Issue 11: no file in src/ above 400 lines, no import circle, no upward
 * import, no dead file. The layer order lives in the table below; a file under
 * src/ that no row names fails the test, so a new folder gets a layer on purpose.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cycles, readGraph, tooLong, unplaced, unreachable, upward, type LayerRules } from './import-graph.js';

/** Lowest first: a file may import its own layer and lower ones, never a higher one. */
const memjobRules: LayerRules = {
  layers: [
    { name: 'errors/system', files: ['src/errors.ts', 'src/system/**'] },
    { name: 'native', files: ['src/native.ts'] },
    { name: 'memmap', files: ['src/memmap/**'] },
    { name: 'format', files: ['src/format/**'] },
    { name: 'transport', files: ['src/transport/**'] },
    // Talking to a Redis broker: connections, signed messages, blobs (the bullmq backend and `memjob worker` build on it).
    { name: 'remote', files: ['src/remote/**'] },
    { name: 'parallel', files: ['src/parallel/**'] },
    { name: 'multiprocessing', files: ['src/multiprocessing/**'] },
    // Memory: joblib's disk cache of function results, on the dump format.
    { name: 'memory', files: ['src/memory/**'] },
    // `memjob worker` and `memjob cluster`: a local pool serving a broker's queue.
    { name: 'cluster', files: ['src/cluster/**'] },
    { name: 'cli', files: ['src/cli/**'] },
    // The public API, the part of it a worker hands to shipped functions by name, and the program that runs inside a worker.
    { name: 'entry', files: ['src/index.ts', 'src/worker-exports.ts', 'src/worker-entry.ts'], top: true },
  ],
  // The CLI imports the library lazily so that `memjob --help` works without the native addon.
  dynamicFrom: ['cli'],
  entries: ['src/index.ts', 'src/worker-entry.ts', 'src/cli/main.ts'],
  maxLines: 400,
};

describe('src/ import graph', () => {
  const graph = readGraph(fileURLToPath(new URL('..', import.meta.url)));

  it('places every file in a layer and resolves every relative import', () => {
    expect(unplaced(graph, memjobRules), 'files missing from the layer table, or imports of missing files').toEqual([]);
  });
  it('keeps every file at 400 lines or fewer', () => {
    expect(tooLong(graph, memjobRules), 'files to split along a seam').toEqual([]);
  });
  it('has no upward import', () => {
    expect(upward(graph, memjobRules), 'imports of a higher layer').toEqual([]);
  });
  it('has no import circle among runtime imports', () => {
    expect(cycles(graph), 'import circles (type-only imports excluded)').toEqual([]);
  });
  it('has no file unreachable from the entry programs', () => {
    expect(unreachable(graph, memjobRules), 'dead files').toEqual([]);
  });
});

describe('the import graph checker, on a made-up src/', () => {
  const base = fileURLToPath(new URL('../tmp/', import.meta.url));
  mkdirSync(base, { recursive: true });
  const roots: string[] = [];
  afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

  function tree(files: Record<string, string>): string {
    const root = mkdtempSync(join(base, 'test-layers-'));
    roots.push(root);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }

  it('passes a layout that keeps the rules', () => {
    const graph = readGraph(
      tree({
        'src/errors.ts': 'export class Oops extends Error {}\n',
        'src/system/os.ts': "import { Oops } from '../errors.js';\nexport const os = Oops;\n",
        // import('../index.js') in a comment or `import('../index.js')` in a template is no import.
        'src/native.ts': "import { os } from './system/os.js';\nexport const n = `import('./index.js')` + os;\n",
        // A circle through a type-only import is erased from the JavaScript, so it is allowed.
        'src/memmap/a.ts': "import { n } from '../native.js';\nimport type { B } from './b.js';\nexport const a = n;\nexport type A = B;\n",
        'src/memmap/b.ts': "import { a } from './a.js';\nexport type B = typeof a;\n",
        'src/parallel/backends/thread.ts': "export { a } from '../../memmap/a.js';\n",
        'src/index.ts': "export * from './parallel/backends/thread.js';\nimport * as self from './index.js';\nvoid self;\n",
        'src/worker-entry.ts': "import './index.js';\nimport { a } from './memmap/a.js';\nvoid a;\n",
        'src/cli/main.ts': "const library = () => import('../index.js');\nvoid library;\n",
        'src/README.md': 'not TypeScript, not checked\n',
      }),
    );
    expect([unplaced(graph, memjobRules), tooLong(graph, memjobRules), upward(graph, memjobRules), cycles(graph), unreachable(graph, memjobRules)]).toEqual([
      [],
      [],
      [],
      [],
      [],
    ]);
  });

  it('names every file and import that breaks a rule, all at once', () => {
    const graph = readGraph(
      tree({
        'src/errors.ts': "import { m } from './memmap/m.js';\nexport const e = m;\n",
        'src/memmap/m.ts': `import { e } from '../errors.js';\nexport const m = e;\n${'// filler\n'.repeat(399)}`,
        'src/format/f.ts': "import type { P } from '../parallel/p.js';\nimport { gone } from './gone.js';\nexport type F = P;\n",
        'src/transport/t.ts': "export const t = () => import('../index.js');\n",
        'src/parallel/p.ts': "import { t } from '../transport/t.js';\nexport type P = typeof t;\n",
        'src/cache/c.ts': 'export const c = 1;\n',
        'src/index.ts': "export * from './errors.js';\nexport * from './format/f.js';\nexport * from './parallel/p.js';\n",
      }),
    );
    expect(unplaced(graph, memjobRules)).toEqual([
      'src/cache/c.ts is in no layer of the table',
      "src/format/f.ts:2 imports './gone.js', which is no .ts file under src/",
    ]);
    expect(tooLong(graph, memjobRules)).toEqual(['src/memmap/m.ts has 401 lines (at most 400)']);
    expect(upward(graph, memjobRules)).toEqual([
      "src/errors.ts:1 imports './memmap/m.js': errors/system (layer 0) may not import memmap (layer 2, src/memmap/m.ts)",
      "src/format/f.ts:1 imports '../parallel/p.js': format (layer 3) may not import parallel (layer 6, src/parallel/p.ts)",
      "src/transport/t.ts:1 imports '../index.js': entry (src/index.ts) is an entry program; transport may not import it",
    ]);
    expect(cycles(graph)).toEqual([
      'import circle: src/errors.ts -> src/memmap/m.ts -> src/errors.ts',
      'import circle: src/index.ts -> src/parallel/p.ts -> src/transport/t.ts -> src/index.ts',
    ]);
    expect(unreachable(graph, memjobRules)).toEqual([
      'src/cache/c.ts is imported by nothing reachable from src/index.ts, src/worker-entry.ts, src/cli/main.ts',
    ]);
  });
});
