/**
 * The same change as ./index.ts WITHOUT `patched()`: what test/upgrade.test.ts (and test/replay.test.ts)
 * must catch — a run in flight no longer replays.
 */
import * as current from '../../workflows';
import type { DemoApprovalInput } from '../../common/approvals';
import { notify } from '../../workflows/runbook';

export * from '../../workflows';

export async function demoApproval(input: DemoApprovalInput) {
  await notify({ level: 'info', title: 'N+1 preflight (unguarded): demo' });
  return current.demoApproval(input);
}
