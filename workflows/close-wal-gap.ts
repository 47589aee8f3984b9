/**
 * Runbook: close the gap between "now" and the last archived WAL (`pgdr restore --switch-wal`): switch WAL on
 * the running cluster and wait until that segment is archived, so that a target seconds ago lies inside the
 * recoverable window.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { config, NON_RETRYABLE, Runbook } from './runbook';

export interface CloseWalGapResult {
  cluster: string;
  walFile: string;
  lastArchivedWal: string;
}

export async function closeWalGap(input: { cluster: string; timeoutSeconds?: number }): Promise<CloseWalGapResult> {
  const rb = new Runbook(`Switch WAL on cluster ${input.cluster} and wait until it is archived`);
  const cluster = await rb.step('Look up the cluster', () => config.describeCluster({ cluster: input.cluster }));
  const acts = proxyActivities<Activities>({
    taskQueue: cluster.taskQueue,
    startToCloseTimeout: '5m',
    heartbeatTimeout: '20s',
    retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const { walFile } = await rb.step('SELECT pg_switch_wal()', () => acts.switchWal({ cluster: input.cluster }));
  const { lastArchivedWal } = await rb.step(`Wait until WAL ${walFile} is archived`, () =>
    acts.waitForWalArchived({ cluster: input.cluster, walFile, timeoutSeconds: input.timeoutSeconds ?? 120 }),
  );
  return { cluster: input.cluster, walFile, lastArchivedWal };
}
