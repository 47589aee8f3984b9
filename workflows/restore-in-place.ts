/**
 * Runbook: restore a cluster IN PLACE (destructive) — after an accidental DELETE, say.
 *
 * 1. Check the target against the repository and the confirmation token. Anything wrong stops here,
 *    with the cluster untouched.
 * 2. Pre-restore checklist (automated checks and sign-offs by people), then the approval gate with the
 *    exact parameters.
 * 3. Safety net when the cluster runs (config: restore.safetyBackup): an incr backup and a restore point
 *    named after this run, so the state before the restore is itself recoverable.
 * 4. Stop PostgreSQL (fast); move the data directory aside to <data>.pre-restore-<run> (never deleted).
 * 5. `pgbackrest restore` into the original path; start; wait until recovery ends and it is promoted;
 *    post-restore checklist.
 * 6. Any failure or cancellation after step 4 rolls back: the restored directory is kept as
 *    <data>.failed-restore-<run>, the original goes back and is started and checked.
 * 7. The kept directory stays until `pgdr cleanup --run <run>` (which needs its own approval).
 * A worker crash anywhere resumes to the same outcome: every step below is idempotent.
 */
import { allHandlersFinished, ApplicationFailure, CancellationScope, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { RecoveryReport } from '../activities/restore';
import { restoreInPlaceInputSchema } from '../common/inputs';
import { pgTime, resolveRestoreTarget, type RestoreTarget } from '../common/restore-target';
import { approvalAudit, requestApproval } from './approval';
import { Checklist, type ChecklistSnapshot } from './checklist';
import { postRestoreItems, preRestoreItems } from './restore-checklists';
import { archiveNewTimeline, restoreRequestFor, runPostRestoreChecklist } from './restore-steps';
import { config, notify, onHost, rootMessage, Runbook, validInput } from './runbook';

export interface RestoreInPlaceInput {
  cluster: string;
  target: RestoreTarget;
  /** Must equal the cluster's confirmation token (restore.confirmationToken). */
  confirmation: string;
  reason: string;
  requestedBy: string;
}

export interface RestoreInPlaceResult {
  cluster: string;
  run: string;
  target: string;
  set: string;
  /** Where the original data directory is kept. */
  keptOriginalAt: string;
  safetyBackup?: { label: string; restorePoint: string };
  recovery: RecoveryReport;
  checklists: ChecklistSnapshot[];
  approvals: ReturnType<typeof approvalAudit>;
  /** Things to fix after a successful restore (e.g. WAL archiving on the new timeline). */
  warnings: string[];
  durationMs: number;
}

/** The id of this run, used in directory names and by `pgdr cleanup --run`. */
function runIdOf(workflowId: string): string {
  return workflowId.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 100) || 'run';
}

