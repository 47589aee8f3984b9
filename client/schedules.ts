/**
 * Temporal Schedules from the config: one schedule per cluster and kind of work (full/diff/incr backup,
 * expire, verification drill, backup freshness, WAL archive health).
 *
 * Ownership: pgdr's schedules have ids `pgdr:<cluster>:<kind>` and a schedule memo
 * `{ pgdr: { managedBy: 'pgdr', taskQueue, cluster, kind } }` set at creation. `apply` deletes only
 * schedules that carry both the prefix and that memo for this config's task queue, so schedules created by
 * anyone else (or by another pgdr installation on the same namespace) are never touched.
 *
 * Idempotence: what a schedule should be (spec, action, policies) is fingerprinted (sha256 of its canonical
 * JSON) and the fingerprint is stored in the action's memo (the schedule memo cannot be updated; the action
 * can). `apply` describes each schedule and updates it only when the fingerprint differs, so a second apply
 * changes nothing. A paused schedule stays paused across updates. Edits made by hand in the UI are not
 * detected (the fingerprint does not change): the config is the source of truth, re-apply after a config
 * change, or delete the schedule to have it recreated.
 */
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptionsStartWorkflowAction, type ScheduleSpec } from '@temporalio/client';
import type { Duration, Workflow } from '@temporalio/common';
import { createHash } from 'node:crypto';
import type { ClusterConfig, LoadedConfig, ScheduleSpecConfig } from '../common/config';
import { runIdentity, startSearchAttributes } from '../common/search-attributes';
import { pgdrSearchAttributesRegistered } from './search-attributes';
import * as runbooks from '../workflows';

export const SCHEDULE_KINDS = ['full', 'diff', 'incr', 'expire', 'drill', 'freshness', 'archiveHealth', 'fullSiteDrill'] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];
export const SCHEDULE_PREFIX = 'pgdr:';

/** A kind's runbook (its workflow function, so that the input is type-checked), input, description and catch-up window. */
function action<W extends Workflow>(runbook: W, input: (cluster: string, c: ClusterConfig) => Parameters<W>[0], describe: string, catchupWindow: string) {
  return { workflowType: runbook.name, input: input as (cluster: string, c: ClusterConfig) => object, describe, catchupWindow };
}

/** The runbook each kind starts, with its input. */
const ACTIONS: Record<ScheduleKind, ReturnType<typeof action>> = {
  full: action(runbooks.backup, (cluster) => ({ cluster, type: 'full' as const }), 'full backup', '6h'),
  diff: action(runbooks.backup, (cluster) => ({ cluster, type: 'diff' as const }), 'diff backup', '2h'),
  incr: action(runbooks.backup, (cluster) => ({ cluster, type: 'incr' as const }), 'incr backup', '30m'),
  expire: action(runbooks.expire, (cluster) => ({ cluster }), 'expire old backups', '6h'),
  drill: action(runbooks.verifyDrill, (cluster) => ({ cluster }), 'verification drill', '6h'),
  freshness: action(runbooks.backupFreshness, (cluster) => ({ cluster }), 'backup freshness check', '5m'),
  archiveHealth: action(runbooks.archiveHealth, (cluster) => ({ cluster }), 'WAL archive health check', '5m'),
  // Drill mode never touches production; its sign-offs still wait for people (fullSite.signOffTimeout).
  fullSiteDrill: action(
    runbooks.fullSiteRecovery,
    (cluster, c) => ({ cluster, targetHost: c.fullSite.drillHost ?? c.host, drill: true, reason: 'scheduled full-site DR drill', requestedBy: 'pgdr-schedule' }),
    'full-site DR drill',
    '1d',
  ),
};

export interface OwnerMemo {
  managedBy: 'pgdr';
  taskQueue: string;
  cluster: string;
  kind: ScheduleKind;
}

export interface DesiredSchedule {
  scheduleId: string;
  cluster: string;
  kind: ScheduleKind;
  workflowType: string;
  input: object;
  specText: string;
  spec: ScheduleSpec;
  policies: { overlap: typeof ScheduleOverlapPolicy.SKIP; catchupWindow: Duration; pauseOnFailure: false };
  action: ScheduleOptionsStartWorkflowAction<Workflow>;
  fingerprint: string;
  owner: OwnerMemo;
}

export function scheduleId(cluster: string, kind: ScheduleKind): string {
  return `${SCHEDULE_PREFIX}${cluster}:${kind}`;
}

