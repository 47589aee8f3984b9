/**
 * Pausing for a person: when an automated step of a runbook fails where stopping on its own would be
 * wrong — full-site recovery's steps, anything after an in-place restore's point of no return — the
 * runbook waits for a person to choose. The choices a pause offers:
 * - `retry`: run the failed step again (after fixing what was wrong);
 * - `abort`: stop the runbook (full-site recovery writes its report);
 * - `keep`: accept the outcome as it is (a promoted restore stays; the failure is reported);
 * - `rollBack`: undo a promoted in-place restore (every write since promotion is kept aside, never deleted).
 * Each choice is an Update (`retry`, `abort`, `keep`, `rollBack`) taking one object
 * `{"by": "<you>", "note": "…", "pause": "<since>"}`, from `pgdr dr retry|abort`, `pgdr restore decide`, the
 * Slack buttons or the Temporal UI. One validator decides for every channel: the runbook must be paused,
 * the choice must be one this pause offers, a button of an earlier pause is refused, the first decision
 * wins, and only people on `approvals.<kind>.approvers` may decide — `rollBack` never by the requester.
 */
import type { Duration } from '@temporalio/common';
import { condition, defineQuery, defineUpdate, setHandler, workflowInfo } from '@temporalio/workflow';
import { messages } from './activity-options';
import { actorRefusal, SLACK_ACTION, type ActorPolicy, type ApprovalKind } from '../common/approvals';
import { notify, type Runbook, type StepRecord } from './runbook';
import { rootMessage } from '../common/errors';

export type PauseChoice = 'retry' | 'abort' | 'keep' | 'rollBack';

export interface Pause {
  step: string;
  error: string;
  /** When the pause began; also its id (Slack buttons carry it). */
  since: string;
  attempt: number;
  choices: PauseChoice[];
  decidedAt?: string;
  decision?: PauseChoice | 'timeout';
  by?: string;
  note?: string;
}

export interface PauseDecisionArgs {
  by: string;
  note?: string;
  /** `abort` takes its reason here (or in `note`). */
  reason?: string;
  /** The pause this decision is for (its `since`): a stale button is refused. */
  pause?: string;
}

export const retryUpdate = defineUpdate<Pause, [PauseDecisionArgs]>('retry');
export const abortUpdate = defineUpdate<Pause, [PauseDecisionArgs]>('abort');
export const keepUpdate = defineUpdate<Pause, [PauseDecisionArgs]>('keep');
export const rollBackUpdate = defineUpdate<Pause, [PauseDecisionArgs]>('rollBack');
export const pauseQuery = defineQuery<Pause | null>('pause');
/** Every pause of this run so far, with who decided what (a CLI prompt withdraws itself when one is decided). */
export const pausesQuery = defineQuery<Pause[]>('pauses');

/** The Update of each decision on a pause (clients use these definitions, not the names). */
export const pauseUpdates = { retry: retryUpdate, abort: abortUpdate, keep: keepUpdate, rollBack: rollBackUpdate } as const;
const WORDS: Record<PauseChoice, string> = { retry: 'Retry the step', abort: 'Abort', keep: 'Keep the restore', rollBack: 'Roll back' };

export interface PauseOptions {
  rb: Runbook;
  /** e.g. "full-site recovery of main onto db2": the alert's subject. */
  subject: string;
  cluster: string;
  /** Whose allowlist decides (approvals.<kind>.approvers). */
  kind: ApprovalKind;
  requestedBy: string;
  /** How to decide from the CLI, for a choice. */
  cli: (choice: PauseChoice) => string;
}

export interface PauseOutcome {
  choice: PauseChoice | 'timeout';
  by: string;
  note?: string;
}

/** The pauses of one runbook (one per workflow). */
export class Pauses {
  readonly all: Pause[] = [];
  current: Pause | null = null;
  private decision?: { choice: PauseChoice; by: string; note?: string };
  private policy?: ActorPolicy;

