/**
 * The package as a user installs it. A copy of the repository's files (what a
 * fresh clone holds: tracked and not ignored files, no dist/ and no binaries)
 * is packed with a real `npm pack`, so its `prepare` has to build dist/ itself.
 * The prebuilt binaries are copied from this repository's own native/prebuilds
 * when both are there: `npm ci` built them with the same script prepare runs
 * (scripts/prebuild.mjs), and compiling both again took about 20 s of the
 * suite; a missing one is still compiled by prepare. The tarball is then installed with a real `npm install` into
 * new projects on a machine without a C++ compiler (CC and CXX are /bin/false):
 * from the file with install scripts ignored, and from a registry with npm's
 * strict-allow-scripts. Each project then imports memjob, maps a file and runs
 * Parallel in threads and processes from node_modules.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

/** The platforms whose binaries every packed tarball must carry (see scripts/prebuild.mjs). */
const shippedTargets = ['linux-x64', 'linux-arm64'];

// Nested npm runs must not inherit the lifecycle variables of an outer
// `npm test` (npm_config_*, npm_lifecycle_*): npm would read them as config.
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'INIT_CWD') env[key] = value;
  }
  return { ...env, ...extra };
}
const noCompiler = { CC: '/bin/false', CXX: '/bin/false' };
const installFlags = ['--prefer-offline', '--no-audit', '--no-fund'];

interface Run {
  status: number | null;
  stdout: string;
  output: string;
}
// Asynchronous, so that the stand-in registry below, in this process, can answer.
function npm(args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd, env: cleanEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, output: `${stdout}${stderr}` }));
  });
}

/**
 * A registry that serves the tarball as memjob and redirects every other
 * request to npm's configured registry. npm treats a package from a registry
 * differently from a .tgz file: for a file it also counts `prepare` as an
 * install script that allowScripts must cover, for a registry package it does not.
 */
async function standInRegistry(file: string): Promise<{ url: string; close: () => Promise<void> }> {
  const tgz = readFileSync(file);
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' })) as { version: string };
  const upstream = execFileSync('npm', ['config', 'get', 'registry'], { env: cleanEnv(), encoding: 'utf8' }).trim().replace(/\/$/, '');
  const tarballPath = `/memjob/-/memjob-${manifest.version}.tgz`;
  const server = createServer((req, res) => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/memjob') {
      const integrity = `sha512-${createHash('sha512').update(tgz).digest('base64')}`;
      const version = { ...manifest, _id: `memjob@${manifest.version}`, dist: { tarball: `${url}${tarballPath}`, integrity } };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'memjob', 'dist-tags': { latest: manifest.version }, versions: { [manifest.version]: version } }));
    } else if (req.url === tarballPath) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(tgz);
    } else {
      res.writeHead(302, { location: `${upstream}${req.url ?? '/'}` });
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A consumer project: package.json only, as `npm init` would leave it. */
function newProject(dir: string, extra: Record<string, unknown> = {}): string {
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'install-check', version: '1.0.0', private: true, type: 'module', ...extra }));
  return dir;
}

// What a user's first program does with the installed package. It reports
// where everything came from: the project sits under this repository's tmp/,
// where Node would also find the repository's own node_modules.
const probe = `
import { memmap, pageSize, Parallel, delayed } from 'memjob';
import { isNativeAccelerationEnabled } from 'msgpackr';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const file = fileURLToPath(new URL('./probe.f64', import.meta.url));
writeFileSync(file, new Float64Array([1.5, 2.5, 3.5]));
const mapped = memmap(file, { dtype: 'float64', mode: 'r' });
const mappedSum = Array.from(mapped.data).reduce((a, b) => a + b, 0);
mapped.close();
rmSync(file);

function square(n) { return n * n; }
const results = {};
for (const backend of ['threads', 'processes']) {
  const parallel = new Parallel({ nJobs: 2, backend });
  results[backend] = await parallel.run([1, 2, 3, 4].map((n) => delayed(square)(n)));
  await parallel.close();
}

const require = createRequire(import.meta.url);
const memjobDir = fileURLToPath(new URL('.', import.meta.resolve('memjob/package.json')));
const extract = createRequire(require.resolve('msgpackr-extract')).resolve(
  '@msgpackr-extract/msgpackr-extract-' + process.platform + '-' + process.arch + '/package.json');
const addons = readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((line) => line.split(/\\s+/)[5] ?? '').filter((path) => path.endsWith('.node'));
console.log(JSON.stringify({ pageSize, mappedSum, results, memjobDir, addons: [...new Set(addons)],
  accelerated: isNativeAccelerationEnabled, extract }));
`;
interface ProbeResult {
  pageSize: number;
  mappedSum: number;
  results: Record<string, number[]>;
  memjobDir: string;
  addons: string[];
  accelerated: boolean;
  extract: string;
}

