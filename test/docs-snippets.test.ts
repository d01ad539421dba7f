/**
 * Every TypeScript/JavaScript code block of README.md and docs/*.md
 * (```ts, ```typescript, ```js, ```mjs) is type-checked with the project's
 * tsconfig.json (strict, noUncheckedIndexedAccess, noUnusedLocals, NodeNext,
 * ...; all blocks in one TypeScript program) and, unless marked otherwise,
 * compiled and run with plain node, as a user runs it. `import ... from 'memjob'`
 * resolves to the built package, dist/ (`npm test` builds it first, in
 * pretest), by self-reference through package.json "exports".
 *
 * Conventions for doc blocks:
 * - A plain ```ts block is a complete program. It runs in an empty working
 *   folder of its own and must exit with code 0 within 30 s and leave no file
 *   behind: nothing in that folder, in os.tmpdir(), or in /dev/shm (a run
 *   folder `memjob_<its pid>_*`, or any new entry whose name its code spells).
 * - ```ts file=tasks.ts is a module that later blocks of the same doc import
 *   as './tasks.js' (or reference with `task(new URL('./tasks.js',
 *   import.meta.url), ...)`). It is type-checked, not run on its own. A later
 *   `file=` block of the same name replaces it for the blocks after it.
 * - ```ts fragment is type-checked only, for code that cannot run on its own
 *   (signatures, a piece of a larger program). It may use names declared in
 *   an HTML comment right before its fence, which readers do not see:
 *   <!-- stubs: declare const inputs: number[]; -->
 *   Prefer runnable blocks; use fragments sparingly.
 * Other blocks (sh, text, no language) are not checked.
 *
 * When a program block reads MEMJOB_BROKER (docs/distributed.md), a real
 * redis-server and one `memjob worker` (the built CLI, --jobs 1) are started
 * before the programs run, and every program gets MEMJOB_BROKER (the
 * server's URL) and MEMJOB_SECRET (the worker's secret) in its environment;
 * both are stopped afterwards.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  extractSnippets,
  leftovers,
  listing,
  mapLimit,
  runProgram,
  typecheck,
  writeProject,
  type Diagnostic,
  type Snippet,
} from './doc-snippets.js';
import { repoRoot } from './helpers.js';
import { startRedis } from './redis-server.js';

const RUN_TIMEOUT_MS = 30_000;
const CONCURRENCY = 2;
const SHARED_FOLDERS = ['/dev/shm', tmpdir()];

const docs = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const snippets = docs.flatMap((doc) => extractSnippets(readFileSync(join(repoRoot, doc), 'utf8'), doc));

describe('extractSnippets', () => {
  it('reads programs, file= modules and fragments with their stubs and lines', () => {
    const markdown = [
      '# Title', // 1
      '```ts file=tasks.ts', // 2
      'export const x = 1;',
      '```',
      '<!-- stubs: declare const inputs: number[];', // 5
      'declare function consume(x: number): void; -->',
      '',
      '```ts fragment', // 8
      'inputs.forEach(consume);',
      '```',
      '- in a list:',
      '  ```js', // 12
      '  console.log(1);',
      '  ```',
      '```sh',
      'npm test',
      '```',
    ].join('\n');
    const found = extractSnippets(markdown, 'x.md');
    expect(found.map((s) => [s.line, s.kind, s.lang, s.fileName, s.code, s.problem])).toEqual([
      [2, 'module', 'ts', 'tasks.ts', 'export const x = 1;', undefined],
      [8, 'fragment', 'ts', undefined, 'inputs.forEach(consume);', undefined],
      [12, 'program', 'js', undefined, 'console.log(1);', undefined],
    ]);
    expect(found[1]!.stubs).toBe('declare const inputs: number[];\ndeclare function consume(x: number): void;');
  });

  it('flags broken conventions instead of ignoring them', () => {
    const markdown = [
      ...['```ts fragmnet', 'let a = 1;', '```'],
      ...['<!-- stubs: declare const b: number; -->', '```ts', 'b;', '```'],
      ...['```ts file=../x.ts', '```'],
      ...['```ts', '// tasks.ts', 'export const c = 1;', '```'],
    ];
    expect(extractSnippets(markdown.join('\n'), 'x.md').map((s) => s.problem)).toEqual([
      'unknown attribute "fragmnet" (expected "fragment" or "file=NAME")',
      'a <!-- stubs: --> comment belongs only before a fragment',
      'file=../x.ts must be a plain .ts file name other than snippet.*',
      'a block headed "// tasks.ts" is a module: open it with ```ts file=tasks.ts',
    ]);
  });

  it('finds the blocks of README.md and docs/', () => {
    const docsWithBlocks = new Set(snippets.map((s) => s.doc));
    expect(docsWithBlocks).toContain('README.md');
    expect(docsWithBlocks).toContain('docs/api.md');
    expect(snippets.filter((s) => s.kind === 'program').length).toBeGreaterThan(40);
  });
});

describe('doc snippets', () => {
  let root = '';
  let listed: string[] = [];
  let resolved = '';
  let staleNote = '';
  /** The broker and worker of the programs that read MEMJOB_BROKER, when a doc has one. */
  let cluster: Cluster | undefined;
  /** What is wrong with each block; empty when it passed. */
  const outcomes = new Map<Snippet, string[]>();

  beforeAll(async () => {
    staleNote = distStaleness();
    mkdirSync(join(repoRoot, 'tmp'), { recursive: true });
    root = mkdtempSync(join(repoRoot, 'tmp', 'docs-snippets-'));
    const project = writeProject(root, repoRoot, snippets);
    const checked = typecheck(project);
    listed = checked.listed;
    const bySnippet = new Map<Snippet | undefined, Diagnostic[]>();
    for (const d of checked.diagnostics) bySnippet.set(d.snippet, [...(bySnippet.get(d.snippet) ?? []), d]);
    const unplaced = bySnippet.get(undefined) ?? [];
    if (unplaced.length > 0) throw new Error(`tsc failed outside any snippet:\n${unplaced.map((d) => `${d.where}: ${d.message}`).join('\n')}`);
    for (const { snippet } of project.prepared) {
      const problems = (bySnippet.get(snippet) ?? []).map((d) => `${d.where}: ${d.message}`);
      if (snippet.problem !== undefined) problems.unshift(`${snippet.doc}:${snippet.line}: ${snippet.problem}`);
      outcomes.set(snippet, problems);
    }

    const probe = join(root, 'out', 'probe.mjs');
    writeFileSync(probe, "console.log(import.meta.resolve('memjob'));\n");
    resolved = spawnSync(process.execPath, [probe], { encoding: 'utf8' }).stdout.trim();

    if (project.prepared.some((p) => p.entry !== undefined && p.snippet.code.includes('MEMJOB_BROKER'))) cluster = await startCluster(root);

    const runnable = project.prepared.filter((p) => p.entry !== undefined && outcomes.get(p.snippet)!.length === 0);
    await mapLimit(runnable, CONCURRENCY, async ({ snippet, entry }) => {
      outcomes.get(snippet)!.push(...(await runAndInspect(snippet, entry!)));
    });
  }, 150_000);

  afterAll(async () => {
    try {
      await cluster?.stop();
    } finally {
      if (root !== '' && process.env.KEEP_DOC_SNIPPETS !== '1') rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);

  it("resolves 'memjob' to the built package, for tsc and for node", () => {
    expect(listed).toContain(join(repoRoot, 'dist', 'index.d.ts'));
    expect(listed).not.toContain(join(repoRoot, 'src', 'index.ts'));
    expect(resolved).toBe(`file://${join(repoRoot, 'dist', 'index.js')}`);
  });

  for (const doc of docs) {
    const blocks = snippets.filter((s) => s.doc === doc);
    if (blocks.length === 0) continue;
    describe(doc, () => {
      for (const snippet of blocks) {
        it(`${doc}:${snippet.line} (${snippet.kind}${snippet.fileName ? ` ${snippet.fileName}` : ''})`, () => {
          const problems = outcomes.get(snippet);
          expect(problems, 'the snippet was not checked (see the beforeAll error)').toBeDefined();
          if (problems!.length > 0) throw new Error(`${doc}:${snippet.line}:\n${problems!.join('\n')}${staleNote}`);
        });
      }
    });
  }

  async function runAndInspect(snippet: Snippet, entry: string): Promise<string[]> {
    const where = `${snippet.doc}:${snippet.line}`;
    const folder = join(root, 'run', relative(join(root, 'out'), entry).replace(/[^\w]+/g, '-'));
    const cwd = join(folder, 'cwd');
    const privateTmp = join(folder, 'tmp');
    mkdirSync(cwd, { recursive: true });
    mkdirSync(privateTmp, { recursive: true });
    const before = SHARED_FOLDERS.map((f) => new Set(listing(f)));
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: privateTmp, ...cluster?.env };
    // The program runs as a user would run it: not as a memjob worker, not
    // under vitest's loader options, with the default temp folders.
    for (const name of ['NODE_OPTIONS', 'MEMJOB_WORKER', 'MEMJOB_TEMP_FOLDER']) delete env[name];
    const result = await runProgram(entry, cwd, env, RUN_TIMEOUT_MS);
    const problems: string[] = [];
    const output = `stdout:\n${tail(result.stdout)}\nstderr:\n${tail(result.stderr)}`;
    if (result.timedOut) problems.push(`${where}: did not finish within ${RUN_TIMEOUT_MS / 1000} s (killed)\n${output}`);
    else if (result.code !== 0) problems.push(`${where}: exited with ${result.code ?? result.signal}\n${output}`);
    const inCwd = listing(cwd);
    if (inCwd.length > 0) problems.push(`${where}: left files in its working folder: ${inCwd.join(', ')}`);
    const inTmp = listing(privateTmp);
    if (inTmp.length > 0) problems.push(`${where}: left files in os.tmpdir(): ${inTmp.join(', ')}`);
    SHARED_FOLDERS.forEach((folderPath, i) => {
      const left = leftovers(before[i]!, listing(folderPath), result.pid, snippet.code);
      if (left.length === 0) return;
      problems.push(`${where}: left ${left.map((name) => join(folderPath, name)).join(', ')}`);
      for (const name of left) rmSync(join(folderPath, name), { recursive: true, force: true });
    });
    return problems;
  }
});

