/**
 * Runbook: start or stop a restored cluster (`pgdr clusters start|stop <name>`), on whichever host has it.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RestoredClusterRecord } from '../activities/restore-new-cluster';
import { dropRestoredClusterInputSchema } from '../common/inputs';
import { config, NON_RETRYABLE, Runbook, validInput } from './runbook';

export interface RestoredClusterPowerInput {
  name: string;
  running: boolean;
}

export async function restoredClusterPower(input: RestoredClusterPowerInput): Promise<RestoredClusterRecord & { running: boolean; changed: boolean }> {
  const { name } = validInput(dropRestoredClusterInputSchema, { name: input.name }, 'restoredClusterPower');
  const running = input.running === true;
  const rb = new Runbook(`${running ? 'Start' : 'Stop'} restored cluster ${name}`);
  const hosts = await rb.step('List the database hosts', () => config.listHosts());
  for (const h of hosts) {
    const onHost = proxyActivities<Activities>({
      taskQueue: h.taskQueue,
      startToCloseTimeout: '3m',
      scheduleToStartTimeout: '30s',
      retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
    });
    const here = await rb.step(`Look for ${name} on host ${h.host}`, () => onHost.listRestoredClusters());
    if (!here.some((r) => r.name === name)) continue;
    return await rb.step(`${running ? 'Start' : 'Stop'} ${name}`, () => onHost.setRestoredClusterRunning({ name, running }));
  }
  throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}" on any host (pgdr clusters list)`, 'BadInput');
}