function runProbe(project: string): ProbeResult {
  writeFileSync(join(project, 'probe.mjs'), probe);
  const out = execFileSync(process.execPath, ['probe.mjs'], { cwd: project, env: cleanEnv(noCompiler), encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() ?? '') as ProbeResult;
}

function expectWorkingInstall(project: string, result: ProbeResult): void {
  const installed = join(project, 'node_modules', 'memjob');
  expect(result.pageSize).toBeGreaterThan(0);
  expect(result.mappedSum).toBe(7.5);
  expect(result.results).toEqual({ threads: [1, 4, 9, 16], processes: [1, 4, 9, 16] });
  expect(result.memjobDir).toBe(`${installed}/`);
  // The shipped binary, not a compiled one and not the repository's own.
  expect(result.addons).toContain(join(installed, 'native', 'prebuilds', `${process.platform}-${process.arch}`, 'memjob.glibc.node'));
  expect(existsSync(join(installed, 'native', 'build'))).toBe(false);
  // Every dependency was installed into the project, none borrowed from the repository.
  const { dependencies } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const name of Object.keys(dependencies)) {
    expect(existsSync(join(project, 'node_modules', name)) || existsSync(join(installed, 'node_modules', name)), name).toBe(true);
  }
}

let work = '';
let tarball = '';

beforeAll(async () => {
  work = mkdtempSync(join(repoRoot, 'tmp', 'install-'));
  const clone = join(work, 'clone');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(repoRoot, file)));
  for (const file of files) {
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    cpSync(join(repoRoot, file), join(clone, file));
  }
  // As after `npm ci` in the clone: the dev dependencies that build the package, and the binaries
  // its prepare built (copied files are newer than the sources, so prebuild.mjs keeps them).
  symlinkSync(join(repoRoot, 'node_modules'), join(clone, 'node_modules'));
  const binaries = shippedTargets.map((target) => join('native', 'prebuilds', target, 'memjob.glibc.node'));
  if (binaries.every((binary) => existsSync(join(repoRoot, binary)))) {
    for (const binary of binaries) {
      mkdirSync(dirname(join(clone, binary)), { recursive: true });
      cpSync(join(repoRoot, binary), join(clone, binary));
    }
  }
  const pack = await npm(['pack', '--pack-destination', work], clone);
  expect(pack.status, pack.output).toBe(0);
  tarball = join(work, pack.stdout.trim().split('\n').pop() ?? '');
  expect(existsSync(tarball)).toBe(true);
}, 150_000);

