/**
 * Health checks, each a short workflow whose result stays in the history (so the UI answers "when did
 * archiving last work?" and "how old was the last full backup at 03:00?"):
 *
 * - `backupFreshness`: age of the newest full / diff / incr per repo against the thresholds. A diff is
 *   "fresh" when the newest full-or-diff is, an incr when the newest set of any type is (a new full also
 *   covers what an incr would have).
 * - `archiveHealth`: `pgbackrest check` with a short archive timeout (the exact pgBackRest error), then
 *   pg_stat_archiver: a last failure newer than the last success means archiving is stuck on that WAL
 *   segment; failed_count growth since the previous check; the age of the last archived WAL.
 *
 * No alert storms: the result is recorded on the cluster's host (activities/health.ts, one JSON file per
 * cluster and check); only an incident's first failing check alerts, and its first passing check sends one
 * recovery message, in the alert's Slack thread and broadcast to the channel.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { ArchiverStatus, HealthStateFile, RecordHealthResult } from '../activities/health';
import {
  archiveHealthInputSchema,
  durationMs,
  freshnessInputSchema,
  type ArchiveHealthInput,
  type ArchiveHealthResult,
  type FreshnessInput,
  type FreshnessResult,
  type NewestSet,
  type RepoFreshness,
} from '../common/health-inputs';
import type { BackupSet, ClusterSummary, StanzaInfo } from '../common/types';
import { lookups, onHost } from './activity-options';
import { notify, Runbook, validInput } from './runbook';
import { rootMessage } from '../common/errors';
import { formatDuration } from '../common/human-time';

type Host = ReturnType<typeof onHost>;

function newest(sets: BackupSet[], nowMs: number): NewestSet | null {
  const s = [...sets].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt)).pop();
  return s ? { label: s.label, type: s.type, stoppedAt: s.stoppedAt, ageSeconds: Math.max(0, Math.round((nowMs - Date.parse(s.stoppedAt)) / 1000)) } : null;
}

/** Record the result, alert on a new incident, send the recovery message when it ends, refresh metrics. */
async function conclude(
  rb: Runbook,
  host: Host,
  cluster: ClusterSummary,
  check: 'freshness' | 'archive',
  what: string,
  ok: boolean,
  problems: string[],
  alert: { error?: string; fields?: Record<string, string> },
  observation?: Record<string, unknown>,
): Promise<{ transition: RecordHealthResult['transition']; notified?: 'alert' | 'recovery' }> {
  const rec = await rb.step('Record the result on the host', () =>
    host.quick.recordHealthState({ cluster: cluster.name, check, ok, problems, workflowId: workflowInfo().workflowId, observation }),
  );
  let notified: 'alert' | 'recovery' | undefined;
  if (rec.transition === 'opened') {
    await rb.step(`Alert: ${what} failing`, async () => {
      const r = await notify({
        level: 'alert',
        title: `${what} failing on cluster ${cluster.name}`,
        cluster: cluster.name,
        runbook: workflowInfo().workflowType,
        step: check === 'archive' ? 'WAL archive health check' : 'backup freshness check',
        text: problems.map((p) => `• ${p}`).join('\n'),
        error: alert.error,
        fields: alert.fields,
      });
      if (r.ts) await host.quick.noteHealthAlert({ cluster: cluster.name, check, alertTs: r.ts });
    });
    notified = 'alert';
  } else if (rec.transition === 'resolved') {
    const prev = rec.previous as HealthStateFile;
    await rb.step(`Recovery: ${what} back to normal`, () =>
      notify({
        level: 'recovery',
        title: `${what} back to normal on cluster ${cluster.name}`,
        cluster: cluster.name,
        runbook: workflowInfo().workflowType,
        text: `Failing since ${prev.since}. It was: ${prev.problems.join('; ')}`,
        threadTs: prev.alertTs,
        broadcast: Boolean(prev.alertTs),
      }),
    );
    notified = 'recovery';
  } else if (rec.transition === 'ongoing') {
    rb.skip('Alert', `incident open since ${rec.previous?.since}; already alerted`);
  }
  await rb.step('Update the metrics', () => host.quick.refreshMetrics({ cluster: cluster.name }));
  return { transition: rec.transition, notified };
}

