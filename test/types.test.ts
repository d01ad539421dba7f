// The public types as a user's program meets them: small programs that
// import 'memjob' are type-checked by tsc with the project's strict
// tsconfig. One must compile as it is; the other must fail with the errors
// listed (a type that is too loose would let it compile).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, scratchDir } from './helpers.js';

const scratch = scratchDir('types');
afterAll(() => scratch.remove());

const tasks = `
export function label(x: number, unit: string): string {
  return \`\${x} \${unit}\`;
}
export async function double(x: number): Promise<number> {
  return x * 2;
}
`;

const good = `
import { NDArray, Parallel, Pool, delayed, load, loadSync, ndarray, stringArray, task, type Complex, type TaskFunction } from 'memjob';

// Exact type equality, not mere assignability.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function same<A, B>(ok: Equal<A, B>): Equal<A, B> {
  return ok;
}
const url = new URL('./tasks.js', import.meta.url);

// load<T>() and loadSync<T>(); without T, unknown as before.
const loaded = await load<{ weights: Float64Array }>('model.mjdump');
same<typeof loaded, { weights: Float64Array }>(true);
const plain = await load('model.mjdump', { mmapMode: 'r' });
same<typeof plain, unknown>(true);
const syncLoaded = loadSync<number[]>('model.mjdump');
same<typeof syncLoaded, number[]>(true);

// task() typed by the function's own type.
const label = task<typeof import('./tasks.js')['label']>(url, 'label');
same<typeof label, TaskFunction<[x: number, unit: string], string>>(true);
const doubled = task<typeof import('./tasks.js')['double']>(url, 'double');
same<typeof doubled, TaskFunction<[x: number], Promise<number>>>(true);
same<Awaited<ReturnType<typeof doubled>>, number>(true);
// @ts-expect-error: the parameters are known, so a wrong argument is refused
void label('3', 'kg');

// The stated form, and the untyped default, are unchanged.
const stated = task<[number], number>(url, 'double');
same<typeof stated, TaskFunction<[number], number>>(true);
const untyped = task(url, 'double');
same<typeof untyped, TaskFunction<unknown[], unknown>>(true);

// The result type flows through delayed(), Parallel.run and Pool.
const call = delayed(label)(3, 'kg');
await using parallel = new Parallel({ nJobs: 2 });
const labels = await parallel.run([call]);
same<typeof labels, string[]>(true);
const fromStated = await parallel.run([delayed(stated)(1)]);
same<typeof fromStated, number[]>(true);
await using pool = new Pool({ processes: 2 });
const mapped = await pool.map(doubled, [1, 2]);
same<typeof mapped, number[]>(true);

// Pool stages chain through AsyncIterables.
const chained = pool.imapUnordered(doubled, pool.imapUnordered((x: number) => String(x).length, [10, 200]));
same<typeof chained, AsyncIterableIterator<number>>(true);
async function* numbers(): AsyncGenerator<number> {
  yield 1;
}
const all = await pool.map((x: number) => x > 0, numbers());
same<typeof all, boolean[]>(true);

// ndarray() takes the dtype from the TypedArray's type.
const f64 = ndarray(new Float64Array(6), { shape: [2, 3] });
same<typeof f64, NDArray<'float64'>>(true);
same<ReturnType<typeof f64.get>, number>(true);
const i64 = ndarray(new BigInt64Array(2));
same<typeof i64, NDArray<'int64'>>(true);
same<ReturnType<typeof i64.get>, bigint>(true);
const u8 = ndarray(Buffer.alloc(4));
same<typeof u8, NDArray<'uint8'>>(true);
const flags = ndarray(new Uint8Array(2), { dtype: 'bool' });
same<typeof flags, NDArray<'bool'>>(true);
const f32 = ndarray(new Float32Array(2), { dtype: 'float32' });
same<typeof f32, NDArray<'float32'>>(true);

// The dtypes beyond one number per slot are named, never inferred, and get() says what an element is.
const z = ndarray(new Float32Array(4), { dtype: 'complex64' });
same<typeof z, NDArray<'complex64'>>(true);
same<ReturnType<typeof z.get>, Complex>(true);
const half = ndarray(new Uint16Array(2), { dtype: 'float16' });
same<ReturnType<typeof half.get>, number>(true);
const when = ndarray(new BigInt64Array(2), { dtype: 'datetime64[ns]' });
same<typeof when, NDArray<'datetime64[ns]'>>(true);
same<ReturnType<typeof when.get>, bigint>(true);
const names = stringArray(['a', 'bc']);
same<ReturnType<typeof names.get>, string>(true);
same<ReturnType<typeof names.toStrings>, string[]>(true);
const anyArray: unknown = names;
if (anyArray instanceof NDArray) same<typeof anyArray.data.buffer, ArrayBufferLike>(true);
`;

