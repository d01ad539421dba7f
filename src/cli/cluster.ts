/**
 * `memjob worker` and `memjob cluster status` (docs/distributed.md).
 * The worker runs until SIGTERM or SIGINT: it then stops taking jobs,
 * finishes the batches it is running, unregisters and exits 0.
 */
import { resolve } from 'node:path';
import { ErrorCodes, MemjobError } from '../errors.js';
import { parseBroker } from '../remote/broker.js';
import { parseQueueName } from '../remote/keys.js';
import { projectRoot } from '../remote/task-modules.js';
import { resolveSecret } from '../remote/wire.js';
import { packageVersion } from './info.js';
import { print, printJson } from './output.js';

export interface WorkerCommandOptions {
  broker: string;
  queue?: string;
  jobs?: number;
  backend: string;
  secretFile?: string;
  insecure?: boolean;
  tempFolder?: string;
  project?: string;
  brokerTimeout: number;
}

export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  const where = 'memjob worker';
  const broker = parseBroker(where, options.broker);
  const queue = parseQueueName(where, options.queue);
  if (options.backend !== 'threads' && options.backend !== 'processes') {
    throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected --backend threads or processes, received ${JSON.stringify(options.backend)}`);
  }
  const secret = resolveSecret(where, { secretFile: options.secretFile, insecure: options.insecure });
  if (secret === null) process.stderr.write(`${where}: --insecure: running jobs without checking their signature; anyone who can write to the broker can run code here\n`);
  const project = options.project !== undefined ? resolve(options.project) : (projectRoot(process.cwd()) ?? process.cwd());
  const { WorkerService } = await import('../cluster/worker-service.js');
  const { cpuCount } = await import('../system/cpu-count.js');
  const jobs = options.jobs ?? cpuCount();
  const service = new WorkerService({
    broker,
    queue,
    jobs,
    backend: options.backend,
    secret,
    project,
    tempFolder: options.tempFolder,
    brokerTimeout: options.brokerTimeout,
    version: packageVersion(),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  await service.start();
  print(`[memjob worker] serving queue '${queue}' with ${jobs} ${options.backend} (project ${project}, pid ${process.pid})`);
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      print('[memjob worker] stopping: finishing the batches in progress');
      void service.stop().then(done, done);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

export async function runClusterStatus(options: { broker: string; queue?: string; json?: boolean; brokerTimeout: number }): Promise<void> {
  const where = 'memjob cluster status';
  const broker = parseBroker(where, options.broker);
  const queue = parseQueueName(where, options.queue);
  const { connectBroker } = await import('../remote/broker.js');
  const { clusterStatus } = await import('../cluster/cluster-status.js');
  const redis = await connectBroker(broker, { timeoutMs: options.brokerTimeout, name: where });
  try {
    const status = await clusterStatus(redis, queue);
    if (options.json === true) {
      printJson(status);
      return;
    }
    print(`queue '${queue}': ${Object.entries(status.queues[queue] ?? {}).map(([state, n]) => `${n} ${state}`).join(', ')}`);
    if (status.workers.length === 0) print('no workers connected');
    for (const w of status.workers) {
      print(`${w.host} pid ${w.pid}: ${w.busy}/${w.jobs} busy (${w.backend}), memjob ${w.version}, ${w.runs} runs, ${w.downloads.count} blobs downloaded (${w.downloads.bytes} bytes), ${w.rejected} jobs rejected`);
    }
  } finally {
    redis.disconnect();
  }
}