export async function backupFreshness(input: FreshnessInput): Promise<FreshnessResult> {
  const req = validInput(freshnessInputSchema, input, 'backupFreshness');
  const rb = new Runbook(`Backup freshness of cluster ${req.cluster}`);
  const [cluster, policy] = await rb.step('Look up the cluster and its thresholds', () =>
    Promise.all([lookups.describeCluster({ cluster: req.cluster }), lookups.clusterPolicy({ cluster: req.cluster })]),
  );
  const host = onHost(cluster);
  const thresholds = {
    maxAgeFull: req.maxAgeFull ?? policy.health.maxAgeFull,
    maxAgeDiff: req.maxAgeDiff ?? policy.health.maxAgeDiff,
    maxAgeIncr: req.maxAgeIncr ?? policy.health.maxAgeIncr,
  };
  const problems: string[] = [];
  let info: StanzaInfo | undefined;
  try {
    info = await rb.step(`Read pgbackrest info for stanza ${cluster.stanza}`, () => host.quick.readStanzaInfo({ cluster: req.cluster }));
  } catch (err) {
    problems.push(`cannot read the backups: ${rootMessage(err as Error)}`);
  }
  const now = Date.now();
  const repos: RepoFreshness[] = [];
  if (info) {
    for (const repo of policy.repos) {
      const sets = info.sets.filter((s) => s.repo === repo && !s.error);
      const r: RepoFreshness = {
        repo,
        full: newest(sets.filter((s) => s.type === 'full'), now),
        diff: newest(sets.filter((s) => s.type !== 'incr'), now),
        incr: newest(sets, now),
      };
      repos.push(r);
      const judge = (kind: 'full' | 'diff' | 'incr', limit: string | undefined) => {
        if (!limit) return;
        const n = r[kind];
        const noun = kind === 'full' ? 'full backup' : kind === 'diff' ? 'full or diff backup' : 'backup of any type';
        if (!n) problems.push(`repo${repo}: no ${noun} at all (limit ${limit})`);
        else if (n.ageSeconds * 1000 > durationMs(limit)) problems.push(`repo${repo}: newest ${noun} ${n.label} is ${formatDuration(n.ageSeconds * 1000)} old (limit ${limit})`);
      };
      judge('full', thresholds.maxAgeFull);
      judge('diff', thresholds.maxAgeDiff);
      judge('incr', thresholds.maxAgeIncr);
    }
  }
  const ok = problems.length === 0;
  rb.showAlso(() => (ok ? '\n**Result: fresh**' : `\n**Result: stale**\n${problems.map((p) => `- ${p}`).join('\n')}`));
  const fields: Record<string, string> = {};
  for (const r of repos) fields[`repo${r.repo} newest full`] = r.full ? `${r.full.label} (${formatDuration(r.full.ageSeconds * 1000)} ago)` : 'none';
  const { transition, notified } = await conclude(rb, host, cluster, 'freshness', 'Backup freshness', ok, problems, { fields });
  return { cluster: req.cluster, check: 'freshness', ok, checkedAt: new Date(now).toISOString(), problems, notes: [], transition, notified, thresholds, repos };
}

