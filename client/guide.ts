/**
 * Guiding a person through a runbook that waits for people: while it runs, show each checklist item once
 * it waits for a sign-off (at a terminal: offer to sign it now), and who may approve a pending approval.
 * Runbooks with more to ask (full-site recovery's pause) add their own step to each round.
 */
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { createInterface } from 'node:readline/promises';
import type { ApprovalStateAnswer } from '../common/approvals';
import type { ChecklistItem, ChecklistSnapshot } from '../workflows/checklist';
import { when } from './format';
import { CliError, rootCause } from './temporal';

export const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

export async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/** Sign off (or skip) a checklist item through the Update `checkItem`; a refusal is one clear line. */
export async function signOff(client: Client, wf: string, item: string, by: string, note?: string, skip?: boolean): Promise<ChecklistItem> {
  try {
    return await client.workflow.getHandle(wf).executeUpdate<ChecklistItem, [object]>('checkItem', { args: [{ item, by, note, ...(skip ? { skip: true } : {}) }] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(`refused: ${rootCause(err)}`);
    throw err;
  }
}

/** One more thing to look at each round; `shown` remembers what was already printed. */
export type GuideStep = (handle: WorkflowHandle, shown: Set<string>) => Promise<void>;

export async function guide(client: Client, wf: string, me: string, done: () => boolean, extra?: GuideStep): Promise<void> {
  const handle = client.workflow.getHandle(wf);
  const shown = new Set<string>();
  while (!done()) {
    try {
      const lists = await handle.query<ChecklistSnapshot[]>('checklist').catch(() => [] as ChecklistSnapshot[]);
      for (const item of lists.flatMap((l) => l.items)) {
        if (item.kind !== 'manual' || item.state !== 'pending' || shown.has(item.id)) continue;
        shown.add(item.id);
        process.stderr.write(
          `\n  ☐ waiting for sign-off: ${item.title}${item.optional ? ' (optional)' : ''}\n    pgdr check ${wf} ${item.id} --as <you> [--note …]${item.optional ? ' [--skip --note <why>]' : ''}\n`,
        );
        if (!interactive()) continue;
        const a = (await ask(`    Sign off "${item.title}" as ${me} now? [y/N${item.optional ? '/s=skip' : ''}] `)).toLowerCase();
        if (a !== 'y' && a !== 'yes' && !(a === 's' && item.optional)) continue;
        const note = await ask(a === 's' ? '    Why skip it: ' : '    Note (optional): ');
        await signOff(client, wf, item.id, me, a === 's' ? note || 'skipped from the CLI' : note || undefined, a === 's').then(
          (r) => process.stderr.write(`    ✓ ${r.state} by ${me}\n`),
          (e) => {
            process.stderr.write(`    ${(e as Error).message}\n`);
            shown.delete(item.id); // offer it again once its checklist is open
          },
        );
      }
      const p = (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending;
      if (p && !shown.has(`approval:${p.approvalId}`)) {
        shown.add(`approval:${p.approvalId}`);
        process.stderr.write(
          `\n  ⏳ waiting for ${p.required} approval(s) (${p.approvalId}) from ${p.mayStillVote.join(', ') || 'nobody — check approvals in the config'} until ${when(p.deadline)}\n` +
            `    pgdr approve ${wf} --as <approver>   (or the Slack buttons, or the Temporal UI's Update "approve")\n`,
        );
      }
      await extra?.(handle, shown);
    } catch {
      /* not answerable yet */
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
