/**
 * parallelConfig: joblib's `parallel_config` context. Library code creates
 * `new Parallel()` without knowing where it runs; the program around it
 * chooses the backend, nJobs, temp folder... for every Parallel created
 * inside the callback, including after awaits (AsyncLocalStorage follows the
 * callback's async work). Options given to `new Parallel()` still win.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { MemjobError, invalidArg } from '../errors.js';
import { resolveOptions, type ParallelOptions } from './options.js';

/** The options a parallelConfig can set (joblib's parallel_config keys, in memjob's names). */
export type ParallelConfig = Pick<
  ParallelOptions,
  'backend' | 'nJobs' | 'batchSize' | 'preDispatch' | 'maxNbytes' | 'mmapMode' | 'tempFolder' | 'verbose' | 'broker' | 'queue' | 'secret' | 'insecure' | 'sharedFolder' | 'brokerTimeout'
>;

const configKeys: readonly (keyof ParallelConfig)[] = [
  'backend',
  'nJobs',
  'batchSize',
  'preDispatch',
  'maxNbytes',
  'mmapMode',
  'tempFolder',
  'verbose',
  // backend 'bullmq' (joblib: parallel_config(backend='dask', ...) with the scheduler's address)
  'broker',
  'queue',
  'secret',
  'insecure',
  'sharedFolder',
  'brokerTimeout',
];
const store = new AsyncLocalStorage<Readonly<ParallelConfig>>();

/** The configuration in force here: the merge of every enclosing parallelConfig, inner ones winning. */
export function currentParallelConfig(): Readonly<ParallelConfig> {
  return store.getStore() ?? {};
}

/**
 * Runs `fn` with `config` as the defaults of every Parallel created inside it
 * (and in the async work it starts), and returns what `fn` returns. Values
 * are checked here, as `new Parallel()` would check them.
 */
export function parallelConfig<T>(config: ParallelConfig, fn: () => T): T {
  const where = 'parallelConfig';
  if (typeof config !== 'object' || config === null) throw invalidArg(where, 'config', 'an object', config);
  if (typeof fn !== 'function') throw invalidArg(where, 'fn', 'a function to run with the configuration', fn);
  const given: ParallelConfig = {};
  for (const [key, value] of Object.entries(config)) {
    if (!(configKeys as readonly string[]).includes(key)) throw invalidArg(where, 'config', `an object with keys among ${configKeys.join(', ')} (found "${key}")`, config);
    if (value !== undefined) (given as Record<string, unknown>)[key] = value;
  }
  const merged = Object.freeze({ ...currentParallelConfig(), ...given });
  try {
    resolveOptions(merged);
  } catch (error) {
    // The same checks as new Parallel(), reported under this function's name.
    if (error instanceof MemjobError) throw new MemjobError(error.code, error.message.replace(/^Parallel:/, `${where}:`));
    throw error;
  }
  return store.run(merged, fn);
}

/** Options for new Parallel(): the configuration in force, then the explicit options (undefined ones do not count). */
export function withParallelConfig<O extends ParallelOptions>(options: O): O {
  const config = store.getStore();
  if (config === undefined || typeof options !== 'object' || options === null) return options;
  const explicit = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  return { ...config, ...explicit } as O;
}
