/**
 * What people do while a runbook waits for them — sign off checklist items, approve or reject — done by
 * tests through the same Updates the CLI, Slack and the Temporal UI send.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ApprovalStateAnswer } from '../../common/approvals';
import { waitFor } from './harness';

/** Sign off (or skip) a checklist item as soon as the runbook accepts it. */
export async function signOffWhenAsked(handle: WorkflowHandle, item: string, by: string, opts: { note?: string; skip?: boolean; timeoutMs?: number } = {}): Promise<void> {
  await waitFor(
    `sign-off of ${item}`,
    () =>
      handle.executeUpdate('checkItem', { args: [{ item, by, ...(opts.note ? { note: opts.note } : {}), ...(opts.skip ? { skip: true } : {}) }] }).then(
        () => true,
        () => false,
      ),
    // Generous: after a worker crash the runbook may need minutes to reach the item.
    opts.timeoutMs ?? 600_000,
    250,
  );
}

/** Vote on the pending approval once it is asked for. */
export async function voteWhenAsked(handle: WorkflowHandle, decision: 'approve' | 'reject', by: string): Promise<void> {
  const st = await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined, 120_000);
  await handle.executeUpdate(decision, { args: [{ approvalId: st.approvalId, by, via: 'cli' }] });
}

/** The in-place restore's manual pre-restore items (not by the requester: tests request as carol). */
export async function signPreRestore(handle: WorkflowHandle, by = 'bob'): Promise<void> {
  await signOffWhenAsked(handle, 'target-confirmed', by, { note: 'cluster and mode checked' });
  await signOffWhenAsked(handle, 'stakeholders-notified', by, { skip: true, note: 'test run' });
}

/** The in-place restore's manual post-restore items. */
export async function signPostRestore(handle: WorkflowHandle, by = 'bob'): Promise<void> {
  await signOffWhenAsked(handle, 'app-health', by, { note: 'app answers' });
  await signOffWhenAsked(handle, 'monitoring', by, { skip: true, note: 'test run' });
}
