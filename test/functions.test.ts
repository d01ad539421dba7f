import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, MemjobError, hasShareableMemory, inWorker, task } from '../src/index.js';
import { analyzeFunctionSource } from '../src/transport/function-source.js';
import { describeFunction, resolveFunction, type FunctionSpec } from '../src/transport/functions.js';
import { TaskError, fail, mainRuns, scaled, square } from './fixtures/tasks.js';
import { repoRoot, scratchDir } from './helpers.js';

const scratch = scratchDir('functions');
afterAll(() => scratch.remove());

const tasksUrl = new URL('./fixtures/tasks.ts', import.meta.url);
const noMemjob = {};
const memjobExports = () => import('../src/index.js');

/** describeFunction, then resolveFunction: what a worker would end up calling. */
async function roundTrip(fn: unknown, exports: Readonly<Record<string, unknown>> = noMemjob) {
  const spec = describeFunction(fn, exports);
  // The spec crosses the boundary by structured clone.
  const sent = structuredClone(spec);
  return { spec, fn: await resolveFunction(sent, memjobExports) };
}

/** The MemjobError `action` throws (fails the test if it throws none or another kind). */
function thrown(action: () => unknown): MemjobError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(MemjobError);
    return error as MemjobError;
  }
  throw new Error('expected a MemjobError, nothing was thrown');
}

// A self-contained function that exercises the scope analysis: inner
// helpers, hoisting, destructuring, default and rest parameters, labels,
// try/catch with and without a binding, classes (a class expression naming
// itself), computed keys, switch blocks and `arguments`.
function busy(items: number[], { scale = 1, offset = 0 } = {}, ...rest: number[]): number {
  function helper(v: number): number {
    return v * scale + offset;
  }
  const inner = (a: number, [b = 2]: number[] = []): number => a + b;
  let total = 0;
  outer: for (const item of items) {
    for (let i = 0; i < 3; i++) {
      if (i > item) continue outer;
      total += helper(item) + inner(i);
    }
  }
  try {
    JSON.parse('{');
  } catch (error) {
    total += error instanceof SyntaxError ? 1 : 0;
  }
  try {
    JSON.parse('{');
  } catch {
    total += 1;
  }
  const { a, b: renamed, ...others } = { a: 1, b: 2, c: 3 };
  // eslint-disable-next-line no-var
  var hoisted = a + renamed + Object.keys(others).length;
  class Local {
    value = 1;
    #hidden = 2;
    get both(): number {
      return this.value + this.#hidden;
    }
    static make(): Local {
      return new Local();
    }
  }
  const Named = class Self {
    clone(): Self {
      return new Self();
    }
  };
  switch (total) {
    case 0: {
      const z = 1;
      total += z;
      break;
    }
    default:
      total += 0;
  }
  const keyed = { key: total, [String(rest.length)]: hoisted };
  return total + hoisted + Local.make().both + new Named().clone().constructor.name.length + Object.keys(keyed).length + arguments.length + later();
  function later(): number {
    return 0;
  }
}

