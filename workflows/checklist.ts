/**
 * Checklists inside runbooks (the DR plan's "Restore Checklist"): items with an id and a title, each
 * either checked by pgdr itself (an automated check) or signed off by a person through the Update
 * `checkItem` {item, by, note?} — from `pgdr check <workflowId> <item>`, the Temporal UI, or Slack.
 * Optional items may be skipped with a reason. The state is shown live in the UI and answered by the
 * `checklist` query.
 *
 * Who may sign (invariant 4): a checklist of a destructive runbook names the approval kind whose allowlist
 * signs it (`approvals.<kind>.approvers`); items marked `notRequester` need someone other than the person
 * who requested the runbook. The `checkItem` validator applies it, so the CLI, Slack and the UI get one rule.
 */
import type { Duration } from '@temporalio/common';
import { condition, defineQuery, defineUpdate, setHandler, workflowInfo } from '@temporalio/workflow';
import type { CheckOutcome } from '../common/types';
import { messages } from './activity-options';
import { actorRefusal, type ActorPolicy, type ApprovalKind } from '../common/approvals';
import { rootMessage } from '../common/errors';

export type ItemState = 'pending' | 'running' | 'passed' | 'failed' | 'signed' | 'skipped';

export interface ChecklistItemSpec {
  id: string;
  title: string;
  /** auto: pgdr checks it; manual: a person signs it off. */
  kind: 'auto' | 'manual';
  optional?: boolean;
  /** A second pair of eyes: the requester of the runbook may not sign this item. */
  notRequester?: boolean;
}

/** Who signs a checklist: the allowlist of approvals.<kind>, and who requested the runbook. */
export interface SignOffPolicy {
  kind: ApprovalKind;
  requestedBy: string;
}

export interface ChecklistItem extends ChecklistItemSpec {
  state: ItemState;
  by?: string;
  at?: string;
  note?: string;
}

export interface ChecklistSnapshot {
  name: string;
  items: ChecklistItem[];
}

export interface CheckItemInput {
  item: string;
  by: string;
  note?: string;
  /** Skip an optional item; `note` gives the reason. */
  skip?: boolean;
}

export const checkItemUpdate = defineUpdate<ChecklistItem, [CheckItemInput]>('checkItem');
export const checklistQuery = defineQuery<ChecklistSnapshot[]>('checklist');

const lists: Checklist[] = [];
let handlersInstalled = false;

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  setHandler(checklistQuery, () => lists.map((l) => l.snapshot()), { description: 'Checklists of this runbook with every item and who signed it' });
  setHandler(
    checkItemUpdate,
    (input) => {
      const { list, item } = findOpenManualItem(input.item)!;
      item.state = input.skip ? 'skipped' : 'signed';
      item.by = input.by.trim();
      item.at = new Date().toISOString();
      item.note = input.note;
      list.changed();
      return { ...item };
    },
    {
      description: 'Sign off (or skip, if optional) a manual checklist item: {"item": "stakeholders-notified", "by": "alice", "note": "posted in #incidents"}',
      validator: (input) => {
        if (!input || typeof input !== 'object') throw new Error('checkItem takes one object: {"item": "<id>", "by": "<who>", "note": "…"}');
        if (typeof input.by !== 'string' || !input.by.trim()) throw new Error('"by" is required: who signs this item off');
        if (typeof input.item !== 'string') throw new Error('"item" is required: the id of the checklist item');
        const found = findOpenManualItem(input.item);
        if (!found) {
          const all = lists.flatMap((l) => l.items);
          const it = all.find((i) => i.id === input.item);
          if (!it) throw new Error(`no checklist item "${input.item}" (items: ${all.map((i) => i.id).join(', ') || 'none yet'})`);
          if (it.kind === 'auto') throw new Error(`"${input.item}" is checked by pgdr itself, not signed off by hand`);
          throw new Error(`"${input.item}" is already ${it.state}${it.by ? ` by ${it.by}` : ''}`);
        }
        if (input.skip && !found.item.optional) throw new Error(`"${input.item}" is not optional and cannot be skipped`);
        if (found.list.signers) {
          const refused = actorRefusal(found.list.signers, input.by, `sign off "${input.item}"`, found.item.notRequester);
          if (refused) throw new Error(refused);
        }
        if (input.skip && !input.note?.trim()) throw new Error('skipping an item needs a reason in "note"');
      },
    },
  );
}