afterAll(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('carries the prebuilt binaries, dist/, the addon sources and LICENSE, and no install script', () => {
    const paths = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n')
      .map((path) => path.replace(/^package\//, ''));
    for (const target of shippedTargets) {
      expect(paths, `native/prebuilds/${target} missing: install its cross compiler (see .ci/run)`)
        .toContain(`native/prebuilds/${target}/memjob.glibc.node`);
    }
    for (const file of ['LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'native/binding.gyp', 'native/addon.cc']) {
      expect(paths).toContain(file);
    }
    // A binding.gyp at the root is an install script to npm ("node-gyp rebuild"), gypfile: false or not.
    expect(paths).not.toContain('binding.gyp');
    expect(paths.filter((path) => /^(tmp|test|build|scripts|node_modules)\//.test(path))).toEqual([]);
    const license = execFileSync('tar', ['-xzOf', tarball, 'package/LICENSE'], { encoding: 'utf8' });
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the memjob contributors\n/);
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as {
      scripts: Record<string, string>;
      gypfile: boolean;
    };
    // Any of these is an install script that npm's allowScripts policy would ask every consumer about.
    expect(Object.keys(manifest.scripts).filter((name) => ['preinstall', 'install', 'postinstall'].includes(name))).toEqual([]);
    expect(manifest.gypfile).toBe(false);
  });
});

// The two installs run side by side: each has its own project folder (and the second its own
// stand-in registry), and npm's cache is safe to share; much of an install is waiting on npm.
describe.concurrent('installing the tarball without a compiler', () => {
  it('works from the file with install scripts ignored, and node-gyp stays the fallback', async () => {
    const project = newProject(join(work, 'ignore-scripts'));
    const install = await npm(['install', tarball, '--ignore-scripts', ...installFlags], project, noCompiler);
    expect(install.status, install.output).toBe(0);
    const result = runProbe(project);
    expectWorkingInstall(project, result);
    expect(result.extract.startsWith(join(project, 'node_modules'))).toBe(true);
    expect(result.accelerated).toBe(true);

    // A platform without a prebuild: the import names the fix, and the fix works.
    rmSync(join(project, 'node_modules', 'memjob', 'native', 'prebuilds'), { recursive: true });
    const failed = spawnSync(process.execPath, ['probe.mjs'], { cwd: project, env: cleanEnv(), encoding: 'utf8' });
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain('MEMJOB_ERR_NATIVE_LOAD');
    expect(failed.stderr).toContain('npm explore memjob -- npm run build:native');
    const rebuild = await npm(['explore', 'memjob', '--', 'npm', 'run', 'build:native'], project);
    expect(rebuild.status, rebuild.output).toBe(0);
    const rebuilt = runProbe(project);
    expect(rebuilt.results.threads).toEqual([1, 4, 9, 16]);
    expect(rebuilt.addons).toContain(join(project, 'node_modules', 'memjob', 'native', 'build', 'Release', 'memjob_native.node'));
  }, 90_000);

  it('works from a registry under strict-allow-scripts without approving memjob; msgpackr-extract needs a denial', async () => {
    const registry = await standInRegistry(tarball);
    try {
      const project = newProject(join(work, 'strict'));
      const strict = ['--strict-allow-scripts=true', ...installFlags];
      const fromRegistry = ['install', 'memjob', '--registry', registry.url, ...strict];

      // Unreviewed, msgpackr-extract's install script stops the install; memjob has none to review.
      const refused = await npm(fromRegistry, project, noCompiler);
      expect(refused.status).not.toBe(0);
      expect(refused.output).toContain('ESTRICTALLOWSCRIPTS');
      expect(refused.output).toMatch(/msgpackr-extract@[\d.]+ \(install: /);
      expect(refused.output).not.toMatch(/memjob@/);

      // Denied (the README's command), its script is skipped and its prebuilt binary package still loads.
      const deny = await npm(['pkg', 'set', 'allowScripts.msgpackr-extract=false', '--json'], project);
      expect(deny.status, deny.output).toBe(0);
      const install = await npm(fromRegistry, project, noCompiler);
      expect(install.status, install.output).toBe(0);
      expect(install.output).not.toContain('install-scripts');
      const result = runProbe(project);
      expectWorkingInstall(project, result);
      expect(result.extract.startsWith(join(project, 'node_modules'))).toBe(true);
      expect(result.accelerated).toBe(true);
      expect(existsSync(join(project, 'node_modules', 'msgpackr-extract', 'build'))).toBe(false);

      // Again from the project's lockfile, which does not record "gypfile" (a
      // root binding.gyp would now be run as "node-gyp rebuild"), and as
      // `npm install-scripts ls` sees the installed tree.
      rmSync(join(project, 'node_modules'), { recursive: true });
      const ci = await npm(['ci', '--registry', registry.url, ...strict], project, noCompiler);
      expect(ci.status, ci.output).toBe(0);
      expectWorkingInstall(project, runProbe(project));
      const review = await npm(['install-scripts', 'ls'], project);
      expect(review.output).toContain('No packages with unreviewed install scripts');

      // From a .tgz file, npm also asks about memjob's prepare (which it does not run for a file).
      const fromFile = newProject(join(work, 'strict-file'), { allowScripts: { 'msgpackr-extract': false } });
      const flagged = await npm(['install', tarball, ...strict], fromFile, noCompiler);
      expect(flagged.status).not.toBe(0);
      expect(flagged.output).toMatch(/memjob@[\d.]+ \(prepare: npm run build\)/);
    } finally {
      await registry.close();
    }
  }, 60_000);
});
