/**
 * Runbook: close the gap between "now" and the last archived WAL (`pgdr restore --switch-wal`): commit a
 * transaction and switch WAL on the running cluster, and wait until that segment is archived, so that a
 * target seconds ago lies inside the recoverable window and recovery finds a commit after it.
 */
import { lookups, walGap } from './activity-options';
import { Runbook } from './runbook';

export interface CloseWalGapResult {
  cluster: string;
  walFile: string;
  lastArchivedWal: string;
}

export async function closeWalGap(input: { cluster: string; timeoutSeconds?: number }): Promise<CloseWalGapResult> {
  const rb = new Runbook(`Switch WAL on cluster ${input.cluster} and wait until it is archived`);
  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: input.cluster }));
  const acts = walGap(cluster);
  // A commit record after the target first: recovery to a time stops only at one (activities/wal-gap.ts).
  const { walFile } = await rb.step('Commit a transaction and switch WAL', () => acts.commitAndSwitchWal({ cluster: input.cluster }));
  const { lastArchivedWal } = await rb.step(`Wait until WAL ${walFile} is archived`, () =>
    acts.waitForWalArchived({ cluster: input.cluster, walFile, timeoutSeconds: input.timeoutSeconds ?? 120 }),
  );
  return { cluster: input.cluster, walFile, lastArchivedWal };
}