  constructor(private readonly o: PauseOptions) {
    setHandler(pauseQuery, () => this.current, { description: 'The pause being waited on (failed step, error, choices, since), or null' });
    setHandler(pausesQuery, () => this.all, { description: 'Every pause of this run so far: step, error, choices, and who decided what' });
    for (const choice of Object.keys(pauseUpdates) as PauseChoice[]) {
      setHandler(
        pauseUpdates[choice],
        (a) => {
          this.decision = { choice, by: a.by.trim(), note: (a.reason ?? a.note)?.trim() || undefined };
          return { ...this.current! };
        },
        {
          description: `${WORDS[choice]} (when the paused runbook offers it): {"by": "<you>", "${choice === 'abort' ? 'reason' : 'note'}": "…"}`,
          validator: (a) => this.refusal(choice, a),
        },
      );
    }
  }

  private refusal(choice: PauseChoice, a: PauseDecisionArgs): void {
    if (!a || typeof a !== 'object' || typeof a.by !== 'string' || !a.by.trim()) throw new Error(`"by" is required: who decides (${choice})`);
    const p = this.current;
    if (!p) throw new Error('the runbook is not paused: nothing to decide');
    if (a.pause && a.pause !== p.since) throw new Error('this button belongs to an earlier pause; use the newest message');
    if (this.decision) throw new Error(`already decided: ${this.decision.choice} by ${this.decision.by}`);
    if (!p.choices.includes(choice)) throw new Error(`this pause offers ${p.choices.join(', ')}, not ${choice}`);
    if (choice === 'abort' && !(a.reason ?? a.note)?.trim()) throw new Error('"reason" is required: why the runbook is stopped');
    const refused = actorRefusal(this.policy, a.by, `${choice === 'rollBack' ? 'roll back' : choice} this runbook`, choice === 'rollBack');
    if (refused) throw new Error(refused);
  }

  /**
   * Wait until a person chooses one of `choices` after `step` failed with `err`; after `timeout` with nobody
   * deciding, the outcome is `timeout` (the caller decides what that means; never a rollback).
   */
  async pause(step: string, err: unknown, attempt: number, choices: PauseChoice[], timeout: Duration): Promise<PauseOutcome> {
    this.policy ??= { ...(await messages.approvalPolicy({ kind: this.o.kind })), requestedBy: this.o.requestedBy };
    const p: Pause = { step, error: err instanceof Error ? rootMessage(err) : String(err), since: new Date().toISOString(), attempt, choices };
    this.all.push(p);
    this.current = p;
    this.decision = undefined;
    const rb = this.o.rb;
    const rec: StepRecord = { name: `Paused: "${step}" failed — waiting for ${choices.join(' / ')}`, state: 'running', startedAt: p.since };
    rb.steps.push(rec);
    rb.section('paused', () =>
      this.current
        ? [`**PAUSED** — "${this.current.step}" failed: ${this.current.error.split('\n')[0]}`, ...this.current.choices.map((c) => `- ${WORDS[c]}: \`${this.o.cli(c)}\` (Update \`${c}\`)`)].join('\n')
        : '',
    );
    const wf = workflowInfo().workflowId;
    await notify({
      level: 'alert',
      title: `PAUSED: ${this.o.subject} — "${step}" failed`,
      cluster: this.o.cluster,
      runbook: workflowInfo().workflowType,
      step,
      error: p.error.slice(0, 1500),
      text: `${choices.map((c) => `\`${this.o.cli(c)}\``).join(', or ')} — or the buttons (people on approvals.${this.o.kind}.approvers).`,
      buttons: choices.map((c) => ({
        actionId: SLACK_ACTION[c],
        text: WORDS[c],
        value: JSON.stringify({ w: wf, a: p.since }),
        ...(c === 'retry' ? { style: 'primary' as const } : c === 'abort' || c === 'rollBack' ? { style: 'danger' as const, confirm: `${WORDS[c]}: ${this.o.subject} at "${step}"?` } : {}),
      })),
    });
    const decided = await condition(() => this.decision !== undefined, timeout, { summary: `paused: ${step}` });
    const d: PauseOutcome = decided && this.decision ? this.decision : { choice: 'timeout', by: 'pgdr', note: `nobody decided within ${String(timeout)}` };
    p.decidedAt = new Date().toISOString();
    p.decision = d.choice;
    p.by = d.by;
    p.note = d.note;
    rec.state = d.choice === 'retry' || d.choice === 'keep' ? 'done' : 'failed';
    rec.endedAt = p.decidedAt;
    rec.durationMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
    rec.note = `${d.choice} by ${d.by}${d.note ? `: ${d.note}` : ''}`;
    this.current = null;
    this.decision = undefined;
    rb.render();
    return d;
  }
}
