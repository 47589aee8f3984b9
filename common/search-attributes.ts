/**
 * pgdr's custom search attributes: how an on-call engineer finds runs in the Temporal UI and with
 * `pgdr runs` (`PgdrCluster="main" AND ExecutionStatus="Running"`).
 *
 * Deterministic code only (the workflows import this file): keys, values and the rules that derive them.
 * Registration lives in client/search-attributes.ts (`pgdr search-attributes apply`) and in the dev servers'
 * `--search-attribute` flags (devServerSearchAttributeArgs).
 */
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

export const PGDR_SEARCH_ATTRIBUTES = {
  /** The cluster the run is about (its `cluster` input). */
  cluster: defineSearchAttributeKey('PgdrCluster', SearchAttributeType.KEYWORD),
  /** The database host whose worker does the work (the cluster's host; a full-site recovery's target host). */
  host: defineSearchAttributeKey('PgdrHost', SearchAttributeType.KEYWORD),
  /** The runbook (workflow type), e.g. restoreInPlace. */
  runbook: defineSearchAttributeKey('PgdrRunbook', SearchAttributeType.KEYWORD),
  /** running, then how it ended: succeeded, succeeded-with-warnings, failed, rolled-back, aborted, cancelled. */
  outcome: defineSearchAttributeKey('PgdrOutcome', SearchAttributeType.KEYWORD),
  /** The run may delete or overwrite data (in-place restore, cleanup, full-site recovery that is not a drill). */
  destructive: defineSearchAttributeKey('PgdrDestructive', SearchAttributeType.BOOL),
} as const;

export type RunOutcome = 'running' | 'succeeded' | 'succeeded-with-warnings' | 'failed' | 'rolled-back' | 'aborted' | 'cancelled';

/** Name → the type name the server and `temporal server start-dev --search-attribute` use. */
export const SEARCH_ATTRIBUTE_TYPES: Record<string, 'Keyword' | 'Bool'> = Object.fromEntries(
  Object.values(PGDR_SEARCH_ATTRIBUTES).map((k) => [k.name, k.type === SearchAttributeType.BOOL ? 'Bool' : 'Keyword']),
);

/** `--search-attribute PgdrCluster=Keyword …` for every dev server pgdr starts. */
export function devServerSearchAttributeArgs(): string[] {
  return Object.entries(SEARCH_ATTRIBUTE_TYPES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);
}

/** Runbooks that may delete or overwrite data. */
export const DESTRUCTIVE_RUNBOOKS = ['restoreInPlace', 'cleanupRestore', 'fullSiteRecovery', 'dropRestoredCluster'];

/**
 * Read-only lookups and routine health checks (and the shared configuration's record, which always runs):
 * `pgdr runs` leaves them out unless asked (`--all`, `--runbook`), so that they do not bury the runbooks.
 */
export const ROUTINE_RUNBOOKS = ['backupStatus', 'restoredClusters', 'backupFreshness', 'archiveHealth', 'sharedConfig'];

export interface RunIdentity {
  runbook: string;
  cluster?: string;
  host?: string;
  destructive: boolean;
}

/** What a start of `workflowType` with `input` is, for its search attributes (host from the config). */
export function runIdentity(workflowType: string, input: object, hostOf: (cluster: string) => string | undefined): RunIdentity {
  const i = input as { cluster?: unknown; targetHost?: unknown; drill?: unknown };
  const cluster = typeof i.cluster === 'string' ? i.cluster : undefined;
  const host = typeof i.targetHost === 'string' ? i.targetHost : cluster ? hostOf(cluster) : undefined;
  const destructive = DESTRUCTIVE_RUNBOOKS.includes(workflowType) && !(workflowType === 'fullSiteRecovery' && i.drill === true);
  return { runbook: workflowType, cluster, host, destructive };
}

/** The search attributes a run starts with (PgdrOutcome "running"; the workflow sets how it ended). */
export function startSearchAttributes(r: RunIdentity): SearchAttributePair[] {
  const k = PGDR_SEARCH_ATTRIBUTES;
  return [
    { key: k.runbook, value: r.runbook },
    ...(r.cluster ? [{ key: k.cluster, value: r.cluster }] : []),
    ...(r.host ? [{ key: k.host, value: r.host }] : []),
    { key: k.destructive, value: r.destructive },
    { key: k.outcome, value: 'running' },
  ] as SearchAttributePair[];
}
