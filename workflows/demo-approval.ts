/**
 * Demo runbook: an action that needs approval (`pgdr demo approval`). It waits at the approval gate, shows
 * who may approve, and after approval runs a harmless activity (`demoAfterApproval`, one log line). On
 * rejection or expiry that activity is never scheduled. `signOff: true` adds a checklist item a person signs
 * off first (CLI `pgdr check`, the UI, or the Slack button).
 */
import { allHandlersFinished, condition } from '@temporalio/workflow';
import { demoApprovalInputSchema, type DemoApprovalInput, type DemoApprovalResult } from '../common/approvals';
import { approvalAudit, requestApproval } from './approval';
import { Checklist } from './checklist';
import { lookups } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function demoApproval(input: DemoApprovalInput): Promise<DemoApprovalResult> {
  const req = validInput(demoApprovalInputSchema, input, 'demoApproval');
  const rb = new Runbook('Demo: an action that needs approval');
  const rounds = req.rounds ?? 1;
  const ranAt: string[] = [];
  if (req.signOff) {
    // A checklist item a person signs off before the approval (as in the restore runbooks).
    const list = new Checklist('Demo checklist', [{ id: 'demo-ready', title: 'The demo is ready to run', kind: 'manual' }]).watch(() => rb.render());
    rb.section('checklist', () => list.markdown());
    await rb.step('Demo checklist', () => list.run(async () => ({ ok: true, note: '' })));
  }
  for (let round = 1; round <= rounds; round++) {
    const decision = await rb.step(`Wait for approval${rounds > 1 ? ` (${round} of ${rounds})` : ''}`, () =>
      requestApproval({
        kind: 'demo',
        action: `Run the demo action${rounds > 1 ? ` #${round}` : ''} (it writes one log line on the worker)`,
        details: { runbook: 'demoApproval', round, effect: 'one log line on the worker' },
        requestedBy: req.requestedBy,
        reason: req.reason,
        required: req.required,
        expiresIn: req.expiresIn,
        remindEvery: req.remindEvery,
        runbook: rb,
      }),
    );
    const r = await rb.step(`Run the approved action (approved by ${decision.approvedBy.join(', ')})`, () =>
      lookups.demoAfterApproval({ approvalId: decision.approvalId, approvedBy: decision.approvedBy }),
    );
    ranAt.push(r.ranAt);
  }
  await condition(allHandlersFinished);
  return { ranAt, approvals: approvalAudit() };
}