/** Accept `pgdr:main:full`, `main:full`. */
export function resolveScheduleId(ref: string): string {
  return ref.startsWith(SCHEDULE_PREFIX) ? ref : `${SCHEDULE_PREFIX}${ref}`;
}

export function specText(s: Exclude<ScheduleSpecConfig, false>): string {
  return `${s.cron ? `cron "${s.cron}" UTC` : `every ${s.every}`}${s.jitter ? `, jitter ${s.jitter}` : ''}`;
}

const BACKUP_KINDS: readonly ScheduleKind[] = ['full', 'diff', 'incr'];

/**
 * The repositories a schedule of this kind backs up to. pgBackRest backs up to one repository per run (repo1
 * unless --repo), and backupFreshness checks every configured repository: with several repos, each backup kind
 * gets one schedule per repo — `pgdr:<cluster>:<kind>` for the first, `pgdr:<cluster>:<kind>:repo<N>` for the
 * others. One repo (or not a backup): one schedule, its input without `repo`, as before.
 */
function scheduleRepos(c: ClusterConfig, kind: ScheduleKind): (number | undefined)[] {
  if (!BACKUP_KINDS.includes(kind) || c.repos.length < 2) return [undefined];
  return c.repos.map((r) => r.index);
}

/** Every schedule the config asks for, fully built. */
export function desiredSchedules(config: LoadedConfig, opts: { searchAttributes?: boolean } = {}): DesiredSchedule[] {
  const withAttributes = opts.searchAttributes ?? true;
  const out: DesiredSchedule[] = [];
  for (const c of config.clusters) {
    for (const kind of SCHEDULE_KINDS) {
      for (const [n, repo] of scheduleRepos(c, kind).entries()) {
        const s = c.schedules[kind];
        if (s === false) continue;
        const a = ACTIONS[kind];
        const suffix = n > 0 ? `:repo${repo}` : '';
        const id = `${scheduleId(c.name, kind)}${suffix}`;
        const spec: ScheduleSpec = {
          ...(s.cron ? { cronExpressions: [s.cron] } : { intervals: [{ every: s.every as Duration }] }),
          ...(s.jitter ? { jitter: s.jitter as Duration } : {}),
          timezone: 'UTC',
        };
        const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: (s.catchupWindow ?? a.catchupWindow) as Duration, pauseOnFailure: false as const };
        const input = repo === undefined ? a.input(c.name, c) : { ...a.input(c.name, c), repo };
        const summary = `Scheduled ${a.describe} of cluster ${c.name}${repo === undefined ? '' : ` to repo${repo}`}`;
        // Found with the runbooks it starts (PgdrCluster, PgdrRunbook…), when the namespace has the attributes.
        const identity = withAttributes ? runIdentity(a.workflowType, input, () => c.host) : undefined;
        const base = { workflowType: a.workflowType, input, taskQueue: config.temporal.taskQueue, spec, policies, summary, identity };
        const fingerprint = createHash('sha256').update(JSON.stringify(base)).digest('hex').slice(0, 16);
        const action: ScheduleOptionsStartWorkflowAction<Workflow> = {
          type: 'startWorkflow',
          workflowType: a.workflowType,
          args: [input],
          taskQueue: config.temporal.taskQueue,
          // Temporal appends the scheduled time: pgdr-main-full-2024-01-15T02:00:00Z
          workflowId: `pgdr-${c.name}-${kind}${suffix.replace(':', '-')}`,
          staticSummary: summary,
          staticDetails: `Started by schedule \`${id}\` (${specText(s)}).\n\n\`\`\`json\n${JSON.stringify(input, null, 2)}\n\`\`\``,
          memo: { pgdrSchedule: id, pgdrFingerprint: fingerprint },
          ...(identity ? { typedSearchAttributes: startSearchAttributes(identity) } : {}),
        };
        out.push({
          scheduleId: id,
          cluster: c.name,
          kind,
          workflowType: a.workflowType,
          input,
          specText: specText(s),
          spec,
          policies,
          action,
          fingerprint,
          owner: { managedBy: 'pgdr', taskQueue: config.temporal.taskQueue, cluster: c.name, kind },
        });
      }
    }
  }
  return out;
}

export function isOwned(scheduleIdValue: string, memo: Record<string, unknown> | undefined, taskQueue: string): boolean {
  const owner = memo?.pgdr as Partial<OwnerMemo> | undefined;
  return scheduleIdValue.startsWith(SCHEDULE_PREFIX) && owner?.managedBy === 'pgdr' && owner.taskQueue === taskQueue;
}