/** The manual item with this id that is waiting for a person, in an active checklist. */
function findOpenManualItem(id: string): { list: Checklist; item: ChecklistItem } | undefined {
  for (const list of lists) {
    if (!list.active) continue;
    const item = list.items.find((i) => i.id === id && i.kind === 'manual' && i.state === 'pending');
    if (item) return { list, item };
  }
  return undefined;
}

export class Checklist {
  readonly items: ChecklistItem[];
  active = false;
  /** Loaded from the config when the list opens (see SignOffPolicy); undefined: anyone may sign. */
  signers?: ActorPolicy;
  private onChange: () => void = () => undefined;

  constructor(
    readonly name: string,
    specs: ChecklistItemSpec[],
    private readonly policy?: SignOffPolicy,
  ) {
    installHandlers();
    this.items = specs.map((s) => ({ ...s, state: 'pending' as ItemState }));
    lists.push(this);
  }

  /** Called whenever an item changes (e.g. to refresh the UI's current details). */
  watch(fn: () => void): this {
    this.onChange = fn;
    return this;
  }

  changed(): void {
    this.onChange();
  }

  snapshot(): ChecklistSnapshot {
    return { name: this.name, items: this.items.map((i) => ({ ...i })) };
  }

  /**
   * Work through the list: manual items open for sign-off at once; automated ones run in order through
   * `check`. Resolves when every item is passed, signed or skipped; returns the failed required items
   * (empty when the list is complete). Waits at most `timeout` for people (undefined: forever).
   */
  async run(check: (id: string) => Promise<CheckOutcome>, timeout?: Duration): Promise<{ complete: boolean; failed: ChecklistItem[]; waitingFor: ChecklistItem[] }> {
    if (this.policy && !this.signers) {
      this.signers = { ...(await messages.approvalPolicy({ kind: this.policy.kind })), requestedBy: this.policy.requestedBy };
    }
    this.active = true;
    this.changed();
    for (const item of this.items.filter((i) => i.kind === 'auto')) {
      item.state = 'running';
      this.changed();
      let outcome: CheckOutcome;
      try {
        outcome = await check(item.id);
      } catch (err) {
        outcome = { ok: false, note: rootMessage(err) };
      }
      item.state = outcome.ok ? 'passed' : item.optional ? 'skipped' : 'failed';
      item.by = 'pgdr';
      item.at = new Date().toISOString();
      item.note = outcome.note;
      this.changed();
    }
    const open = () => this.items.filter((i) => i.kind === 'manual' && i.state === 'pending');
    if (open().length) {
      // Ask in Slack too (a button per item); a failure there never holds up the checklist.
      await messages.postSignOffRequest({ checklist: this.name, title: workflowInfo().workflowType, items: open().map(({ id, title, optional }) => ({ id, title, optional })) }).catch(() => undefined);
      const done = timeout !== undefined ? await condition(() => open().length === 0, timeout) : (await condition(() => open().length === 0), true);
      if (!done) {
        this.active = false;
        return { complete: false, failed: this.failed(), waitingFor: open() };
      }
    }
    this.active = false;
    this.changed();
    const failed = this.failed();
    return { complete: failed.length === 0, failed, waitingFor: [] };
  }

  failed(): ChecklistItem[] {
    return this.items.filter((i) => i.state === 'failed');
  }

  /** Markdown for the UI: ✓/✗/pending, who and when. */
  markdown(): string {
    const mark: Record<ItemState, string> = { pending: '☐', running: '⏳', passed: '✓', signed: '✓', failed: '✗', skipped: '–' };
    const lines = this.items.map((i) => {
      const signer = this.signers ? ` by ${i.notRequester ? `someone other than ${this.signers.requestedBy} ` : ''}on approvals.${this.signers.kind}.approvers` : '';
      const who = i.by ? ` — ${i.state} by ${i.by}${i.at ? ` at ${i.at.slice(11, 19)}Z` : ''}` : i.kind === 'manual' && i.state === 'pending' ? ` — waiting for sign-off${signer}: \`pgdr check <workflowId> ${i.id}\`` : '';
      return `- ${mark[i.state]} ${i.title}${i.optional ? ' (optional)' : ''}${who}${i.note ? `: ${i.note}` : ''}`;
    });
    return [`**${this.name}**`, ...lines].join('\n');
  }
}
