/**
 * Invariant 1 — a run deletes, empties or overwrites only a directory that this very run created, or moved
 * aside itself — is enforced here. Every directory a destructive runbook creates or moves aside carries a
 * marker file naming the Temporal run that did it (workflow id + run id) and what the directory is. Before
 * any step removes, empties, renames over or restores into a directory, it checks that marker against the
 * run it is executing for, which the activity reads from its own context: the workflow cannot pass another
 * run's identity, and a Reset or a reused workflow id is a different run.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTag, type RunIdentity } from '../common/run-identity';
import { FAILURE } from './pgbackrest';

export const MARKER_FILE = '.pgdr-owner.json';

export type OwnedWhat = 'original data directory, kept aside' | 'restore in progress' | 'failed restore' | 'restored data directory' | 'writes after promotion, kept aside' | 'stale copy, kept aside';

export interface Marker extends RunIdentity {
  what: OwnedWhat;
  cluster: string;
  at: string;
  /** Where the directory came from (a moved-aside data directory). */
  from?: string;
  /** How a restored data directory was restored (staged-restore.ts). */
  mode?: string;
}

/** The run this activity executes for (from the activity's own context, never from its input). */
export function currentRun(): RunIdentity {
  const e = Context.current().info.workflowExecution;
  if (!e) throw ApplicationFailure.nonRetryable('this activity only runs for a workflow', FAILURE.badInput);
  return { workflowId: e.workflowId, runId: e.runId };
}

export function readMarker(dir: string): Marker | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

export function writeMarker(dir: string, m: Omit<Marker, 'at' | 'workflowId' | 'runId'>, run: RunIdentity = currentRun()): void {
  writeFileSync(join(dir, MARKER_FILE), `${JSON.stringify({ ...run, ...m, at: new Date().toISOString() }, null, 1)}\n`, { mode: 0o644 });
}

export function removeMarker(dir: string): void {
  rmSync(join(dir, MARKER_FILE), { force: true });
}

export function ownedBy(dir: string, run: RunIdentity): boolean {
  const m = readMarker(dir);
  return m !== undefined && m.workflowId === run.workflowId && m.runId === run.runId;
}

/** Who owns a directory, in words, for refusals. */
export function ownerText(dir: string): string {
  const m = readMarker(dir);
  return m ? `${m.what} of run ${runTag(m)} (workflow ${m.workflowId}, run ${m.runId})` : `no pgdr marker (${MARKER_FILE}): pgdr did not create it`;
}

/** Refuse (non-retryable) unless `dir` carries this run's marker. */
export function requireOwned(dir: string, run: RunIdentity, doing: string): Marker {
  const m = readMarker(dir);
  if (!m || m.workflowId !== run.workflowId || m.runId !== run.runId) {
    throw ApplicationFailure.nonRetryable(
      `refusing to ${doing} ${dir}: it holds ${ownerText(dir)}, not this run (${runTag(run)}). pgdr only touches what the same run created or moved aside.`,
      FAILURE.badInput,
    );
  }
  return m;
}

/** True when `dir` does not exist. */
export const absent = (dir: string) => !existsSync(dir);

/** Shared-queue activity: the run a workflow executes as (an approval records it; see workflows/approval.ts). */
export function runActivities() {
  return {
    async whichRun(): Promise<RunIdentity> {
      return currentRun();
    },
  };
}
