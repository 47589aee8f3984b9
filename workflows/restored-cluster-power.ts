/**
 * Runbook: start or stop a restored cluster (`pgdr clusters start|stop <name>`), on whichever host has it.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { RestoredClusterRecord } from '../activities/restore-to-new-cluster';
import { dropRestoredClusterInputSchema } from '../common/inputs';
import { lookups, restoredClustersOn } from './activity-options';
import { Runbook, validInput } from './runbook';

export interface RestoredClusterPowerInput {
  name: string;
  running: boolean;
}

export async function restoredClusterPower(input: RestoredClusterPowerInput): Promise<RestoredClusterRecord & { running: boolean; changed: boolean }> {
  const { name } = validInput(dropRestoredClusterInputSchema, { name: input.name }, 'restoredClusterPower');
  const running = input.running === true;
  const rb = new Runbook(`${running ? 'Start' : 'Stop'} restored cluster ${name}`);
  const hosts = await rb.step('List the database hosts', () => lookups.listHosts());
  for (const h of hosts) {
    const onHost = restoredClustersOn(h);

    const here = await rb.step(`Look for ${name} on host ${h.host}`, () => onHost.list.listRestoredClusters());
    if (!here.some((r) => r.name === name)) continue;
    return await rb.step(`${running ? 'Start' : 'Stop'} ${name}`, () => onHost.power.setRestoredClusterRunning({ name, running }));
  }
  throw ApplicationFailure.nonRetryable(`no restored cluster named "${name}" on any host (pgdr clusters list)`, 'BadInput');
}
