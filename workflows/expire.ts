/**
 * Runbook: expire old backups (`pgbackrest expire`) with the configured retention or a one-off override
 * (seed 000: `pgbackrest --repo1-retention-full=30 expire`), or expire one named set; `dryRun` only shows
 * what would go.
 *
 * The guard: pgdr never expires the only or the latest full backup of a repo. For `set` it refuses before
 * pgBackRest runs (pgBackRest itself only warns for `expire --set` on the latest backup); for a retention it
 * always makes a dry run first and refuses when pgBackRest's own answer would take the latest full.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { expireInputSchema, type ExpireInput, type ExpireResult } from '../common/health-inputs';
import type { BackupSet } from '../common/types';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';

const byStop = (a: BackupSet, b: BackupSet) => a.stoppedAt.localeCompare(b.stoppedAt);

/** Per repo: the newest full set (the one every newer diff/incr depends on). */
function latestFulls(sets: BackupSet[]): Map<number, BackupSet> {
  const out = new Map<number, BackupSet>();
  for (const s of [...sets].filter((x) => x.type === 'full').sort(byStop)) out.set(s.repo, s);
  return out;
}

export async function expire(input: ExpireInput): Promise<ExpireResult> {
  const req = validInput(expireInputSchema, input, 'expire');
  const what = req.set ? `backup set ${req.set}` : req.retentionFull ? `keeping ${req.retentionFull} full backup(s)` : 'configured retention';
  const rb = new Runbook(`Expire (${what})${req.dryRun ? ' — dry run' : ''} on cluster ${req.cluster}`);
  // Validate before anyone is told: an unknown cluster or repo fails here, without a notification.
  const [cluster, policy] = await rb.step('Look up the cluster and its retention', () =>
    Promise.all([lookups.describeCluster({ cluster: req.cluster, repo: req.repo }), lookups.clusterPolicy({ cluster: req.cluster })]),
  );
  return rb.notified({ cluster }, async () => {
    const host = onHost(cluster);
    const retentionFull = req.set ? undefined : (req.retentionFull ?? policy.retention.full);
    const retentionDiff = req.set ? undefined : (req.retentionDiff ?? policy.retention.diff);
    const retention = req.set
      ? `set ${req.set}`
      : retentionFull !== undefined || retentionDiff !== undefined
        ? [retentionFull !== undefined && `full=${retentionFull}`, retentionDiff !== undefined && `diff=${retentionDiff}`].filter(Boolean).join(', ') +
          (req.retentionFull !== undefined || req.retentionDiff !== undefined ? ' (one-off override)' : ' (pgdr config)')
        : 'pgbackrest.conf';

    const before = await rb.step(`Read the backup sets of stanza ${cluster.stanza}`, () => host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.repo }));
    const latest = latestFulls(before.sets);
    const refuse = (msg: string) => ApplicationFailure.nonRetryable(msg, 'ExpireRefused');

    if (req.set) {
      await rb.step(`Check that ${req.set} may be expired`, async () => {
        const set = before.sets.find((s) => s.label === req.set);
        if (!set) {
          throw ApplicationFailure.nonRetryable(
            `backup set ${req.set} not found in stanza "${cluster.stanza}" (sets: ${before.sets.map((s) => s.label).join(', ') || 'none'})`,
            'BadInput',
          );
        }
        const fulls = before.sets.filter((s) => s.type === 'full' && s.repo === set.repo);
        if (set.type === 'full' && fulls.length === 1) {
          throw refuse(`refusing to expire ${set.label}: it is the only full backup of stanza "${cluster.stanza}" in repo${set.repo}; without it nothing can be restored. Take a new full backup first.`);
        }
        if (latest.get(set.repo)?.label === set.label) {
          throw refuse(
            `refusing to expire ${set.label}: it is the latest full backup of stanza "${cluster.stanza}" in repo${set.repo} (every newer diff/incr depends on it). Take a new full backup first, or expire an older set.`,
          );
        }
        const newestOfRepo = before.sets.filter((s) => s.repo === set.repo).sort(byStop).pop();
        if (newestOfRepo?.label === set.label) {
          throw refuse(`refusing to expire ${set.label}: it is the newest backup of stanza "${cluster.stanza}" in repo${set.repo}.`);
        }
      });
    }

    const args = { cluster: req.cluster, repo: req.repo, set: req.set, retentionFull, retentionDiff };
    const dry = await rb.step('Dry run: what pgBackRest would expire', () =>
      host.long.expireBackups.executeWithOptions({ summary: 'pgbackrest expire --dry-run' }, [{ ...args, dryRun: true }]),
    );
    await rb.step('Check that no latest full backup would go', async () => {
      const hit = [...latest.values()].find((f) => dry.expired.includes(f.label));
      if (hit) {
        throw refuse(`refusing to expire: pgBackRest would remove ${hit.label}, the latest full backup of stanza "${cluster.stanza}" in repo${hit.repo}. Nothing was expired.`);
      }
    });
    if (req.dryRun) {
      rb.skip('pgbackrest expire', 'dry run');
      rb.showAlso(() => `\n**Would expire:** ${dry.expired.join(', ') || 'nothing'}`);
      return {
        cluster: req.cluster,
        stanza: cluster.stanza,
        dryRun: true,
        retention,
        expired: dry.expired,
        remaining: before.sets.map((s) => s.label).filter((l) => !dry.expired.includes(l)),
        archiveRemoved: dry.archiveRemoved,
        output: dry.output,
      };
    }
    const real = await rb.step('pgbackrest expire', () => host.long.expireBackups.executeWithOptions({ summary: 'pgbackrest expire' }, [args]));
    const after = await rb.step('Read the backup sets again', () => host.quick.readStanzaInfo({ cluster: req.cluster, repo: req.repo }));
    const remaining = after.sets.map((s) => s.label);
    const expired = before.sets.map((s) => s.label).filter((l) => !remaining.includes(l));
    await rb.step('Update the metrics', () => host.quick.refreshMetrics({ cluster: req.cluster }));
    rb.showAlso(() => `\n**Expired:** ${expired.join(', ') || 'nothing'}`);
    return { cluster: req.cluster, stanza: cluster.stanza, dryRun: false, retention, expired, remaining, archiveRemoved: real.archiveRemoved, output: real.output };
  });
}
