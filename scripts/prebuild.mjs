#!/usr/bin/env node
/**
 * `npm run prebuild`: builds the Node-API binaries that ship in the package,
 * native/prebuilds/<platform>-<arch>/memjob.glibc.node, with prebuildify. One build
 * per platform serves every Node version (Node-API), and node-gyp-build
 * (src/native.ts) picks the matching one at run time, so consumers on these
 * platforms need no compiler and no install script.
 *
 * Built: the host platform, and on Linux every other glibc architecture whose
 * Debian cross compiler is installed (aarch64-linux-gnu-g++ for arm64,
 * x86_64-linux-gnu-g++ for x64). A missing cross compiler is only a warning;
 * test/install.test.ts fails when a packed tarball lacks linux-x64 or linux-arm64.
 *
 * npm also runs this before every `npm run build` (it is the `pre` hook of
 * "build"), so it must be cheap when nothing changed: a binary newer than every
 * input (native/binding.gyp and sources, this script, node-addon-api) is kept.
 *
 * Each build runs in its own copy of the sources under tmp/, so it never
 * touches native/build/ (the developer's own build, which node-gyp-build
 * prefers) and two concurrent runs cannot clash; the finished binary is moved
 * into place with one rename.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const nativeDir = join(repoRoot, 'native');
const require = createRequire(import.meta.url);
const fileName = 'memjob.glibc.node';

/** Debian's cross compilers, by Node's arch name (glibc only). */
const crossCompilers = {
  x64: { prefix: 'x86_64-linux-gnu-', aptPackage: 'g++-x86-64-linux-gnu' },
  arm64: { prefix: 'aarch64-linux-gnu-', aptPackage: 'g++-aarch64-linux-gnu' },
};

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

function isMusl() {
  // glibc's runtime reports its version; musl's does not.
  return platform() === 'linux' && !process.report.getReport().header.glibcVersionRuntime;
}

/** The targets this machine can build: [{ target, arch, env, stripBin }]. */
function buildableTargets() {
  const host = { target: `${platform()}-${arch()}`, arch: arch(), env: {}, stripBin: 'strip' };
  if (platform() !== 'linux') return { buildable: [host], missing: [] };
  if (isMusl()) {
    throw new Error('prebuild: the shipped Linux binaries are glibc builds; run this on a glibc system');
  }
  const buildable = [host];
  const missing = [];
  for (const [otherArch, { prefix, aptPackage }] of Object.entries(crossCompilers)) {
    if (otherArch === arch()) continue;
    const target = `linux-${otherArch}`;
    if (!onPath(`${prefix}g++`)) {
      missing.push({ target, compiler: `${prefix}g++`, aptPackage });
      continue;
    }
    buildable.push({
      target,
      arch: otherArch,
      env: { CC: `${prefix}gcc`, CXX: `${prefix}g++`, LINK: `${prefix}g++`, AR: `${prefix}ar` },
      stripBin: `${prefix}strip`,
    });
  }
  return { buildable, missing };
}

/** native/binding.gyp and the C++ sources: what a build copies. */
function sourceFiles() {
  return readdirSync(nativeDir).filter((name) => /\.(cc|h|gyp)$/.test(name));
}

function newestInput() {
  const inputs = [
    fileURLToPath(import.meta.url),
    require.resolve('node-addon-api/package.json'),
    ...sourceFiles().map((name) => join(nativeDir, name)),
  ];
  return Math.max(...inputs.map((file) => statSync(file).mtimeMs));
}

function upToDate(output, inputsMtime) {
  return existsSync(output) && statSync(output).mtimeMs >= inputsMtime;
}

/** npm gives its scripts its own node-gyp in npm_config_node_gyp; outside npm, one on PATH. */
function nodeGypCommand() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  if (onPath('node-gyp')) return 'node-gyp';
  throw new Error('prebuild: node-gyp not found; run this as `npm run prebuild`, which provides npm\'s node-gyp');
}

function build({ target, arch: targetArch, env, stripBin }) {
  const staging = join(repoRoot, 'tmp', `prebuild-${target}-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    for (const name of sourceFiles()) cpSync(join(nativeDir, name), join(staging, name));
    const nodeGyp = nodeGypCommand();
    const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
    const args = [
      prebuildify, staging, '--napi', '--strip', '--tag-libc', '--name', 'memjob',
      // Headers of the running Node (or of npm's nodedir); any Node-API 8 version would do.
      '--target', process.versions.node, '--arch', targetArch,
      '--strip-bin', stripBin, '--node-gyp', nodeGyp,
    ];
    // node-gyp's log is long; it is shown only when the build fails.
    const result = spawnSync(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const built = join(staging, 'prebuilds', target, fileName);
    if (result.status !== 0 || !existsSync(built)) {
      process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`);
      throw new Error(`prebuild: building ${target} failed (prebuildify exit ${result.status ?? result.signal}); ` +
        'a build needs Python 3, make, a C++17 compiler and the Node headers');
    }
    const folder = join(nativeDir, 'prebuilds', target);
    mkdirSync(folder, { recursive: true });
    renameSync(built, join(folder, fileName));
    // Anything else there (an older naming) would ship too and could be chosen first.
    for (const name of readdirSync(folder)) {
      if (name !== fileName) rmSync(join(folder, name), { recursive: true, force: true });
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function main() {
  const { buildable, missing } = buildableTargets();
  for (const { target, compiler, aptPackage } of missing) {
    console.warn(`warning: prebuild: ${target} not built: the cross compiler ${compiler} is not installed ` +
      `(Debian: apt-get install ${aptPackage})`);
  }
  const inputsMtime = newestInput();
  for (const spec of buildable) {
    const output = join(nativeDir, 'prebuilds', spec.target, fileName);
    if (upToDate(output, inputsMtime)) continue;
    const started = Date.now();
    build(spec);
    console.log(`prebuild: native/prebuilds/${spec.target}/${fileName} (${Date.now() - started} ms)`);
  }
}

try {
  main();
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
