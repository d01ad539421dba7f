/**
 * Reads a function's source text (`Function.prototype.toString`) and decides
 * whether it can be evaluated on its own in a worker: the text is turned into
 * one function expression, and the variables it uses without declaring them
 * are listed. Which of those are acceptable (globals) is the caller's choice.
 */
import { parse } from 'acorn';
import { analyze } from 'periscopic';

export type SourceAnalysis =
  | {
      ok: true;
      /** A function expression, ready for `return (\n${source}\n);`. */
      source: string;
      /** Names the function reads but does not declare, in order of first use. */
      freeVariables: string[];
      /** Those of freeVariables that are called (`f(...)`, `new F()`): functions, which cannot travel as arguments. */
      calledVariables: string[];
    }
  | SourceRefusal;

/**
 * Why a source cannot be sent: `shape` when it is not a callable function at
 * all (class, generator, getter), `syntax` when its text does not stand on
 * its own (it uses `super`, a private field, `import.meta`).
 */
export interface SourceRefusal {
  ok: false;
  problem: 'shape' | 'syntax';
  reason: string;
}

/** The part of an acorn node this file reads; children are found generically. */
interface AstNode {
  type: string;
  start: number;
  end: number;
  [key: string]: unknown;
}

type EstreeNode = Parameters<typeof analyze>[0];

const NATIVE_CODE = /\{\s*\[native code\]\s*\}\s*$/;

/** True for the text V8 gives native and bound functions: `function sqrt() { [native code] }`. */
export function isNativeSource(text: string): boolean {
  return NATIVE_CODE.test(text);
}

function parseExpression(code: string): AstNode | undefined {
  let program: AstNode;
  try {
    program = parse(code, { ecmaVersion: 'latest', sourceType: 'script' }) as unknown as AstNode;
  } catch {
    return undefined;
  }
  const body = program.body as AstNode[];
  const statement = body[0];
  if (body.length !== 1 || statement === undefined || statement.type !== 'ExpressionStatement') return undefined;
  return statement.expression as AstNode;
}

/** Why `code` does not parse, and how far the parser got. */
function parseError(code: string): { message: string; pos: number } {
  try {
    parse(code, { ecmaVersion: 'latest', sourceType: 'script' });
    return { message: 'it is not a single function', pos: code.length };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const pos = (error as { pos?: unknown }).pos;
    // The line:column acorn appends points into the wrapped text: drop it.
    return { message: message.replace(/\s*\(\d+:\d+\)$/, ''), pos: typeof pos === 'number' ? pos : 0 };
  }
}

/**
 * Turns a function's source text into a function expression and lists its
 * free variables, or says why it cannot be shipped.
 */
export function analyzeFunctionSource(text: string): SourceAnalysis {
  if (isNativeSource(text)) return { ok: false, problem: 'shape', reason: 'it is a native or bound function, which has no source to send' };
  let source = text;
  let root = parseExpression(`(${text}\n)`);
  if (root === undefined) {
    // Method shorthand (`process(n) {...}`, `async process(n) {...}`,
    // `'quoted name'() {...}`) is valid only inside an object literal.
    const method = methodToFunction(text);
    if (!method.ok) return method;
    source = method.source;
    root = parseExpression(`(${source}\n)`);
    if (root === undefined) return { ok: false, problem: 'syntax', reason: `its source does not parse: ${parseError(`(${source}\n)`).message}` };
  }
  switch (root.type) {
    case 'FunctionExpression':
    case 'ArrowFunctionExpression':
      break;
    case 'ClassExpression':
      return { ok: false, problem: 'shape', reason: 'it is a class, and a class cannot be called without new' };
    default:
      return { ok: false, problem: 'shape', reason: 'its source is not a function expression' };
  }
  if (root.generator === true) {
    return { ok: false, problem: 'shape', reason: 'it is a generator function (collect its values into an array and return that)' };
  }
  const free = freeVariables(root);
  const called = calledNames(root);
  return { ok: true, source, freeVariables: free, calledVariables: free.filter((name) => called.has(name)) };
}

/** Names called directly somewhere in the tree: `name(...)`, `new name(...)`, `name\`...\``. */
function calledNames(root: AstNode): Set<string> {
  const names = new Set<string>();
  const visit = (node: AstNode): void => {
    const callee = node.type === 'CallExpression' || node.type === 'NewExpression' ? node.callee : node.type === 'TaggedTemplateExpression' ? node.tag : undefined;
    if (isNode(callee) && callee.type === 'Identifier') names.add(callee.name as string);
    for (const key of Object.keys(node)) {
      const child = node[key];
      if (Array.isArray(child)) {
        for (const item of child) if (isNode(item)) visit(item);
      } else if (isNode(child)) {
        visit(child);
      }
    }
  };
  visit(root);
  return names;
}

