/**
 * One Temporal run, named. Directory names of a destructive runbook carry the run tag (workflow id AND
 * run id), so that a reused workflow id or a Reset — a new run — can never find and act on another run's
 * directories. Pure: workflows, activities and the CLI import it.
 */
export interface RunIdentity {
  workflowId: string;
  runId: string;
}

/** `<workflow id, made file-name safe>-r<first 12 hex digits of the run id>`, e.g. `restore-main-1-r0a1b2c3d4e5f`. */
export function runTag(r: RunIdentity): string {
  const wf = r.workflowId.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 80) || 'run';
  return `${wf}-r${r.runId.replace(/[^0-9a-fA-F]/g, '').slice(0, 12).toLowerCase()}`;
}

/** A run tag as `pgdr cleanup --run` takes it. */
export const RUN_TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,80}-r[0-9a-f]{12}$/;
