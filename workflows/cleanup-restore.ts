/**
 * Runbook: delete what an in-place restore kept — <data>.pre-restore-<run> (the original),
 * <data>.failed-restore-<run> and <data>.rolled-back-<run> — after its own approval. This is the only place
 * pgdr deletes data: exact names of that one run, each proven by the marker the restore left inside
 * (activities/restore-in-place.ts), and only in the cleanup run that the approval was given to.
 */
import { allHandlersFinished, ApplicationFailure, condition } from '@temporalio/workflow';
import { cleanupInputSchema, type CleanupInput } from '../common/inputs';
import { approvalAudit, approvalOfThisRun, requestApproval, type ApprovalRequest } from './approval';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function cleanupRestore(input: CleanupInput) {
  const req = validInput(cleanupInputSchema, input, 'cleanupRestore');
  const rb = new Runbook(`Clean up what in-place restore ${req.run} of ${req.cluster} kept`);
  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster }));
  const host = onHost(cluster);
  const kept = await rb.step('Find the kept directories', () => host.quick.keptDirectories({ cluster: req.cluster, run: req.run }));
  if (!kept.length) throw ApplicationFailure.nonRetryable(`in-place restore ${req.run} of ${req.cluster} kept nothing (already cleaned up?)`, 'BadInput');
  const request: ApprovalRequest = {
    kind: 'cleanup',
    action: `DELETE the directories kept by in-place restore ${req.run} of cluster ${req.cluster}: ${kept.map((k) => `${k.dir} (${k.what})`).join(', ')}`,
    details: { cluster: req.cluster, run: req.run, delete: kept.map((k) => k.dir).join(', ') },
    requestedBy: req.requestedBy,
    reason: req.reason,
    runbook: rb,
  };
  const approval = await rb.step('Approval', () => requestApproval(request));
  const { grantedInRun } = await rb.step('Check that the approval belongs to this run', () => approvalOfThisRun(approval, request));
  const removed = await rb.step('Delete the kept directories', () => host.quick.removeKeptDirectories({ cluster: req.cluster, run: req.run, approvedInRun: grantedInRun }));
  await condition(allHandlersFinished);
  return { cluster: req.cluster, run: req.run, removed, approvals: approvalAudit() };
}
