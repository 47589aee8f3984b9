/**
 * Runbook: which restored clusters exist (made by restoreToNewCluster), on every host.
 */
import type { RestoredClusterRecord } from '../activities/restore-to-new-cluster';
import { lookups, restoredClustersOn } from './activity-options';
import { Runbook } from './runbook';

export async function restoredClusters(_input: Record<string, never> = {}): Promise<(RestoredClusterRecord & { running: boolean })[]> {
  const rb = new Runbook('Restored clusters');
  const hosts = await rb.step('List the database hosts', () => lookups.listHosts());
  const all: (RestoredClusterRecord & { running: boolean })[] = [];
  for (const h of hosts) {
    all.push(...(await rb.step(`Ask host ${h.host}`, () => restoredClustersOn(h).list.listRestoredClusters())));
  }
  return all;
}
