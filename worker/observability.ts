/**
 * What a pgdr worker runs besides its Temporal workers:
 * - the Prometheus endpoint (`worker.metricsPort`, 0 = off) and the node_exporter textfile
 *   (`worker.metricsTextfile`), both for the clusters of the hosts this worker owns;
 * - `pgdr schedules apply` at start when `worker.applySchedules` is true (only by a worker that serves the
 *   shared workflow queue, so one place owns the schedules).
 */
import { Client, type ConnectionLike } from '@temporalio/client';
import type { LoadedConfig } from '../common/config';
import { log } from '../common/log';
import { configureMetricsTextfile, refreshClusterMetrics, setRunbookResult, startMetricsServer, writeTextfile, type MetricsServer } from '../activities/metrics';
import { applySchedules, formatApplyReport } from '../client/schedules';

export interface Observability {
  metricsPort?: number;
  close(): Promise<void>;
}

export async function startObservability(opts: { config: LoadedConfig; hosts: string[]; connection: ConnectionLike; workflows: boolean }): Promise<Observability> {
  const { config, hosts } = opts;
  configureMetricsTextfile(config.worker.metricsTextfile);
  let server: MetricsServer | undefined;
  if (config.worker.metricsPort > 0) {
    server = await startMetricsServer(config, hosts);
    log.info({ port: server.port }, `metrics at http://127.0.0.1:${server.port}/metrics`);
  }
  // First figures right away (pgbackrest info is quick) when someone reads them; failures are only logged.
  if (server || config.worker.metricsTextfile) void (async () => {
    for (const c of config.clusters.filter((x) => hosts.includes(x.host))) await refreshClusterMetrics(c);
    await writeTextfile(config.worker.metricsTextfile);
  })().catch((e) => log.warn({ err: (e as Error).message }, 'metrics: first refresh failed'));
  if (config.worker.applySchedules && opts.workflows) {
    try {
      const client = new Client({ connection: opts.connection, namespace: config.temporal.namespace });
      const report = await applySchedules(client, config);
      log.info({ report }, formatApplyReport(report));
      if (report.errors.length) log.error({ errors: report.errors }, 'some schedules could not be applied');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'applying the schedules failed; the worker runs on');
    }
  }
  // The last result per runbook kind, from Temporal's visibility (only the worker of the shared queue).
  let timer: NodeJS.Timeout | undefined;
  if ((server || config.worker.metricsTextfile) && opts.workflows) {
    const client = new Client({ connection: opts.connection, namespace: config.temporal.namespace });
    const tick = () =>
      void refreshRunbookResults(client, config.temporal.taskQueue)
        .then(() => writeTextfile(config.worker.metricsTextfile))
        .catch((e) => log.debug({ err: (e as Error).message }, 'metrics: cannot read the last runbook results'));
    tick();
    timer = setInterval(tick, RUNBOOK_REFRESH_MS);
    timer.unref();
  }
  return {
    metricsPort: server?.port,
    close: async () => {
      clearInterval(timer);
      await server?.close();
    },
  };
}

export const RUNBOOK_REFRESH_MS = 15_000;

/** Runbook kinds whose last result is a metric (`pgdr_runbook_last_success{kind}`). */
export const RUNBOOK_KINDS = ['backup', 'expire', 'verifyDrill', 'restoreToNewCluster', 'restoreInPlace', 'cleanupRestore', 'fullSiteRecovery', 'setupStanza', 'backupFreshness', 'archiveHealth'];

/** For each kind: the newest closed run on pgdr's task queue, its outcome, end and duration. */
export async function refreshRunbookResults(client: Client, taskQueue: string): Promise<void> {
  for (const kind of RUNBOOK_KINDS) {
    let newest: { ok: boolean; end: Date; ms: number } | undefined;
    let seen = 0;
    const query = `WorkflowType = "${kind}" AND TaskQueue = "${taskQueue.replace(/"/g, '')}" AND ExecutionStatus != "Running"`;
    for await (const w of client.workflow.list({ query, pageSize: 5 })) {
      if (w.closeTime && (!newest || w.closeTime > newest.end)) newest = { ok: w.status.name === 'COMPLETED', end: w.closeTime, ms: w.closeTime.getTime() - w.startTime.getTime() };
      if (++seen >= 5) break;
    }
    if (newest) setRunbookResult(kind, newest.ok, newest.end, newest.ms);
  }
}