describe('describeFunction: functions sent by source', () => {
  it("sends the seed's self-contained process(n) by source, and it computes the same in the worker", async () => {
    function process(n: number) {
      let s = 0;
      for (let i = 0; i < 100000; i++) s += i * n;
      return s;
    }
    const { spec, fn } = await roundTrip(process);
    expect(spec).toMatchObject({ kind: 'source', name: 'process' });
    let expected = 0;
    for (let i = 0; i < 100000; i++) expected += i * 3;
    expect(fn(3)).toBe(expected);
    expect(fn.name).toBe('process');
  });

  it('sends arrows with and without parentheses, and async arrows', async () => {
    const double = (x: number) => x * 2;
    const asyncDouble = async (x: number) => x * 2;
    // An arrow without parentheses (TypeScript would add none for this one).
    const bare = new Function('return x => x + 1')() as (x: number) => number;
    const d = await roundTrip(double);
    expect(d.spec.kind).toBe('source');
    expect(d.fn(4)).toBe(8);
    expect(d.fn.name).toBe('double');
    expect(await (await roundTrip(asyncDouble)).fn(5)).toBe(10);
    expect((await roundTrip(bare)).fn(1)).toBe(2);
  });

  it('sends async functions, whose result the worker awaits', async () => {
    async function slow(x: number): Promise<number> {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return x * 2;
    }
    const { spec, fn } = await roundTrip(slow);
    expect(spec.kind).toBe('source');
    const result = fn(21);
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toBe(42);
  });

  it('rebuilds method shorthand (plain, async, quoted name) as a function', async () => {
    const obj = {
      triple(n: number) {
        return n * 3;
      },
      async later(n: number) {
        return n + 1;
      },
      'with space'(n: number) {
        return -n;
      },
    };
    const t = await roundTrip(obj.triple);
    expect(t.spec).toMatchObject({ kind: 'source', name: 'triple' });
    expect((t.spec as { source: string }).source).toMatch(/^function /);
    expect(t.fn(2)).toBe(6);
    expect(t.fn.name).toBe('triple');
    const l = await roundTrip(obj.later);
    expect((l.spec as { source: string }).source).toMatch(/^async function /);
    expect(await l.fn(1)).toBe(2);
    expect((await roundTrip(obj['with space'])).fn(5)).toBe(-5);
  });

  it('a method does not bind its own name: `process` in a method named process is the global', async () => {
    const obj = {
      process(n: number) {
        return typeof process.pid === 'number' ? n : -1;
      },
    };
    const { fn } = await roundTrip(obj.process);
    expect(fn(7)).toBe(7);
  });

  it('finds no free variable in a self-contained function with inner helpers, patterns, labels and classes', async () => {
    const { spec, fn } = await roundTrip(busy);
    expect(spec.kind).toBe('source');
    expect(fn([1, 2, 3], { scale: 2, offset: 1 }, 9, 9)).toBe(busy([1, 2, 3], { scale: 2, offset: 1 }, 9, 9));
  });

  it('allows globals (Math, console, process, Buffer, setTimeout) and arguments in a function', async () => {
    function usesGlobals(this: unknown, x: number): number {
      if (x < 0) console.log(setTimeout, Buffer.alloc(0));
      return Math.max(x, arguments.length) + (typeof process.pid === 'number' ? 0 : 1);
    }
    expect((await roundTrip(usesGlobals)).fn(5)).toBe(5);
  });

  it('provides the __name helper that tsx/esbuild keepNames inserts', async () => {
    // What tsx turns `function f() { const h = () => 1; return h.name; }` into.
    const compiled = new Function('return function f() { const h = __name(() => 1, "h"); return h.name; }')() as () => string;
    const { spec, fn } = await roundTrip(compiled);
    expect(spec.kind).toBe('source');
    expect(fn()).toBe('h');
  });

  it('caches the spec per function object', () => {
    const f = (x: number) => x;
    expect(describeFunction(f, noMemjob)).toBe(describeFunction(f, noMemjob));
  });
});

describe('describeFunction: references', () => {
  it('sends global built-ins by path', async () => {
    expect(describeFunction(Math.sqrt, noMemjob)).toEqual({ kind: 'builtin', path: 'Math.sqrt' });
    expect(describeFunction(parseInt, noMemjob)).toEqual({ kind: 'builtin', path: 'parseInt' });
    expect(describeFunction(JSON.stringify, noMemjob)).toEqual({ kind: 'builtin', path: 'JSON.stringify' });
    expect(describeFunction(structuredClone, noMemjob)).toEqual({ kind: 'builtin', path: 'structuredClone' });
    expect(describeFunction(encodeURIComponent, noMemjob)).toEqual({ kind: 'builtin', path: 'encodeURIComponent' });
    expect(describeFunction(Buffer.byteLength, noMemjob)).toEqual({ kind: 'builtin', path: 'Buffer.byteLength' });
    expect((await roundTrip(Math.sqrt)).fn(16)).toBe(4);
    expect((await roundTrip(JSON.stringify)).fn({ a: 1 })).toBe('{"a":1}');
  });

  it("sends memjob's own exports by name", async () => {
    expect(describeFunction(hasShareableMemory, { hasShareableMemory })).toEqual({ kind: 'memjob', name: 'hasShareableMemory' });
    const real = await import('../src/index.js');
    const { spec, fn } = await roundTrip(hasShareableMemory, real);
    expect(spec).toEqual({ kind: 'memjob', name: 'hasShareableMemory' });
    expect(fn).toBe(hasShareableMemory);
  });

  it('sends a task() reference as a module reference', () => {
    const ref = task(tasksUrl, 'square');
    expect(describeFunction(ref, noMemjob)).toEqual({ kind: 'module', url: tasksUrl.href, name: 'square' });
  });
});

