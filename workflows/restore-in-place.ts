/**
 * Runbook: restore a cluster IN PLACE (destructive) — after an accidental DELETE, say.
 *
 * 1. Check the target against the repository and the confirmation token; check that no directory name
 *    this run will use is taken. Anything wrong stops here, with the cluster untouched.
 * 2. Pre-restore checklist (automated checks and sign-offs by people), then the approval gate with the
 *    exact parameters. The approval belongs to this run: after a Reset it is asked for again.
 * 3. Safety net when the cluster runs (config: restore.safetyBackup): an incr backup and a restore point
 *    named after this run, so the state before the restore is itself recoverable.
 * 4. Stop PostgreSQL (fast); move the data directory aside to <data>.pre-restore-<run> (never deleted).
 * 5. `pgbackrest restore` into this run's staging folder — on a filesystem that clones files, `--delta` onto a
 *    reflink clone of the original (minutes instead of hours) — renamed into the data directory; start; wait
 *    until recovery ends and it is promoted and answers. Any failure or cancellation up to here rolls back
 *    on its own: the failed restore is kept as <data>.failed-restore-<run>, the original goes back.
 * 6. POINT OF NO RETURN: the restored cluster is promoted and answers. From here on nothing is undone
 *    automatically. A failing post-restore check, a sign-off that does not come, or a cancellation PAUSES
 *    the runbook for a person: retry, keep the restore, or roll back (then every write since the promotion
 *    is kept aside as <data>.rolled-back-<run>, never deleted).
 * 7. The kept directory stays until `pgdr cleanup --run <run>` (which needs its own approval).
 * A worker crash anywhere resumes to the same outcome: every step below is idempotent, and the activities
 * themselves refuse to touch anything this run did not create or move aside (activities/restore-in-place.ts).
 */
