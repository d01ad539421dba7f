/**
 * How `cache(fn, { ignore })` names a call's parameters. JS has no keyword
 * arguments, so a name is one of:
 * - a positional parameter (`function f(data, verbose)`): 'verbose' leaves
 *   the whole second argument out of the key;
 * - a property of a destructured options parameter (`f(data, { window,
 *   verbose })`, the JS idiom for keyword arguments): 'verbose' leaves that
 *   property of the second argument out of the key, the rest stays in;
 * - a rest parameter (`f(data, ...more)`): all the arguments it collects.
 * Names are read from the function's source with acorn, never evaluated.
 */
import { parse } from 'acorn';
import { ErrorCodes, MemjobError, describe } from '../errors.js';

export type ParamSlot =
  | { kind: 'positional'; index: number; name: string }
  | { kind: 'property'; index: number; name: string }
  | { kind: 'rest'; index: number; name: string };

interface Node {
  type: string;
  [key: string]: unknown;
}

function functionNode(text: string): Node | undefined {
  for (const wrapped of [`(${text}\n)`, `({${text}\n})`]) {
    try {
      const program = parse(wrapped, { ecmaVersion: 'latest', sourceType: 'module' }) as unknown as Node;
      let node = (program.body as Node[])[0]?.expression as Node | undefined;
      if (node?.type === 'ObjectExpression') node = ((node.properties as Node[])[0]?.value as Node | undefined) ?? undefined;
      if (node?.type === 'FunctionExpression' || node?.type === 'ArrowFunctionExpression') return node;
    } catch {
      // not this shape: try the next wrapping
    }
  }
  return undefined;
}

/** The parameters of `fn` that `ignore` can name; [] when its source is not available (native or bound). */
export function parameterSlots(fn: Function): ParamSlot[] {
  const node = functionNode(Function.prototype.toString.call(fn));
  if (node === undefined) return [];
  const slots: ParamSlot[] = [];
  (node.params as Node[]).forEach((param, index) => {
    const target = param.type === 'AssignmentPattern' ? (param.left as Node) : param;
    if (target.type === 'Identifier') slots.push({ kind: 'positional', index, name: target.name as string });
    else if (target.type === 'RestElement' && (target.argument as Node).type === 'Identifier') {
      slots.push({ kind: 'rest', index, name: (target.argument as Node).name as string });
    } else if (target.type === 'ObjectPattern') {
      for (const property of target.properties as Node[]) {
        const key = property.key as Node | undefined;
        if (property.type !== 'Property' || property.computed === true || key === undefined) continue;
        const name = key.type === 'Identifier' ? (key.name as string) : key.type === 'Literal' ? String(key.value) : undefined;
        if (name !== undefined) slots.push({ kind: 'property', index, name });
      }
    }
  });
  return slots;
}

/** The slots `ignore` names; an unknown name is INVALID_ARG listing the names there are. */
export function ignoredSlots(fn: Function, ignore: unknown, where: string): ParamSlot[] {
  if (ignore === undefined) return [];
  if (!Array.isArray(ignore) || !ignore.every((n) => typeof n === 'string')) {
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "ignore" to be an array of parameter names, received ${describe(ignore)}`);
  }
  const slots = parameterSlots(fn);
  return ignore.map((name) => {
    const slot = slots.find((s) => s.name === name);
    if (slot === undefined) {
      const known = slots.length === 0 ? 'none could be read from its source' : `it has ${slots.map((s) => `'${s.name}'`).join(', ')}`;
      throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected "ignore" to name parameters of ${describe(fn)}, received '${name}'; ${known}`);
    }
    return slot;
  });
}

/** The arguments as they enter the key: trailing undefineds dropped (f(1) and f(1, undefined) are one call), ignored slots removed. */
export function keyArguments(args: readonly unknown[], ignored: readonly ParamSlot[]): unknown[] {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  const out: unknown[] = args.slice(0, end);
  for (const slot of ignored) {
    if (slot.kind === 'positional' && slot.index < out.length) out[slot.index] = undefined;
    else if (slot.kind === 'rest') out.length = Math.min(out.length, slot.index);
    else if (slot.kind === 'property') {
      const options = out[slot.index];
      if (typeof options === 'object' && options !== null && !Array.isArray(options) && Object.hasOwn(options, slot.name)) {
        const { [slot.name]: _dropped, ...rest } = options as Record<string, unknown>;
        out[slot.index] = rest;
      }
    }
  }
  return out;
}
