/**
 * Runbook: stop a restored cluster and delete it. No approval: it was never production — and pgdr refuses
 * to touch a configured production cluster or its data directory.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { dropRestoredClusterInputSchema, type DropRestoredClusterInput } from '../common/inputs';
import { lookups, restoredClustersOn } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function dropRestoredCluster(input: DropRestoredClusterInput): Promise<{ name: string; dir: string; host: string }> {
  const { name } = validInput(dropRestoredClusterInputSchema, input, 'dropRestoredCluster');
  const rb = new Runbook(`Drop restored cluster ${name}`);
  const hosts = await rb.step('List the database hosts', () => lookups.listHosts());
  const production = hosts.find((h) => h.clusters.includes(name));
  if (production) {
    throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}": it is a configured production cluster (on host ${production.host}); pgdr clusters drop only removes restored clusters`, 'BadInput');
  }
  for (const h of hosts) {
    const onHost = restoredClustersOn(h);

    const here = await rb.step(`Look for ${name} on host ${h.host}`, () => onHost.list.listRestoredClusters());
    if (!here.some((r) => r.name === name)) continue;
    const r = await rb.step(`Stop ${name} and delete its folder`, () => onHost.drop.dropRestoredCluster({ name }));
    return { ...r, host: h.host };
  }
  throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}" on any host (pgdr clusters list)`, 'BadInput');
}
