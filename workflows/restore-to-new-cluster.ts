/**
 * Runbook: restore into a NEW cluster (the preferred, non-destructive restore — "Restore into a New
 * Branch"). Production is not touched; the copy is left running and the result says how to connect.
 *
 * 1. Check the restore target against the repository (window, backup set) — before anything is created.
 * 2. Pre-restore checklist (automated).
 * 3. Restore into a new data directory with archive_mode=off (only `databases`, when given).
 * 4. Start it on its own port and socket; wait until recovery ends and it is promoted.
 * 5. Drop the databases that were not asked for.
 * 6. Post-restore checklist; register the new cluster (`pgdr clusters list`).
 */
import { ApplicationFailure, CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import { restoreToNewClusterInputSchema, type RestoreToNewClusterInput } from '../common/inputs';
import { resolveRestoreTarget } from '../common/restore-target';
import type { NewClusterLayout } from '../activities/restore-to-new-cluster';
import type { RecoveryReport } from '../activities/recovery';
import { Checklist, type ChecklistSnapshot } from './checklist';
import { postRestoreItems, preRestoreItems } from './restore-checklists';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';
import { preRestoreCheck, restoreRequestFor, runPostRestoreChecklist } from './restore-steps';

export interface RestoreToNewClusterResult {
  name: string;
  source: string;
  host: string;
  target: string;
  set: string;
  dataDir: string;
  port: number;
  socketDir: string;
  /** e.g. "psql -h /path/socket -p 54400 -U postgres" */
  connect: string;
  recovery: RecoveryReport;
  droppedDatabases: string[];
  checklists: ChecklistSnapshot[];
  durationMs: number;
}

export async function restoreToNewCluster(input: RestoreToNewClusterInput): Promise<RestoreToNewClusterResult> {
  const req = validInput(restoreToNewClusterInputSchema, input, 'restoreToNewCluster');
  const rb = new Runbook(`Restore cluster ${req.cluster} into new cluster ${req.name}`);
  const started = Date.now();

  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster, repo: req.target.repo }));
  const host = onHost(cluster);
  const settings = await rb.step('Read the restore settings', () => lookups.restoreSettings({ cluster: req.cluster }));

  const info = await rb.step('Read the backup sets and the recoverable window', () => host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.target.repo }));
  const target = await rb.step('Check the restore target', async () => {
    const r = resolveRestoreTarget(req.target, info, new Date().toISOString());
    if (!r.ok) throw ApplicationFailure.nonRetryable(r.message, 'BadInput');
    return r.target;
  });
  rb.section('target', () => `Restoring **${target.description}**`);

  const layout: NewClusterLayout = await rb.step(`Plan the new cluster ${req.name}`, () =>
    host.quick.planNewCluster({ cluster: req.cluster, name: req.name, dataDir: req.dataDir, port: req.port, newClusterDir: settings.newClusterDir }),
  );

  const pre = new Checklist('Pre-restore checklist', preRestoreItems(settings, 'new-cluster')).watch(() => rb.render());
  rb.section('target', () => `Restoring **${target.description}** into ${layout.dataDir} (port ${layout.port})`);
  rb.section('pre-restore', () => pre.markdown());
  const preResult = await rb.step('Pre-restore checklist', () =>
    pre.run(async (id) => {
      // Runs recorded before the backup set was read again here keep the first reading (their history).
      if (id === 'backup-available' && !patched('pre-restore-rereads-backup-sets')) {
        return { ok: info.status.code === 0 && info.sets.some((s) => s.label === target.set.label), note: `set ${target.set.label} in stanza ${info.stanza} (${info.status.message})` };
      }
      return preRestoreCheck({ host, cluster: req.cluster, target, info, repo: req.target.repo, diskPath: layout.dir, reason: req.reason?.trim() || 'non-destructive restore; no reason required' })(id);
    }),
  );
  if (!preResult.complete) {
    throw ApplicationFailure.nonRetryable(`pre-restore checklist failed: ${preResult.failed.map((i) => `${i.title}: ${i.note}`).join('; ')}; nothing was restored`, 'ChecklistFailed');
  }

  let recovery: RecoveryReport;
  let dropped: string[] = [];
  try {
    await rb.step(`Restore ${target.set.label} into ${layout.dataDir}`, () =>
      host.long.restoreBackup.executeWithOptions({ summary: `pgbackrest restore ${target.description} → ${layout.dataDir}` }, [
        { ...restoreRequestFor(req.cluster, target), dataDir: layout.dataDir, archiveModeOff: true, dbInclude: req.databases },
      ]),
    );
    recovery = await rb.step(`Start ${req.name} on port ${layout.port} and wait until it is promoted`, () =>
      host.long.startRestoredCluster({ cluster: req.cluster, dataDir: layout.dataDir, socketDir: layout.socketDir, logFile: layout.logFile, port: layout.port }),
    );
    if (req.databases) {
      const keep = req.databases;
      dropped = await rb.step(`Drop the databases not asked for (keep ${keep.join(', ')})`, () =>
        host.quick.dropExcludedDatabases({ cluster: req.cluster, at: layout, keep }),
      );
    }
  } catch (err) {
    // The new cluster never held anything but this failed copy: remove it, whatever happens to this run.
    await CancellationScope.nonCancellable(() => rb.step(`Remove the failed new cluster ${req.name}`, () => host.quick.discardNewCluster({ cluster: req.cluster, layout })));
    throw err;
  }

  const post = await runPostRestoreChecklist(rb, host, {
    cluster: req.cluster,
    items: postRestoreItems(settings, 'new-cluster'),
    at: layout,
    report: () => ({ kind: 'restore-new-cluster', name: req.name, source: req.cluster, target: target.description, set: target.set.label, recovery, dropped }),
  });

  const record = {
    ...layout,
    source: req.cluster,
    host: cluster.host,
    target: target.description,
    set: target.set.label,
    databases: req.databases,
    workflowId: workflowInfo().workflowId,
    createdAt: new Date().toISOString(),
  };
  await rb.step(`Register ${req.name} as a restored cluster`, () => host.quick.registerRestoredCluster({ record }));

  return {
    name: req.name,
    source: req.cluster,
    host: cluster.host,
    target: target.description,
    set: target.set.label,
    dataDir: layout.dataDir,
    port: layout.port,
    socketDir: layout.socketDir,
    connect: `psql -h ${layout.socketDir} -p ${layout.port} -U postgres`,
    recovery: recovery!,
    droppedDatabases: dropped,
    checklists: [pre.snapshot(), post.snapshot()],
    durationMs: Date.now() - started,
  };
}
