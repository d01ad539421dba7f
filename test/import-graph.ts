/**
 * Reads the import graph of the .ts files under a project's src/ and checks it
 * against a layer table (issue 11). Imports are read with the TypeScript
 * parser (already a dev dependency) rather than regular expressions, so that
 * `import(` inside comments, strings and templates is not mistaken for one.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';

/** One row of the layer table. `files` are exact paths ('src/native.ts') or folders ('src/memmap/**'). */
export interface Layer {
  name: string;
  files: string[];
  /** Entry programs: may import anything; only other top files and dynamic imports from `dynamicFrom` may import them. */
  top?: boolean;
}

export interface LayerRules {
  layers: Layer[];
  /** Layer names whose dynamic import() may load a top file (the CLI loads the library lazily). */
  dynamicFrom: string[];
  /** Files every other file must be reachable from. */
  entries: string[];
  maxLines: number;
}

export interface Import {
  from: string;
  specifier: string;
  line: number;
  /** Erased at compile time: `import type`, `export type`, `typeof import('...')`. */
  typeOnly: boolean;
  dynamic: boolean;
  /** The src/ file it resolves to; undefined for packages, node: builtins and missing files. */
  to: string | undefined;
}

export interface Graph {
  /** 'src/...' path -> line count. */
  lines: Map<string, number>;
  imports: Import[];
}

export function readGraph(root: string): Graph {
  const files = listTs(root, 'src');
  const known = new Set(files);
  const lines = new Map<string, number>();
  const imports: Import[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    lines.set(file, text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length);
    for (const found of importsIn(file, text)) imports.push({ ...found, from: file, to: resolveLocal(file, found.specifier, known) });
  }
  return { lines, imports };
}

function listTs(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true })
    .flatMap((entry) => {
      const path = posix.join(dir, entry.name);
      if (entry.isDirectory()) return listTs(root, path);
      return entry.name.endsWith('.ts') ? [path] : [];
    })
    .sort();
}

function importsIn(file: string, text: string): Omit<Import, 'from' | 'to'>[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Omit<Import, 'from' | 'to'>[] = [];
  const add = (node: ts.Node, specifier: ts.Node | undefined, typeOnly: boolean, dynamic: boolean): void => {
    // import(url) with a computed argument cannot be resolved statically; only literals are graph edges.
    if (specifier === undefined || !ts.isStringLiteralLike(specifier)) return;
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    found.push({ specifier: specifier.text, line, typeOnly, dynamic });
  };
  const visit = (node: ts.Node): void => {
    // `import { type A } from` is not type-only: under verbatimModuleSyntax it stays as `import {} from`, which runs the module.
    if (ts.isImportDeclaration(node)) add(node, node.moduleSpecifier, node.importClause?.isTypeOnly ?? false, false);
    else if (ts.isExportDeclaration(node)) add(node, node.moduleSpecifier, node.isTypeOnly, false);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0], false, true);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal, true, false);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** './x.js' from 'src/a/b.ts' -> 'src/a/x.ts' when that file exists. */
function resolveLocal(from: string, specifier: string, known: Set<string>): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  const target = posix.normalize(posix.join(posix.dirname(from), specifier));
  const candidates = [target.replace(/\.js$/, '.ts'), target, `${target}.ts`, `${target}/index.ts`];
  return candidates.find((candidate) => known.has(candidate));
}

/** The index of the layer holding `file` in `rules.layers`, or undefined when no row names it. */
function layerOf(rules: LayerRules, file: string): number | undefined {
  const index = rules.layers.findIndex((layer) =>
    layer.files.some((pattern) => (pattern.endsWith('/**') ? file.startsWith(pattern.slice(0, -2)) : file === pattern)),
  );
  return index === -1 ? undefined : index;
}

const where = (i: Import): string => `${i.from}:${i.line} imports '${i.specifier}'`;

export function tooLong(graph: Graph, rules: LayerRules): string[] {
  return [...graph.lines].filter(([, n]) => n > rules.maxLines).map(([file, n]) => `${file} has ${n} lines (at most ${rules.maxLines})`);
}

