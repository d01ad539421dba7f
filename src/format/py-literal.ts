/**
 * A parser for the Python literals numpy puts in a .npy header, accepting
 * what numpy accepts: numpy reads the header with ast.literal_eval (after
 * dropping Python 2's 'L' suffixes from version 1.0 and 2.0 headers,
 * format.py _filter_header), so this follows Python 3.11's tokenizer and
 * literal_eval: strings with prefixes, escapes and implicit concatenation,
 * ints in any base with underscores, one unary sign on a number, complex
 * sums, tuples, lists, dicts, sets, set(), True/False/None/..., comments,
 * line continuations. Nothing is ever evaluated. Every step is linear in the
 * text, and the number of values and the nesting depth are bounded, so a
 * hostile header costs time and memory in proportion to its length only.
 */
import { clip, type MemjobError } from '../errors.js';

/** A parsed literal, with the text it came from (for messages). */
export type PyValue = { source: string } & (
  | { type: 'str'; value: string }
  /** A bytes literal; `value` holds one char (0-255) per byte. */
  | { type: 'bytes'; value: string }
  | { type: 'int'; value: bigint }
  /** A float or complex number: never valid in a header, kept only to report. */
  | { type: 'float' }
  | { type: 'bool'; value: boolean }
  | { type: 'none' }
  | { type: 'ellipsis' }
  | { type: 'tuple' | 'list' | 'set'; items: PyValue[] }
  | { type: 'dict'; entries: [PyValue, PyValue][] }
);

export interface LiteralRules {
  /** Drop a Python 2 'L' after an integer, as numpy does for version 1.0 and 2.0 headers. */
  python2Longs: boolean;
  /** Containers and parentheses nested deeper than this are refused. */
  maxDepth: number;
  /** More values than this in the whole text are refused (bounds memory whatever the text's size). */
  maxValues: number;
  /** Builds the error for a problem at a character position. */
  fail: (pos: number, reason: string) => MemjobError;
}

/** Python 3.11 refuses to convert integer literals of more digits (sys.int_info.str_digits_check_threshold). */
export const MAX_INT_DIGITS = 4300;

/** What the parser knows of a value beyond PyValue: what literal_eval allows around it. */
interface Node {
  value: PyValue;
  /** 'num': an int or float literal; 'imag': an imaginary literal; 'signed', 'signedImag': either with a sign; 'other'. */
  kind: 'num' | 'imag' | 'signed' | 'signedImag' | 'other';
  hashable: boolean;
}