function methodToFunction(text: string): { ok: true; source: string } | SourceRefusal {
  const prefix = '({';
  const object = parseExpression(`${prefix}${text}\n})`);
  const properties = object?.type === 'ObjectExpression' ? (object.properties as AstNode[]) : [];
  const property = properties[0];
  if (object === undefined || properties.length !== 1 || property === undefined || property.type !== 'Property') {
    // Report the reading (as an expression, or as a method) that got further.
    const asExpression = parseError(`(${text}\n)`);
    const asMethod = parseError(`${prefix}${text}\n})`);
    const error = asMethod.pos > asExpression.pos ? asMethod : asExpression;
    return { ok: false, problem: 'syntax', reason: `its source does not parse on its own: ${error.message}` };
  }
  if (property.kind === 'get' || property.kind === 'set') {
    return { ok: false, problem: 'shape', reason: `it is a ${String(property.kind)}ter, not a function to call` };
  }
  if (property.method !== true) return { ok: false, problem: 'shape', reason: 'its source is not a function' };
  if (property.computed === true) {
    return { ok: false, problem: 'shape', reason: 'it is a method with a computed name ([...]() {...}), which cannot be rebuilt on its own' };
  }
  const value = property.value as AstNode;
  if (value.generator === true) {
    return { ok: false, problem: 'shape', reason: 'it is a generator method (collect its values into an array and return that)' };
  }
  // value.start is the "(" of the parameters. A method does not bind its own
  // name inside its body, so the function is rebuilt anonymous (the name is
  // restored on the function object by the caller).
  const rest = text.slice(value.start - prefix.length);
  return { ok: true, source: `${value.async === true ? 'async ' : ''}function ${rest}` };
}

function freeVariables(root: AstNode): string[] {
  // globals maps each unresolved name to its first reference.
  const globals = [...analyze(root as unknown as EstreeNode).globals];
  globals.sort(([, a], [, b]) => (a as unknown as AstNode).start - (b as unknown as AstNode).start);
  return globals.map(([name]) => name).filter((name) => {
    if (name === 'arguments') {
      // Inside a non-arrow function `arguments` is its own; used directly by
      // an arrow it is the enclosing function's, which does not travel.
      return hasReferenceOutside(root, name, (node) => node.type === 'FunctionExpression' || node.type === 'FunctionDeclaration');
    }
    // periscopic does not declare a class expression's own name inside its
    // body (`class D { m() { return D } }`): a name used only there is bound.
    return hasReferenceOutside(root, name, (node) => node.type === 'ClassExpression' && (node.id as AstNode | null)?.name === name);
  });
}

function isNode(value: unknown): value is AstNode {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

/**
 * The reference rule periscopic uses (is-reference): property keys, member
 * names and labels are not references; nor, here, the `new` of `new.target`.
 */
function isReference(node: AstNode, parent: AstNode | undefined): boolean {
  switch (parent?.type) {
    case 'MemberExpression':
      return parent.computed === true || node === parent.object;
    case 'MethodDefinition':
      return parent.computed === true;
    case 'MetaProperty':
      // `new.target`, `import.meta`: keywords, not variables.
      return false;
    case 'PropertyDefinition':
    case 'Property':
      return parent.computed === true || node === parent.value;
    case 'LabeledStatement':
    case 'BreakStatement':
    case 'ContinueStatement':
      return false;
    default:
      return true;
  }
}

/** True when `name` is referenced somewhere not enclosed by a node for which `encloses` holds (the root counts). */
function hasReferenceOutside(root: AstNode, name: string, encloses: (node: AstNode) => boolean): boolean {
  const visit = (node: AstNode, parent: AstNode | undefined): boolean => {
    if (encloses(node)) return false;
    if (node.type === 'Identifier') return node.name === name && isReference(node, parent);
    for (const key of Object.keys(node)) {
      if (key === 'type' || key === 'start' || key === 'end' || key === 'loc' || key === 'range') continue;
      const child = node[key];
      if (Array.isArray(child)) {
        for (const item of child) if (isNode(item) && visit(item, node)) return true;
      } else if (isNode(child) && visit(child, node)) {
        return true;
      }
    }
    return false;
  };
  return visit(root, undefined);
}