interface Cluster {
  /** MEMJOB_BROKER and MEMJOB_SECRET for the programs. */
  env: Record<string, string>;
  /** Stops the worker (SIGTERM: it must exit 0 and leave its temp root empty) and the server. */
  stop(): Promise<void>;
}

const DOCS_SECRET = 'docs-snippets-secret-0123456789abcdef';

/** A real redis-server and one `memjob worker` (the built CLI) with a temp root under `root`, for docs/distributed.md. */
async function startCluster(root: string): Promise<Cluster> {
  const redis = await startRedis();
  const tempRoot = join(root, 'worker-root');
  mkdirSync(tempRoot);
  const env = { MEMJOB_BROKER: redis.url, MEMJOB_SECRET: DOCS_SECRET };
  const args = [join(repoRoot, 'dist', 'cli', 'main.js'), 'worker', '--broker', redis.url, '--jobs', '1', '--temp-folder', tempRoot];
  const worker = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  worker.stdout.on('data', (d: Buffer) => (output += d.toString()));
  worker.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`memjob worker did not start within 15 s: ${output}`)), 15_000);
      worker.stdout.on('data', () => {
        if (!output.includes('serving queue')) return;
        clearTimeout(timer);
        resolve();
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`memjob worker exited with ${code} at start: ${output}`));
      });
    });
  } catch (error) {
    worker.kill('SIGKILL');
    await redis.stop();
    throw error;
  }
  return {
    env,
    async stop() {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGTERM');
      const code = await exited;
      await redis.stop();
      if (code !== 0) throw new Error(`memjob worker exited with ${code} on SIGTERM: ${tail(output)}`);
      const left = listing(tempRoot);
      if (left.length > 0) throw new Error(`memjob worker left ${left.join(', ')} in its temp root`);
    },
  };
}

/** The first and last lines of a program's output: where an error starts, and how it ended. */
function tail(text: string): string {
  const lines = text.trimEnd().split('\n');
  if (lines.length <= 30) return lines.join('\n');
  return [...lines.slice(0, 12), `... (${lines.length - 24} lines)`, ...lines.slice(-12)].join('\n');
}

/**
 * The snippets run against dist/. A build older than src/ may make them fail
 * (or pass) for stale code: failures then say so. It is not a failure of its
 * own, since src/ may change while a full `npm test` runs.
 */
function distStaleness(): string {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const built = join(repoRoot, 'dist', relative(join(repoRoot, 'src'), path)).replace(/\.ts$/, '.js');
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) stale.push(relative(repoRoot, path));
      }
    }
  };
  walk(join(repoRoot, 'src'));
  if (stale.length === 0) return '';
  return `\n(note: dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', ...' : ''}: run npm run build, as npm test does first)`;
}
