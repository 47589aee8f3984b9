/**
 * Runbook: stop a restored cluster and delete it. No approval: it was never production — and pgdr refuses
 * to touch a configured production cluster or its data directory.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { dropRestoredClusterInputSchema, type DropRestoredClusterInput } from '../common/inputs';
import { config, NON_RETRYABLE, Runbook, validInput } from './runbook';

export async function dropRestoredCluster(input: DropRestoredClusterInput): Promise<{ name: string; dir: string; host: string }> {
  const { name } = validInput(dropRestoredClusterInputSchema, input, 'dropRestoredCluster');
  const rb = new Runbook(`Drop restored cluster ${name}`);
  const hosts = await rb.step('List the database hosts', () => config.listHosts());
  const production = hosts.find((h) => h.clusters.includes(name));
  if (production) {
    throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}": it is a configured production cluster (on host ${production.host}); pgdr clusters drop only removes restored clusters`, 'BadInput');
  }
  for (const h of hosts) {
    const onHost = proxyActivities<Activities>({
      taskQueue: h.taskQueue,
      startToCloseTimeout: '5m',
      scheduleToStartTimeout: '30s',
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
    });
    const here = await rb.step(`Look for ${name} on host ${h.host}`, () => onHost.listRestoredClusters());
    if (!here.some((r) => r.name === name)) continue;
    const r = await rb.step(`Stop ${name} and delete its folder`, () => onHost.dropRestoredCluster({ name }));
    return { ...r, host: h.host };
  }
  throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}" on any host (pgdr clusters list)`, 'BadInput');
}
