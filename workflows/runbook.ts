/**
 * The mechanics every runbook shares, kept out of the runbooks so that each reads like its wiki page:
 * - activity proxies per kind of work, with explicit timeouts and retry policies;
 * - `Runbook`: named steps with timings, shown live in the Temporal UI (setCurrentDetails) and by query.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { Activities } from '../activities';
import { checkInput } from '../common/inputs';
import type { ClusterSummary } from '../common/types';
import type { z } from 'zod';

/** Failure types that never get better by retrying. */
export const NON_RETRYABLE = ['BadInput', 'PgBackRestRejected', 'RepoDamaged'];

/** Reading configuration: runs on the workflow's own task queue. */
export const config = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

/**
 * Activities on the host that owns a cluster, by kind of work:
 * - `quick`: SQL and short pgBackRest calls (info, annotate, check);
 * - `long`: backups and other commands that run for minutes or hours; they heartbeat, and cancelling
 *   the workflow kills the command's process group before the workflow moves on.
 */
export function onHost(cluster: Pick<ClusterSummary, 'taskQueue' | 'backupTimeout'>) {
  const quick = proxyActivities<Activities>({
    taskQueue: cluster.taskQueue,
    startToCloseTimeout: '5m',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const long = proxyActivities<Activities>({
    taskQueue: cluster.taskQueue,
    startToCloseTimeout: cluster.backupTimeout as Duration,
    heartbeatTimeout: '60s',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '2m', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  return { quick, long };
}

/** Validate a workflow input or fail the workflow with a non-retryable BadInput failure. */
export function validInput<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown, what: string): T {
  const r = checkInput(schema, input, what);
  if (!r.ok) throw ApplicationFailure.nonRetryable(r.message, 'BadInput');
  return r.value;
}

export type StepState = 'running' | 'done' | 'failed' | 'skipped';

export interface StepRecord {
  name: string;
  state: StepState;
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  note?: string;
}

export interface RunbookState {
  title: string;
  workflowId: string;
  steps: StepRecord[];
}

export const stepsQuery = defineQuery<RunbookState>('steps');

/** A runbook in progress: each step is recorded, timed and shown in the UI as it runs. */
export class Runbook {
  readonly steps: StepRecord[] = [];
  private extra: () => string = () => '';

  constructor(readonly title: string) {
    setHandler(stepsQuery, () => ({ title, workflowId: workflowInfo().workflowId, steps: this.steps }), {
      description: 'The steps of this runbook so far, with their state and timings',
    });
    this.render();
  }

  /** Run one step of the runbook. */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const rec: StepRecord = { name, state: 'running', startedAt: new Date().toISOString() };
    this.steps.push(rec);
    this.render();
    try {
      const result = await fn();
      this.end(rec, 'done');
      return result;
    } catch (err) {
      this.end(rec, 'failed', err instanceof Error ? rootMessage(err) : String(err));
      throw err;
    }
  }

  skip(name: string, why: string): void {
    const now = new Date().toISOString();
    this.steps.push({ name, state: 'skipped', startedAt: now, endedAt: now, durationMs: 0, note: why });
    this.render();
  }

  /** Extra markdown shown under the steps (e.g. who may approve). */
  showAlso(fn: () => string): void {
    this.extra = fn;
    this.render();
  }

  render(): void {
    const icon: Record<StepState, string> = { running: '⏳', done: '✓', failed: '✗', skipped: '–' };
    const lines = this.steps.map((s) => {
      const took = s.durationMs !== undefined ? ` (${(s.durationMs / 1000).toFixed(1)} s)` : '';
      return `- ${icon[s.state]} ${s.name}${took}${s.note ? ` — ${s.note}` : ''}`;
    });
    setCurrentDetails([`**${this.title}**`, '', ...lines, this.extra()].join('\n').trim());
  }

  private end(rec: StepRecord, state: StepState, note?: string) {
    rec.state = state;
    rec.endedAt = new Date().toISOString();
    rec.durationMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
    if (note) rec.note = note;
    this.render();
  }
}

/** The innermost message of a failure chain (ActivityFailure → ApplicationFailure). */
export function rootMessage(err: Error): string {
  let e: Error = err;
  while ((e as { cause?: Error }).cause) e = (e as { cause?: Error }).cause as Error;
  return e.message;
}
