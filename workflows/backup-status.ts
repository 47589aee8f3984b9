/**
 * Runbook: what can we restore? The backup sets of a cluster's stanza (type, label, annotations, times,
 * sizes) and the recoverable window for point-in-time recovery.
 */
import { clusterOnlyInputSchema } from '../common/inputs';
import type { StanzaInfo } from '../common/types';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function backupStatus(input: { cluster: string; repo?: number }): Promise<StanzaInfo> {
  const req = validInput(clusterOnlyInputSchema, input, 'backupStatus');
  const rb = new Runbook(`Backup status of cluster ${req.cluster}`);
  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster(req));
  return rb.step(`Read pgbackrest info for stanza ${cluster.stanza}`, () => onHost(cluster).quick.readStanzaInfo(req));
}
