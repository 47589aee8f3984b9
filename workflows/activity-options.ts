/**
 * Every activity proxy of the runbooks, in one place, by kind of work: which task queue, how long an attempt
 * may take, how it heartbeats, how often it is retried and what is never retried. Shared-queue proxies are
 * typed SharedActivities and host proxies HostActivities (activities/index.ts): a call on the wrong queue
 * does not compile.
 *
 * Every activity heartbeats (worker/liveness.ts): a worker that dies in any step is noticed within the
 * heartbeat timeout (worker.heartbeatTimeout, handed out with the cluster by describeCluster).
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { HostActivities, SharedActivities } from '../activities';
import type { ClusterSummary } from '../common/types';

/** Failure types that never get better by retrying. */
export const NON_RETRYABLE = ['BadInput', 'PgBackRestRejected', 'RepoDamaged'];

/** The host a proxy runs on: its task queue, the longest a backup-sized step may take, its heartbeat timeout. */
export type HostRoute = Pick<ClusterSummary, 'taskQueue' | 'backupTimeout'> & Partial<Pick<ClusterSummary, 'heartbeatTimeout'>>;

const heartbeatOf = (route: Partial<Pick<ClusterSummary, 'heartbeatTimeout'>>) => (route.heartbeatTimeout ?? '20s') as Duration;

// ---------------------------------------------------------------------------------------------------------
// The shared task queue

/** Configuration lookups (cluster routing, policies, settings), answered alike by every worker. */
export const lookups = proxyActivities<SharedActivities>({
  startToCloseTimeout: '10s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** The approval gate, sign-off requests and the policies of people: config reads and Slack messages. */
export const messages = proxyActivities<SharedActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: ['BadInput'] },
});

/**
 * Notifications (Slack and the log). The activity never throws and the Slack client retries with backoff
 * inside it; the short timeout bounds how long a runbook can wait for Slack (runbook.ts `notify` turns even
 * a timeout into a result).
 */
export const notifier = proxyActivities<SharedActivities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 1 },
});

/**
 * The approval audit append on approvals.auditHost's queue. A host that is down (e.g. the one a full-site
 * recovery replaces) must not hold the gate: after this wait without a worker there, the caller appends on
 * the shared queue instead.
 */
export const AUDIT_HOST_WAIT = '20s';
export function auditOn(taskQueue: string) {
  return proxyActivities<HostActivities>({
    taskQueue,
    scheduleToStartTimeout: AUDIT_HOST_WAIT,
    startToCloseTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: ['BadInput'] },
  });
}

// ---------------------------------------------------------------------------------------------------------
// The task queue of the host that owns a cluster

/**
 * - `quick`: SQL and short pgBackRest calls (info, annotate, check);
 * - `long`: backups and other commands that run for minutes or hours; cancelling the workflow kills the
 *   command's process group before the workflow moves on.
 */
export function onHost(route: HostRoute) {
  const heartbeatTimeout = heartbeatOf(route);
  const quick = proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: '5m',
    heartbeatTimeout,
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const long = proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: route.backupTimeout as Duration,
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '2s', backoffCoefficient: 4, maximumInterval: '2m', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  return { quick, long };
}

/** The verification drill: its restore, its checks, and a cleanup that outlasts a worker that is down. */
export function forDrill(route: HostRoute) {
  const { quick } = onHost(route);
  const heartbeatTimeout = heartbeatOf(route);
  /** Restore / start: long; a dead worker's attempt is retried. */
  const restore = proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: route.backupTimeout as Duration,
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE, 'RecoveryFailed'] },
  });
  /** verify, validation, marker: minutes. */
  const work = proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: '2h',
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  /** Cleanup: idempotent, retried for a long time (a host worker that is down comes back). */
  const cleanup = proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: '5m',
    heartbeatTimeout,
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 50, nonRetryableErrorTypes: ['BadInput'] },
  });
  return { quick, restore, work, cleanup };
}

/**
 * Full-site recovery on the NEW host: checks and short calls (`quick`; no worker there yet is surfaced after
 * 5 minutes, and the runbook pauses), the report, and the restore / start that run for minutes (`long`).
 */
export function onTarget(host: { taskQueue: string }) {
  const { taskQueue } = host;
  const quick = proxyActivities<HostActivities>({
    taskQueue,
    scheduleToStartTimeout: '5m',
    startToCloseTimeout: '5m',
    heartbeatTimeout: '20s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const report = proxyActivities<HostActivities>({
    taskQueue,
    scheduleToStartTimeout: '30s',
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 2 },
  });
  const long = (timeout: string, heartbeatTimeout = '30s') =>
    proxyActivities<HostActivities>({
      taskQueue,
      scheduleToStartTimeout: '5m',
      startToCloseTimeout: timeout as Duration,
      heartbeatTimeout: heartbeatTimeout as Duration,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 2, nonRetryableErrorTypes: [...NON_RETRYABLE, 'RecoveryFailed'] },
    });
  return { quick, report, long };
}

/** After a promotion: switch WAL and wait for the new timeline's segment (a lag is a warning, never retried long). */
export function walArchiving(route: Pick<HostRoute, 'taskQueue' | 'heartbeatTimeout'>) {
  return proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    startToCloseTimeout: '2m',
    heartbeatTimeout: heartbeatOf(route),
    retry: { initialInterval: '1s', maximumAttempts: 3, nonRetryableErrorTypes: ['WalNotArchived', 'BadInput'] },
  });
}

/**
 * Closing a WAL gap on request: a commit, a switch, and a wait as long as the caller asks. A person waits at
 * the CLI: when no worker serves the host, say so within a minute.
 */
export function walGap(route: Pick<HostRoute, 'taskQueue' | 'heartbeatTimeout'>) {
  return proxyActivities<HostActivities>({
    taskQueue: route.taskQueue,
    scheduleToStartTimeout: '1m',
    startToCloseTimeout: '5m',
    heartbeatTimeout: heartbeatOf(route),
    retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** Restored clusters on each host: list them (seconds), start or stop one, drop one. */
export function restoredClustersOn(host: { taskQueue: string }) {
  const base = { taskQueue: host.taskQueue, scheduleToStartTimeout: '30s' } as const;
  return {
    list: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: '30s', retry: { maximumAttempts: 2 } }),
    power: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: '3m', retry: { maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE } }),
    drop: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: '5m', retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE } }),
  };
}
