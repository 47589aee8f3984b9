/**
 * Runbook: verification drill — prove that a backup set restores, and measure how long it takes.
 *
 *  1. Verify the repository (`pgbackrest verify`, output parsed: it exits 0 on damage).
 *  2. Preflight: the set exists, the target is inside the recoverable window, the scratch disk has room.
 *  3. Restore the set into a fresh scratch folder (`--archive-mode=off`, the target, process-max).
 *  4. Start the copy on a free port with its own socket, wait until recovery ends and it is promoted.
 *  5. Validate: SELECT 1, tables, row counts against production, pg_amcheck, queries, migrations.
 *  6. Stop the copy and delete the scratch folder — always (success, failure, cancel, worker crash).
 *  7. Record: annotate the set `pgdr-verified=<time>`, metrics, notify; warn when the RTO is exceeded.
 *
 * Verify runs concurrently with preflight + restore + start (it reads the repo, the restore reads it too);
 * when verify finds damage the restore is cancelled. With a time target, the drill first writes an RPO
 * marker on production (the only write to production besides the annotation) and proves that exactly the
 * markers up to the target are restored.
 *
 * Outcome: a failed drill FAILS the workflow (schedules and the UI show red), after the failure has been
 * recorded and notified; a passed drill returns a DrillResult. The scratch folder is named after the
 * workflow id, so a cleanup re-run after a crash (on any worker of the host) finds it.
 */
import { ApplicationFailure, CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { DrillInput, DrillTarget } from '../common/inputs';
import { diskFullMessage, mayBeDiskFull, type DrillResult, type PreflightReport, type RpoMarker, type ValidationReport, type VerifyReport } from '../common/drill';
import { drillInputSchema } from '../common/inputs';
import { ANNOTATION, durationMs } from '../common/types';
import type { RecoveryReport } from '../activities/recovery';
import { forDrill, lookups, notifier } from './activity-options';
import { Runbook, validInput, type StepRecord } from './runbook';
import { rootMessage } from '../common/errors';

/** A short, stable scratch folder name derived from the workflow id (FNV-1a, deterministic). */
export function scratchNameFor(workflowId: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < workflowId.length; i++) {
    h ^= workflowId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const slug = workflowId.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 32).replace(/-+$/, '');
  return `pgdr-drill-${slug}-${h.toString(16).padStart(8, '0')}`;
}


export const STEP = {
  marker: 'Write an RPO marker on production and wait until its WAL is archived',
  verify: 'Verify the repository (pgbackrest verify)',
  preflight: 'Preflight: backup set, recoverable window, free disk space',
  restore: 'Restore the backup set into a scratch folder',
  start: 'Start the scratch copy and wait until recovery ends',
  validate: 'Validate the restored copy',
  cleanup: 'Stop the scratch copy and delete its folder',
  annotate: 'Annotate the proven backup set',
  record: 'Record and notify the result',
} as const;

