#!/usr/bin/env node
/**
 * The `memjob` command: inspect, info, clean (docs/cli.md); worker and cluster status (docs/distributed.md).
 * Exit codes: 0 ok; 1 a MemjobError (the message and its code on stderr, no
 * stack); 2 a usage error (unknown command or option, missing argument).
 * Each command's module is imported when it runs, so `--help` and `info`
 * work even where the native addon cannot be loaded (`clean` needs it: it
 * proves a run folder dead by taking the folder's flock).
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { MemjobError } from '../errors.js';
import { packageVersion } from './info.js';
import { terminalSafe } from './output.js';

const USAGE_EXIT = 2;

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('memjob');
  program
    .description("memjob's command line: look inside dump and .npy files, see what memjob would use on this machine, remove stale temp folders")
    .version(packageVersion(), '-V, --version', "print memjob's version")
    .exitOverride()
    .showHelpAfterError('(run memjob --help for usage)')
    .configureHelp({ sortSubcommands: false });

  program
    .command('inspect')
    .description('show what a memjob dump (plain or compressed) or a .npy file holds, without reading its arrays')
    .argument('<file>', 'a file written by dump()/dumpSync() or a .npy file')
    .option('--json', 'print the report as JSON')
    .option('--check-data', 'for a compressed dump, also decompress (and discard) the data to check nothing is missing')
    .option('--max-entries <n>', 'entries shown per object, array, Map or Set', positiveInteger, 20)
    .option('--max-depth <n>', 'nesting levels shown', positiveInteger, 16)
    .option('--max-rows <n>', 'rows of the tree shown in all', positiveInteger, 1000)
    .option('--max-arrays <n>', 'arrays listed (the rest are counted)', positiveInteger, 1000)
    .option('--max-header-size <n>', 'for a .npy file, the most characters its header may have (numpy\'s max_header_size)', positiveInteger, 10_000)
    .action(async (file: string, options: { json?: boolean; checkData?: boolean; maxEntries: number; maxDepth: number; maxRows: number; maxArrays: number; maxHeaderSize: number }) => {
      const { runInspect } = await import('./inspect.js');
      await runInspect(file, options);
    });

  program
    .command('info')
    .description('show the temp folder memjob would use and why, its free space, the CPU count, and the Node and addon versions')
    .option('--json', 'print the report as JSON')
    .option('--temp-folder <dir>', 'check this folder as the tempFolder option would')
    .action(async (options: { json?: boolean; tempFolder?: string }) => {
      const { runInfo } = await import('./info.js');
      await runInfo(options);
    });

  program
    .command('clean')
    .description('remove temp folders left by memjob processes that no longer exist (never those of live processes)')
    .option('-n, --dry-run', 'list what would be removed, remove nothing')
    .option('--json', 'print the report as JSON')
    .option('--temp-folder <dir>', 'clean this folder instead of the roots memjob would choose from')
    .action(async (options: { dryRun?: boolean; json?: boolean; tempFolder?: string }) => {
      const { runClean } = await import('./clean.js');
      runClean(options);
    });

  program
    .command('worker')
    .description('serve a Redis queue: run the batches of Parallel({ backend: \'bullmq\' }) runs on a local pool (docs/distributed.md)')
    .requiredOption('--broker <url>', "the Redis broker, a redis:// or rediss:// URL (user:password@ for AUTH/ACL)")
    .option('--queue <name>', 'the queue to serve', 'memjob')
    .option('--jobs <n>', 'local workers, batches run at once (default: the CPU count, as Parallel\'s nJobs: -1)', positiveInteger)
    .option('--backend <kind>', 'threads or processes', 'processes')
    .option('--secret-file <file>', 'read the shared secret from this file (default: the MEMJOB_SECRET environment variable)')
    .option('--insecure', 'run jobs without a secret (only on a network where nobody else can write to the broker)')
    .option('--temp-folder <dir>', 'where downloaded arrays are kept (default as for Parallel: MEMJOB_TEMP_FOLDER, /dev/shm, the OS temp folder)')
    .option('--project <dir>', 'the project task modules are resolved in (default: the folder of the nearest package.json)')
    .option('--broker-timeout <ms>', 'how long to wait for the broker at start', positiveInteger, 5000)
    .action(async (options: { broker: string; queue?: string; jobs?: number; backend: string; secretFile?: string; insecure?: boolean; tempFolder?: string; project?: string; brokerTimeout: number }) => {
      const { runWorker } = await import('./cluster.js');
      await runWorker(options);
    });

  program
    .command('cluster')
    .description('look at a Redis cluster of memjob workers')
    .command('status')
    .description('list the connected workers (host, pid, jobs, busy, blobs downloaded, jobs rejected) and the queue\'s job counts')
    .requiredOption('--broker <url>', 'the Redis broker URL')
    .option('--queue <name>', 'the queue', 'memjob')
    .option('--json', 'print the report as JSON')
    .option('--broker-timeout <ms>', 'how long to wait for the broker', positiveInteger, 5000)
    .action(async (options: { broker: string; queue?: string; json?: boolean; brokerTimeout: number }) => {
      const { runClusterStatus } = await import('./cluster.js');
      await runClusterStatus(options);
    });

  const cache = program.command('cache').description('look at or clear a Memory cache folder');
  for (const [name, description] of [
    ['ls', 'list the cached results: function, key, size, created, last used, how long the call took'],
    ['size', 'count the cached results and their bytes'],
    ['clear', 'remove every cached result (only what memjob wrote there)'],
  ] as const) {
    cache
      .command(name)
      .description(description)
      .argument('[location]', 'the cache folder', '.cache/memjob')
      .option('--json', 'print the report as JSON')
      .action(async (location: string, options: { json?: boolean }) => {
        const { runCacheList, runCacheSize, runCacheClear } = await import('./cache.js');
        ({ ls: runCacheList, size: runCacheSize, clear: runCacheClear })[name](location, options);
      });
  }

  return program;
}

/** Runs the CLI and resolves to its exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the message (or the help) already.
      return error.exitCode === 0 ? 0 : USAGE_EXIT;
    }
    if (error instanceof MemjobError) {
      // Messages name files and quote keys from files: printed terminal-safe.
      process.stderr.write(`memjob: ${terminalSafe(error.message)}\nmemjob: error code ${terminalSafe(error.code)}\n`);
      return 1;
    }
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`memjob: internal error, please report it: ${text.split('\n').map(terminalSafe).join('\n')}\n`);
    return 1;
  }
}

// `memjob inspect file | head` closes stdout early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await main();