export interface ApplyReport {
  created: string[];
  updated: string[];
  unchanged: string[];
  deleted: string[];
  /** Ids pgdr wanted but that exist and belong to someone else: left alone. */
  conflicts: string[];
  errors: { scheduleId: string; error: string }[];
}

/** The pgdr-owned schedules on the server for this config's task queue. */
export async function ownedScheduleIds(client: Client, config: LoadedConfig): Promise<string[]> {
  const ids: string[] = [];
  for await (const s of client.schedule.list({ pageSize: 200 })) {
    if (isOwned(s.scheduleId, s.memo, config.temporal.taskQueue)) ids.push(s.scheduleId);
  }
  return ids.sort();
}

/** Create, update and delete schedules so that the server matches the config. */
export async function applySchedules(client: Client, config: LoadedConfig, opts: { dryRun?: boolean } = {}): Promise<ApplyReport> {
  const report: ApplyReport = { created: [], updated: [], unchanged: [], deleted: [], conflicts: [], errors: [] };
  // Schedule actions carry pgdr's search attributes only where the namespace has them (else the server refuses).
  const desired = desiredSchedules(config, { searchAttributes: await pgdrSearchAttributesRegistered(client, config.temporal.namespace) });
  for (const d of desired) {
    const handle = client.schedule.getHandle(d.scheduleId);
    try {
      let desc;
      try {
        desc = await handle.describe();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
      if (!desc) {
        if (!opts.dryRun) {
          await client.schedule.create({
            scheduleId: d.scheduleId,
            spec: d.spec,
            action: d.action,
            policies: d.policies,
            memo: { pgdr: d.owner },
            state: { note: `managed by pgdr (${config.file}); change the config and run \`pgdr schedules apply\`` },
          });
        }
        report.created.push(d.scheduleId);
        continue;
      }
      if (!isOwned(d.scheduleId, desc.memo, config.temporal.taskQueue)) {
        report.conflicts.push(d.scheduleId);
        continue;
      }
      const current = desc.action.type === 'startWorkflow' ? (desc.action.memo as Record<string, unknown> | undefined)?.pgdrFingerprint : undefined;
      if (current === d.fingerprint) {
        report.unchanged.push(d.scheduleId);
        continue;
      }
      if (!opts.dryRun) {
        await handle.update((prev) => ({
          spec: d.spec,
          action: d.action,
          policies: d.policies,
          state: { paused: prev.state.paused, note: prev.state.note, remainingActions: prev.state.remainingActions },
        }));
      }
      report.updated.push(d.scheduleId);
    } catch (err) {
      report.errors.push({ scheduleId: d.scheduleId, error: (err as Error).message });
    }
  }
  const wanted = new Set(desired.map((d) => d.scheduleId));
  for (const id of await ownedScheduleIds(client, config)) {
    if (wanted.has(id)) continue;
    try {
      if (!opts.dryRun) await client.schedule.getHandle(id).delete();
      report.deleted.push(id);
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) continue;
      report.errors.push({ scheduleId: id, error: (err as Error).message });
    }
  }
  return report;
}

export interface ScheduleRow {
  scheduleId: string;
  cluster: string;
  kind: string;
  workflowType: string;
  spec: string;
  paused: boolean;
  note?: string;
  nextRuns: string[];
  lastRun?: { scheduledAt: string; workflowId: string };
  /** Not in the config any more (will be deleted by the next apply). */
  orphan: boolean;
}