export async function archiveHealth(input: ArchiveHealthInput): Promise<ArchiveHealthResult> {
  const req = validInput(archiveHealthInputSchema, input, 'archiveHealth');
  const rb = new Runbook(`WAL archive health of cluster ${req.cluster}`);
  const [cluster, policy] = await rb.step('Look up the cluster and its thresholds', () =>
    Promise.all([lookups.describeCluster({ cluster: req.cluster }), lookups.clusterPolicy({ cluster: req.cluster })]),
  );
  const host = onHost(cluster);
  const timeout = req.archiveTimeoutSeconds ?? 10;
  const maxArchiveAge = req.maxArchiveAge ?? policy.health.maxArchiveAge;
  const problems: string[] = [];
  const notes: string[] = [];

  const before: ArchiverStatus = await rb.step('Read pg_stat_archiver', () => host.quick.readArchiverStatus({ cluster: req.cluster }));
  let checkPassed: boolean | null = null;
  let checkError: string | undefined;
  let after = before;
  if (!before.running) {
    problems.push('PostgreSQL is not running: nothing is archived');
  } else {
    const chk = await rb.step(`pgbackrest check (archive timeout ${timeout} s)`, () =>
      host.quick.runArchiveCheck.executeWithOptions({ summary: `pgbackrest check --archive-timeout=${timeout}` }, [
        { cluster: req.cluster, archiveTimeoutSeconds: timeout },
      ]),
    );
    checkPassed = chk.ok;
    if (!chk.ok) {
      checkError = chk.error;
      problems.push(`pgbackrest check failed: ${chk.error}`);
    }
    after = await rb.step('Read pg_stat_archiver again', () => host.quick.readArchiverStatus({ cluster: req.cluster }));
  }

  const s = after.stats;
  const prev = await rb.step('Read the previous result', async () => {
    const p = await host.quick.readHealthState({ cluster: req.cluster, check: 'archive' });
    return p;
  });
  const prevFailed = typeof prev?.observation?.failedCount === 'number' ? (prev.observation.failedCount as number) : null;
  let failingWal: string | null = null;
  let newFailures: number | null = null;
  if (s) {
    newFailures = prevFailed !== null && s.failedCount >= prevFailed ? s.failedCount - prevFailed : null;
    const stuck = Boolean(s.lastFailedAt && (!s.lastArchivedAt || s.lastFailedAt > s.lastArchivedAt));
    if (stuck) {
      failingWal = s.lastFailedWal;
      problems.push(
        `archive_command fails for WAL ${s.lastFailedWal} (last failure ${s.lastFailedAt}; last success ${s.lastArchivedWal ?? 'never'}${s.lastArchivedAt ? ` at ${s.lastArchivedAt}` : ''}; ${s.failedCount} failure(s) since the statistics reset)`,
      );
    } else if (newFailures) {
      notes.push(`${newFailures} archive failure(s) since the previous check, archiving has recovered since (last failed WAL ${s.lastFailedWal} at ${s.lastFailedAt})`);
    }
    if (s.lastArchivedAt && after.serverNow) {
      const age = (Date.parse(after.serverNow) - Date.parse(s.lastArchivedAt)) / 1000;
      if (age * 1000 > durationMs(maxArchiveAge)) problems.push(`the last archived WAL ${s.lastArchivedWal} is ${formatDuration(age * 1000)} old (limit ${maxArchiveAge})`);
    } else if (!s.lastArchivedAt) {
      problems.push('no WAL segment has ever been archived');
    }
  }
  const ok = problems.length === 0;
  rb.showAlso(() =>
    [
      ok ? '\n**Result: archiving works**' : `\n**Result: archiving FAILING**\n${problems.map((p) => `- ${p}`).join('\n')}`,
      s ? `\nLast archived: ${s.lastArchivedWal ?? 'never'} at ${s.lastArchivedAt ?? '-'}; failures: ${s.failedCount}` : '',
    ].join(''),
  );
  const fields: Record<string, string> = {};
  if (failingWal) fields['Failing WAL'] = failingWal;
  if (s) fields['Last archived'] = `${s.lastArchivedWal ?? 'never'}${s.lastArchivedAt ? ` at ${s.lastArchivedAt}` : ''}`;
  if (newFailures) fields['New failures'] = String(newFailures);
  const { transition, notified } = await conclude(
    rb,
    host,
    cluster,
    'archive',
    'WAL archiving',
    ok,
    problems,
    { error: checkError, fields },
    s ? { failedCount: s.failedCount, archivedCount: s.archivedCount } : undefined,
  );
  return {
    cluster: req.cluster,
    check: 'archive',
    ok,
    checkedAt: after.serverNow ?? new Date().toISOString(),
    problems,
    notes,
    transition,
    notified,
    running: before.running,
    checkPassed,
    checkError,
    failedCount: s?.failedCount ?? null,
    newFailures,
    lastArchivedWal: s?.lastArchivedWal ?? null,
    lastArchivedAt: s?.lastArchivedAt ?? null,
    lastFailedWal: s?.lastFailedWal ?? null,
    lastFailedAt: s?.lastFailedAt ?? null,
    failingWal,
  };
}
