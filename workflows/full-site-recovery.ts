/**
 * Runbook: FULL-SITE RECOVERY — the database host is gone; rebuild the cluster on a new host from the
 * repository (the DR plan's "Full Site Recovery", timed against its RTO table). People and automation in one
 * runbook: manual items wait for a named person, automated steps run on the NEW host's worker (task queue
 * pgdr-host-<targetHost>, with that host's pgdr.yaml describing where the cluster lives there).
 *
 * 1. Approval gate (approvals.fullSiteRecovery: 2 people by default).
 * 2. People sign off: the old host is fenced off, the new host is provisioned, packages are installed,
 *    secrets are in place.
 * 3. pgdr checks the new host itself: its worker answers; `pg_ctl --version`, `pgbackrest version`; the
 *    pgBackRest configuration has the stanza and the repo; the cipher passphrase works (`info` on the repo
 *    answers status ok — never printed); the repo is reachable and holds backups; the PostgreSQL major
 *    version matches the stanza's; the data directory is empty or absent (pgdr never deletes data).
 * 4. Restore latest (or the target) from the chosen repo; start; wait until promoted; post-restore checks.
 * 5. Application services (configured commands / HTTP checks, or a person's sign-off); the DNS / traffic
 *    switch (optional hook command, then a person confirms).
 * 6. The DR report (timeline, approvers, backup set, point reached, checklists, measured RTO, follow-ups):
 *    Markdown + SVG Gantt in <stateDir>/audit/dr-reports/ on the new host, in the result, in Slack, and
 *    `pgdr report <workflowId>`.
 *
 * A failed automated step PAUSES the runbook with its error; on-call fixes the host and sends the Update
 * `retry` (the step runs again) or `abort` (the runbook stops with a report). `pgdr dr retry|abort`.
 *
 * Drill mode (`drill: true`): the same runbook into a scratch folder on the target host; no approval, the
 * production-only items (old host fenced, applications, DNS) are skipped with "drill", and the scratch
 * cluster is always torn down at the end (non-cancellable).
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  isCancellation,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { FullSitePlan, TargetRecovery } from '../activities/full-site';
import { durationMs } from '../common/approvals';
import { replayReached, type DrFacts, type DrOutcome, type DrPause } from '../common/dr-report';
import { fullSiteRecoveryInputSchema, type FullSiteRecoveryInput } from '../common/inputs';
import { resolveRestoreTarget, type ResolvedTarget } from '../common/restore-target';
import { runTag, type RunIdentity } from '../common/run-identity';
import { hostTaskQueue, type CheckOutcome, type StanzaInfo } from '../common/types';
import { approvalAudit, requestApproval } from './approval';
import { AttendedSteps, Aborted } from './attended-steps';
import type { ChecklistSnapshot } from './checklist';
import { archiveNewTimeline, restoreRequestFor } from './restore-steps';
import { Pauses } from './pause';
import { DrRecord, type DrReportOutcome } from './dr-record';
import { lookups, onTarget } from './activity-options';
import { notify, Runbook, validInput, type StepRecord } from './runbook';
import { rootMessage } from '../common/errors';
import { formatDuration } from '../common/human-time';

export interface FullSiteRecoveryResult {
  outcome: DrOutcome;
  workflowId: string;
  cluster: string;
  targetHost: string;
  drill: boolean;
  repo?: number;
  set?: string;
  target: string;
  reached?: TargetRecovery;
  rto: { target: string; targetMs: number; measuredMs?: number; databaseAvailableMs?: number; exceeded?: boolean };
  steps: StepRecord[];
  checklists: ChecklistSnapshot[];
  approvals: ReturnType<typeof approvalAudit>;
  pauses: DrPause[];
  report: DrReportOutcome;
  error?: string;
}

export interface FullSiteState {
  cluster: string;
  targetHost: string;
  drill: boolean;
  outcome: DrOutcome;
  paused: DrPause | null;
}

export const fullSiteStateQuery = defineQuery<FullSiteState>('fullSiteState');
export const drReportQuery = defineQuery<string>('drReport');

/** The scratch folder name of a drill run: one per Temporal run (a Reset or a reused id gets its own). */
export function fullSiteScratchName(run: RunIdentity): string {
  return `pgdr-dr-${runTag(run).replace(/^dr-/, '')}`.slice(-80).replace(/^[^A-Za-z0-9]+/, '');
}



const now = () => new Date().toISOString();

