/**
 * "Version N+1" of pgdr's runbooks for test/upgrade.test.ts: everything as it is (version N), except that
 * `demoApproval` and `fullSiteRecovery` gained a step before their first wait — guarded by `patched()`, as
 * README "Changing a runbook safely" asks. Runs started under version N replay without the new step (their
 * history has no patch marker) and go on; runs started under N+1 take it.
 */
import { patched } from '@temporalio/workflow';
import * as current from '../../workflows';
import type { DemoApprovalInput } from '../../common/approvals';
import type { FullSiteRecoveryInput } from '../../common/inputs';
import { notify } from '../../workflows/runbook';

export * from '../../workflows';

export const NEW_STEP_PATCH = 'pgdr-upgrade-test-preflight';
export const NEW_STEP_TITLE = 'N+1 preflight';

export async function demoApproval(input: DemoApprovalInput) {
  if (patched(NEW_STEP_PATCH)) await notify({ level: 'info', title: `${NEW_STEP_TITLE}: demo` });
  return current.demoApproval(input);
}

export async function fullSiteRecovery(input: FullSiteRecoveryInput) {
  if (patched(NEW_STEP_PATCH)) await notify({ level: 'info', title: `${NEW_STEP_TITLE}: full-site`, cluster: input.cluster });
  return current.fullSiteRecovery(input);
}
