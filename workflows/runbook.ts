/**
 * The mechanics every runbook shares, kept out of the runbooks so that each reads like its wiki page:
 * - notifications that never fail a runbook (the proxies per kind of work are in activity-options.ts);
 * - `Runbook`: named steps with timings, shown live in the Temporal UI (setCurrentDetails) and by query.
 */
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { notifier } from './activity-options';
import type { Notice, NoticeResult } from '../activities/notify';
import { checkInput } from '../common/inputs';
import type { ClusterSummary } from '../common/types';
import type { z } from 'zod';
import { rootMessage } from '../common/errors';

/** Send a notice; resolves with where it went, never rejects. */
export async function notify(n: Notice): Promise<NoticeResult> {
  try {
    return await notifier.notify.executeWithOptions({ summary: `notify: ${n.title}`.slice(0, 200) }, [n]);
  } catch (err) {
    return { delivered: 'log', error: err instanceof Error ? rootMessage(err) : String(err) };
  }
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
  private sections = new Map<string, () => string>();
  private notices?: { cluster?: string; runbook: string; thread: Promise<string | undefined>; pending: Promise<unknown>[] };

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

  /**
   * Run the whole runbook with notifications: a start message, a thread reply per finished step (only when
   * the start message reached Slack), and a success or failure message (failure names the step and the error
   * and is broadcast to the channel). Notifications never fail or hold up the runbook beyond the notify
   * activity's short timeout. Opt-in: runbooks that do not call this behave exactly as before.
   * Call it only once the input is valid: `cluster` is what `describeCluster` returned (the cluster exists), so
   * bad input fails without a word to the channel.
   */
  async notified<T>(opts: { cluster?: ClusterSummary; runbook?: string }, fn: () => Promise<T>): Promise<T> {
    const runbook = opts.runbook ?? workflowInfo().workflowType;
    const cluster = opts.cluster?.name;
    const start = notify({ level: 'info', title: `Started: ${this.title}`, cluster, runbook });
    this.notices = { cluster, runbook, thread: start.then((r) => r.ts), pending: [start] };
    const began = Date.now();
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      const failed = [...this.steps].reverse().find((st) => st.state === 'failed');
      await this.finalNotice({
        level: 'alert',
        title: `Failed: ${this.title}`,
        step: failed?.name,
        error: err instanceof Error ? rootMessage(err) : String(err),
        broadcast: true,
      });
      throw err;
    }
    const secs = ((Date.now() - began) / 1000).toFixed(1);
    await this.finalNotice({ level: 'success', title: `Succeeded: ${this.title}`, text: `${this.steps.length} step(s) in ${secs} s` });
    return result;
  }

  private async finalNotice(n: Omit<Notice, 'cluster' | 'runbook' | 'threadTs'>): Promise<void> {
    const ns = this.notices;
    if (!ns) return;
    // Also when the runbook was cancelled: the last word must still reach the channel.
    await CancellationScope.nonCancellable(async () => {
      await Promise.all(ns.pending);
      const threadTs = await ns.thread;
      await notify({ ...n, cluster: ns.cluster, runbook: ns.runbook, threadTs });
    });
  }

  private replyForStep(rec: StepRecord): void {
    const ns = this.notices;
    if (!ns) return;
    const icon = rec.state === 'failed' ? '✗' : rec.state === 'skipped' ? '–' : '✓';
    const took = rec.durationMs !== undefined ? ` (${(rec.durationMs / 1000).toFixed(1)} s)` : '';
    ns.pending.push(
      ns.thread.then((threadTs) =>
        threadTs
          ? notify({
              level: rec.state === 'failed' ? 'warning' : 'info',
              title: `${icon} ${rec.name}${took}`,
              step: rec.name,
              text: rec.note,
              threadTs,
            })
          : undefined,
      ),
    );
  }

  skip(name: string, why: string): void {
    const now = new Date().toISOString();
    this.steps.push({ name, state: 'skipped', startedAt: now, endedAt: now, durationMs: 0, note: why });
    this.render();
  }

  /** Extra markdown shown under the steps (e.g. who may approve). */
  showAlso(fn: () => string): void {
    this.section('also', fn);
  }

  /** A named block of markdown under the steps (a checklist, the restore target…); replaced by key. */
  section(key: string, fn: () => string): void {
    this.sections.set(key, fn);
    this.render();
  }

  render(): void {
    const icon: Record<StepState, string> = { running: '⏳', done: '✓', failed: '✗', skipped: '–' };
    const lines = this.steps.map((s) => {
      const took = s.durationMs !== undefined ? ` (${(s.durationMs / 1000).toFixed(1)} s)` : '';
      return `- ${icon[s.state]} ${s.name}${took}${s.note ? ` — ${s.note}` : ''}`;
    });
    const extra = [...this.sections.values()].map((f) => `\n${f()}`);
    setCurrentDetails([`**${this.title}**`, '', ...lines, ...extra].join('\n').trim());
  }

  private end(rec: StepRecord, state: StepState, note?: string) {
    rec.state = state;
    rec.endedAt = new Date().toISOString();
    rec.durationMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
    if (note) rec.note = note;
    this.render();
    this.replyForStep(rec);
  }
}