export async function fullSiteRecovery(input: FullSiteRecoveryInput): Promise<FullSiteRecoveryResult> {
  const req = validInput(fullSiteRecoveryInputSchema, input, 'fullSiteRecovery');
  const drill = req.drill === true;
  const wf = workflowInfo().workflowId;
  const run = wf.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100);
  const scratch = fullSiteScratchName(workflowInfo());
  const startedAt = now();
  const rb = new Runbook(`${drill ? 'DR DRILL (full-site recovery)' : 'FULL-SITE RECOVERY'} of cluster ${req.cluster} onto host ${req.targetHost}`);
  const target = onTarget({ taskQueue: hostTaskQueue(req.targetHost) });
  const requestedTarget = req.target ?? { type: 'latest' as const };
  const targetText = `${requestedTarget.type}${requestedTarget.value ? ` ${requestedTarget.value}` : ''}${requestedTarget.set ? ` (set ${requestedTarget.set})` : ''}`;

  // ---- what the DR report will say, the queries and the Updates ----
  const facts: DrFacts = {
    workflowId: wf,
    cluster: req.cluster,
    targetHost: req.targetHost,
    drill,
    outcome: 'running',
    requestedBy: req.requestedBy,
    reason: req.reason,
    startedAt,
    repo: req.repo ? { index: req.repo } : undefined,
    target: { requested: targetText },
    rto: { target: '2h', targetMs: 2 * 3_600_000 },
    notes: [],
  };
  const notes = facts.notes!;
  let plan: FullSitePlan | undefined;
  let resolved: ResolvedTarget | undefined;
  let info: StanzaInfo | undefined;
  let reached: TargetRecovery | undefined;
  const pauses = new Pauses({
    rb,
    subject: `${drill ? 'DR drill' : 'full-site recovery'} of ${req.cluster} onto ${req.targetHost}`,
    cluster: req.cluster,
    kind: 'fullSiteRecovery',
    requestedBy: req.requestedBy,
    cli: (c) => (c === 'retry' ? `pgdr dr retry ${wf} --as <you> --note "…"` : `pgdr dr abort ${wf} --as <you> --reason "…"`),
  });
  const attended = new AttendedSteps(rb, pauses, { kind: 'fullSiteRecovery', requestedBy: req.requestedBy });

  const record = new DrRecord(facts, rb, pauses, attended);

  setHandler(fullSiteStateQuery, () => ({ cluster: req.cluster, targetHost: req.targetHost, drill, outcome: facts.outcome, paused: pauses.current }), {
    description: 'Where the full-site recovery stands: paused (step, error, since) or not, and its outcome',
  });
  setHandler(drReportQuery, () => record.markdown(), { description: 'The DR report (Markdown) as of now' });

  // ================================ the runbook ================================
  let failure: unknown;
  let restoreTouched = false;
  await notify({
    level: 'info',
    title: `Started: ${drill ? 'DR drill' : 'FULL-SITE RECOVERY'} of ${req.cluster} onto ${req.targetHost}`,
    cluster: req.cluster,
    runbook: 'fullSiteRecovery',
    text: `Requested by ${req.requestedBy}: ${req.reason}`,
  });
  try {
    const defaults = await rb.step('Look up the cluster and its recovery policy', () => lookups.fullSiteDefaults({ cluster: req.cluster, repo: req.repo ?? req.target?.repo }));
    facts.previousHost = defaults.host;
    facts.rto = { target: defaults.rto, targetMs: durationMs(defaults.rto) };
    attended.pauseTimeout = defaults.pauseTimeout;
    attended.signOffTimeout = defaults.signOffTimeout;
    const repoWanted = req.repo ?? req.target?.repo;

    // 1. Approval gate.
    if (drill) {
      rb.skip('Approval', 'drill: nothing in production is touched');
    } else {
      const decisionMade = await rb.step('Approval (approvals.fullSiteRecovery)', () =>
        requestApproval({
          kind: 'fullSiteRecovery',
          action: `Rebuild cluster ${req.cluster} on host ${req.targetHost} from ${repoWanted ? `repo${repoWanted}` : 'the first configured repo'} (${targetText}); it becomes the primary`,
          details: { cluster: req.cluster, targetHost: req.targetHost, previousHost: defaults.host, repo: repoWanted ?? null, target: targetText, mode: 'full-site recovery' },
          requestedBy: req.requestedBy,
          reason: req.reason,
          runbook: rb,
        }),
      );
      attended.noteLast(`approved by ${decisionMade.approvedBy.join(', ')}`);
    }

    // 2. People: the new host is ready.
    const prep = attended.checklist('Before the rebuild (people sign off)', [
      { id: 'old-host-fenced', title: `The old host${defaults.host !== req.targetHost ? ` (${defaults.host})` : ''} is gone or fenced off: it must not come back as a second primary`, kind: 'manual', notRequester: true },
      { id: 'host-provisioned', title: `Host ${req.targetHost} is provisioned (same OS and disk layout)`, kind: 'manual' },
      { id: 'packages-installed', title: `PostgreSQL, pgBackRest and the pgdr worker are installed on ${req.targetHost}`, kind: 'manual' },
      { id: 'secrets-in-place', title: `The pgBackRest configuration and the repository cipher passphrase are in place on ${req.targetHost}`, kind: 'manual' },
    ]);
    if (drill) attended.skipItem(prep, 'old-host-fenced', 'drill');
    await attended.signOffs(prep, 'Sign-offs: the new host is ready');

    // 3. pgdr checks the new host itself, on its own worker.
    const checks = attended.checklist(`New host ${req.targetHost} (pgdr checks)`, [
      { id: 'worker', title: `The pgdr worker on ${req.targetHost} answers and knows cluster ${req.cluster}`, kind: 'auto' },
      { id: 'packages', title: 'PostgreSQL and pgBackRest are installed (pg_ctl --version, pgbackrest version)', kind: 'auto' },
      { id: 'pgbackrest-config', title: 'The pgBackRest configuration is present and valid for the stanza', kind: 'auto' },
      { id: 'cipher-passphrase', title: 'The cipher passphrase is available (info on the repo answers ok)', kind: 'auto' },
      { id: 'repo-reachable', title: 'The repository is reachable and holds backups', kind: 'auto' },
      { id: 'version-match', title: 'The PostgreSQL major version matches the stanza', kind: 'auto' },
      { id: 'data-directory', title: drill ? 'The scratch location is free' : 'The data directory is empty or absent; the port is free; there is room', kind: 'auto' },
    ]);
    await attended.autoItem(checks, 'worker', `Reach the pgdr worker on ${req.targetHost}`, async () => {
      plan = await target.quick.fullSitePlan.executeWithOptions({ summary: `read ${req.cluster} from the config of ${req.targetHost}` }, [
        { cluster: req.cluster, repo: repoWanted, drill, scratch },
      ]);
      facts.repo = plan.repo;
      return {
        ok: true,
        note: `${hostTaskQueue(req.targetHost)} answers (${plan.workerHost}); there ${req.cluster} lives in ${plan.dataDir}, port ${plan.port}; restoring from repo${plan.repo.index}${plan.repo.name ? ` (${plan.repo.name})` : ''}`,
      };
    });
    const p = plan!;
    facts.rto = { target: p.rto, targetMs: durationMs(p.rto) };
    const repo = p.repo.index;
    const long = target.long(p.backupTimeout, p.heartbeatTimeout);
    const pkg = await attended.autoItem(checks, 'packages', 'Check PostgreSQL and pgBackRest on the new host', () => target.quick.checkHostPackages({ cluster: req.cluster }));
    const pgMajor = (pkg as CheckOutcome & { pgMajor?: number }).pgMajor;
    const conf = await attended.autoItem(checks, 'pgbackrest-config', 'Check the pgBackRest configuration', () => target.quick.checkPgBackRestConfig({ cluster: req.cluster, repo }));
    const encrypted = Boolean((conf as CheckOutcome & { encrypted?: boolean }).encrypted);
    await attended.autoItem(checks, 'cipher-passphrase', `Check the cipher passphrase of repo${repo}`, () => target.quick.checkCipherPassphrase({ cluster: req.cluster, repo, encrypted }));
    await attended.autoItem(checks, 'repo-reachable', `Check that repo${repo} is reachable`, () => target.quick.checkRepoReachable({ cluster: req.cluster, repo }));
    await attended.autoItem(checks, 'version-match', 'Check the PostgreSQL major version against the stanza', () =>
      target.quick.checkMajorVersion({ cluster: req.cluster, repo, pgMajor: pgMajor ?? 0 }),
    );
    info = await attended.guarded(`Read the backup sets in repo${repo}`, () => target.quick.readStanzaInfo({ cluster: req.cluster, repo }));
    resolved = await rb.step('Check the recovery target', async () => {
      const r = resolveRestoreTarget({ ...requestedTarget, repo }, info!, now());
      if (!r.ok) throw ApplicationFailure.nonRetryable(r.message, 'BadInput');
      return r.target;
    });
    facts.set = { label: resolved.set.label, type: resolved.set.type, stoppedAt: resolved.set.stoppedAt, size: resolved.set.size };
    facts.target.description = resolved.description;
    attended.noteLast(resolved.description);
    rb.section('target', () => `Restoring **${resolved!.description}** onto ${req.targetHost}${drill ? ' (drill: scratch folder)' : ` into ${p.dataDir}`}`);
    await attended.autoItem(checks, 'data-directory', drill ? 'Check the scratch location' : `Check that ${p.dataDir} is empty or absent`, () =>
      target.quick.checkTargetLocation({ cluster: req.cluster, run, drill, scratch, needBytes: resolved!.set.size, repo }),
    );

    // 4. Restore, start, wait until promoted, check.
    restoreTouched = true;
    const request = restoreRequestFor(req.cluster, resolved);
    const restoredOut = await attended.guarded(`Restore ${resolved.description}`, () =>
      long.restoreOnTarget.executeWithOptions({ summary: `pgbackrest restore ${resolved!.description} on ${req.targetHost}` }, [
        { cluster: req.cluster, run, drill, scratch, request: { set: request.set, repo: request.repo, target: request.target } },
      ]),
    );
    if (restoredOut.keptStaleAt) {
      const how = restoredOut.mode === 'reflink-delta' ? 'a delta restore onto a reflink clone of it' : restoredOut.mode === 'copy-delta' ? 'a delta restore onto a copy of it' : 'a full restore';
      notes.push(`The stale copy found in the target directory is kept at ${restoredOut.keptStaleAt} on ${req.targetHost} (never deleted); the restore was ${how}${restoredOut.fallback ? ` (${restoredOut.fallback})` : ''}, ${formatDuration(restoredOut.durationMs)}.`);
      attended.noteLast(notes[notes.length - 1]);
    }
    reached = await attended.guarded(`Start PostgreSQL on ${req.targetHost} and wait until it is promoted`, () =>
      long.startOnTarget({ cluster: req.cluster, drill, scratch }),
    );
    facts.location = { dataDir: reached.dataDir, port: reached.port, scratch: drill };
    facts.reached = {
      recoveryMs: reached.recoveryMs,
      lastReplayLsn: reached.lastReplayLsn,
      lastReplayTime: reached.lastReplayTime,
      timeline: reached.timeline,
      stoppedAt: reached.stoppedAt,
      walMax: info?.window?.walMax ?? null,
      reachedWalMax: null,
    };
    attended.noteLast(`port ${reached.port}; ${reached.stoppedAt ?? 'end of the archived WAL'}; timeline ${reached.timeline}`);
    if (!drill) {
      const archiving = await archiveNewTimeline(rb, { taskQueue: hostTaskQueue(req.targetHost), heartbeatTimeout: p.heartbeatTimeout, newTimelineArchiveWait: p.newTimelineArchiveWait }, req.cluster, reached.timeline);
      if (archiving) notes.push(archiving);
    }

    const post = attended.checklist('After the restore (pgdr checks)', [
      { id: 'connectivity', title: 'Database connectivity: SELECT 1', kind: 'auto' },
      ...(p.expectTables ? [{ id: 'table-counts', title: 'Table counts match expectations (restore.expectTables)', kind: 'auto' as const }] : []),
      ...(p.migrationsTable ? [{ id: 'migrations', title: `Recent migrations are present (${p.migrationsTable})`, kind: 'auto' as const }] : []),
      {
        id: 'point-reached',
        title: resolved.type === 'latest' ? 'Recovered up to the newest archived WAL' : 'Recovery stopped at the requested target',
        kind: 'auto',
      },
    ]);
    const at = { port: reached.port, socketDir: reached.socketDir, dataDir: reached.dataDir };
    for (const item of post.items) {
      if (item.id === 'point-reached') {
        await attended.autoItem(post, item.id, item.title, async () => {
          const r = reached!;
          if (resolved!.type === 'latest') {
            const reachedWal = replayReached(r.lastReplayLsn, info!.window?.walMax);
            facts.reached!.reachedWalMax = reachedWal;
            return {
              ok: reachedWal !== false,
              note: `last replayed WAL position ${r.lastReplayLsn ?? '?'}; newest archived segment ${info!.window?.walMax ?? '?'}${reachedWal === null ? ' (not comparable)' : ''}`,
            };
          }
          if (resolved!.type === 'immediate') return { ok: true, note: 'end of the backup (immediate)' };
          return { ok: Boolean(r.stoppedAt), note: r.stoppedAt ?? 'PostgreSQL logged no "recovery stopping" line' };
        });
      } else {
        await attended.autoItem(post, item.id, `Post-restore check: ${item.title}`, () => target.quick.postRestoreCheck({ cluster: req.cluster, item: item.id, at: drill ? at : undefined }));
      }
    }
    facts.databaseAvailableAt = now();

    // 5. Application services, then the DNS / traffic switch.
    const apps = attended.checklist(
      'Application services',
      p.applications.length
        ? p.applications.map((a) => ({ id: a.id, title: a.title, kind: 'auto' as const, optional: a.optional }))
        : [{ id: 'app-health', title: `Application services are restarted against ${req.targetHost} and healthy`, kind: 'manual' as const }],
    );
    if (drill) {
      for (const i of apps.items) attended.skipItem(apps, i.id, 'drill');
      rb.skip('Application services', 'drill: production applications are not touched');
    } else if (p.applications.length) {
      for (const a of p.applications) {
        await attended.autoItem(apps, a.id, `Application: ${a.title}`, () => target.quick.runConfiguredCheck({ cluster: req.cluster, item: a.id }));
      }
    } else {
      await attended.signOffs(apps, 'Sign-off: application services restarted and healthy');
    }

    const traffic = attended.checklist('DNS / traffic', [
      ...(p.dnsSwitchHook ? [{ id: 'dns-hook', title: `DNS / traffic switch hook: ${p.dnsSwitchHook}`, kind: 'auto' as const }] : []),
      { id: 'dns-switched', title: `DNS / traffic points to ${req.targetHost} (clients reach the new primary)`, kind: 'manual' },
    ]);
    if (drill) {
      for (const i of traffic.items) attended.skipItem(traffic, i.id, 'drill');
      rb.skip('DNS / traffic switch', 'drill: production DNS is not touched');
    } else {
      if (p.dnsSwitchHook) {
        await attended.autoItem(traffic, 'dns-hook', 'Run the DNS / traffic switch hook', () => target.quick.runDnsSwitchHook({ cluster: req.cluster, targetHost: req.targetHost, workflowId: wf }));
      }
      await attended.signOffs(traffic, 'Sign-off: DNS / traffic switched');
    }
    facts.outcome = drill ? 'drill-passed' : 'recovered';
  } catch (err) {
    failure = err;
    facts.outcome = err instanceof Aborted || isCancellation(err) ? 'aborted' : 'failed';
    facts.error = isCancellation(err) ? 'the workflow was cancelled' : err instanceof Error ? rootMessage(err) : String(err);
  }

  // 6. Drill teardown (always), the report (always). Not cancellable: the last word must be written.
  const result = await CancellationScope.nonCancellable(async (): Promise<FullSiteRecoveryResult> => {
    if (drill && plan && restoreTouched) {
      try {
        const r = await rb.step('Tear down the scratch cluster', () => target.long('10m', plan!.heartbeatTimeout).removeFullSiteScratch({ cluster: req.cluster, scratch }));
        attended.noteLast(`${r.dir} ${r.existed ? 'stopped and deleted' : 'was already gone'}`);
      } catch (err) {
        notes.push(`The drill's scratch copy on ${req.targetHost} could not be removed (${err instanceof Error ? rootMessage(err) : String(err)}): pgdr dr full-site cleanup is manual — stop it and delete ${plan.scratch?.dir}.`);
      }
    }
    const report = await record.write(target.report);
    const m = await record.announce(report);
    return {
      outcome: facts.outcome,
      workflowId: wf,
      cluster: req.cluster,
      targetHost: req.targetHost,
      drill,
      repo: plan?.repo.index,
      set: resolved?.set.label,
      target: resolved?.description ?? targetText,
      reached,
      rto: { ...facts.rto, measuredMs: m.measuredMs, databaseAvailableMs: m.databaseMs, exceeded: m.exceeded },
      steps: rb.steps.map((s) => ({ ...s })),
      checklists: attended.lists.map((l) => l.snapshot()),
      approvals: approvalAudit(),
      pauses: pauses.all.map((x) => ({ ...x })),
      report,
      error: facts.error,
    };
  });

  await condition(allHandlersFinished);
  if (failure !== undefined) {
    if (isCancellation(failure)) throw failure;
    throw ApplicationFailure.create({
      type: facts.outcome === 'aborted' ? 'FullSiteRecoveryAborted' : 'FullSiteRecoveryFailed',
      message: `${drill ? 'DR drill' : 'full-site recovery'} of ${req.cluster} onto ${req.targetHost} ${facts.outcome}: ${facts.error}${result.report.file ? ` — report: ${result.report.file} on ${result.report.host}` : ''}`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}