describe('describeFunction: closures', () => {
  it('refuses a function that uses a variable from an enclosing scope, naming it and both fixes', () => {
    const scale = 2;
    const f = (x: number) => x * scale;
    const error = thrown(() => describeFunction(f, noMemjob));
    expect(error.code).toBe('MEMJOB_ERR_CLOSURE');
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toContain('"scale"');
    expect(error.message).toContain('function f');
    expect(error.message).toContain('pass "scale" as an argument');
    expect(error.message).toContain("task(import.meta.url, 'f')");
  });

  it('names every free variable', () => {
    const a = 1;
    const b = 2;
    function combine(x: number) {
      return x * a + b;
    }
    const error = thrown(() => describeFunction(combine, noMemjob));
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toContain('uses "a" and "b" from an enclosing scope');
    expect(error.message).toContain("task(import.meta.url, 'combine')");
  });

  it('counts a free variable used only in a default parameter or a nested function', () => {
    const limit = 10;
    const viaDefault = (x: number, max = limit) => Math.min(x, max);
    const viaNested = (x: number) => [x].map((v) => v + limit);
    expect(thrown(() => describeFunction(viaDefault, noMemjob)).message).toContain('"limit"');
    expect(thrown(() => describeFunction(viaNested, noMemjob)).message).toContain('"limit"');
  });

  it('a class expression binds its own name only inside its body', () => {
    const inside = analyzeFunctionSource('function f() { const C = class Self { m() { return Self; } }; return new.target ? C : null; }');
    expect(inside).toMatchObject({ ok: true, freeVariables: [] });
    const outside = analyzeFunctionSource('function f() { const C = class Self { m() { return Self; } }; return [C, Self]; }');
    expect(outside).toMatchObject({ ok: true, freeVariables: ['Self'] });
  });

  it("refuses an arrow that uses its enclosing function's arguments", () => {
    function outer(..._args: unknown[]) {
      return () => arguments.length;
    }
    const error = thrown(() => describeFunction(outer(1, 2), noMemjob));
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toContain('"arguments"');
  });

  it('refuses a module function that uses a module constant, which task() can send instead', async () => {
    const error = thrown(() => describeFunction(scaled, noMemjob));
    expect(error.code).toBe(ErrorCodes.CLOSURE);
    expect(error.message).toContain('"scale"');
    expect(await task<[number], number>(tasksUrl, 'scaled')(2)).toBe(6);
  });
});

