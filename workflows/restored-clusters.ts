/**
 * Runbook: which restored clusters exist (made by restoreToNewCluster), on every host.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RestoredClusterRecord } from '../activities/restore-new-cluster';
import { config, Runbook } from './runbook';

export async function restoredClusters(_input: Record<string, never> = {}): Promise<(RestoredClusterRecord & { running: boolean })[]> {
  const rb = new Runbook('Restored clusters');
  const hosts = await rb.step('List the database hosts', () => config.listHosts());
  const all: (RestoredClusterRecord & { running: boolean })[] = [];
  for (const h of hosts) {
    const onHost = proxyActivities<Activities>({ taskQueue: h.taskQueue, startToCloseTimeout: '30s', scheduleToStartTimeout: '30s', retry: { maximumAttempts: 2 } });
    all.push(...(await rb.step(`Ask host ${h.host}`, () => onHost.listRestoredClusters())));
  }
  return all;
}
