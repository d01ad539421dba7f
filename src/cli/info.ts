/**
 * `memjob info`: the temp folder memjob would use and why, the CPUs it would
 * count, and the versions and native addon in use. Everything is looked at,
 * nothing is created.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemjobError } from '../errors.js';
import { cgroupCpuLimit, cpuCount } from '../system/cpu-count.js';
import { TEMP_FOLDER_ENV, chooseTempRoot, tempRootCandidates, type TempRootCandidate, type TempRootChoice } from '../transport/temp-root.js';
import { formatBytes, print, printJson, table } from './output.js';

/** The package root: src/cli/ and dist/cli/ both sit two folders below it. */
export const packageRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

export interface InfoReport {
  memjob: { version: string; packageRoot: string };
  node: { version: string; platform: string; arch: string; napi: string | null; modules: string };
  addon: {
    /** The .node file node-gyp-build picks for this platform, or null if there is none. */
    path: string | null;
    loaded: boolean;
    pageSize: number | null;
    maxViewBytes: number | null;
    error: { code: string; message: string } | null;
  };
  cpu: { cpuCount: number; availableParallelism: number; cpus: number; cgroupLimit: number | null };
  temp: {
    option: string | null;
    env: string | null;
    candidates: TempRootCandidate[];
    chosen: TempRootChoice | null;
    /** Why no root can be used (an explicit root that is unusable), else null. */
    error: { code: string; message: string } | null;
  };
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof MemjobError) return { code: error.code, message: error.message };
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : 'unknown', message: error instanceof Error ? error.message : String(error) };
}

async function addonInfo(): Promise<InfoReport['addon']> {
  const addon: InfoReport['addon'] = { path: null, loaded: false, pageSize: null, maxViewBytes: null, error: null };
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    addon.path = nodeGypBuild.resolve(resolve(packageRoot, 'native'));
  } catch (error) {
    addon.error = errorInfo(error);
  }
  try {
    // native.ts loads the addon as it is imported: a failure is reported, not fatal.
    const native = await import('../native.js');
    addon.loaded = true;
    addon.pageSize = native.pageSize;
    addon.maxViewBytes = native.maxViewBytes;
  } catch (error) {
    addon.error ??= errorInfo(error);
  }
  return addon;
}

export async function collectInfo(tempFolder?: string): Promise<InfoReport> {
  const env = process.env[TEMP_FOLDER_ENV];
  let chosen: TempRootChoice | null = null;
  let tempError: InfoReport['temp']['error'] = null;
  try {
    chosen = chooseTempRoot(tempFolder);
  } catch (error) {
    tempError = errorInfo(error);
  }
  return {
    memjob: { version: packageVersion(), packageRoot },
    node: {
      version: process.version,
      platform: process.platform,
      arch: process.arch,
      napi: process.versions.napi ?? null,
      modules: process.versions.modules,
    },
    addon: await addonInfo(),
    cpu: {
      cpuCount: cpuCount(),
      availableParallelism: availableParallelism(),
      cpus: cpus().length,
      cgroupLimit: process.platform === 'linux' ? cgroupCpuLimit() : null,
    },
    temp: {
      option: tempFolder ?? null,
      env: env === undefined || env === '' ? null : env,
      candidates: tempRootCandidates(tempFolder),
      chosen,
      error: tempError,
    },
  };
}

export function renderInfo(info: InfoReport): string[] {
  const { addon, cpu, temp } = info;
  const addonLine = addon.loaded
    ? `${addon.path ?? '(path unknown)'} (loaded; page size ${addon.pageSize} B, largest view ${formatBytes(addon.maxViewBytes ?? -1)})`
    : `${addon.path ?? 'none found'} (NOT loaded: ${addon.error?.message ?? 'unknown error'})`;
  const lines = table([
    ['memjob', `${info.memjob.version} (${info.memjob.packageRoot})`],
    ['node', `${info.node.version} on ${info.node.platform}-${info.node.arch}, Node-API ${info.node.napi ?? 'unknown'}, ABI ${info.node.modules}`],
    ['addon', addonLine],
    [
      'cpuCount',
      `${cpu.cpuCount} (os.availableParallelism() ${cpu.availableParallelism}, os.cpus() ${cpu.cpus}, cgroup quota ${cpu.cgroupLimit ?? 'none'})`,
    ],
    [
      'temp folder',
      temp.chosen !== null ? `${temp.chosen.root}: ${formatBytes(temp.chosen.freeBytes)} free` : `none usable: ${temp.error?.message ?? 'unknown'} (${temp.error?.code ?? ''})`,
    ],
    ...(temp.chosen !== null ? [['why', temp.chosen.reason]] : []),
    [TEMP_FOLDER_ENV, temp.env ?? '(not set)'],
  ]);
  lines.push('', 'temp folder candidates, in order:');
  lines.push(
    ...table(
      temp.candidates.map((c) => [c.usable ? 'usable' : 'unusable', c.root, c.source, `${formatBytes(c.freeBytes)} free`, c.reason]),
      '  ',
    ),
  );
  return lines;
}

export async function runInfo(options: { json?: boolean; tempFolder?: string }): Promise<void> {
  const info = await collectInfo(options.tempFolder);
  if (options.json === true) printJson(info);
  else print(renderInfo(info));
}
