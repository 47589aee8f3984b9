/**
 * Runbook: delete what an in-place restore kept — <data>.pre-restore-<run> (the original) and any
 * <data>.failed-restore-<run> — after its own approval. This is the only place pgdr deletes data.
 */
import { allHandlersFinished, ApplicationFailure, condition } from '@temporalio/workflow';
import { cleanupInputSchema } from '../common/inputs';
import { approvalAudit, requestApproval } from './approval';
import { config, onHost, Runbook, validInput } from './runbook';

export async function cleanupRestore(input: { cluster: string; run: string; reason: string; requestedBy: string }) {
  const req = validInput(cleanupInputSchema, input, 'cleanupRestore');
  const rb = new Runbook(`Clean up what in-place restore ${req.run} of ${req.cluster} kept`);
  const cluster = await rb.step('Look up the cluster', () => config.describeCluster({ cluster: req.cluster }));
  const host = onHost(cluster);
  const dirs = await rb.step('Find the kept directories', () => host.quick.keptDirectories({ cluster: req.cluster, run: req.run }));
  if (!dirs.length) throw ApplicationFailure.nonRetryable(`in-place restore ${req.run} of ${req.cluster} kept nothing (already cleaned up?)`, 'BadInput');
  await rb.step('Approval', () =>
    requestApproval({
      kind: 'cleanup',
      action: `DELETE the directories kept by in-place restore ${req.run} of cluster ${req.cluster}: ${dirs.join(', ')}`,
      details: { cluster: req.cluster, run: req.run, delete: dirs.join(', ') },
      requestedBy: req.requestedBy,
      reason: req.reason,
      runbook: rb,
    }),
  );
  const removed = await rb.step('Delete the kept directories', () => host.quick.removeKeptDirectories({ cluster: req.cluster, run: req.run }));
  await condition(allHandlersFinished);
  return { cluster: req.cluster, run: req.run, removed, approvals: approvalAudit() };
}
