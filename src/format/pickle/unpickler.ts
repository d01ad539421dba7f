/**
 * A restricted unpickler for pickle protocols 0 to 5 (CPython's Lib/pickle.py, opcode for opcode). It
 * never runs anything: every global goes through `options.resolve`, which returns an allowlisted handler
 * or throws, before anything is built from it. Every length is checked against the bytes left and every
 * structure against a bound, and nesting is handled with explicit stacks, so hostile input gives a
 * MemjobError, never a TypeError, a huge allocation or a stack overflow.
 *
 * Values: None → null, bool → boolean, int → number (BigInt beyond 2^53), float → number, str → string
 * (Python 2 str: latin-1), bytes/bytearray → Uint8Array, tuple/list → Array, dict → Map (keys of any
 * kind kept), set/frozenset → Set, globals → whatever their handler returns.
 */
import { describe, ErrorCodes, MemjobError } from '../../errors.js';
import {
  decodeLong,
  decodeRawUnicodeEscape,
  decodeUtf8,
  formatError,
  parseTextFloat,
  parseTextInt,
  quoteLine,
  unescapeStringLiteral,
} from './decode.js';
import { PickleGlobalRef, type PickleGlobal, type PickleResolver } from './globals.js';
import { OPCODE_NAMES } from './opcodes.js';
import { MAX_STRING_LENGTH, type PickleReader } from './reader.js';

export { PickleGlobalRef, type PickleGlobal, type PickleResolver } from './globals.js';

export interface UnpickleOptions {
  resolve: PickleResolver;
  /** Memo entries (PUT, MEMOIZE). Default 10,000,000. */
  maxMemo?: number;
  /** Values held on the stack and under all open MARKs together. Default 16,000,000. */
  maxStack?: number;
  /** Open MARKs. Default 1,000 (CPython's recursion limit keeps its own pickles far below). */
  maxMarkDepth?: number;
  /** Containers inside containers. Default 1,000, so that code walking the result recursively is safe. */
  maxNesting?: number;
  /** Values pushed in total, a bound on the memory a small file can ask for. Default 100,000,000. */
  maxItems?: number;
  /** Characters of one string or line. Default (and at most) V8's limit, 2^29 - 24. */
  maxStringLength?: number;
}

/** The module renames of CPython's _compat_pickle.IMPORT_MAPPING that matter for an allowlist. */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg', exceptions: 'builtins' };

/** Reads one pickle from `reader`, leaving it just after STOP, and returns its value. */
export function unpickle(reader: PickleReader, options: UnpickleOptions): unknown {
  return new Unpickler(reader, options).run();
}

class Unpickler {
  #stack: unknown[] = [];
  readonly #marks: unknown[][] = [];
  /** Values under open MARKs (the stack's length is added when checking maxStack). */
  #held = 0;
  #pushed = 0;
  readonly #memo = new Map<number, unknown>();
  /** Containers' nesting depth, and which global made an object (for BUILD). */
  readonly #depth = new WeakMap<object, number>();
  readonly #owner = new WeakMap<object, PickleGlobalRef>();
  /** Offset and name of the opcode being run, for messages. */
  #at = 0;
  #op = 0;
  #proto = 0;
  readonly #limits: Required<Omit<UnpickleOptions, 'resolve'>>;

