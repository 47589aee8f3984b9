/**
 * Search attributes as a run goes: a workflow interceptor (bundled with the runbooks: worker/worker.ts,
 * test/helpers/harness.ts) that sets PgdrOutcome when a runbook ends — succeeded, succeeded-with-warnings,
 * failed, rolled-back, aborted or cancelled. The start values (PgdrRunbook, PgdrCluster, PgdrHost, PgdrDestructive,
 * PgdrOutcome=running) come from whoever starts the run (client/temporal.ts runWorkflow, the schedules).
 *
 * Upserting an attribute the namespace does not have fails every workflow task of the run (the server
 * answers BadSearchAttributes and the run is stuck), so pgdr upserts only in runs that were STARTED with
 * PgdrRunbook: the server accepted that start, so the namespace has pgdr's attributes. That rule also keeps
 * replay deterministic: runs started before pgdr set attributes have none, and get no upsert commands.
 */
import {
  ApplicationFailure,
  ContinueAsNew,
  isCancellation,
  upsertSearchAttributes,
  workflowInfo,
  type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';
import { PGDR_SEARCH_ATTRIBUTES, type RunOutcome } from '../common/search-attributes';

/** This run was started with pgdr's search attributes (so the namespace has them). */
export function runHasPgdrAttributes(): boolean {
  return workflowInfo().typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.runbook) !== undefined;
}

/** Set PgdrOutcome (only in runs started with pgdr's attributes; see above). */
export function setRunOutcome(outcome: RunOutcome): void {
  if (!runHasPgdrAttributes()) return;
  if (workflowInfo().typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.outcome) === outcome) return;
  upsertSearchAttributes([{ key: PGDR_SEARCH_ATTRIBUTES.outcome, value: outcome }]);
}

/** Failure types that say more than "failed": a person rolled back or stopped the runbook. */
const OUTCOME_OF_FAILURE_TYPE: Record<string, RunOutcome> = { RestoreRolledBack: 'rolled-back', FullSiteRecoveryAborted: 'aborted' };

export function outcomeOfFailure(err: unknown): RunOutcome {
  if (isCancellation(err)) return 'cancelled';
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof ApplicationFailure && e.type && OUTCOME_OF_FAILURE_TYPE[e.type]) return OUTCOME_OF_FAILURE_TYPE[e.type];
  }
  return 'failed';
}

export function outcomeOfResult(result: unknown): RunOutcome {
  const warnings = (result as { warnings?: unknown } | null | undefined)?.warnings;
  return Array.isArray(warnings) && warnings.length ? 'succeeded-with-warnings' : 'succeeded';
}

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        let result: unknown;
        try {
          result = await next(input);
        } catch (err) {
          if (!(err instanceof ContinueAsNew)) setRunOutcome(outcomeOfFailure(err));
          throw err;
        }
        setRunOutcome(outcomeOfResult(result));
        return result;
      },
    },
  ],
});
