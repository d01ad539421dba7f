/**
 * The `memjob` command, run as a real child process: inspect, info, clean,
 * exit codes. Most runs use src/cli/main.ts under tsx (always the current
 * code); one checks the built bin, dist/cli/main.js, the way npm runs it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuCount, dumpSync, memmap, ndarray } from '../src/index.js';
import { createRunFolder } from '../src/transport/temp-folder.js';
import { age } from './fixtures/reap-helpers.js';
import { repoRoot, runCommand, scratchDir } from './helpers.js';

const scratch = scratchDir('cli');
afterAll(() => scratch.remove());

const sourceEntry = join(repoRoot, 'src', 'cli', 'main.ts');
const builtEntry = join(repoRoot, 'dist', 'cli', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from src/ under tsx (or the built one), with extra environment variables. */
function memjob(args: string[], env: Record<string, string> = {}, entry: 'source' | 'built' = 'source'): Promise<Run> {
  const argv = entry === 'source' ? ['--import', 'tsx', sourceEntry, ...args] : [builtEntry, ...args];
  return runCommand(process.execPath, argv, env);
}

async function inspectJson(file: string, extra: string[] = []): Promise<Report> {
  const run = await memjob(['inspect', '--json', ...extra, file]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Report;
}

interface ArrayEntry {
  path: string;
  alsoAt: string[];
  kind: string;
  dtype: string;
  descr?: string;
  shape: number[];
  order: string;
  itemsize: number;
  offset: number;
  bytes: number;
}

interface Report {
  path: string;
  format: Record<string, unknown> & { type: string };
  tree: { type: string; size?: number; entries?: { key: string; value: { type: string; size?: number; more?: number; entries?: unknown[] } }[] };
  arrays: ArrayEntry[];
}

const itemsizes: Record<string, number> = { int8: 1, uint8: 1, bool: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, float32: 4, int64: 8, uint64: 8, float64: 8 };
const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function expectNoStack(text: string): void {
  expect(text).not.toMatch(/^\s+at /m);
}

// ---- a dump with every kind of array the brief names, plain and gzip ----

const x = Float64Array.from({ length: 100 }, (_, i) => i * 0.5);
const gridData = Int32Array.from({ length: 12 }, (_, i) => i - 6);
const plainFile = scratch.file('nested.mjdump');
const gzipFile = scratch.file('nested.mjdump.gz');
const memmapValues = Float32Array.from({ length: 50 }, (_, i) => i / 4);

beforeAll(() => {
  const mm = memmap(scratch.file('source.f32'), { dtype: 'float32', shape: [10, 5], mode: 'w+' });
  mm.data.set(memmapValues);
  const value = {
    meta: { name: 'cli test', count: 3, big: 2n ** 70n, when: new Date(0) },
    x,
    nested: { deeper: { grid: ndarray(gridData, { shape: [3, 4], order: 'F' }) } },
    mm,
    items: Array.from({ length: 25 }, (_, i) => i),
    alias: x,
    lookup: new Map<unknown, unknown>([['k', 1], [2, 'two']]),
  };
  dumpSync(value, plainFile);
  dumpSync(value, gzipFile, { compress: 'gzip' });
  mm.close();
});

function checkLayout(report: Report, content: Buffer): void {
  const byPath = new Map(report.arrays.map((a) => [a.path, a]));
  expect([...byPath.keys()]).toEqual(['value.x', 'value.nested.deeper.grid', 'value.mm']);
  expect(byPath.get('value.x')).toMatchObject({ kind: 'Float64Array', dtype: 'float64', shape: [100], order: 'C', bytes: 800, alsoAt: ['value.alias'] });
  expect(byPath.get('value.nested.deeper.grid')).toMatchObject({ kind: 'NDArray', dtype: 'int32', shape: [3, 4], order: 'F', bytes: 48 });
  expect(byPath.get('value.mm')).toMatchObject({ kind: 'Memmap', dtype: 'float32', shape: [10, 5], order: 'C', bytes: 200 });
  for (const a of report.arrays) {
    expect(a.offset % 64).toBe(0);
    expect(a.itemsize).toBe(itemsizes[a.dtype]);
    expect(a.bytes).toBe(product(a.shape) * a.itemsize);
    expect(a.offset + a.bytes).toBeLessThanOrEqual(content.length);
  }
  // The offsets are where the bytes really are.
  const at = (a: ArrayEntry) => content.subarray(a.offset, a.offset + a.bytes);
  expect(Buffer.compare(at(byPath.get('value.x')!), Buffer.from(x.buffer))).toBe(0);
  expect(Buffer.compare(at(byPath.get('value.nested.deeper.grid')!), Buffer.from(gridData.buffer))).toBe(0);
  expect(Buffer.compare(at(byPath.get('value.mm')!), Buffer.from(memmapValues.buffer))).toBe(0);
}

describe('memjob inspect, dumps', () => {
  it('--json describes a plain dump and matches its real layout', async () => {
    const report = await inspectJson(plainFile);
    const content = readFileSync(plainFile);
    expect(report.format).toMatchObject({ type: 'memjob-dump', version: '1.0', alignment: 64, compression: null, fileBytes: content.length, segments: 3, dataChecked: true });
    expect(report.format.dumpBytes).toBe(content.length);
    expect(report.format.dataOffset as number % 64).toBe(0);
    checkLayout(report, content);
    // Containers: kinds, keys, and long arrays cut at 20 entries.
    expect(report.tree.type).toBe('object');
    expect(report.tree.entries!.map((e) => e.key)).toEqual(['meta', 'x', 'nested', 'mm', 'items', 'alias', 'lookup']);
    const items = report.tree.entries!.find((e) => e.key === 'items')!.value;
    expect(items).toMatchObject({ type: 'array', size: 25, more: 5 });
    expect(items.entries).toHaveLength(20);
    expect(report.tree.entries!.find((e) => e.key === 'lookup')!.value).toMatchObject({ type: 'map', size: 2 });
  });

  it('--json describes a gzip dump from its decompressed header and structure', async () => {
    const report = await inspectJson(gzipFile);
    const content = gunzipSync(readFileSync(gzipFile));
    expect(report.format).toMatchObject({ type: 'memjob-dump', version: '1.0', compression: 'gzip', dumpBytes: content.length, dataChecked: false });
    expect(report.format.fileBytes).toBe(readFileSync(gzipFile).length);
    checkLayout(report, content);
    const checked = await inspectJson(gzipFile, ['--check-data']);
    expect(checked.format.dataChecked).toBe(true);
  });

  it('prints dtypes, shapes, orders, offsets and the structure for people', async () => {
    const run = await memjob(['inspect', plainFile]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = await inspectJson(plainFile);
    const offset = (path: string) => report.arrays.find((a) => a.path === path)!.offset;
    expect(run.stdout).toContain('memjob dump, version 1.0, alignment 64, not compressed');
    expect(run.stdout).toContain(`x: Float64Array float64 [100] C, 800 B at offset ${offset('value.x')}`);
    expect(run.stdout).toContain(`grid: NDArray int32 [3, 4] F, 48 B at offset ${offset('value.nested.deeper.grid')}`);
    expect(run.stdout).toContain(`mm: Memmap float32 [10, 5] C, 200 B at offset ${offset('value.mm')}`);
    expect(run.stdout).toContain('alias: Float64Array float64 [100] C');
    expect(run.stdout).toContain('(same array as value.x)');
    expect(run.stdout).toContain('items: array (25 items)');
    expect(run.stdout).toContain('... 5 more');
    expect(run.stdout).toContain('name: string "cli test"');
    expect(run.stdout).toContain('big: bigint 1180591620717411303424n');
    expect(run.stdout).toMatch(/value\.x \(\+1 more\)\s+Float64Array\s+float64\s+\[100\]\s+C\s+\d+\s+800/);

    const gz = await memjob(['inspect', gzipFile]);
    expect(gz.code).toBe(0);
    expect(gz.stdout).toContain('gzip-compressed');
    expect(gz.stdout).toContain('offset (decompressed)');
  });

  it('--max-entries and --max-depth cut the tree, never the array list', async () => {
    const report = await inspectJson(plainFile, ['--max-entries', '2', '--max-depth', '1']);
    expect(report.tree.entries!.map((e) => e.key)).toEqual(['meta', 'x']);
    expect(report.arrays.map((a) => a.path)).toEqual(['value.x', 'value.nested.deeper.grid', 'value.mm']);
    const meta = report.tree.entries![0]!.value;
    expect(meta).toMatchObject({ type: 'object', size: 4, more: 4, entries: [] });
  });
});

describe('memjob inspect, .npy', () => {
  const expected = JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'npy', 'expected.json'), 'utf8')) as Record<
    string,
    { dtype: string; shape: number[]; fortran: boolean }
  >;

  it('reports every fixture numpy wrote as numpy describes it', async () => {
    const names = Object.keys(expected);
    expect(names.length).toBeGreaterThan(5);
    const reports = await Promise.all(names.map((name) => inspectJson(join(repoRoot, 'test', 'fixtures', 'npy', `${name}.npy`))));
    names.forEach((name, i) => {
      const want = expected[name]!;
      const report = reports[i]!;
      expect(report.format).toMatchObject({ type: 'npy', version: '1.0' });
      expect(report.arrays).toHaveLength(1);
      const a = report.arrays[0]!;
      expect(a.descr).toBe(want.dtype);
      expect(a.shape).toEqual(want.shape);
      expect(a.order).toBe(want.fortran ? 'F' : 'C');
      expect(a.bytes).toBe(product(want.shape) * a.itemsize);
      expect(a.offset % 64).toBe(0);
      expect(a.offset + a.bytes).toBe(report.format.fileBytes);
    });
  });

  it('prints a Fortran-order int32 (3, 4) array', async () => {
    const run = await memjob(['inspect', join(repoRoot, 'test', 'fixtures', 'npy', 'i4_2d_f.npy')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('numpy .npy, version 1.0');
    expect(run.stdout).toContain("value: NDArray int32 '<i4' [3, 4] F, 48 B at offset 128");
  });
});

describe('memjob inspect, bad files', () => {
  it('a truncated dump: exit 1, MEMJOB_ERR_FORMAT, no stack trace', async () => {
    const file = scratch.file('truncated.mjdump');
    writeFileSync(file, readFileSync(plainFile).subarray(0, 500));
    const run = await memjob(['inspect', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('MEMJOB_ERR_FORMAT');
    expect(run.stderr).toContain('truncated');
    expect(run.stderr).toMatch(/^memjob: inspect: /);
    expectNoStack(run.stderr);
  });

  it('a corrupt structure, a truncated gzip, garbage and a bad .npy: MEMJOB_ERR_FORMAT', async () => {
    const badStructure = Buffer.from(readFileSync(plainFile));
    badStructure.fill(0xc1, 64, 80); // 0xc1 is never used in msgpack
    const cases: [string, Buffer][] = [
      ['structure.mjdump', badStructure],
      ['short.mjdump.gz', readFileSync(gzipFile).subarray(0, 60)],
      ['garbage.bin', Buffer.from('not a memjob file at all\n')],
      ['empty.bin', Buffer.alloc(0)],
      ['short.npy', readFileSync(join(repoRoot, 'test', 'fixtures', 'npy', 'i4_2d_f.npy')).subarray(0, 150)],
    ];
    const runs = await Promise.all(
      cases.map(([name, bytes]) => {
        writeFileSync(scratch.file(name), bytes);
        return memjob(['inspect', scratch.file(name)]);
      }),
    );
    runs.forEach((run, i) => {
      expect({ file: cases[i]![0], code: run.code }).toEqual({ file: cases[i]![0], code: 1 });
      expect(run.stderr).toContain('MEMJOB_ERR_FORMAT');
      expectNoStack(run.stderr);
    });
    expect(runs[0]!.stderr).toContain('structure cannot be decoded');
    expect(runs[4]!.stderr).toContain('not a valid .npy file');
  });

  it('a gzip dump cut inside its data passes without --check-data and fails with it', async () => {
    const whole = readFileSync(gzipFile);
    const file = scratch.file('cut-data.mjdump.gz');
    writeFileSync(file, whole.subarray(0, whole.length - 20));
    const quick = await memjob(['inspect', file]);
    expect(quick.code).toBe(0);
    const full = await memjob(['inspect', '--check-data', file]);
    expect(full.code).toBe(1);
    expect(full.stderr).toContain('MEMJOB_ERR_FORMAT');
  });

  it('a missing file: exit 1 with ENOENT', async () => {
    const run = await memjob(['inspect', scratch.file('does-not-exist')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('ENOENT');
    expectNoStack(run.stderr);
  });

  it('a folder or a FIFO: exit 1 at once, never a wait for a writer', async () => {
    const folder = await memjob(['inspect', scratch.dir]);
    expect(folder.code).toBe(1);
    expect(folder.stderr).toContain('EISDIR');
    if (process.platform === 'win32') return;
    const fifo = scratch.file('fifo');
    execFileSync('mkfifo', [fifo]);
    const run = await memjob(['inspect', fifo]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('not one');
    expectNoStack(run.stderr);
  });

  it('usage errors exit 2', async () => {
    const [missing, unknown, command] = await Promise.all([memjob(['inspect']), memjob(['inspect', '--nope', plainFile]), memjob(['frobnicate'])]);
    for (const run of [missing, unknown, command]) {
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/error:/);
    }
  });
});

describe('memjob info', () => {
  it('prints the temp root and why, cpuCount and versions; --json has the fields', async () => {
    const root = scratch.file('info-root');
    mkdirSync(root, { recursive: true });
    const env = { MEMJOB_TEMP_FOLDER: root };
    const [human, json] = await Promise.all([memjob(['info'], env), memjob(['info', '--json'], env)]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`temp folder\\s+${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\d`));
    expect(human.stdout).toContain('(from MEMJOB_TEMP_FOLDER): writable');
    expect(human.stdout).toMatch(new RegExp(`cpuCount\\s+${cpuCount()} \\(`));
    expect(human.stdout).toContain(process.version);
    expect(json.code).toBe(0);
    const info = JSON.parse(json.stdout);
    expect(info.temp.chosen.root).toBe(root);
    expect(info.temp.env).toBe(root);
    expect(info.temp.candidates).toEqual([expect.objectContaining({ root, source: 'env', usable: true })]);
    expect(info.temp.chosen.freeBytes).toBeGreaterThan(0);
    expect(info.cpu.cpuCount).toBe(cpuCount());
    expect(info.cpu.availableParallelism).toBeGreaterThanOrEqual(1);
    expect(info.node).toMatchObject({ version: process.version, platform: process.platform, arch: process.arch, napi: process.versions.napi });
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(info.memjob.version).toBe(pkg.version);
    expect(info.addon.loaded).toBe(true);
    expect(info.addon.path).toMatch(/\.node$/);
    expect(existsSync(info.addon.path)).toBe(true);
  });

  it('without MEMJOB_TEMP_FOLDER lists the default candidates', async () => {
    const run = await memjob(['info', '--json'], { MEMJOB_TEMP_FOLDER: '' });
    const info = JSON.parse(run.stdout);
    expect(info.temp.env).toBeNull();
    expect(info.temp.candidates.map((c: { source: string }) => c.source)).toEqual(process.platform === 'win32' ? ['tmpdir'] : ['shm', 'tmpdir']);
    expect(info.temp.candidates.find((c: { root: string }) => c.root === info.temp.chosen.root).usable).toBe(true);
  });

  it('reports an unusable explicit root instead of failing', async () => {
    const missing = scratch.file('no-such-root');
    const run = await memjob(['info', '--json'], { MEMJOB_TEMP_FOLDER: missing });
    expect(run.code).toBe(0);
    const info = JSON.parse(run.stdout);
    expect(info.temp.chosen).toBeNull();
    expect(info.temp.error.code).toBe('ENOENT');
    expect(info.temp.candidates[0]).toMatchObject({ root: missing, usable: false });
  });
});

describe('memjob clean', () => {
  it('removes the folders of dead runs only, and --dry-run removes nothing', async () => {
    const root = scratch.file('clean-root');
    mkdirSync(root, { recursive: true });
    // A pid that surely belongs to no process now: a child that has exited and been waited for.
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    expect(deadPid).toBeGreaterThan(0);
    // A live run: this process holds the flock on its .lock (reap-namespaces.test.ts covers other processes).
    const liveFolder = createRunFolder(root);
    const live = liveFolder.path;
    const dead = join(root, `memjob_${deadPid}_abcd1234`);
    const otherName = join(root, `memjob_${deadPid}_notHex`);
    const deadFile = join(root, `memjob_${deadPid}_beef`);
    for (const folder of [dead, otherName]) mkdirSync(folder);
    writeFileSync(join(dead, '1_x.mjdump'), 'data');
    writeFileSync(liveFolder.file('y.mjdump'), 'data');
    writeFileSync(deadFile, 'a file, not a run folder');
    // Past the minimum age (a younger folder is never reaped): only the lock tells them apart now.
    age(dead, live, otherName);
    const env = { MEMJOB_TEMP_FOLDER: root };

    const dry = await memjob(['clean', '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would remove ${dead}`);
    expect(dry.stdout).not.toContain(live);
    expect(dry.stdout).toContain('1 stale folder would be removed');
    for (const path of [dead, live, otherName, deadFile]) expect(existsSync(path)).toBe(true);

    const dryJson = JSON.parse((await memjob(['clean', '--dry-run', '--json'], env)).stdout);
    expect(dryJson).toEqual({ dryRun: true, roots: [root], removed: [dead], kept: [live] });
    expect(existsSync(dead)).toBe(true);

    const run = await memjob(['clean'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`removed ${dead}`);
    expect(run.stdout).toContain('1 stale folder removed');
    expect(run.stdout).toContain('1 folder of live processes kept');
    expect(existsSync(dead)).toBe(false);
    for (const path of [live, otherName, deadFile]) expect(existsSync(path)).toBe(true);

    const again = await memjob(['clean', '--json'], env);
    expect(JSON.parse(again.stdout)).toEqual({ dryRun: false, roots: [root], removed: [], kept: [live] });
    liveFolder.remove();
  });
});

describe('the built bin', () => {
  it('package.json names dist/cli/main.js, which runs under node', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.bin).toEqual({ memjob: './dist/cli/main.js' });
    expect(readFileSync(join(repoRoot, 'src', 'cli', 'main.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    if (!existsSync(builtEntry)) execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'ignore' });
    expect(readFileSync(builtEntry, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const version = execFileSync(process.execPath, [builtEntry, '--version'], { cwd: repoRoot, encoding: 'utf8' });
    expect(version.trim()).toBe(pkg.version);
  });

  it('runs info and inspect from dist/', async () => {
    if (!existsSync(builtEntry)) execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'ignore' });
    const info = await memjob(['info', '--json'], {}, 'built');
    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout).cpu.cpuCount).toBe(cpuCount());
    const inspect = await memjob(['inspect', '--json', plainFile], {}, 'built');
    expect(inspect.code).toBe(0);
    expect((JSON.parse(inspect.stdout) as Report).arrays).toHaveLength(3);
  });
});
