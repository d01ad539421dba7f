// Task errors that fight being read (throwing getters, Proxies, no prototype,
// a throwing toString) reach the parent as the task's error, with what could
// be read, never as a crashed worker.
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, Parallel, closeSharedWorkers, delayed } from '../src/index.js';
import { UNREADABLE, rebuildError, serializeError } from '../src/transport/error-transport.js';
import { childPids, rejection, waitFor, workerBackends } from './fixtures/parallel-helpers.js';

// Each task is shipped by its source: everything it uses is inside it.
function throwingGetters(): never {
  const error = new Error('getters throw');
  // 'stack' first: redefining it formats the stack, which reads the name.
  for (const key of ['stack', 'name', 'code', 'cause']) {
    Object.defineProperty(error, key, {
      enumerable: true,
      get() {
        throw new Error(`no ${key} for you`);
      },
    });
  }
  throw error;
}

function throwingMessage(): never {
  const error = new RangeError('ignored');
  Object.defineProperty(error, 'message', {
    get() {
      throw new Error('no message');
    },
  });
  (error as unknown as Record<string, unknown>).detail = 42;
  throw error;
}

function proxyOfError(): never {
  const target = new TypeError('behind a proxy');
  throw new Proxy(target, {
    get(_t, key) {
      if (key === 'message') return 'the proxy says hi';
      throw new Error(`trap for ${String(key)}`);
    },
    ownKeys() {
      throw new Error('no keys');
    },
  });
}

function hostileProxy(): never {
  const fail = () => {
    throw new Error('every trap throws');
  };
  throw new Proxy({}, { get: fail, has: fail, ownKeys: fail, getPrototypeOf: fail, getOwnPropertyDescriptor: fail });
}

function nullPrototype(): never {
  const error = Object.create(null) as Record<string, unknown>;
  error.message = 'no prototype here';
  error.code = 'E_NULL';
  throw error;
}

function prototypeRemoved(): never {
  const error = new Error('prototype taken away');
  Object.setPrototypeOf(error, null);
  throw error;
}

function throwingToString(): never {
  throw {
    toString() {
      throw new Error('toString throws');
    },
    valueOf() {
      throw new Error('valueOf throws');
    },
  };
}

function throwingNameObject(): never {
  const error = new Error('name is an object');
  error.name = {
    toString() {
      throw new Error('toString throws');
    },
  } as unknown as string;
  throw error;
}

async function rejectsWithProxy(): Promise<never> {
  await new Promise((resolve) => setTimeout(resolve, 1));
  return proxyOfError();
  function proxyOfError(): never {
    throw new Proxy(new Error('async proxy'), {
      ownKeys() {
        throw new Error('no keys');
      },
      get(t, key) {
        if (key === 'stack') throw new Error('no stack');
        return Reflect.get(t, key);
      },
    });
  }
}

/** What the parent must see: the task's error (taskIndex set), with the parts that could be read. */
const cases: [string, () => unknown, Record<string, unknown>][] = [
  ['throwing getters', throwingGetters, { message: 'getters throw', name: UNREADABLE, code: undefined }],
  ['a throwing message getter', throwingMessage, { message: UNREADABLE, name: 'RangeError', detail: 42 }],
  ['a Proxy of an Error', proxyOfError, { message: 'the proxy says hi', name: UNREADABLE }],
  ['a Proxy whose every trap throws', hostileProxy, { message: UNREADABLE, name: UNREADABLE }],
  ['an Object.create(null) error', nullPrototype, { message: 'no prototype here', name: 'Error', code: 'E_NULL' }],
  ['an Error without its prototype', prototypeRemoved, { message: 'prototype taken away', name: 'Error' }],
  ['a value with a throwing toString', throwingToString, { message: `a task threw a non-Error value: ${UNREADABLE}` }],
  ['a name with a throwing toString', throwingNameObject, { message: 'name is an object', name: UNREADABLE }],
  ['an async Proxy rejection', rejectsWithProxy, { message: 'async proxy', name: 'Error' }],
];

afterAll(async () => {
  await closeSharedWorkers();
  await waitFor(() => childPids().length === 0, 5000, 'the workers to exit');
});

describe.each(workerBackends)('%s: hostile task errors', (backend) => {
  it.each(cases)('%s arrives as the task error', async (_label, fn, expected) => {
    await using p = new Parallel({ backend, nJobs: 2, batchSize: 1 });
    const error = await rejection(p.run([delayed(Math.abs)(-1), delayed(fn)()]));
    expect(error.code).not.toBe(ErrorCodes.WORKER_CRASHED);
    expect(error.taskIndex).toBe(1);
    expect(error).toBeInstanceOf(Error);
    for (const [key, value] of Object.entries(expected)) expect(error[key], key).toBe(value);
    expect(typeof error.stack).toBe('string');
    // The same worker is still there: the error did not crash it.
    expect(await p.run([delayed(Math.abs)(-2)])).toEqual([2]);
  });
});

describe('serializeError', () => {
  it('keeps a readable stack and drops an unreadable one', async () => {
    const readable = serializeError(new Error('plain'));
    expect(readable.stack).toContain('plain');
    const error = new Error('x');
    Object.defineProperty(error, 'stack', {
      get() {
        throw new Error('no');
      },
    });
    const serialized = serializeError(error);
    expect(serialized.stack).toBeUndefined();
    const rebuilt = await rebuildError(serialized);
    expect(rebuilt.stack).toBe('Error: x');
  });

  it('returns only what structured clone copies, and keeps an own __proto__ key a plain property', async () => {
    const error = new Error('props');
    Object.defineProperty(error, '__proto__', { value: { polluted: true }, enumerable: true });
    (error as unknown as Record<string, unknown>).fn = () => 1;
    const serialized = serializeError(error);
    expect(() => structuredClone(serialized)).not.toThrow();
    expect(serialized.props).not.toHaveProperty('fn');
    const rebuilt = await rebuildError(structuredClone(serialized));
    expect(Object.getPrototypeOf(rebuilt)).toBe(Error.prototype);
    expect((rebuilt as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });
});