/** pgdr's schedules with their next run times (from the server). */
export async function listSchedules(client: Client, config: LoadedConfig): Promise<ScheduleRow[]> {
  const desired = new Map(desiredSchedules(config).map((d) => [d.scheduleId, d]));
  const rows: ScheduleRow[] = [];
  for (const id of await ownedScheduleIds(client, config)) {
    try {
      const desc = await client.schedule.getHandle(id).describe();
      const owner = desc.memo?.pgdr as OwnerMemo;
      const last = desc.info.recentActions[desc.info.recentActions.length - 1];
      rows.push({
        scheduleId: id,
        cluster: owner.cluster,
        kind: owner.kind,
        workflowType: desc.action.type === 'startWorkflow' ? desc.action.workflowType : '?',
        spec: desired.get(id)?.specText ?? 'not in the config',
        paused: desc.state.paused,
        note: desc.state.note,
        nextRuns: desc.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
        lastRun: last ? { scheduledAt: last.scheduledAt.toISOString(), workflowId: last.action.workflow.workflowId } : undefined,
        orphan: !desired.has(id),
      });
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return rows;
}

async function ownedHandle(client: Client, config: LoadedConfig, ref: string) {
  const id = resolveScheduleId(ref);
  const handle = client.schedule.getHandle(id);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new Error(`no schedule "${id}" (see \`pgdr schedules list\`)`);
    throw err;
  }
  if (!isOwned(id, desc.memo, config.temporal.taskQueue)) throw new Error(`schedule "${id}" is not managed by this pgdr configuration; leaving it alone`);
  return handle;
}

export async function pauseSchedule(client: Client, config: LoadedConfig, ref: string, note?: string): Promise<string> {
  const h = await ownedHandle(client, config, ref);
  await h.pause(note ?? `paused with pgdr at ${new Date().toISOString()}`);
  return h.scheduleId;
}

export async function resumeSchedule(client: Client, config: LoadedConfig, ref: string, note?: string): Promise<string> {
  const h = await ownedHandle(client, config, ref);
  await h.unpause(note ?? `resumed with pgdr at ${new Date().toISOString()}`);
  return h.scheduleId;
}

export interface TriggeredRun {
  scheduleId: string;
  /** The run the trigger started. */
  workflowId?: string;
  /** Nothing started: the schedule's overlap policy skips while this run still runs. */
  skippedFor?: string;
}

/** Run a schedule's action now (overlap policy of the schedule: SKIP when one is already running), and name the run. */
export async function triggerScheduleRun(client: Client, config: LoadedConfig, ref: string): Promise<TriggeredRun> {
  const h = await ownedHandle(client, config, ref);
  const seen = new Set((await h.describe()).info.recentActions.map((a) => a.action.workflow.workflowId));
  await h.trigger();
  // The schedule starts the run asynchronously: it shows among the recent actions within a moment.
  for (let i = 0; i < 25; i++) {
    const desc = await h.describe();
    const started = desc.info.recentActions.map((a) => a.action.workflow.workflowId).find((id) => !seen.has(id));
    if (started) return { scheduleId: h.scheduleId, workflowId: started };
    if (i >= 5 && desc.info.runningActions.length) return { scheduleId: h.scheduleId, skippedFor: desc.info.runningActions[0].workflow.workflowId };
    await new Promise((r) => setTimeout(r, 200));
  }
  return { scheduleId: h.scheduleId };
}

/** `pgdr schedules trigger`: the schedule id and what the trigger started (or why nothing). */
export async function triggerSchedule(client: Client, config: LoadedConfig, ref: string): Promise<string> {
  const r = await triggerScheduleRun(client, config, ref);
  if (r.workflowId) return `${r.scheduleId} (started workflow ${r.workflowId}; \`pgdr watch ${r.workflowId}\`)`;
  if (r.skippedFor) return `${r.scheduleId} (nothing started: ${r.skippedFor} still runs and the schedule skips overlaps)`;
  return r.scheduleId;
}

export function formatApplyReport(r: ApplyReport, dryRun = false): string {
  const verb = dryRun ? 'would be ' : '';
  const lines = [
    `schedules: ${r.created.length} ${verb}created, ${r.updated.length} ${verb}updated, ${r.unchanged.length} unchanged, ${r.deleted.length} ${verb}deleted`,
    ...r.created.map((id) => `  + ${id}`),
    ...r.updated.map((id) => `  ~ ${id}`),
    ...r.deleted.map((id) => `  - ${id}`),
    ...r.conflicts.map((id) => `  ! ${id}: exists but is not managed by pgdr; left alone`),
    ...r.errors.map((e) => `  ✗ ${e.scheduleId}: ${e.error}`),
  ];
  return lines.join('\n');
}

export function formatScheduleRows(rows: ScheduleRow[]): string {
  if (!rows.length) return 'no pgdr schedules (run `pgdr schedules apply`)';
  return rows
    .map((r) =>
      [
        `${r.scheduleId}  ${r.workflowType}  ${r.spec}${r.paused ? '  [PAUSED]' : ''}${r.orphan ? '  [not in config]' : ''}`,
        `    next: ${r.nextRuns.join(', ') || '-'}`,
        `    last: ${r.lastRun ? `${r.lastRun.scheduledAt} (${r.lastRun.workflowId})` : 'never'}`,
      ].join('\n'),
    )
    .join('\n');
}
