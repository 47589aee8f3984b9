/**
 * Runbook: take a backup (full, diff or incr), or a named snapshot before a risky change.
 *
 * A named snapshot is an annotated full backup followed by `pg_create_restore_point(<name>)` with the same
 * name; the restore point is archived right away and its LSN recorded on the backup set, so that
 * "restore to pre-migration-v2.3" works from that moment on.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { backupInputSchema, normaliseBackupInput, type BackupInput, type ValidBackupInput } from '../common/inputs';
import { ANNOTATION, type BackupResult, type ClusterSummary } from '../common/types';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function backup(input: BackupInput): Promise<BackupResult> {
  const req = normaliseBackupInput(validInput(backupInputSchema, input, 'backup'));
  const what = req.snapshot ? `snapshot "${req.snapshot}"` : `${req.type} backup`;
  const rb = new Runbook(`Backup: ${what} of cluster ${req.cluster}`);
  // Validate before anyone is told: an unknown cluster or repo fails here, without a notification.
  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster, repo: req.repo }));
  // Start/success/failure notifications (log, and Slack when configured): scheduled backups must not fail silently.
  return rb.notified({ cluster }, () => takeBackup(req, cluster, rb));
}

async function takeBackup(req: ValidBackupInput, cluster: ClusterSummary, rb: Runbook): Promise<BackupResult> {
  const started = Date.now();
  const host = onHost(cluster);

  const annotations = { ...req.annotations };
  if (req.snapshot) {
    await rb.step(`Check that snapshot name "${req.snapshot}" is unused`, async () => {
      const info = await host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.repo });
      const clash = info.sets.find((s) => s.annotations[ANNOTATION.snapshot] === req.snapshot);
      if (clash) {
        throw ApplicationFailure.nonRetryable(`snapshot "${req.snapshot}" already exists: backup set ${clash.label} (${clash.stoppedAt}); pick another name`, 'BadInput');
      }
    });
    annotations[ANNOTATION.snapshot] = req.snapshot;
  }

  const { label } = await rb.step(`Take the ${req.type} backup of stanza ${cluster.stanza}`, () =>
    host.long.takeBackup.executeWithOptions({ summary: `pgbackrest backup --type=${req.type} (stanza ${cluster.stanza})` }, [
      { cluster: req.cluster, type: req.type, annotations, repo: req.repo },
    ]),
  );

  let snapshot: BackupResult['snapshot'];
  if (req.snapshot) {
    const name = req.snapshot;
    const point = await rb.step(`Create restore point "${name}"`, () => host.quick.createRestorePoint({ cluster: req.cluster, name }));
    await rb.step(`Wait until WAL ${point.walFile} with the restore point is archived`, () =>
      host.long.waitForWalArchived({ cluster: req.cluster, walFile: point.walFile }),
    );
    await rb.step(`Record the restore point on backup set ${label}`, () =>
      host.quick.annotateBackupSet({
        cluster: req.cluster,
        label,
        repo: req.repo,
        annotations: { [ANNOTATION.restorePointLsn]: point.lsn, [ANNOTATION.restorePointTime]: point.createdAt },
      }),
    );
    snapshot = { ...point, archived: true };
  }

  const set = await rb.step(`Read backup set ${label} from the repository`, () => host.quick.readBackupSet({ cluster: req.cluster, label, repo: req.repo }));
  return { cluster: req.cluster, stanza: cluster.stanza, set, snapshot, durationMs: Date.now() - started };
}
