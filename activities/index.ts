/**
 * All activities of pgdr, by the task queue they run on (workflows import the types only):
 * - SharedActivities, on the shared task queue (every host's worker polls it): configuration lookups and
 *   policy (answered alike by every worker: common/shared-config.ts), notifications, the approval gate's
 *   Slack messages, the run's identity;
 * - HostActivities, on the task queue of the host that owns a cluster (`pgdr-host-<host>`, common/types.ts
 *   hostTaskQueue): everything that touches that host's files, processes and PostgreSQL.
 * A host activity called through a shared-queue proxy (or the reverse) does not compile. Two run on either
 * queue: the approval audit append (on approvals.auditHost, or shared when that host is down) and the DR
 * report (on the target host, or shared when it does not answer).
 */
import type { LoadedConfig } from '../common/config';
import { backupActivities } from './backup';
import { clusterActivities } from './cluster';
import { notifyActivities } from './notify';
import { drillActivities } from './drill';
import { restoreActivities } from './scratch';
import { inPlaceActivities } from './restore-in-place';
import { newClusterActivities } from './restore-to-new-cluster';
import { checkActivities } from './checks';
import { healthActivities, policyActivities } from './health';
import { approvalActivities } from './approval';
import { fullSiteActivities } from './full-site';
import { newHostCheckActivities } from './new-host-checks';
import { drReportActivities } from './dr-reports';
import { runActivities } from './owned-dirs';
import { walGapActivities } from './wal-gap';

function createAllActivities(config: LoadedConfig) {
  const deps = { config };
  return {
    ...clusterActivities(deps),
    ...backupActivities(deps),
    ...notifyActivities(deps),
    ...restoreActivities(deps),
    ...inPlaceActivities(deps),
    ...newClusterActivities(deps),
    ...checkActivities(deps),
    ...drillActivities(deps),
    ...healthActivities(deps),
    ...policyActivities(deps),
    ...approvalActivities(deps),
    ...fullSiteActivities(deps),
    ...newHostCheckActivities(deps),
    ...drReportActivities(deps),
    ...runActivities(),
    ...walGapActivities(deps),
  };
}

type AllActivities = ReturnType<typeof createAllActivities>;

/**
 * Shared-queue activities whose answer comes from the shared configuration: the worker checks its shared
 * configuration against the published one before each (worker/shared-config-guard.ts). appendApprovalAudit and
 * writeDrReport write where the answering worker's stateDir is (the audit goes to approvals.auditHost's queue,
 * but runs recorded before that still schedule it here).
 */
export const CONFIG_DECISIONS = [
  'listHosts',
  'describeCluster',
  'clusterPolicy',
  'restoreSettings',
  'describeDrillRto',
  'fullSiteDefaults',
  'approvalPolicy',
  'appendApprovalAudit',
  'writeDrReport',
] as const satisfies readonly (keyof AllActivities)[];

/** The activities of the shared task queue: the config decisions, notifications and Slack messages, the run's identity. */
const SHARED = [
  ...CONFIG_DECISIONS,
  'notify',
  'postApprovalRequest',
  'remindApproval',
  'finishApprovalMessage',
  'postSignOffRequest',
  'demoAfterApproval',
  'whichRun',
] as const satisfies readonly (keyof AllActivities)[];
/** Shared activities that also run on a host's queue (see above). */
const ON_BOTH = ['appendApprovalAudit', 'writeDrReport'] as const satisfies readonly (typeof SHARED)[number][];

export type SharedActivities = Pick<AllActivities, (typeof SHARED)[number]>;
export type HostActivities = Omit<AllActivities, Exclude<(typeof SHARED)[number], (typeof ON_BOTH)[number]>>;

function pick<T extends object, K extends keyof T>(all: T, keep: (key: keyof T) => boolean): Pick<T, K> {
  return Object.fromEntries(Object.entries(all).filter(([k]) => keep(k as keyof T))) as Pick<T, K>;
}

/** What a worker registers on the shared task queue. */
export function createSharedActivities(config: LoadedConfig): SharedActivities {
  return pick(createAllActivities(config), (k) => (SHARED as readonly PropertyKey[]).includes(k));
}

/** What a worker registers on the task queue of each host it owns. */
export function createHostActivities(config: LoadedConfig): HostActivities {
  const sharedOnly = SHARED.filter((k) => !(ON_BOTH as readonly string[]).includes(k)) as readonly PropertyKey[];
  return pick(createAllActivities(config), (k) => !sharedOnly.includes(k));
}
