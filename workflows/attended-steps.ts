/**
 * Attended steps: runbook steps that, instead of failing the run, PAUSE for a person (retry / abort), and the
 * checklists people and pgdr fill in along the way (automated items as steps, manual items as sign-offs).
 * Used by full-site recovery, where an on-call engineer fixes the new host while the runbook waits.
 */
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { CheckOutcome } from '../common/types';
import { Checklist, type ChecklistItemSpec } from './checklist';
import type { Pauses } from './pause';
import { type Runbook } from './runbook';
import { rootMessage } from '../common/errors';

/** A person chose abort at a pause (or nobody decided in time): the runbook stops, with its report. */
export class Aborted extends Error {}

const now = () => new Date().toISOString();

export class AttendedSteps {
  /** Every checklist opened so far, in order (for the report and the result). */
  readonly lists: Checklist[] = [];
  /** How long a pause waits for retry / abort, and how long a checklist waits for sign-offs. */
  pauseTimeout = '24h';
  signOffTimeout = '24h';

  constructor(
    private readonly rb: Runbook,
    private readonly pauses: Pauses,
    private readonly who: { kind: 'fullSiteRecovery'; requestedBy: string },
  ) {}

  /** Write a note on the last step shown. */
  noteLast(text: string): void {
    const s = this.rb.steps[this.rb.steps.length - 1];
    if (s) s.note = text;
    this.rb.render();
  }

  /** A step that pauses on failure instead of failing the run; throws Aborted when a person aborts. */
  async guarded<T>(name: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.rb.step(attempt === 1 ? name : `${name} (attempt ${attempt})`, fn);
      } catch (err) {
        if (isCancellation(err)) throw err;
        await this.pauseAfter(name, err, attempt);
      }
    }
  }

  /** Open a checklist shown in the runbook's details. */
  checklist(name: string, items: ChecklistItemSpec[]): Checklist {
    const l = new Checklist(name, items, this.who).watch(() => this.rb.render());
    this.lists.push(l);
    this.rb.section(`list-${this.lists.length}`, () => l.markdown());
    return l;
  }

  /** An automated checklist item as an attended step: failed → the item shows it and the runbook pauses. */
  async autoItem(list: Checklist, id: string, step: string, fn: () => Promise<CheckOutcome>): Promise<CheckOutcome> {
    const item = list.items.find((i) => i.id === id)!;
    const out = await this.guarded(step, async () => {
      item.state = 'running';
      item.note = undefined;
      list.changed();
      let r: CheckOutcome;
      try {
        r = await fn();
      } catch (err) {
        if (isCancellation(err)) throw err;
        r = { ok: false, note: err instanceof Error ? rootMessage(err) : String(err) };
      }
      item.state = r.ok ? 'passed' : 'failed';
      item.by = 'pgdr';
      item.at = now();
      item.note = r.note;
      list.changed();
      if (!r.ok) throw ApplicationFailure.nonRetryable(r.note, 'CheckFailed');
      return r;
    });
    this.noteLast(out.note);
    return out;
  }

  /** The manual items of a list: wait for people (pause when nobody signs in time); note who signed. */
  async signOffs(list: Checklist, step: string): Promise<void> {
    await this.guarded(step, async () => {
      const r = await list.run(async () => ({ ok: true, note: '' }), this.signOffTimeout as Duration);
      if (!r.complete) {
        throw ApplicationFailure.nonRetryable(`nobody signed off ${r.waitingFor.map((i) => `"${i.id}"`).join(', ')} within ${this.signOffTimeout}`, 'SignOffTimeout');
      }
    });
    this.noteLast(
      list.items
        .filter((i) => i.kind === 'manual')
        .map((i) => `${i.id}: ${i.state}${i.by ? ` by ${i.by}` : ''}${i.note ? ` (${i.note})` : ''}`)
        .join('; '),
    );
  }

  /** Mark an item skipped by pgdr (e.g. production-only items in a drill). */
  skipItem(list: Checklist, id: string, why: string): void {
    const item = list.items.find((i) => i.id === id);
    if (!item) return;
    item.state = 'skipped';
    item.by = 'pgdr';
    item.at = now();
    item.note = why;
    list.changed();
  }

  /** Wait for retry / abort after a failed step; throws Aborted on abort (or when nobody decides in time). */
  private async pauseAfter(step: string, err: unknown, attempt: number): Promise<void> {
    const d = await this.pauses.pause(step, err, attempt, ['retry', 'abort'], this.pauseTimeout as Duration);
    if (d.choice !== 'retry') {
      const failed = this.pauses.all[this.pauses.all.length - 1].error.split('\n')[0];
      throw new Aborted(`${d.choice === 'timeout' ? 'stopped' : 'aborted'} by ${d.by} at "${step}"${d.note ? `: ${d.note}` : ''} (the step had failed: ${failed})`);
    }
  }
}
