/**
 * Prometheus metrics of pgdr (prom-client), in the spirit of seed 001's textfile metrics and Prometheus'
 * naming rules (base units, `_timestamp_seconds`, `_bytes`).
 *
 * Where the figures come from:
 * - backup metrics (pgdr_backup_*, pgdr_stanza_*) and WAL archiver metrics (pgdr_wal_*) are read from `pgbackrest info` and
 *   `pg_stat_archiver` by `refreshClusterMetrics`, which runs (a) in the `refreshMetrics` activity that every
 *   health-check workflow calls, and (b) on scrape of the worker's endpoint for the clusters whose host this
 *   worker owns, at most once per `SCRAPE_REFRESH_MS` (info takes ~10 ms), so that a scrape right after a
 *   backup shows it;
 * - health-check status is set by the health workflows (activity `recordHealthState`);
 * - drill results are set by the drill runbook through `recordDrillResult` (exported for it);
 * - the last result per runbook kind is read from Temporal's visibility by the worker that serves the
 *   workflow queue (worker/observability.ts → `setRunbookResult`).
 *
 * One registry per process: a worker process serves the metrics of the hosts it owns. Every refresh also
 * writes the node_exporter textfile (`worker.metricsTextfile`) atomically: temp file in the same folder,
 * then rename, so the collector never reads half a file.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';
import { Gauge, Registry } from 'prom-client';
import type { ClusterConfig, LoadedConfig } from '../common/config';
import { log } from '../common/log';
import type { BackupType, StanzaInfo } from '../common/types';
import { stanzaInfo } from './pgbackrest';
import { archiverStats, serverState, type ArchiverStats } from './postgres';

export const registry = new Registry();

const g = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [registry] });

/**
 * Every series is pgdr's own (`pgdr_`): pgbackrest_exporter owns the `pgbackrest_` namespace with other
 * labels and meanings, and a site may run both. Gauges carry no `_total` / `_count` / `_sum` / `_bucket`
 * suffix (`promtool check metrics` is clean, see test/health.test.ts).
 */
export const metrics = {
  lastBackup: g('pgdr_backup_last_timestamp_seconds', 'Stop time of the newest backup set of this type (Unix epoch).', ['stanza', 'repo', 'type']),
  lastAnyBackup: g('pgdr_backup_newest_timestamp_seconds', 'Stop time of the newest backup set of any type (Unix epoch): the age of the newest restorable point in the repo.', ['stanza', 'repo']),
  backupSets: g('pgdr_backup_sets', 'Number of backup sets of this type in the repository.', ['stanza', 'repo', 'type']),
  lastBackupDuration: g('pgdr_backup_last_duration_seconds', 'How long the newest backup set of this type took (pgBackRest start to stop).', ['stanza', 'repo', 'type']),
  repoSize: g('pgdr_backup_repo_size_bytes', 'Bytes the backup sets take in the repository (sum of their repository deltas; WAL archive not included).', ['stanza', 'repo']),
  lastBackupSize: g('pgdr_backup_last_size_bytes', 'Database size covered by the newest backup set of this type.', ['stanza', 'repo', 'type']),
  lastBackupRepoSize: g('pgdr_backup_last_repo_size_bytes', 'Bytes the newest backup set of this type added to the repository.', ['stanza', 'repo', 'type']),
  stanzaStatus: g('pgdr_stanza_info_status', 'pgBackRest info status code of the stanza (0 ok, 2 no valid backups, …); -1 when info could not run.', ['stanza']),
  walLastArchived: g('pgdr_wal_last_archived_timestamp_seconds', 'pg_stat_archiver.last_archived_time (Unix epoch).', ['cluster', 'stanza']),
  walFailed: g('pgdr_wal_archive_failures', 'pg_stat_archiver.failed_count: failed attempts to archive a WAL segment since the statistics were reset.', ['cluster', 'stanza']),
  walArchived: g('pgdr_wal_archived_segments', 'pg_stat_archiver.archived_count: WAL segments archived since the statistics were reset.', ['cluster', 'stanza']),
  walLastFailed: g('pgdr_wal_last_failed_timestamp_seconds', 'pg_stat_archiver.last_failed_time (Unix epoch; 0 when never failed).', ['cluster', 'stanza']),
  drillSuccess: g('pgdr_drill_last_success', '1 when the last verification drill succeeded, 0 when it failed.', ['cluster']),
  drillTimestamp: g('pgdr_drill_last_timestamp_seconds', 'End time of the last verification drill (Unix epoch).', ['cluster']),
  drillSuccessTimestamp: g('pgdr_drill_last_success_timestamp_seconds', 'End time of the last successful verification drill (Unix epoch).', ['cluster']),
  drillDuration: g('pgdr_drill_last_duration_seconds', 'Duration of the last verification drill.', ['cluster']),
  drillRto: g('pgdr_drill_last_rto_seconds', "The last drill's measured RTO: restore + recovery + validation.", ['cluster']),
  drillRtoTarget: g('pgdr_drill_rto_target_seconds', 'The RTO target the last drill was compared with (drill.rto, else rto.pitr / rto.fullSite).', ['cluster']),
  healthStatus: g('pgdr_health_check_status', 'Last result of a pgdr health check: 1 ok, 0 failing.', ['cluster', 'check']),
  healthTimestamp: g('pgdr_health_check_timestamp_seconds', 'When a pgdr health check last ran (Unix epoch).', ['cluster', 'check']),
  runbookSuccess: g('pgdr_runbook_last_success', 'Outcome of the newest finished runbook of this kind (workflow type): 1 completed, 0 failed, cancelled, terminated or timed out.', ['kind']),
  runbookTimestamp: g('pgdr_runbook_last_end_timestamp_seconds', 'When the newest finished runbook of this kind ended (Unix epoch).', ['kind']),
  runbookDuration: g('pgdr_runbook_last_duration_seconds', 'How long the newest finished runbook of this kind ran.', ['kind']),
};