describe('describeFunction: refusals', () => {
  const invalid = (fn: unknown, pattern: RegExp) => {
    const error = thrown(() => describeFunction(fn, noMemjob));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toMatch(pattern);
    return error;
  };

  it('refuses a bound function, suggesting a wrapper or task()', () => {
    function add(x: number, y: number) {
      return x + y;
    }
    const error = invalid(add.bind(null, 1), /bound function/);
    expect(error.message).toContain('task(');
  });

  it('refuses a native function that is not a known built-in', () => {
    invalid(Array.prototype.map, /native function/);
  });

  it('refuses classes, generators, getters and computed methods', () => {
    class Shape {}
    function* numbers() {
      yield 1;
    }
    async function* asyncNumbers() {
      yield 1;
    }
    const obj = {
      get size() {
        return 1;
      },
      *items() {
        yield 1;
      },
      [String('computed')]() {
        return 1;
      },
    };
    invalid(Shape, /class/);
    invalid(numbers, /generator/);
    invalid(asyncNumbers, /generator/);
    invalid(Object.getOwnPropertyDescriptor(obj, 'size')?.get, /getter/);
    invalid(obj.items, /generator/);
    invalid(obj.computed, /computed name/);
  });

  it('refuses a method that uses super, which does not compile on its own', () => {
    const obj = {
      describe() {
        return super.toString();
      },
    };
    invalid(obj.describe, /cannot be sent to a worker/);
  });

  it('refuses a method that reads a private field, naming the parser\'s reason', () => {
    class Counter {
      #count = 1;
      read() {
        return this.#count;
      }
    }
    invalid(Counter.prototype.read, /Private field '#count' must be declared in an enclosing class.*task\(import\.meta\.url/);
  });

  it('refuses what is not a function', () => {
    invalid(42, /expected "the task function" to be a function, received 42 \(number\)/);
  });
});

describe('task()', () => {
  it('accepts a file: URL string, a URL, or an absolute path, without importing the module', () => {
    const fromString = task(tasksUrl.href, 'square');
    const fromUrl = task(tasksUrl, 'square');
    const fromPath = task(fileURLToPath(tasksUrl), 'square');
    for (const ref of [fromString, fromUrl, fromPath]) {
      expect(ref.moduleUrl).toBe(tasksUrl.href);
      expect(ref.exportName).toBe('square');
      expect(ref.name).toBe('square');
    }
    // Not imported at task() time: a module that does not exist is fine until called.
    expect(task(new URL('./fixtures/does-not-exist.ts', import.meta.url), 'x').exportName).toBe('x');
  });

  it('refuses a relative path, another URL scheme, a non-string and an empty export name', () => {
    for (const bad of ['./fixtures/tasks.ts', 'tasks.ts', 'https://example.com/tasks.js', 42, null]) {
      const error = thrown(() => task(bad as string, 'square'));
      expect(error.code).toBe(ErrorCodes.INVALID_ARG);
      expect(error.message).toContain('task(): expected "moduleUrl" to be a file: URL');
    }
    const error = thrown(() => task(tasksUrl, ''));
    expect(error.code).toBe(ErrorCodes.INVALID_ARG);
    expect(error.message).toContain('"exportName"');
  });

  it('calls the export in the parent (always returning a Promise)', async () => {
    const sq = task<[number], number>(tasksUrl, 'square');
    const result = sq(7);
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toBe(49);
    expect(await task<[number], Promise<number>>(tasksUrl, 'slowSquare')(3)).toBe(9);
    await expect(task(tasksUrl, 'fail')('boom')).rejects.toBeInstanceOf(TaskError);
  });

  it('resolveFunction imports the module and returns the export', async () => {
    const spec: FunctionSpec = { kind: 'module', url: tasksUrl.href, name: 'square' };
    const fn = await resolveFunction(spec, memjobExports);
    expect(fn).toBe(square);
    const slow = await resolveFunction({ kind: 'module', url: tasksUrl.href, name: 'slowSquare' }, memjobExports);
    expect(await slow(4)).toBe(16);
    const failing = await resolveFunction({ kind: 'module', url: tasksUrl.href, name: 'fail' }, memjobExports);
    expect(failing).toBe(fail);
    let caught: unknown;
    try {
      failing('bad input');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TaskError);
    expect((caught as TaskError).code).toBe('E_TASK');
    expect((caught as TaskError).message).toBe('bad input');
  });

  it('a missing export gives an error that lists the function exports', async () => {
    const missing = resolveFunction({ kind: 'module', url: tasksUrl.href, name: 'nope' }, memjobExports);
    await expect(missing).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARG });
    await expect(missing).rejects.toThrow(/has no export "nope"; its function exports are: .*square.*slowSquare/);
    await expect(task(tasksUrl, 'notAFunction')()).rejects.toThrow(/exports "notAFunction" as 42 \(number\), not a function/);
  });

  it('a module that cannot be imported gives MEMJOB_ERR_INVALID_ARG naming it', async () => {
    const url = new URL('./fixtures/does-not-exist.ts', import.meta.url);
    const call = task(url, 'x')();
    await expect(call).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARG });
    await expect(call).rejects.toThrow(/cannot import module .*does-not-exist\.ts/);
  });
});