  constructor(
    private readonly reader: PickleReader,
    private readonly options: UnpickleOptions,
  ) {
    this.#limits = {
      maxMemo: options.maxMemo ?? 10_000_000,
      maxStack: options.maxStack ?? 16_000_000,
      maxMarkDepth: options.maxMarkDepth ?? 1000,
      maxNesting: options.maxNesting ?? 1000,
      maxItems: options.maxItems ?? 100_000_000,
      maxStringLength: Math.min(options.maxStringLength ?? MAX_STRING_LENGTH, MAX_STRING_LENGTH),
    };
  }

  run(): unknown {
    const r = this.reader;
    for (;;) {
      this.#at = r.position;
      if (r.remaining() === 0) throw formatError('an opcode (the pickle ends with STOP)', 'the end of the data', this.#at);
      const op = (this.#op = r.readByte());
      switch (op) {
        case 0x80: { // PROTO
          const v = r.readByte();
          if (v > 5) throw this.#error('a pickle protocol from 0 to 5', `protocol ${v}`);
          this.#proto = v;
          break;
        }
        case 0x95: this.#length(this.#u64(), 'frame'); break; // FRAME: joblib writes array bytes between frames, so frames are just read through
        case 0x2e: return this.#pop(); // STOP
        case 0x4e: this.#push(null); break;
        case 0x88: this.#push(true); break;
        case 0x89: this.#push(false); break;
        case 0x49: { // INT (protocol 0 writes True/False as I01/I00)
          const line = this.#line();
          this.#push(line === '01' ? true : line === '00' ? false : parseTextInt(line, this.#at));
          break;
        }
        case 0x4c: this.#push(parseTextInt(this.#line(), this.#at)); break; // LONG
        case 0x4a: this.#push(this.#i32()); break; // BININT
        case 0x4b: this.#push(r.readByte()); break; // BININT1
        case 0x4d: { const b = r.read(2); this.#push(b[0]! | (b[1]! << 8)); break; } // BININT2
        case 0x8a: this.#push(decodeLong(r.read(r.readByte()))); break; // LONG1
        case 0x8b: this.#push(decodeLong(r.read(this.#length(this.#i32(), 'LONG4 integer')))); break;
        case 0x46: this.#push(parseTextFloat(this.#line(), this.#at)); break; // FLOAT
        case 0x47: this.#push(new DataView(r.read(8).slice().buffer).getFloat64(0, false)); break; // BINFLOAT, big-endian
        case 0x53: this.#push(latin1(unescapeStringLiteral(this.#line(), this.#at))); break; // STRING
        case 0x54: this.#push(latin1(this.#text(this.#i32(), 'BINSTRING'))); break;
        case 0x55: this.#push(latin1(this.#text(r.readByte(), 'SHORT_BINSTRING'))); break;
        case 0x56: this.#push(decodeRawUnicodeEscape(this.#line(), this.#at)); break; // UNICODE
        case 0x58: this.#push(decodeUtf8(this.#text(this.#u32(), 'BINUNICODE'), this.#at)); break;
        case 0x8c: this.#push(decodeUtf8(this.#text(r.readByte(), 'SHORT_BINUNICODE'), this.#at)); break;
        case 0x8d: this.#push(decodeUtf8(this.#text(this.#u64(), 'BINUNICODE8'), this.#at)); break;
        // bytes are copied: reader views may share memory with the file.
        case 0x42: this.#push(r.read(this.#length(this.#u32(), 'BINBYTES')).slice()); break;
        case 0x43: this.#push(r.read(r.readByte()).slice()); break; // SHORT_BINBYTES
        case 0x8e: this.#push(r.read(this.#length(this.#u64(), 'BINBYTES8')).slice()); break;
        case 0x96: this.#push(r.read(this.#length(this.#u64(), 'BYTEARRAY8')).slice()); break;
        case 0x97: case 0x98: // NEXT_BUFFER, READONLY_BUFFER
          throw this.#error('in-band data (out-of-band buffers are never in a file)', this.#name());
        case 0x50: case 0x51: case 0x82: case 0x83: case 0x84: // PERSID, BINPERSID, EXT1, EXT2, EXT4
          throw new MemjobError(
            ErrorCodes.UNSAFE_PICKLE,
            `expected only allowlisted globals, received ${this.#name()} at offset ${this.#at} of the pickle (persistent ids and the extension registry name objects the allowlist cannot check)`,
          );
        case 0x29: this.#push(this.#container([])); break; // EMPTY_TUPLE
        case 0x85: this.#push(this.#container([this.#pop()])); break; // TUPLE1
        case 0x86: { const b = this.#pop(); this.#push(this.#container([this.#pop(), b])); break; }
        case 0x87: { const c = this.#pop(); const b = this.#pop(); this.#push(this.#container([this.#pop(), b, c])); break; }
        case 0x74: case 0x6c: this.#push(this.#container(this.#popMark())); break; // TUPLE, LIST
        case 0x5d: this.#push(this.#container([])); break; // EMPTY_LIST
        case 0x61: { const v = this.#pop(); this.#target(Array, 'list').push(this.#nest(this.#top(), v)); break; } // APPEND
        case 0x65: { // APPENDS
          const items = this.#popMark();
          const list = this.#target(Array, 'list');
          for (const v of items) list.push(this.#nest(list, v));
          break;
        }
        case 0x7d: this.#push(this.#container(new Map())); break; // EMPTY_DICT
        case 0x64: { const m = this.#container(new Map()); this.#setItems(m, this.#popMark()); this.#push(m); break; } // DICT
        case 0x73: { const v = this.#pop(); const k = this.#pop(); this.#setItems(this.#target(Map, 'dict'), [k, v]); break; } // SETITEM
        case 0x75: { const items = this.#popMark(); this.#setItems(this.#target(Map, 'dict'), items); break; } // SETITEMS
        case 0x8f: this.#push(this.#container(new Set())); break; // EMPTY_SET
        case 0x90: { const items = this.#popMark(); const s = this.#target(Set, 'set'); for (const v of items) s.add(this.#nest(s, v)); break; }
        case 0x91: { const s = this.#container(new Set()); for (const v of this.#popMark()) s.add(this.#nest(s, v)); this.#push(s); break; }
        case 0x28: { // MARK
          if (this.#marks.length >= this.#limits.maxMarkDepth) throw this.#limit(`at most ${this.#limits.maxMarkDepth} open MARKs`);
          this.#marks.push(this.#stack);
          this.#held += this.#stack.length;
          this.#stack = [];
          break;
        }
        case 0x30: if (this.#stack.length > 0) this.#stack.pop(); else this.#popMark(); break; // POP (as CPython: an empty stack pops the mark)
        case 0x31: this.#popMark(); break; // POP_MARK
        case 0x32: this.#push(this.#top()); break; // DUP
        case 0x70: this.#put(this.#index(this.#line())); break; // PUT
        case 0x71: this.#put(r.readByte()); break; // BINPUT
        case 0x72: this.#put(this.#u32()); break; // LONG_BINPUT
        case 0x94: this.#put(this.#memo.size); break; // MEMOIZE
        case 0x67: this.#get(this.#index(this.#line())); break; // GET
        case 0x68: this.#get(r.readByte()); break; // BINGET
        case 0x6a: this.#get(this.#u32()); break; // LONG_BINGET
        case 0x63: { const module = this.#line(); this.#push(this.#resolve(module, this.#line())); break; } // GLOBAL
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== 'string' || typeof name !== 'string') {
            throw this.#error('two strings (module, name) before STACK_GLOBAL', `${describe(module)} and ${describe(name)}`);
          }
          this.#push(this.#resolve(module, name));
          break;
        }
        case 0x69: { // INST: the global is checked before its arguments are used
          const module = this.#line();
          const cls = this.#resolve(module, this.#line());
          this.#push(this.#call(cls, this.#popMark()));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.#popMark();
          this.#push(this.#call(items[0], items.slice(1)));
          break;
        }
        case 0x52: case 0x81: { const args = this.#pop(); this.#push(this.#call(this.#pop(), args)); break; } // REDUCE, NEWOBJ
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.#pop();
          const args = this.#pop();
          if (!(kwargs instanceof Map)) throw this.#error('a dict of keyword arguments', describe(kwargs));
          this.#push(this.#call(this.#pop(), args, kwargs));
          break;
        }
        case 0x62: this.#build(); break; // BUILD
        default:
          throw formatError('a pickle opcode', `byte 0x${op.toString(16).padStart(2, '0')}`, this.#at);
      }
    }
  }

  #name(): string {
    return OPCODE_NAMES[this.#op] ?? `0x${this.#op.toString(16)}`;
  }

  #error(expected: string, received: string): MemjobError {
    return formatError(`${expected} (opcode ${this.#name()})`, received, this.#at);
  }

  #limit(expected: string): MemjobError {
    return this.#error(expected, 'more (raise the option if the file is trusted to be this large)');
  }

  #push(v: unknown): void {
    if (this.#stack.length + this.#held >= this.#limits.maxStack) throw this.#limit(`at most ${this.#limits.maxStack} values on the stack`);
    if (++this.#pushed > this.#limits.maxItems) throw this.#limit(`at most ${this.#limits.maxItems} values in the pickle`);
    this.#stack.push(v);
  }

  #pop(): unknown {
    if (this.#stack.length === 0) throw this.#error('a value on the stack', 'an empty stack');
    return this.#stack.pop();
  }

  #top(): unknown {
    if (this.#stack.length === 0) throw this.#error('a value on the stack', 'an empty stack');
    return this.#stack[this.#stack.length - 1];
  }

  /** The stack top, which must be an instance of `type` (the list, dict or set being filled). */
  #target<T>(type: new () => T, what: string): T {
    const top = this.#top();
    if (!(top instanceof type)) throw this.#error(`a ${what} to add to`, describe(top));
    return top;
  }

  #popMark(): unknown[] {
    const items = this.#stack;
    const below = this.#marks.pop();
    if (below === undefined) throw this.#error('a MARK before', 'no open MARK');
    this.#held -= below.length;
    this.#stack = below;
    return items;
  }

  /** Records a new container's depth from its initial items (an Array's elements, else none). */
  #container<T extends object>(c: T): T {
    let depth = 1;
    if (Array.isArray(c)) for (const v of c) depth = Math.max(depth, this.#depthOf(v) + 1);
    this.#checkDepth(depth);
    this.#depth.set(c, depth);
    return c;
  }

  /** Deepens `parent` to hold `child`, and returns `child`. */
  #nest(parent: unknown, child: unknown): unknown {
    const d = this.#depthOf(child) + 1;
    if (typeof parent === 'object' && parent !== null && d > this.#depthOf(parent)) {
      this.#checkDepth(d);
      this.#depth.set(parent, d);
    }
    return child;
  }

  #depthOf(v: unknown): number {
    return typeof v === 'object' && v !== null ? (this.#depth.get(v) ?? 0) : 0;
  }

  #checkDepth(d: number): void {
    if (d > this.#limits.maxNesting) throw this.#limit(`containers nested at most ${this.#limits.maxNesting} deep`);
  }

  #setItems(m: Map<unknown, unknown>, items: unknown[]): void {
    if (items.length % 2 !== 0) throw this.#error('key, value pairs', `${items.length} items`);
    for (let i = 0; i < items.length; i += 2) m.set(this.#nest(m, items[i]), this.#nest(m, items[i + 1]));
  }

  #index(line: string): number {
    if (!/^\d{1,15}$/.test(line)) throw this.#error('a memo index', quoteLine(line));
    return Number(line);
  }

  #put(i: number): void {
    if (!this.#memo.has(i) && this.#memo.size >= this.#limits.maxMemo) throw this.#limit(`at most ${this.#limits.maxMemo} memo entries`);
    this.#memo.set(i, this.#top());
  }

  #get(i: number): void {
    if (!this.#memo.has(i)) throw this.#error('a memo index stored before', `index ${i}, never stored`);
    this.#push(this.#memo.get(i));
  }

  #resolve(pyModule: string, name: string): PickleGlobalRef {
    // As CPython's fix_imports: Python 3 writes builtins as __builtin__ below protocol 3, and Python 2 always does.
    const module = this.#proto < 3 ? (PY2_MODULES[pyModule] ?? pyModule) : pyModule;
    return new PickleGlobalRef(module, name, this.options.resolve(module, name));
  }

  #call(cls: unknown, args: unknown, kwargs?: Map<unknown, unknown>): unknown {
    if (!(cls instanceof PickleGlobalRef)) throw this.#error('a global to call', describe(cls));
    if (!Array.isArray(args)) throw this.#error(`a tuple of arguments for ${cls.qualifiedName}`, describe(args));
    const handler: PickleGlobal = cls.handler;
    if (handler.call === undefined) {
      throw new MemjobError(ErrorCodes.UNSAFE_PICKLE, `expected ${cls.qualifiedName} only as a reference, received a call to it (${this.#name()} at offset ${this.#at})`);
    }
    const result = this.#located(() => handler.call!(args, kwargs));
    if (typeof result === 'object' && result !== null) {
      this.#owner.set(result, cls);
      this.#depth.set(result, Math.max(this.#depthOf(result), this.#depthOf(args)));
    }
    return result;
  }

  #build(): void {
    const state = this.#pop();
    const obj = this.#top();
    const cls = typeof obj === 'object' && obj !== null ? this.#owner.get(obj) : undefined;
    if (cls === undefined) throw this.#error('an object made by an allowlisted global', describe(obj));
    if (cls.handler.build === undefined) {
      throw new MemjobError(ErrorCodes.UNSAFE_PICKLE, `expected no state for ${cls.qualifiedName}, received BUILD at offset ${this.#at}`);
    }
    const build = cls.handler.build.bind(cls.handler);
    const built = this.#located(() => build(obj, state, this.reader));
    if (typeof built === 'object' && built !== null) this.#owner.set(built, cls);
    this.#stack[this.#stack.length - 1] = built;
  }

  /** Runs a handler, adding the opcode and offset to its MemjobErrors (handlers do not know where they are). */
  #located<T>(run: () => T): T {
    try {
      return run();
    } catch (e) {
      if (!(e instanceof MemjobError) || / at offset \d+/.test(e.message)) throw e;
      throw new MemjobError(e.code, `${e.message} (${this.#name()} at offset ${this.#at})`);
    }
  }

  #line(): string {
    return this.reader.readLine();
  }

  #i32(): number {
    const b = this.reader.read(4);
    return b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
  }

  #u32(): number {
    return this.#i32() >>> 0;
  }

  #u64(): number {
    const lo = this.#u32();
    const hi = this.#u32();
    // Inexact beyond 2^53, but such a length is refused against the bytes left anyway.
    return hi * 0x100000000 + lo;
  }

  /** A length field, checked against the bytes left before anything is read or allocated. */
  #length(n: number, what: string): number {
    if (n < 0 || n > this.reader.remaining()) {
      throw this.#error(`a ${what} length within the ${this.reader.remaining()} bytes left`, `length ${n}`);
    }
    return n;
  }

  #text(n: number, what: string): Uint8Array {
    this.#length(n, what);
    if (n > this.#limits.maxStringLength) throw this.#limit(`a string of at most ${this.#limits.maxStringLength} bytes`);
    return this.reader.read(n);
  }
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

// V8 drops optimized code that depends on an object shape (a hidden class) once no object of that
// shape is alive, and Unpicklers live only during one load: each batch of loads would then run
// interpreted again (measured: a mapped joblib load's parse recompiled after every gc(), 2x slower).
// One idle Unpickler, never run, keeps the shape alive.
const shapeKeeper = new Unpickler({ position: 0, remaining: () => 0 } as unknown as PickleReader, { resolve: () => { throw new Error('unreachable'); } });
export const keptShapes: readonly object[] = [shapeKeeper];