const epoch = (iso: string) => Date.parse(iso) / 1000;

/** Set the backup gauges of one stanza from `pgbackrest info`. Repos without sets get count 0. */
export function setBackupMetrics(stanza: string, repos: number[], info: StanzaInfo): void {
  metrics.stanzaStatus.set({ stanza }, info.status.code);
  for (const repoIndex of repos) {
    const repo = `repo${repoIndex}`;
    const sets = info.sets.filter((s) => s.repo === repoIndex);
    metrics.repoSize.set({ stanza, repo }, sets.reduce((a, s) => a + s.repoDelta, 0));
    const newestAny = sets.map((s) => s.stoppedAt).sort().pop();
    if (newestAny) metrics.lastAnyBackup.set({ stanza, repo }, epoch(newestAny));
    else metrics.lastAnyBackup.remove({ stanza, repo });
    for (const type of ['full', 'diff', 'incr'] as BackupType[]) {
      const ofType = sets.filter((s) => s.type === type).sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
      const l = { stanza, repo, type };
      metrics.backupSets.set(l, ofType.length);
      const newest = ofType[ofType.length - 1];
      if (newest) {
        metrics.lastBackup.set(l, epoch(newest.stoppedAt));
        metrics.lastBackupDuration.set(l, Math.max(0, epoch(newest.stoppedAt) - epoch(newest.startedAt)));
        metrics.lastBackupSize.set(l, newest.size);
        metrics.lastBackupRepoSize.set(l, newest.repoDelta);
      } else {
        for (const m of [metrics.lastBackup, metrics.lastBackupDuration, metrics.lastBackupSize, metrics.lastBackupRepoSize]) m.remove(l);
      }
    }
  }
}

export function setArchiverMetrics(cluster: string, stanza: string, s: ArchiverStats): void {
  const l = { cluster, stanza };
  if (s.lastArchivedAt) metrics.walLastArchived.set(l, epoch(s.lastArchivedAt));
  metrics.walFailed.set(l, s.failedCount);
  metrics.walArchived.set(l, s.archivedCount);
  metrics.walLastFailed.set(l, s.lastFailedAt ? epoch(s.lastFailedAt) : 0);
}

export function setHealthStatus(cluster: string, check: string, ok: boolean, at = Date.now()): void {
  metrics.healthStatus.set({ cluster, check }, ok ? 1 : 0);
  metrics.healthTimestamp.set({ cluster, check }, at / 1000);
}

export interface DrillResultRecord {
  cluster: string;
  ok: boolean;
  /** ISO 8601 or epoch milliseconds; default now. */
  finishedAt?: string | number;
  durationMs: number;
  /** The measured RTO (restore + recovery + validation) and the target it was compared with. */
  rtoMs?: number;
  rtoTargetMs?: number;
}