export async function restoreInPlace(input: RestoreInPlaceInput): Promise<RestoreInPlaceResult> {
  const req = validInput(restoreInPlaceInputSchema, input, 'restoreInPlace');
  const run = runIdOf(workflowInfo().workflowId);
  const rb = new Runbook(`IN-PLACE restore of cluster ${req.cluster}`);
  const started = Date.now();

  // 1. Validate everything before touching anything.
  const cluster = await rb.step('Look up the cluster', () => config.describeCluster({ cluster: req.cluster, repo: req.target.repo }));
  const host = onHost(cluster);
  const settings = await rb.step('Read the restore settings', () => config.restoreSettings({ cluster: req.cluster }));
  if (req.confirmation !== settings.confirmationToken) {
    throw ApplicationFailure.nonRetryable(
      `the confirmation token does not match: an in-place restore deletes the current state of cluster ${req.cluster}; ` +
        'pass confirmation exactly as configured (restore.confirmationToken). Nothing was touched.',
      'BadInput',
    );
  }
  const info = await rb.step('Read the backup sets and the recoverable window', () => host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.target.repo }));
  const target = await rb.step('Check the restore target', async () => {
    const r = resolveRestoreTarget(req.target, info, new Date().toISOString());
    if (!r.ok) throw ApplicationFailure.nonRetryable(`${r.message}. Nothing was touched.`, 'BadInput');
    return r.target;
  });
  const layout = await rb.step('Check the data directory', () => host.quick.inPlaceLayout({ cluster: req.cluster, run }));
  rb.section('target', () => `Restoring **${target.description}** IN PLACE; the current data directory will be kept at \`${layout.aside}\``);

  // 2. Pre-restore checklist, then the approval gate.
  const pre = new Checklist('Pre-restore checklist', preRestoreItems(settings, 'in-place')).watch(() => rb.render());
  rb.section('pre-restore', () => pre.markdown());
  const preResult = await rb.step('Pre-restore checklist', () =>
    pre.run(async (id) => {
      switch (id) {
        case 'restore-point-identified':
          return { ok: true, note: `${target.description}; recoverable window ${pgTime(info.window!.from)} → ${pgTime(info.window!.to)}` };
        case 'backup-available': {
          const now = await host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.target.repo });
          const there = now.sets.some((s) => s.label === target.set.label);
          return { ok: now.status.code === 0 && there, note: there ? `set ${target.set.label} present (${now.status.message})` : `set ${target.set.label} is gone` };
        }
        case 'disk-space': {
          const d = await host.quick.checkRestoreDiskSpace({ cluster: req.cluster, restoreBytes: target.set.size });
          return { ok: d.ok, note: `${Math.round(d.freeBytes / 2 ** 20)} MB free in ${d.path}, the restore needs ${Math.round(d.neededBytes / 2 ** 20)} MB; the old directory stays where it is` };
        }
        case 'reason-documented':
          return { ok: true, note: req.reason };
        default:
          return host.quick.runConfiguredCheck({ cluster: req.cluster, item: id });
      }
    }, '24h'),
  );
  if (!preResult.complete) {
    const why = preResult.waitingFor.length
      ? `nobody signed off ${preResult.waitingFor.map((i) => i.id).join(', ')}`
      : preResult.failed.map((i) => `${i.title}: ${i.note}`).join('; ');
    throw ApplicationFailure.nonRetryable(`pre-restore checklist not complete (${why}). Nothing was touched.`, 'ChecklistFailed');
  }

  await rb.step('Approval', () =>
    requestApproval({
      kind: 'restoreInPlace',
      action: `Restore cluster ${req.cluster} IN PLACE to ${target.description} — the current data directory will be moved aside to ${layout.aside}`,
      details: {
        cluster: req.cluster,
        mode: 'in place',
        target: target.description,
        backupSet: target.set.label,
        dataDirectory: layout.dataDir,
        keptAt: layout.aside,
        reason: req.reason,
      },
      requestedBy: req.requestedBy,
      reason: req.reason,
      runbook: rb,
    }),
  );

  // 3. Safety net: the state before the restore is itself recoverable.
  let safetyBackup: RestoreInPlaceResult['safetyBackup'];
  const state = await rb.step('Check whether the cluster runs', () => host.quick.inPlaceLayout({ cluster: req.cluster, run }));
  if (state.running && settings.safetyBackup) {
    const { label } = await rb.step('Safety net: incr backup before the restore', () =>
      host.long.takeBackup({ cluster: req.cluster, type: 'incr', annotations: { 'pgdr-run': run, 'pgdr-purpose': 'before in-place restore' }, repo: req.target.repo }),
    );
    const name = `pgdr-before-${run}`.slice(0, 63);
    await rb.step(`Safety net: restore point "${name}"`, () => host.quick.createRestorePoint({ cluster: req.cluster, name }));
    safetyBackup = { label, restorePoint: name };
  } else {
    rb.skip('Safety net backup', state.running ? 'turned off in the config (restore.safetyBackup)' : 'the cluster is not running');
  }

  // 4. Stop and move aside. From here on, any failure rolls back.
  let recovery: RecoveryReport | undefined;
  let post: Checklist | undefined;
  try {
    // Heartbeating proxies from here on: a worker that dies in one of these steps is noticed in seconds.
    await rb.step('Stop PostgreSQL (fast shutdown)', () => host.long.stopCluster({ cluster: req.cluster }));
    await rb.step(`Move the data directory aside to ${layout.aside}`, () => host.long.moveDataDirAside({ cluster: req.cluster, run }));

    // 5. Restore into the original path, start, wait for promotion, check.
    await rb.step(`Restore ${target.description}`, () =>
      host.long.restoreIntoDataDir.executeWithOptions({ summary: `pgbackrest restore ${target.description} → ${layout.dataDir}` }, [
        { cluster: req.cluster, run, request: restoreRequestFor(req.cluster, target) },
      ]),
    );
    recovery = await rb.step('Start PostgreSQL and wait until recovery ends and it is promoted', () =>
      host.long.startClusterAndWait({ cluster: req.cluster }),
    );
    post = await runPostRestoreChecklist(rb, host, {
      cluster: req.cluster,
      items: postRestoreItems(settings, 'in-place'),
      timeout: '2h',
      report: () => ({
        kind: 'restore-in-place',
        cluster: req.cluster,
        run,
        target: target.description,
        set: target.set.label,
        keptOriginalAt: layout.aside,
        requestedBy: req.requestedBy,
        reason: req.reason,
        approvals: approvalAudit(),
        recovery,
      }),
    });
    const failed = post.failed();
    if (failed.length) throw ApplicationFailure.nonRetryable(`post-restore checks failed: ${failed.map((i) => `${i.title}: ${i.note}`).join('; ')}`, 'PostRestoreCheckFailed');
  } catch (err) {
    // 6. Roll back — also when the run is cancelled, and after a crash (the workflow resumes here).
    const original = err instanceof Error ? rootMessage(err) : String(err);
    const rollback = await CancellationScope.nonCancellable(() =>
      rb.step('Roll back: put the original data directory back and start it', () => host.long.rollBackInPlace({ cluster: req.cluster, run })),
    );
    const kept = rollback.failedRestoreDir ? ` The failed restore is kept at ${rollback.failedRestoreDir}.` : '';
    throw ApplicationFailure.nonRetryable(
      `in-place restore of ${req.cluster} ${isCancellation(err) ? 'was cancelled' : `failed: ${original}`} — ROLLED BACK: the original data directory is back in ${layout.dataDir} and answers.${kept}`,
      'RestoreRolledBack',
    );
  }

  // The restore stands; archiving problems on the new timeline are reported, never rolled back.
  const archiving = await archiveNewTimeline(rb, cluster.taskQueue, req.cluster, recovery!.timeline);
  if (archiving) await notify({ level: 'warning', title: `In-place restore of ${req.cluster}: archiving needs attention`, cluster: req.cluster, runbook: 'restoreInPlace', text: archiving });

  await condition(allHandlersFinished);
  return {
    cluster: req.cluster,
    run,
    warnings: archiving ? [archiving] : [],
    target: target.description,
    set: target.set.label,
    keptOriginalAt: layout.aside,
    safetyBackup,
    recovery: recovery!,
    checklists: [pre.snapshot(), post!.snapshot()],
    approvals: approvalAudit(),
    durationMs: Date.now() - started,
  };
}