const NUMBER = /(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][-+]?\d(?:_?\d)*)?[jJ]?/y;
const RADIX_INT = /0(?:[xX](?:_?[\da-fA-F])+|[oO](?:_?[0-7])+|[bB](?:_?[01])+)/y;
const DECIMAL_INT = /^(?:0(?:_?0)*|[1-9](?:_?\d)*)$/;
const STRING_START = /([rR][bB]|[bB][rR]|[rRbBuU])?('''|"""|'|")/y;
const NAME = /[A-Za-z_]\w*/y;
const OCTAL = /[0-7]{1,3}/y;
const COMMENT = /#[^\r\n]*/y;
const SIMPLE_ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Parses `text` as one Python literal expression, as ast.literal_eval would. */
export function parsePyLiteral(text: string, rules: LiteralRules): PyValue {
  return new Parser(text, rules).parseAll();
}

class Parser {
  #pos = 0;
  #values = 0;
  readonly #text: string;
  readonly #rules: LiteralRules;

  constructor(text: string, rules: LiteralRules) {
    this.#text = text;
    this.#rules = rules;
  }

  parseAll(): PyValue {
    const nul = this.#text.indexOf('\0');
    if (nul >= 0) throw this.#fail('a NUL character (Python refuses source text containing one)', nul);
    this.#skipLeading();
    // (A bare top-level tuple, '1, 2', is refused: a header must be a dict, which numpy checks too.)
    const { value } = this.#parseExpression(0);
    this.#skip();
    if (this.#pos < this.#text.length) throw this.#fail(`unexpected text after the ${value.type === 'dict' ? 'dict' : 'literal'}`);
    return value;
  }

  // literal_eval strips leading spaces and tabs; blank lines may follow, but
  // the line holding the expression must not be indented ("unexpected indent").
  #skipLeading(): void {
    const text = this.#text;
    let indented = false;
    let newline = false;
    for (;;) {
      const c = text[this.#pos];
      if (c === ' ' || c === '\t') indented = newline;
      else if (c === '\f') indented = false;
      else if (c === '\n' || c === '\r') {
        newline = true;
        indented = false;
      } else if (c === '#') {
        this.#skipComment();
        continue;
      } else if (c === '\\' && this.#continuation()) {
        indented = false;
        continue;
      } else break;
      this.#pos++;
    }
    if (indented) throw this.#fail('unexpected indent');
  }

  // Spaces, tabs, form feeds, comments, line continuations and newlines.
  // Python ends a statement at a newline outside brackets; here the only
  // values that matter (numpy's dict) are bracketed, and a newline after the
  // whole expression ends it harmlessly, so newlines are skipped everywhere.
  #skip(): void {
    const text = this.#text;
    for (;;) {
      const c = text[this.#pos];
      if (c === ' ' || c === '\t' || c === '\f' || c === '\n' || c === '\r') this.#pos++;
      else if (c === '#') this.#skipComment();
      else if (c !== '\\' || !this.#continuation()) return;
    }
  }

  #skipComment(): void {
    COMMENT.lastIndex = this.#pos;
    this.#pos += COMMENT.exec(this.#text)![0].length;
  }

  /** Consumes a backslash and the newline right after it; false when no newline follows. */
  #continuation(): boolean {
    const next = this.#text[this.#pos + 1];
    if (next !== '\n' && next !== '\r') return false;
    this.#pos += this.#text.startsWith('\r\n', this.#pos + 1) ? 3 : 2;
    // Python: "EOF in multi-line statement" when nothing follows the continued line.
    if (this.#pos >= this.#text.length) throw this.#fail('a line continuation at the end of the text');
    return true;
  }

  // A sum is allowed only as literal_eval's complex numbers: a (signed) real, then + or -, then an imaginary literal.
  #parseExpression(depth: number): Node {
    const start = this.#pos;
    const left = this.#parseUnary(depth);
    this.#skip();
    const op = this.#text[this.#pos];
    if (op !== '+' && op !== '-') return left;
    if (left.kind !== 'num' && left.kind !== 'signed') throw this.#fail(`'${op}' is allowed only between a real and an imaginary number`);
    this.#pos++;
    this.#skip();
    const right = this.#parsePrimary(depth);
    if (right.kind !== 'imag') throw this.#fail(`'${op}' is allowed only between a real and an imaginary number`, start);
    return this.#node({ type: 'float' }, start, 'other', true);
  }

  #parseUnary(depth: number): Node {
    const start = this.#pos;
    const sign = this.#text[this.#pos];
    if (sign !== '+' && sign !== '-') return this.#parsePrimary(depth);
    this.#pos++;
    this.#skip();
    const operand = this.#parsePrimary(depth);
    if (operand.kind !== 'num' && operand.kind !== 'imag') throw this.#fail(`a sign is allowed only before a number`, start);
    const value: PyValue =
      operand.value.type === 'int'
        ? { type: 'int', value: sign === '-' ? -operand.value.value : operand.value.value, source: '' }
        : { type: 'float', source: '' };
    return this.#node(value, start, operand.kind === 'imag' ? 'signedImag' : 'signed', true);
  }

  #parsePrimary(depth: number): Node {
    if (depth > this.#rules.maxDepth) throw this.#fail(`values nested more than ${this.#rules.maxDepth} deep`);
    if (++this.#values > this.#rules.maxValues) throw this.#fail(`more than ${this.#rules.maxValues} values`);
    const start = this.#pos;
    const c = this.#text[this.#pos];
    if (c === '(' || c === '[' || c === '{') return this.#parseContainer(c, depth);
    STRING_START.lastIndex = this.#pos;
    if (STRING_START.test(this.#text)) return this.#parseStrings();
    if (c === '.' && this.#text.startsWith('...', this.#pos)) {
      this.#pos += 3;
      return this.#node({ type: 'ellipsis' }, start, 'other', true);
    }
    if (c !== undefined && /[\d.]/.test(c)) return this.#parseNumber();
    NAME.lastIndex = this.#pos;
    const word = NAME.exec(this.#text)?.[0];
    const constant = word === 'True' || word === 'False' ? { type: 'bool', value: word === 'True' } : word === 'None' ? { type: 'none' } : undefined;
    if (constant !== undefined) {
      this.#pos += word!.length;
      return this.#node(constant as PyValue, start, 'other', true);
    }
    if (word === 'set') {
      // literal_eval's one call: set() for the empty set.
      this.#pos += 3;
      this.#skip();
      if (this.#eat('(')) {
        this.#skip();
        if (this.#eat(')')) return this.#node({ type: 'set', items: [] }, start, 'other', false);
      }
      this.#pos = start;
    }
    if (word !== undefined) throw this.#fail(`unexpected name '${clip(word, 40)}'`);
    throw this.#fail(c === undefined ? 'it ends too early' : `unexpected ${JSON.stringify(c)}`);
  }

  #parseContainer(open: '(' | '[' | '{', depth: number): Node {
    const start = this.#pos;
    const close = open === '(' ? ')' : open === '[' ? ']' : '}';
    this.#pos++;
    const items: Node[] = [];
    const values: Node[] = [];
    let dict: boolean | undefined = open === '{' ? undefined : false;
    let comma = false;
    for (;;) {
      this.#skip();
      if (this.#eat(close)) break;
      const item = this.#parseExpression(depth + 1);
      this.#skip();
      if (dict === undefined) dict = this.#text[this.#pos] === ':';
      if (dict) {
        this.#expect(':');
        this.#skip();
        values.push(this.#parseExpression(depth + 1));
        this.#skip();
      }
      items.push(item);
      comma = this.#eat(',');
      if (!comma) {
        this.#skip();
        this.#expect(close);
        break;
      }
    }
    // Python: '(3)' is the number 3 in parentheses; only '(3,)' is a tuple.
    if (open === '(' && items.length === 1 && !comma) return { ...items[0]!, value: { ...items[0]!.value, source: this.#text.slice(start, this.#pos) } };
    // Set members and dict keys must be hashable, or Python raises TypeError.
    const unhashable = open === '{' ? items.find((item) => !item.hashable) : undefined;
    if (unhashable !== undefined) throw this.#fail(`${clip(unhashable.value.source, 80)} cannot be a ${dict ? 'dict key' : 'set member'} (unhashable)`, start);
    if (open === '{' && dict !== false) {
      return this.#node({ type: 'dict', entries: items.map((key, i) => [key.value, values[i]!.value]) }, start, 'other', false);
    }
    const type = open === '(' ? 'tuple' : open === '[' ? 'list' : 'set';
    return this.#node({ type, items: items.map((item) => item.value) }, start, 'other', type === 'tuple' && items.every((item) => item.hashable));
  }

  /** One or more adjacent string literals, concatenated as Python does. */
  #parseStrings(): Node {
    const start = this.#pos;
    const parts: string[] = [];
    let bytes: boolean | undefined;
    for (;;) {
      STRING_START.lastIndex = this.#pos;
      const m = STRING_START.exec(this.#text);
      if (m === null) break;
      const prefix = (m[1] ?? '').toLowerCase();
      const isBytes = prefix.includes('b');
      if (bytes !== undefined && bytes !== isBytes) throw this.#fail('bytes and str literals cannot be concatenated');
      bytes = isBytes;
      this.#pos = STRING_START.lastIndex;
      parts.push(this.#parseStringBody(m[2]!, prefix.includes('r'), isBytes));
      this.#skip();
    }
    const value = parts.join('');
    return this.#node(bytes === true ? { type: 'bytes', value } : { type: 'str', value }, start, 'other', true);
  }

  #parseStringBody(quote: string, raw: boolean, bytes: boolean): string {
    const text = this.#text;
    const start = this.#pos - quote.length;
    const triple = quote.length === 3;
    const out: string[] = [];
    let run = this.#pos;
    for (let i = this.#pos; i < text.length; ) {
      const c = text[i]!;
      if (bytes && c.charCodeAt(0) > 0x7f) throw this.#fail('a bytes literal holds a non-ASCII character', i);
      if (c === quote[0] && text.startsWith(quote, i)) {
        out.push(text.slice(run, i));
        this.#pos = i + quote.length;
        return out.join('');
      }
      if (!triple && (c === '\n' || c === '\r')) break;
      if (c !== '\\') {
        i++;
        continue;
      }
      if (i + 1 >= text.length) break;
      if (raw) {
        // A raw string keeps its backslashes; one only stops the next character from ending the string.
        i += text.startsWith('\r\n', i + 1) ? 3 : 2;
        continue;
      }
      out.push(text.slice(run, i));
      const escape = this.#escape(i, bytes);
      out.push(escape.value);
      i = run = escape.end;
    }
    throw this.#fail('a string is not terminated', start);
  }

  /** The escape sequence at `at` (a backslash) in a str or bytes literal: its value and where it ends. */
  #escape(at: number, bytes: boolean): { value: string; end: number } {
    const text = this.#text;
    const c = text[at + 1]!;
    if (c === '\n') return { value: '', end: at + 2 };
    if (c === '\r') return { value: '', end: text[at + 2] === '\n' ? at + 3 : at + 2 };
    if (Object.hasOwn(SIMPLE_ESCAPES, c)) return { value: SIMPLE_ESCAPES[c]!, end: at + 2 };
    OCTAL.lastIndex = at + 1;
    const digits = OCTAL.exec(text)?.[0];
    if (digits !== undefined) {
      const code = parseInt(digits, 8);
      return { value: String.fromCharCode(bytes ? code & 0xff : code), end: at + 1 + digits.length };
    }
    const width = c === 'x' ? 2 : bytes ? 0 : c === 'u' ? 4 : c === 'U' ? 8 : 0;
    if (width > 0) {
      const hex = text.slice(at + 2, at + 2 + width);
      const code = /^[\da-fA-F]+$/.test(hex) && hex.length === width ? parseInt(hex, 16) : -1;
      if (code < 0 || code > 0x10ffff) throw this.#fail(`a malformed \\${c} escape: ${JSON.stringify(text.slice(at, at + 2 + width))}`, at);
      return { value: String.fromCodePoint(code), end: at + 2 + width };
    }
    // Python resolves \N{name} from the Unicode name table, which JavaScript does not have; no header needs one.
    if (c === 'N' && !bytes) throw this.#fail('\\N{...} escapes (Unicode character names) are not supported', at);
    // Python keeps an unknown escape as it is (with a DeprecationWarning).
    return { value: `\\${c}`, end: at + 2 };
  }

  #parseNumber(): Node {
    const start = this.#pos;
    const text = this.#text;
    RADIX_INT.lastIndex = start;
    let literal = RADIX_INT.exec(text)?.[0];
    let kind: Node['kind'] = 'num';
    let value: PyValue | undefined;
    if (literal === undefined) {
      NUMBER.lastIndex = start;
      literal = NUMBER.exec(text)?.[0];
      if (literal === undefined) throw this.#fail(`unexpected ${JSON.stringify(text[start])}`);
      if (/[.eEjJ]/.test(literal)) {
        value = { type: 'float', source: '' };
        if (/[jJ]$/.test(literal)) kind = 'imag';
      } else if (!DECIMAL_INT.test(literal)) {
        throw this.#fail('leading zeros in a decimal integer are not permitted (use an 0o prefix for octal)');
      }
    }
    if (value === undefined) {
      const radix = /^0[xXoObB]/.test(literal) ? literal.slice(0, 2).toLowerCase() : '';
      const digits = literal.slice(radix.length).replace(/_/g, '').replace(/^0+(?=.)/, '');
      if (digits.length > MAX_INT_DIGITS) {
        throw this.#fail(`an integer of ${digits.length} digits (${clip(literal, 40)}); Python refuses integer literals over ${MAX_INT_DIGITS} digits`);
      }
      value = { type: 'int', value: BigInt(radix + digits), source: '' };
    }
    this.#pos = start + literal.length;
    const end = this.#pos;
    if (this.#rules.python2Longs) this.#dropLongSuffix();
    if (this.#pos === end && /\w/.test(text[this.#pos] ?? '')) throw this.#fail(`invalid number literal ${JSON.stringify(clip(text.slice(start, this.#pos + 1), 40))}`);
    const node = this.#node(value, start, kind, true);
    node.value.source = text.slice(start, end);
    return node;
  }

  // numpy's _filter_header drops each NAME token 'L' after a NUMBER token
  // (only spaces or line continuations between, which make no token); it
  // keeps counting the number as the last token, so '2L L' drops both.
  #dropLongSuffix(): void {
    for (;;) {
      const save = this.#pos;
      for (;;) {
        const c = this.#text[this.#pos];
        if (c === ' ' || c === '\t' || c === '\f') this.#pos++;
        else if (c !== '\\' || !this.#continuation()) break;
      }
      NAME.lastIndex = this.#pos;
      if (NAME.exec(this.#text)?.[0] !== 'L') {
        this.#pos = save;
        return;
      }
      this.#pos++;
    }
  }

  #node(value: PyValue | Omit<PyValue, 'source'>, start: number, kind: Node['kind'], hashable: boolean): Node {
    return { value: { ...value, source: this.#text.slice(start, this.#pos) } as PyValue, kind, hashable };
  }

  #eat(c: string): boolean {
    if (this.#text[this.#pos] !== c) return false;
    this.#pos++;
    return true;
  }

  #expect(c: string): void {
    if (this.#eat(c)) return;
    const found = this.#text[this.#pos];
    throw this.#fail(`expected '${c}', found ${found === undefined ? 'the end' : JSON.stringify(found)}`);
  }

  #fail(reason: string, pos = this.#pos): MemjobError {
    return this.#rules.fail(pos, reason);
  }
}