// Each line that must fail, with the error tsc must give for it.
const bad: [code: string, expected: RegExp][] = [
  [`task<typeof import('./tasks.js')['label']>(url, 'label')(3, 4);`, /TS2345: Argument of type 'number' is not assignable to parameter of type 'string'/],
  [`const n: number = await task<typeof import('./tasks.js')['label']>(url, 'label')(3, 'kg');`, /TS2322: Type 'string' is not assignable to type 'number'/],
  [`const x: NDArray<'float32'> = ndarray(new Float64Array(2));`, /TS2322: Type 'NDArray<"float64">' is not assignable to type 'NDArray<"float32">'/],
  [`ndarray(new Float64Array(2), { dtype: 'int32' });`, /TS2769: No overload matches this call/],
  [`ndarray(new Float64Array(2), { dtype: 'datetime64[ns]' });`, /TS2769: No overload matches this call/],
  [`ndarray(new Float64Array(2), { dtype: 'datetime64[xs]' });`, /TS2769: No overload matches this call/],
  [`await new Pool().map((x: number) => x, 5);`, /TS2345: Argument of type 'number' is not assignable to parameter of type 'Iterable<number> \| AsyncIterable<number>'/],
];

function tsc(files: Record<string, string>): { status: number | null; output: string } {
  const dir = scratch.file(`case-${Object.keys(files).join('-').replace(/\W/g, '')}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: join(repoRoot, 'tsconfig.json'), compilerOptions: { noEmit: true, noUnusedLocals: false }, include: ['*.ts'] }),
  );
  const result = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('public types, checked by tsc as a user program is', () => {
  // One tsc run checks both files (a second run cost about 9 s): good.ts must
  // give no error at all, and bad.ts exactly one error on each case's line.
  const header = `import { Pool, ndarray, task, type NDArray } from 'memjob';\nconst url = new URL('./tasks.js', import.meta.url);\n`;
  const lines = bad.map(([code], i) => `export async function case${i}() {\n  ${code}\n}`);
  const isBad = (line: string) => /^\S*\/bad\.ts\(\d+,\d+\): error TS/.test(line);
  let checked: { status: number | null; output: string; errors: string[] } | undefined;
  const run = () => {
    if (checked === undefined) {
      const { status, output } = tsc({ 'tasks.ts': tasks, 'good.ts': good, 'bad.ts': `${header}${lines.join('\n')}\n` });
      checked = { status, output, errors: output.split('\n').filter((line) => line.includes('error TS')) };
    }
    return checked;
  };

  it('load<T>, task<typeof fn>, ndarray dtype inference and Pool async chaining compile with the expected types', () => {
    const { output } = run();
    // Nothing but bad.ts's errors (and their indented detail lines): none in good.ts or tasks.ts, no crash, no config problem.
    expect(output.split('\n').filter((line) => line !== '' && !/^\s/.test(line) && !isBad(line)), output).toEqual([]);
  });

  it('wrong arguments and results are refused with the expected errors', () => {
    const { status, output, errors } = run();
    expect(status).not.toBe(0);
    // One error per case, on that case's line.
    bad.forEach(([, expected], i) => {
      const line = 4 + i * 3;
      const here = errors.filter((e) => e.includes(`/bad.ts(${line},`));
      expect(here.length, `case ${i}: ${output}`).toBe(1);
      expect(here[0]).toMatch(expected);
    });
    expect(errors).toHaveLength(bad.length);
  });
});
