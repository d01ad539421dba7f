/**
 * Extracts the TypeScript/JavaScript code blocks of README.md and docs/*.md,
 * writes them out as one small TypeScript project, type-checks it with one
 * tsc run, and runs each program block with plain node. Used by
 * test/docs-snippets.test.ts, whose header states the conventions.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Fence languages that are extracted; every other block (sh, text, no language) is prose. */
const LANGUAGES = new Set(['ts', 'typescript', 'js', 'mjs']);
/** The name a program block is written under; `file=` may not take it. */
const PROGRAM = 'snippet';

export type SnippetKind = 'program' | 'module' | 'fragment';

export interface Snippet {
  /** The markdown file, relative to the repository (`docs/api.md`). */
  doc: string;
  /** 1-based line of the opening fence. */
  line: number;
  kind: SnippetKind;
  /** 'ts' for ts/typescript, 'js' for js/mjs. */
  lang: 'ts' | 'js';
  /** For `file=NAME` blocks: NAME. */
  fileName: string | undefined;
  code: string;
  /** Declarations from a `<!-- stubs: ... -->` comment right before a fragment's fence. */
  stubs: string;
  /** A broken convention (unknown attribute, stubs on a runnable block, ...): the block fails with it. */
  problem: string | undefined;
}

/** Reads the fenced code blocks of one markdown text. */
export function extractSnippets(markdown: string, doc: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  let stubs: { text: string; endLine: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const stubsStart = /^\s*<!--\s*stubs:/.exec(text);
    if (stubsStart) {
      let body = text.slice(stubsStart[0].length);
      while (!body.includes('-->') && i + 1 < lines.length) body += '\n' + lines[++i]!;
      stubs = { text: body.slice(0, body.indexOf('-->')).trim(), endLine: i };
      continue;
    }
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)(.*)$/.exec(text);
    if (!open) {
      if (text.trim() !== '') stubs = undefined;
      continue;
    }
    const [, indent = '', fence = '', lang = '', info = ''] = open;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length; i++) {
      const close = new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).exec(lines[i]!);
      if (close) break;
      const line = lines[i]!;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    const attached = stubs;
    stubs = undefined;
    if (!LANGUAGES.has(lang.toLowerCase())) continue;
    snippets.push(classify(doc, start + 1, lang.toLowerCase(), info.trim(), body.join('\n'), attached?.text));
  }
  return snippets;
}

function classify(doc: string, line: number, lang: string, info: string, code: string, stubs: string | undefined): Snippet {
  const snippet: Snippet = {
    doc,
    line,
    kind: 'program',
    lang: lang === 'ts' || lang === 'typescript' ? 'ts' : 'js',
    fileName: undefined,
    code,
    stubs: stubs ?? '',
    problem: undefined,
  };
  const problems: string[] = [];
  for (const attribute of info.split(/\s+/).filter(Boolean)) {
    const file = /^file=(.+)$/.exec(attribute);
    if (attribute === 'fragment') snippet.kind = 'fragment';
    else if (file) {
      snippet.kind = 'module';
      snippet.fileName = file[1];
    } else problems.push(`unknown attribute "${attribute}" (expected "fragment" or "file=NAME")`);
  }
  if (info.includes('fragment') && snippet.fileName !== undefined) problems.push('a block is either a fragment or a file=, not both');
  const name = snippet.fileName;
  const extension = snippet.lang === 'ts' ? /^[\w-]+\.ts$/ : /^[\w-]+\.m?js$/;
  if (name !== undefined && (!extension.test(name) || name.startsWith(`${PROGRAM}.`))) {
    problems.push(`file=${name} must be a plain ${snippet.lang === 'ts' ? '.ts' : '.js/.mjs'} file name other than ${PROGRAM}.*`);
  }
  if (stubs !== undefined && snippet.kind !== 'fragment') problems.push('a <!-- stubs: --> comment belongs only before a fragment');
  // A block headed `// tasks.ts` is meant as a module that a later block imports.
  const heading = /^\/\/\s*([\w-]+\.(?:ts|m?js))\s*$/.exec(code.split('\n')[0] ?? '');
  if (heading && snippet.kind === 'program' && !/^main\./.test(heading[1]!)) {
    problems.push(`a block headed "// ${heading[1]}" is a module: open it with \`\`\`${lang} file=${heading[1]}`);
  }
  if (problems.length > 0) snippet.problem = problems.join('; ');
  return snippet;
}

/** A file written for tsc, and how its lines map back to the markdown. */
interface SourceFile {
  path: string;
  snippet: Snippet;
  /** Lines added before the block's code (the stubs). */
  prefixLines: number;
}

export interface PreparedSnippet {
  snippet: Snippet;
  /** For program blocks: the compiled file to run. */
  entry: string | undefined;
}

export interface Project {
  root: string;
  prepared: PreparedSnippet[];
  files: Map<string, SourceFile>;
}

/**
 * Writes every snippet under `root/src`, each in a folder of its own along
 * with the latest `file=` modules its doc defined before it, and a
 * tsconfig.json that extends the repository's.
 */
