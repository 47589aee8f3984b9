/**
 * Runbook: stop a restored cluster and delete it. No approval: it was never production — and pgdr refuses
 * to touch a configured production cluster or its data directory.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { config, NON_RETRYABLE, Runbook } from './runbook';

export async function dropRestoredCluster(input: { name: string }): Promise<{ name: string; dir: string; host: string }> {
  if (!input || typeof input.name !== 'string' || !input.name) throw ApplicationFailure.nonRetryable('dropRestoredCluster: name is required', 'BadInput');
  const rb = new Runbook(`Drop restored cluster ${input.name}`);
  const hosts = await rb.step('List the database hosts', () => config.listHosts());
  for (const h of hosts) {
    const onHost = proxyActivities<Activities>({
      taskQueue: h.taskQueue,
      startToCloseTimeout: '5m',
      scheduleToStartTimeout: '30s',
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
    });
    const here = await rb.step(`Look for ${input.name} on host ${h.host}`, () => onHost.listRestoredClusters());
    if (!here.some((r) => r.name === input.name)) continue;
    const r = await rb.step(`Stop ${input.name} and delete its folder`, () => onHost.dropRestoredCluster({ name: input.name }));
    return { ...r, host: h.host };
  }
  throw ApplicationFailure.nonRetryable(`no restored cluster named "${input.name}" on any host (pgdr clusters list)`, 'BadInput');
}