/** Files no layer row names (new folders must be placed on purpose), and relative imports that reach no src/ file. */
export function unplaced(graph: Graph, rules: LayerRules): string[] {
  const files = [...graph.lines.keys()].filter((file) => layerOf(rules, file) === undefined).map((file) => `${file} is in no layer of the table`);
  const dangling = graph.imports
    .filter((i) => i.to === undefined && i.specifier.startsWith('.'))
    .map((i) => `${where(i)}, which is no .ts file under src/`);
  return [...files, ...dangling];
}

export function upward(graph: Graph, rules: LayerRules): string[] {
  const problems: string[] = [];
  for (const i of graph.imports) {
    if (i.to === undefined || i.to === i.from) continue;
    const from = layerOf(rules, i.from);
    const to = layerOf(rules, i.to);
    if (from === undefined || to === undefined) continue; // reported by unplaced()
    const fromLayer = rules.layers[from]!;
    const toLayer = rules.layers[to]!;
    if (toLayer.top) {
      if (fromLayer.top || (i.dynamic && rules.dynamicFrom.includes(fromLayer.name))) continue;
      problems.push(`${where(i)}: ${toLayer.name} (${i.to}) is an entry program; ${fromLayer.name} may not import it`);
    } else if (!fromLayer.top && to > from) {
      problems.push(`${where(i)}: ${fromLayer.name} (layer ${from}) may not import ${toLayer.name} (layer ${to}, ${i.to})`);
    }
  }
  return problems;
}

/**
 * Import circles, each as its shortest path: one through every file that is
 * not already on a reported circle, so all circles show up at once.
 * Type-only imports are left out: they are erased from the JavaScript, so they
 * cannot cause load-order surprises (the layer check still applies to them).
 * Dynamic imports count: a lazy import() is a common way to hide a circle, not to remove one.
 * A file importing itself (src/index.ts takes its own namespace) is not a circle.
 */
export function cycles(graph: Graph): string[] {
  const next = new Map<string, string[]>();
  for (const i of graph.imports) {
    if (i.to === undefined || i.typeOnly || i.to === i.from) continue;
    next.set(i.from, [...(next.get(i.from) ?? []), i.to]);
  }
  const inCycle = new Set<string>();
  const found: string[] = [];
  for (const start of [...graph.lines.keys()]) {
    if (inCycle.has(start)) continue;
    const path = shortestPath(next, start, start);
    if (path === undefined) continue;
    path.forEach((file) => inCycle.add(file));
    found.push(`import circle: ${path.join(' -> ')}`);
  }
  return found;
}

/** Breadth-first: the shortest import path from `start` back to `goal`, both ends included. */
function shortestPath(next: Map<string, string[]>, start: string, goal: string): string[] | undefined {
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let k = 0; k < queue.length; k++) {
    const file = queue[k]!;
    for (const to of next.get(file) ?? []) {
      if (to === goal) {
        const path = [goal, file];
        for (let at = file; at !== start; ) path.push((at = cameFrom.get(at)!));
        return path.reverse();
      }
      if (cameFrom.has(to) || to === start) continue;
      cameFrom.set(to, file);
      queue.push(to);
    }
  }
  return undefined;
}

/** Files that no import path (type-only imports included) reaches from the entry programs. */
export function unreachable(graph: Graph, rules: LayerRules): string[] {
  const seen = new Set(rules.entries.filter((entry) => graph.lines.has(entry)));
  const queue = [...seen];
  for (let k = 0; k < queue.length; k++) {
    for (const i of graph.imports) {
      if (i.from !== queue[k] || i.to === undefined || seen.has(i.to)) continue;
      seen.add(i.to);
      queue.push(i.to);
    }
  }
  const entries = rules.entries.join(', ');
  return [...graph.lines.keys()].filter((file) => !seen.has(file)).map((file) => `${file} is imported by nothing reachable from ${entries}`);
}