export function writeProject(root: string, repoRoot: string, snippets: Snippet[]): Project {
  const files = new Map<string, SourceFile>();
  const prepared: PreparedSnippet[] = [];
  const modules = new Map<string, Map<string, Snippet>>(); // doc -> file name -> latest block
  for (const snippet of snippets) {
    const slug = snippet.doc.replace(/\.md$/, '').replace(/[^\w]+/g, '-');
    const sourceDir = join(root, 'src', slug, `L${snippet.line}`);
    const inScope = modules.get(snippet.doc) ?? new Map<string, Snippet>();
    modules.set(snippet.doc, inScope);
    const own = snippet.fileName ?? `${PROGRAM}.${snippet.lang === 'ts' ? 'ts' : 'mjs'}`;
    mkdirSync(sourceDir, { recursive: true });
    for (const [name, module] of inScope) if (name !== own) writeSource(files, join(sourceDir, name), module);
    writeSource(files, join(sourceDir, own), snippet);
    if (snippet.kind === 'module') inScope.set(own, snippet);
    const entry = snippet.kind === 'program' ? join(root, 'out', relative(join(root, 'src'), sourceDir), own.replace(/\.ts$/, '.js')) : undefined;
    prepared.push({ snippet, entry });
  }
  const tsconfig = {
    extends: join(repoRoot, 'tsconfig.json'),
    compilerOptions: {
      noEmit: false,
      rootDir: 'src',
      outDir: 'out',
      // No 'source' condition: 'memjob' resolves to dist/index.d.ts and
      // dist/index.js, the built package a user gets.
      customConditions: [],
      allowJs: true,
      checkJs: true,
      sourceMap: false,
      declaration: false,
    },
    include: ['src'],
  };
  writeFileSync(join(root, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  return { root, prepared, files };
}

function writeSource(files: Map<string, SourceFile>, path: string, snippet: Snippet): void {
  const prefix = snippet.stubs === '' ? [] : snippet.stubs.split('\n');
  // `export {}` keeps a block without imports a module, so that its names
  // stay its own and top-level await is allowed.
  writeFileSync(path, [...prefix, snippet.code, 'export {};', ''].join('\n'));
  files.set(path, { path, snippet, prefixLines: prefix.length });
}

export interface Diagnostic {
  /** `docs/api.md:123`, or the tsc output line when it names no snippet file. */
  where: string;
  snippet: Snippet | undefined;
  message: string;
}

/**
 * Type-checks and compiles the whole project as one TypeScript program (the
 * compiler API rather than the tsc command, because tsc reports no type
 * errors at all while any file has a syntax error). Returns the diagnostics,
 * mapped to markdown lines, and the files the program read.
 */
export function typecheck(project: Project): { diagnostics: Diagnostic[]; listed: string[] } {
  const diagnostics: Diagnostic[] = [];
  const config = ts.getParsedCommandLineOfConfigFile(join(project.root, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => diagnostics.push(toDiagnostic(project, d)),
  });
  if (config === undefined) return { diagnostics, listed: [] };
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  const all = [
    ...config.errors,
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSyntacticDiagnostics(),
    ...program.getSemanticDiagnostics(),
    ...program.emit().diagnostics,
  ];
  // A file= module copied beside several blocks reports its errors once.
  const seen = new Set<string>();
  for (const d of all.map((d) => toDiagnostic(project, d))) {
    const key = `${d.where} ${d.message}`;
    if (!seen.has(key)) diagnostics.push(d);
    seen.add(key);
  }
  return { diagnostics, listed: program.getSourceFiles().map((f) => resolve(f.fileName)) };
}

function toDiagnostic(project: Project, d: ts.Diagnostic): Diagnostic {
  const message = `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  if (d.file === undefined || d.start === undefined) return { where: 'tsc', snippet: undefined, message };
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
  const file = project.files.get(resolve(d.file.fileName));
  if (file === undefined) return { where: `${d.file.fileName}:${line + 1}:${character + 1}`, snippet: undefined, message };
  const codeRow = line + 1 - file.prefixLines;
  if (codeRow < 1) return { where: `${file.snippet.doc}:${file.snippet.line - 1} (its stubs)`, snippet: file.snippet, message };
  return { where: `${file.snippet.doc}:${file.snippet.line + codeRow}:${character + 1}`, snippet: file.snippet, message };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a compiled program with plain node in `cwd`, in a process group of
 * its own so that a time-out also kills the workers it started.
 */
export function runProgram(entry: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult & { pid: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ pid: child.pid!, code, signal, timedOut, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Entries of a folder, or none when it does not exist. */
export function listing(folder: string): string[] {
  return existsSync(folder) ? readdirSync(folder) : [];
}

/**
 * New entries of a shared folder (/dev/shm, os.tmpdir()) that a snippet
 * made: a run folder of its own pid (`memjob_<pid>_<hex>`), or a name its
 * code spells out (`/dev/shm/data.mjdump`). Entries of other processes that
 * run meanwhile are not its doing.
 */
export function leftovers(before: Set<string>, after: string[], pid: number, code: string): string[] {
  return after.filter((name) => !before.has(name) && (name.startsWith(`memjob_${pid}_`) || (name.length >= 3 && code.includes(name))));
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  });
  await Promise.all(lanes);
  return results;
}

