/**
 * The pgdr worker: one process per database host. It serves
 * - the shared workflow task queue (runbooks and configuration lookups), unless told not to, and
 * - the task queue of each host it owns (`pgdr-host-<host>`): activities that touch that host's files.
 */
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { temporalLogger } from '../common/log';
import { createHostActivities, createSharedActivities } from '../activities';
import type { LoadedConfig } from '../common/config';
import { explainConnectFailure, temporalConnectionOptions } from '../common/temporal-connection';
import { hostTaskQueue } from '../common/types';
import { livenessInterceptor } from './liveness';
import { guardSharedConfig } from './shared-config-guard';
import { startObservability } from './observability';
import { builtWorkflowBundle, WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from './workflow-bundle';

export interface WorkerSetOptions {
  config: LoadedConfig;
  /** Hosts this process owns; default: every host named in the config. */
  hosts?: string[];
  /** Serve the shared workflow task queue too (default true). */
  workflows?: boolean;
  connection?: NativeConnection;
  /** The workflow bundle; default: the one `npm run build` made (worker/workflow-bundle.ts), if up to date. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /**
   * The shared configuration (worker/shared-config-guard.ts): 'verify' (default) refuses to start when this
   * file's shared part differs from the one published in Temporal; 'publish' (the embedded default and
   * in-process test workers, which own their server) makes this file the reference.
   */
  sharedConfig?: 'verify' | 'publish';
}

export interface WorkerSet {
  taskQueues: string[];
  run(): Promise<void>;
  shutdown(): void;
  /** Port of the Prometheus endpoint (undefined when worker.metricsPort is 0). */
  metricsPort?: number;
}

let runtimeReady = false;
/** Route the SDK's logs through pgdr's logger (once per process, before the first worker). */
export function installRuntime() {
  if (runtimeReady) return;
  runtimeReady = true;
  try {
    Runtime.install({ logger: temporalLogger });
  } catch {
    /* already installed (e.g. by a test harness) */
  }
}

export async function createWorkerSet(opts: WorkerSetOptions): Promise<WorkerSet> {
  const { config } = opts;
  installRuntime();
  const connection =
    opts.connection ??
    (await NativeConnection.connect(temporalConnectionOptions(config.temporal)).catch(async (err: unknown) => {
      throw await explainConnectFailure(config.temporal, err);
    }));
  // Refuse to start when this file's shared part disagrees with the published one (or publish it: first worker).
  const guard = await guardSharedConfig({ config, connection, mode: opts.sharedConfig }).catch(async (err) => {
    if (!opts.connection) await connection.close();
    throw err;
  });
  const hosts = opts.hosts ?? [...new Set(config.clusters.map((c) => c.host))];
  const common = {
    connection,
    namespace: config.temporal.namespace,
    maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
    interceptors: { activity: [livenessInterceptor] },
  };
  const workers: Worker[] = [];
  if (opts.workflows !== false) {
    const workflowBundle = opts.workflowBundle ?? builtWorkflowBundle();
    // Only the shared queue's activities check the shared configuration before each decision.
    const sharedInterceptors = { activity: [livenessInterceptor, guard.interceptor] };
    const shared = await Worker.create({
      ...common,
      interceptors: sharedInterceptors,
      taskQueue: config.temporal.taskQueue,
      activities: createSharedActivities(config),
      maxCachedWorkflows: config.worker.maxCachedWorkflows,
      stickyQueueScheduleToStartTimeout: config.worker.stickyQueueTimeout as never,
      ...(workflowBundle
        ? { workflowBundle }
        : { workflowsPath: WORKFLOWS_PATH, interceptors: { ...sharedInterceptors, workflowModules: WORKFLOW_INTERCEPTOR_MODULES } }),
    });
    // A mismatch found while serving: stop polling the shared queue; the host queues go on.
    guard.onMismatch(() => shared.getState() === 'RUNNING' && shared.shutdown());
    workers.push(shared);
  }
  const hostActivities = createHostActivities(config);
  for (const host of hosts) {
    workers.push(await Worker.create({ ...common, taskQueue: hostTaskQueue(host), activities: hostActivities }));
  }
  // Metrics endpoint/textfile, and the schedules when worker.applySchedules is set.
  const observability = await startObservability({ config, hosts, connection, workflows: opts.workflows !== false });
  return {
    taskQueues: workers.map((w) => w.options.taskQueue),
    metricsPort: observability.metricsPort,
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
      await observability.close();
      if (!opts.connection) await connection.close();
    },
    shutdown: () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
  };
}