/** The newest finished run of one runbook kind (from Temporal's visibility; see worker/observability.ts). */
export function setRunbookResult(kind: string, ok: boolean, endedAt: Date, durationMs: number): void {
  metrics.runbookSuccess.set({ kind }, ok ? 1 : 0);
  metrics.runbookTimestamp.set({ kind }, endedAt.getTime() / 1000);
  metrics.runbookDuration.set({ kind }, Math.max(0, durationMs) / 1000);
}

let textfilePath: string | undefined;

/** Where `recordDrillResult` and refreshes write the textfile (set by the worker from the config). */
export function configureMetricsTextfile(path: string | undefined): void {
  textfilePath = path;
}

/**
 * For the verification drill: record its result in the metrics (and the textfile when configured).
 * Call it from an activity at the end of every drill, successful or not.
 */
export async function recordDrillResult(r: DrillResultRecord): Promise<void> {
  const at = r.finishedAt === undefined ? Date.now() : typeof r.finishedAt === 'number' ? r.finishedAt : Date.parse(r.finishedAt);
  metrics.drillSuccess.set({ cluster: r.cluster }, r.ok ? 1 : 0);
  metrics.drillTimestamp.set({ cluster: r.cluster }, at / 1000);
  metrics.drillDuration.set({ cluster: r.cluster }, r.durationMs / 1000);
  if (r.ok) metrics.drillSuccessTimestamp.set({ cluster: r.cluster }, at / 1000);
  if (r.rtoMs !== undefined) metrics.drillRto.set({ cluster: r.cluster }, r.rtoMs / 1000);
  if (r.rtoTargetMs !== undefined) metrics.drillRtoTarget.set({ cluster: r.cluster }, r.rtoTargetMs / 1000);
  await writeTextfile();
}

let writeSeq = 0;
/** Write every metric to the textfile atomically (temp file + rename in the same folder). */
export async function writeTextfile(path = textfilePath): Promise<void> {
  if (!path) return;
  const text = await registry.metrics();
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${++writeSeq}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

/** Read info and archiver statistics of one cluster and update the gauges. Errors are reported, not thrown. */
export async function refreshClusterMetrics(c: ClusterConfig): Promise<{ ok: boolean; error?: string }> {
  try {
    const running = (await serverState(c)) === 'running';
    const stats = running ? await archiverStats(c).catch(() => undefined) : undefined;
    if (stats) setArchiverMetrics(c.name, c.stanza, stats);
    const info = await stanzaInfo(c, { lastArchivedAt: stats?.lastArchivedAt ?? null });
    setBackupMetrics(c.stanza, c.repos.map((r) => r.index), info);
    return { ok: true };
  } catch (err) {
    metrics.stanzaStatus.set({ stanza: c.stanza }, -1);
    return { ok: false, error: (err as Error).message };
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export const SCRAPE_REFRESH_MS = 5_000;

/**
 * Serve `/metrics` on the port from the config (127.0.0.1 and other interfaces: `0.0.0.0`). Before
 * answering, refresh the clusters of `hosts` when the last refresh is older than SCRAPE_REFRESH_MS.
 */
export async function startMetricsServer(config: LoadedConfig, hosts: string[], opts: { port?: number; bind?: string } = {}): Promise<MetricsServer> {
  const clusters = config.clusters.filter((c) => hosts.includes(c.host));
  let lastRefresh = 0;
  let refreshing: Promise<void> | undefined;
  const refresh = async () => {
    if (Date.now() - lastRefresh < SCRAPE_REFRESH_MS) return;
    refreshing ??= (async () => {
      for (const c of clusters) {
        const r = await refreshClusterMetrics(c);
        if (!r.ok) log.warn({ cluster: c.name, err: r.error }, 'metrics: cannot read pgbackrest info');
      }
      lastRefresh = Date.now();
      await writeTextfile(config.worker.metricsTextfile).catch((e) => log.warn({ err: (e as Error).message }, 'metrics: cannot write the textfile'));
    })().finally(() => (refreshing = undefined));
    await refreshing;
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain' });
      res.end(path === '/' ? 'pgdr worker: metrics at /metrics\n' : 'not found\n');
      return;
    }
    void (async () => {
      try {
        await refresh();
        const body = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${(err as Error).message}\n`);
      }
    })();
  });
  const port = opts.port ?? config.worker.metricsPort;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, opts.bind ?? '0.0.0.0', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  return { port: actual, close: () => new Promise<void>((r) => server.close(() => r())) };
}