describe('inWorker(): the guard for a module that is also a program', () => {
  it('is false in the parent, where the guarded main code runs once', () => {
    expect(inWorker()).toBe(false);
    expect(mainRuns).toEqual(['main']);
  });

  it('is true in a worker thread marked memjobWorker, which imports the module without running its main code', async () => {
    const entry = `data:text/javascript,${encodeURIComponent(
      `import { parentPort } from 'node:worker_threads';
       const { inWorker } = await import(${JSON.stringify(new URL('../src/transport/worker-context.ts', import.meta.url).href)});
       const { mainRuns, square } = await import(${JSON.stringify(tasksUrl.href)});
       parentPort.postMessage({ inWorker: inWorker(), mainRuns, square: square(5) });`,
    )}`;
    const worker = new Worker(new URL('./fixtures/ts-worker.mjs', import.meta.url), { workerData: { entry, memjobWorker: true } });
    try {
      const [report] = (await once(worker, 'message')) as [unknown];
      expect(report).toEqual({ inWorker: true, mainRuns: [], square: 25 });
    } finally {
      await worker.terminate();
    }
  });

  it('is true in a child process with MEMJOB_WORKER=1, and false without it', async () => {
    const script = `import { inWorker } from ${JSON.stringify(new URL('../src/transport/worker-context.ts', import.meta.url).href)};
      import { mainRuns } from ${JSON.stringify(tasksUrl.href)};
      console.log(JSON.stringify({ inWorker: inWorker(), mainRuns }));`;
    const run = async (env: NodeJS.ProcessEnv) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: repoRoot,
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const [code] = (await once(child, 'close')) as [number | null];
      expect(code).toBe(0);
      return JSON.parse(out) as unknown;
    };
    const { MEMJOB_WORKER: _ignored, ...env } = process.env;
    expect(await run({ ...env, MEMJOB_WORKER: '1' })).toEqual({ inWorker: true, mainRuns: [] });
    expect(await run(env)).toEqual({ inWorker: false, mainRuns: ['main'] });
  });
});

describe('under tsx (as the parent of real workers runs)', () => {
  it('sends a TypeScript function whose body tsx filled with __name calls, and refuses a closure', async () => {
    const functionsUrl = new URL('../src/transport/functions.ts', import.meta.url).href;
    const file = scratch.file('under-tsx.ts');
    writeFileSync(
      file,
      `import { describeFunction, resolveFunction } from ${JSON.stringify(functionsUrl)};
       function work(n: number): number {
         const helper = (x: number): number => x * 2;
         function inner(y: number): number { return y + 1; }
         return inner(helper(n));
       }
       const k = 3;
       const closure = (x: number): number => x * k;
       const spec = describeFunction(work, {});
       const fn = await resolveFunction(structuredClone(spec), async () => ({}));
       let code = '';
       try { describeFunction(closure, {}); } catch (error) { code = (error as { code: string }).code + ' ' + (error as Error).message; }
       console.log(JSON.stringify({ kind: spec.kind, hasName: spec.kind === 'source' && spec.source.includes('__name'), result: fn(4), code }));`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(0);
    const report = JSON.parse(out) as { kind: string; hasName: boolean; result: number; code: string };
    expect(report.kind).toBe('source');
    expect(report.hasName).toBe(true);
    expect(report.result).toBe(9);
    expect(report.code).toMatch(/^MEMJOB_ERR_CLOSURE .*"k"/);
  });
});