export async function verifyDrill(input: DrillInput): Promise<DrillResult> {
  const req = validInput(drillInputSchema, input, 'verifyDrill');
  const wfId = workflowInfo().workflowId;
  const scratch = scratchNameFor(wfId);
  const target: DrillTarget = req.target ?? { type: 'immediate' };
  const rb = new Runbook(`Verification drill of cluster ${req.cluster}${req.set ? `, set ${req.set}` : ''} (target ${target.type}${target.value ? ` ${target.value}` : ''})`);
  const began = Date.now();

  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster, repo: req.repo }));
  const act = forDrill(cluster);

  let marker: RpoMarker | undefined;
  let verify: VerifyReport | null = null;
  let pre: PreflightReport | undefined;
  let restoredSet: string | null = null;
  let recovery: RecoveryReport | undefined;
  let validation: ValidationReport | null = null;
  let failure: unknown;
  let scratchDir = '';

  try {
    if (target.type === 'time') {
      marker = await rb.step(STEP.marker, () =>
        act.work.writeRpoMarker.executeWithOptions({ summary: `RPO marker in pgdr.drill_marker on ${req.cluster}` }, [
          { cluster: req.cluster, drill: wfId, target: target.value },
        ]),
      );
    }
    const restoreTarget: DrillTarget = target.type === 'time' ? { type: 'time', value: marker!.target } : target;

    // Verify || (preflight → restore → start). Damage found by verify cancels the restore branch.
    const restoreScope = new CancellationScope();
    const verifyP = rb.step(STEP.verify, () =>
      act.work.verifyRepository.executeWithOptions({ summary: `pgbackrest verify (stanza ${cluster.stanza})` }, [{ cluster: req.cluster, repo: req.repo }]),
    );
    verifyP.catch(() => restoreScope.cancel());
    const restoreP = restoreScope.run(async () => {
      pre = await rb.step(STEP.preflight, () =>
        act.quick.drillPreflight({ cluster: req.cluster, repo: req.repo, set: req.set, target: restoreTarget, scratch }),
      );
      scratchDir = pre.scratchDir;
      const label = pre.set.label;
      const restored = await rb.step(`${STEP.restore} (set ${label})`, () =>
        act.restore.restoreToScratch.executeWithOptions({ summary: `pgbackrest restore --set=${label} into ${pre!.scratchDir}` }, [
          {
            cluster: req.cluster,
            scratch,
            // Always the set the preflight chose: pgBackRest's own pick for a time target ignores timelines.
            set: label,
            repo: req.repo,
            target: restoreTarget,
            processMax: cluster.processMax,
          },
        ]),
      );
      restoredSet = restored.set ?? label;
      recovery = await rb.step(STEP.start, () =>
        act.restore.startScratchCopy.executeWithOptions({ summary: `start the scratch copy of ${req.cluster} and wait for promotion` }, [
          { cluster: req.cluster, scratch },
        ]),
      );
    });
    const [v, r] = await Promise.allSettled([verifyP, restoreP]);
    if (v.status === 'rejected') throw v.reason;
    verify = v.value;
    if (r.status === 'rejected') throw r.reason;

    await rb.step(STEP.validate, async () => {
      validation = await act.work.validateRestoredCopy.executeWithOptions({ summary: `validate the restored copy of ${req.cluster}` }, [
        {
          cluster: req.cluster,
          scratch,
          port: recovery!.port,
          socketDir: recovery!.socketDir,
          exactCounts: marker?.ownTarget ? marker.counts : undefined,
          marker,
          pointInTime: marker?.target ?? recovery!.lastReplayTime ?? pre!.set.stoppedAt,
        },
      ]);
      if (!validation.ok) {
        const bad = validation.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
        throw ApplicationFailure.nonRetryable(`validation of the restored copy failed: ${bad.join('; ')}`, 'DrillValidationFailed', validation);
      }
    });
  } catch (err) {
    failure = err;
    // A restore or recovery that ran out of disk must not read like a corrupt backup.
    const text = err instanceof Error && !isCancellation(err) ? rootMessage(err) : '';
    if (mayBeDiskFull(text)) {
      const at = await act.quick.scratchSpace({ cluster: req.cluster }).catch(() => null);
      const msg = at && diskFullMessage(text, { path: at.path, freeBytes: at.freeBytes, neededBytes: pre?.neededBytes ?? 0 });
      if (msg) failure = ApplicationFailure.nonRetryable(msg, 'DiskFull', { original: text });
    }
  } finally {
    // Always, also when cancelled; after a worker crash the workflow resumes on another worker and runs
    // this again; the activity is idempotent and finds the folder by the workflow-derived name.
    await CancellationScope.nonCancellable(() =>
      rb.step(STEP.cleanup, () =>
        act.cleanup.removeScratchCopy.executeWithOptions({ summary: `stop and delete scratch copy ${scratch}` }, [{ cluster: req.cluster, scratch }]),
      ),
    ).then((res) => (scratchDir = res.dir), (e) => (failure ??= e));
  }

  // Record.
  const dur = (prefix: string) => rb.steps.filter((s: StepRecord) => s.name.startsWith(prefix)).reduce((a, s) => a + (s.durationMs ?? 0), 0);
  const timings = {
    restoreMs: dur(STEP.restore),
    recoveryMs: dur(STEP.start),
    validationMs: dur(STEP.validate),
    totalMs: 0,
    verifyMs: dur(STEP.verify),
    wallMs: 0,
  };
  timings.totalMs = timings.restoreMs + timings.recoveryMs + timings.validationMs;
  const pitr = target.type !== 'immediate';
  const rtoTarget = (await lookups.describeDrillRto({ cluster: req.cluster, pitr }).catch(() => null)) ?? (pitr ? '30m' : '2h');
  const rtoExceeded = failure === undefined && timings.totalMs > durationMs(rtoTarget);
  // The step that failed for the reason reported (a restore cancelled because verify failed also shows 'failed').
  const why = failure === undefined ? undefined : failure instanceof Error ? rootMessage(failure) : String(failure);
  const failedStep = rb.steps.find((s) => s.state === 'failed' && s.note === why) ?? [...rb.steps].reverse().find((s) => s.state === 'failed');
  const passed = failure === undefined;
  const setRec = pre?.set && restoredSet && restoredSet !== pre.set.label ? { ...pre.set, label: restoredSet } : (pre?.set ?? null);

  let annotated: string | null = null;
  const result: DrillResult = {
    cluster: req.cluster,
    stanza: cluster.stanza,
    passed,
    set: setRec,
    target: target.type === 'time' && marker ? { type: 'time', value: marker.target } : target,
    reached: recovery
      ? { startToPromotedMs: recovery.recoveryMs, stoppedAt: recovery.stoppedAt, consistentAt: recovery.consistentAt, lastReplayLsn: recovery.lastReplayLsn, lastReplayTime: recovery.lastReplayTime, timeline: recovery.timeline }
      : null,
    rpo:
      marker && recovery
        ? {
            target: marker.target,
            lastRestoredCommit: recovery.lastReplayTime,
            gapMs: recovery.lastReplayTime ? Date.parse(marker.target) - Date.parse(recovery.lastReplayTime) : null,
            markers: marker.markersUpToTarget,
          }
        : null,
    verify,
    validation,
    timings,
    rtoTarget,
    rtoExceeded,
    annotated,
    scratchDir,
    failure: passed ? null : { step: failedStep?.name ?? 'unknown', message: why! },
    workflowId: wfId,
  };

  await CancellationScope.nonCancellable(async () => {
    if (passed && setRec) {
      const at = new Date().toISOString();
      await rb.step(`${STEP.annotate} ${setRec.label}: ${ANNOTATION.verified}=${at}`, () =>
        act.quick.annotateBackupSet.executeWithOptions({ summary: `pgbackrest annotate --set=${setRec.label}` }, [
          { cluster: req.cluster, label: setRec.label, repo: req.repo, annotations: { [ANNOTATION.verified]: at } },
        ]),
      ).then(
        () => (annotated = at),
        () => undefined, // a failed annotation does not un-prove the set; the step shows it failed
      );
      result.annotated = annotated;
    }
    timings.wallMs = Date.now() - began;
    await rb.step(STEP.record, async () => {
      // Metrics (activities/metrics.ts recordDrillResult), on the host worker that serves the cluster's metrics.
      await act.quick.recordDrillMetrics
        .executeWithOptions({ summary: `record drill metrics for ${req.cluster}` }, [
          { cluster: req.cluster, ok: passed, finishedAt: new Date().toISOString(), durationMs: timings.wallMs, rtoMs: timings.totalMs, rtoTargetMs: durationMs(rtoTarget) },
        ])
        .catch(() => undefined);
      const lines = drillSummaryLines(result);
      await notifier.notify({
        level: passed ? (rtoExceeded ? 'warning' : 'success') : 'alert',
        title: passed
          ? `Drill passed: backup set ${setRec?.label} of ${req.cluster} restores${rtoExceeded ? ` — but took longer than the RTO target ${rtoTarget}` : ''}`
          : `Drill FAILED for cluster ${req.cluster}`,
        cluster: req.cluster,
        runbook: 'verifyDrill',
        step: passed ? undefined : result.failure?.step,
        text: lines.join('\n'),
        error: passed ? undefined : result.failure?.message,
      }).catch(() => undefined);
      if (rtoExceeded) {
        await notifier.notify({
          level: 'warning',
          title: `RTO target exceeded on cluster ${req.cluster}: measured ${(timings.totalMs / 1000).toFixed(1)} s > ${rtoTarget}`,
          cluster: req.cluster,
          runbook: 'verifyDrill',
          text: `restore ${(timings.restoreMs / 1000).toFixed(1)} s, recovery ${(timings.recoveryMs / 1000).toFixed(1)} s, validation ${(timings.validationMs / 1000).toFixed(1)} s`,
        }).catch(() => undefined);
      }
    });
  });

  if (!passed) {
    if (isCancellation(failure)) throw failure;
    // Keep the step and the root message in the workflow failure; details carry the recorded result
    // (timings, RPO gap, validation) for every kind of failure, a failed validation included.
    const type = failure instanceof ApplicationFailure && failure.type ? failure.type : 'DrillFailed';
    throw ApplicationFailure.nonRetryable(`drill failed at "${result.failure!.step}": ${result.failure!.message}`, type, result);
  }
  return result;
}

export function drillSummaryLines(r: DrillResult): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const lines = [
    r.set ? `set ${r.set.label} (${r.set.type}, stopped ${r.set.stoppedAt})` : 'no set restored',
    `restore ${s(r.timings.restoreMs)} · recovery ${s(r.timings.recoveryMs)} · validation ${s(r.timings.validationMs)} · measured RTO ${s(r.timings.totalMs)} (target ${r.rtoTarget})`,
  ];
  if (r.rpo) lines.push(`RPO proof: target ${r.rpo.target}, newest restored commit ${r.rpo.lastRestoredCommit ?? '?'}${r.rpo.gapMs !== null ? ` (${r.rpo.gapMs} ms before the target)` : ''}`);
  return lines;
}