import { allHandlersFinished, ApplicationFailure, CancellationScope, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { RecoveryReport } from '../activities/recovery';
import { restoreInPlaceInputSchema, type RestoreInPlaceInput } from '../common/inputs';
import { resolveRestoreTarget } from '../common/restore-target';
import { runTag } from '../common/run-identity';
import { approvalAudit, approvalOfThisRun, requestApproval, type ApprovalRequest } from './approval';
import { Checklist, type ChecklistSnapshot } from './checklist';
import { Pauses, type Pause } from './pause';
import { postRestoreItems, preRestoreItems } from './restore-checklists';
import { archiveNewTimeline, preRestoreCheck, restoreRequestFor, runPostRestoreChecklist } from './restore-steps';
import { lookups, onHost } from './activity-options';
import { notify, Runbook, validInput } from './runbook';
import { rootMessage } from '../common/errors';

export interface RestoreInPlaceResult {
  cluster: string;
  /** The run tag: directory names and `pgdr cleanup --run`. */
  run: string;
  target: string;
  set: string;
  /** Where the original data directory is kept. */
  keptOriginalAt: string;
  safetyBackup?: { label: string; restorePoint: string };
  /** How the restore ran (planned vs. actual mode, why, the estimate shown to the approver, measured time and space). */
  restore: { planned: string; mode: string; why: string; expected: string; durationMs: number; cloneMs?: number; spaceUsedBytes: number };
  recovery: RecoveryReport;
  checklists: ChecklistSnapshot[];
  approvals: ReturnType<typeof approvalAudit>;
  /** Decisions people took after the point of no return. */
  pauses: Pause[];
  /** Things to fix after a successful restore (e.g. WAL archiving on the new timeline, checks kept failing). */
  warnings: string[];
  durationMs: number;
}

/** The restore mode in words, for the approval request and the steps. */
function modeText(mode: string): string {
  return mode === 'reflink-delta' ? 'delta restore onto a reflink clone of the original' : mode === 'copy-delta' ? 'delta restore onto a copy of the original' : 'full restore';
}

export async function restoreInPlace(input: RestoreInPlaceInput): Promise<RestoreInPlaceResult> {
  const req = validInput(restoreInPlaceInputSchema, input, 'restoreInPlace');
  const wf = workflowInfo().workflowId;
  const run = runTag(workflowInfo());
  const rb = new Runbook(`IN-PLACE restore of cluster ${req.cluster}`);
  const started = Date.now();
  const warnings: string[] = [];

  // 1. Validate everything before touching anything.
  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster, repo: req.target.repo }));
  const host = onHost(cluster);
  const settings = await rb.step('Read the restore settings', () => lookups.restoreSettings({ cluster: req.cluster }));
  /** Where the new timeline's first WAL segment is awaited after a promotion (or a rollback after one). */
  const archiveRoute = { ...cluster, newTimelineArchiveWait: settings.newTimelineArchiveWait };
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
  const layout = await rb.step('Check the data directory and the names this run will use', () => host.quick.inPlaceLayout({ cluster: req.cluster }));
  const plan = await rb.step('Choose how to restore (delta onto a reflink clone, or in full)', () => host.quick.chooseInPlaceMode({ cluster: req.cluster, restoreBytes: target.set.size }));
  rb.section('target', () => `Restoring **${target.description}** IN PLACE (${modeText(plan.mode)}: ${plan.estimate}); the current data directory is kept at \`${layout.aside}\``);

  // 2. Pre-restore checklist, then the approval gate.
  const pre = new Checklist('Pre-restore checklist', preRestoreItems(settings, 'in-place'), { kind: 'restoreInPlace', requestedBy: req.requestedBy }).watch(() => rb.render());
  rb.section('pre-restore', () => pre.markdown());
  const preResult = await rb.step('Pre-restore checklist', () =>
    pre.run(preRestoreCheck({ host, cluster: req.cluster, target, info, repo: req.target.repo, reason: req.reason }), settings.preChecklistTimeout as Duration),
  );
  if (!preResult.complete) {
    const why = preResult.waitingFor.length
      ? `nobody signed off ${preResult.waitingFor.map((i) => i.id).join(', ')}`
      : preResult.failed.map((i) => `${i.title}: ${i.note}`).join('; ');
    throw ApplicationFailure.nonRetryable(`pre-restore checklist not complete (${why}). Nothing was touched.`, 'ChecklistFailed');
  }

  const approvalRequest: ApprovalRequest = {
    kind: 'restoreInPlace',
    action: `Restore cluster ${req.cluster} IN PLACE to ${target.description} — the current data directory will be moved aside to ${layout.aside}; ${modeText(plan.mode)}, ${plan.estimate}`,
    details: {
      cluster: req.cluster,
      mode: `in place, ${modeText(plan.mode)}`,
      why: plan.why,
      expected: plan.estimate,
      target: target.description,
      backupSet: target.set.label,
      dataDirectory: layout.dataDir,
      keptAt: layout.aside,
      run,
      reason: req.reason,
    },
    requestedBy: req.requestedBy,
    reason: req.reason,
    runbook: rb,
  };
  const approved = await rb.step('Approval', () => requestApproval(approvalRequest));
  // A Reset replays the old run's votes: the destructive steps need an approval given to this run.
  const { grantedInRun } = await rb.step('Check that the approval belongs to this run', () => approvalOfThisRun(approved, approvalRequest));

  // 3. Safety net: the state before the restore is itself recoverable.
  let safetyBackup: RestoreInPlaceResult['safetyBackup'];
  const state = await rb.step('Check whether the cluster runs', () => host.quick.inPlaceLayout({ cluster: req.cluster }));
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

  const pauses = new Pauses({
    rb,
    subject: `in-place restore of ${req.cluster}`,
    cluster: req.cluster,
    kind: 'restoreInPlace',
    requestedBy: req.requestedBy,
    cli: (c) => `pgdr decide ${wf} ${c === 'rollBack' ? 'roll-back' : c} --as <you> --note "…"`,
  });

  // 4.–5. Stop, move aside, restore, start. Until the restored cluster is promoted, any failure rolls back.
  let recovery: RecoveryReport;
  let restored: RestoreInPlaceResult['restore'] | undefined;
  try {
    await rb.step('Stop PostgreSQL (fast shutdown)', () => host.long.stopCluster({ cluster: req.cluster, approvedInRun: grantedInRun }));
    await rb.step(`Move the data directory aside to ${layout.aside}`, () => host.long.moveDataDirAside({ cluster: req.cluster, approvedInRun: grantedInRun }));
    const out = await rb.step(`Restore ${target.description} (${modeText(plan.mode)})`, () =>
      host.long.restoreIntoDataDir.executeWithOptions({ summary: `pgbackrest restore ${plan.mode === 'full' ? '' : '--delta '}${target.description} → ${layout.dataDir}` }, [
        { cluster: req.cluster, approvedInRun: grantedInRun, request: restoreRequestFor(req.cluster, target), mode: plan.mode },
      ]),
    );
    restored = { planned: plan.mode, mode: out.mode, why: out.fallback ?? plan.why, expected: plan.estimate, durationMs: out.durationMs, cloneMs: out.cloneMs, spaceUsedBytes: out.spaceUsedBytes };
    if (out.fallback) warnings.push(`planned ${modeText(plan.mode)}, ran a full restore: ${out.fallback}`);
    recovery = await rb.step('Start PostgreSQL and wait until recovery ends and it is promoted', () => host.long.startClusterAndWait({ cluster: req.cluster }));
  } catch (err) {
    // Also when the run is cancelled, and after a crash (the workflow resumes here).
    const original = isCancellation(err) ? 'was cancelled' : `failed: ${err instanceof Error ? rootMessage(err) : String(err)}`;
    const rollback = await CancellationScope.nonCancellable(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await rb.step('Roll back: put the original data directory back and start it', () => host.long.rollBackInPlace({ cluster: req.cluster }));
        } catch (failed) {
          // The original is kept aside under this run's name whatever happened: a person takes it from here.
          const d = await pauses.pause('Roll back', failed, attempt, ['retry', 'abort'], settings.pauseTimeout as Duration);
          if (d.choice !== 'retry') {
            throw ApplicationFailure.nonRetryable(
              `in-place restore of ${req.cluster} ${original}; the ROLLBACK FAILED (${rootMessage(failed as Error)}) and was ${d.choice === 'abort' ? `abandoned by ${d.by}` : 'not retried in time'}: the original data directory is kept at ${layout.aside} — put it back by hand`,
              'RollbackFailed',
            );
          }
        }
      }
    });
    throw ApplicationFailure.nonRetryable(
      `in-place restore of ${req.cluster} ${original} — ROLLED BACK: ${rollback.note}, and it answers.`,
      'RestoreRolledBack',
    );
  }

  // 6. POINT OF NO RETURN: promoted and answering. Nothing below undoes the restore without a person.
  rb.section('point-of-no-return', () => `**Point of no return passed**: ${req.cluster} is restored, promoted and answers (timeline ${recovery.timeline ?? '?'}). Only a person can roll it back.`);
  const post = new Checklist('Post-restore checklist', postRestoreItems(settings, 'in-place'), { kind: 'restoreInPlace', requestedBy: req.requestedBy }).watch(() => rb.render());
  let rolledBack: string | undefined;
  const afterPromotion = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      let problem: unknown;
      try {
        await runPostRestoreChecklist(rb, host, {
          cluster: req.cluster,
          list: post,
          timeout: settings.postChecklistTimeout,
          report: () => ({ kind: 'restore-in-place', cluster: req.cluster, run, target: target.description, set: target.set.label, keptOriginalAt: layout.aside, requestedBy: req.requestedBy, reason: req.reason, approvals: approvalAudit(), restore: restored, recovery }),
        });
        const open = post.items.filter((i) => i.state === 'failed' || (i.kind === 'manual' && i.state === 'pending'));
        if (!open.length) return;
        problem = new Error(`post-restore checklist: ${open.map((i) => `${i.title}: ${i.state === 'pending' ? `not signed within ${settings.postChecklistTimeout}` : i.note}`).join('; ')}`);
      } catch (err) {
        if (isCancellation(err)) throw err;
        problem = err;
      }
      const d = await pauses.pause('Post-restore checklist', problem, attempt, ['retry', 'keep', 'rollBack'], settings.pauseTimeout as Duration);
      if (d.choice === 'retry') continue;
      if (d.choice === 'rollBack') {
        rolledBack = d.by;
        return;
      }
      warnings.push(`the restore was kept with an incomplete post-restore checklist (${d.choice === 'timeout' ? `nobody decided within ${settings.pauseTimeout}` : `kept by ${d.by}${d.note ? `: ${d.note}` : ''}`}): ${rootMessage(problem as Error)}`);
      return;
    }
  };
  try {
    await afterPromotion();
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // A cancellation after the point of no return is a question for a person, never a rollback.
    await CancellationScope.nonCancellable(async () => {
      const d = await pauses.pause('Cancelled after the point of no return', new Error('the workflow was cancelled; the restored cluster is promoted and answers'), 1, ['keep', 'rollBack'], settings.pauseTimeout as Duration);
      if (d.choice === 'rollBack') rolledBack = d.by;
      else warnings.push(`cancelled after the point of no return; the restore was kept (${d.choice === 'timeout' ? 'nobody decided' : `by ${d.by}`})`);
    });
  }
  // A person has decided: what follows finishes even when the run was cancelled (the decision was the answer).
  return CancellationScope.nonCancellable(async (): Promise<RestoreInPlaceResult> => {
    if (rolledBack) {
      const r = await rb.step(`Roll back (chosen by ${rolledBack}): keep every write since the promotion aside, put the original back`, () =>
        host.long.rollBackInPlace({ cluster: req.cluster, afterPromotion: true }),
      );
      // Its new timeline must reach the archive too, or a restore to "latest" could follow the abandoned one.
      const archiving = r.newTimeline !== undefined ? await archiveNewTimeline(rb, archiveRoute, req.cluster, r.newTimeline) : undefined;
      throw ApplicationFailure.nonRetryable(`in-place restore of ${req.cluster} ROLLED BACK by ${rolledBack} after the promotion: ${r.note}.${archiving ? ` ${archiving}` : ''}`, 'RestoreRolledBack');
    }

    // The restore stands; archiving problems on the new timeline are reported, never rolled back.
    const archiving = await archiveNewTimeline(rb, archiveRoute, req.cluster, recovery.timeline);
    if (archiving) {
      warnings.push(archiving);
      await notify({ level: 'warning', title: `In-place restore of ${req.cluster}: archiving needs attention`, cluster: req.cluster, runbook: 'restoreInPlace', text: archiving });
    }
    rb.section('target', () => `Restored **${target.description}** IN PLACE; the previous data directory is kept at \`${layout.aside}\` until \`pgdr cleanup --cluster ${req.cluster} --run ${run}\``);

    await condition(allHandlersFinished);
    return {
      cluster: req.cluster,
      run,
      warnings,
      target: target.description,
      set: target.set.label,
      keptOriginalAt: layout.aside,
      safetyBackup,
      restore: restored!,
      recovery,
      checklists: [pre.snapshot(), post.snapshot()],
      approvals: approvalAudit(),
      pauses: pauses.all.map((p) => ({ ...p })),
      durationMs: Date.now() - started,
    };
  });
}
