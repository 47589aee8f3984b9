/**
 * Guiding a person through a runbook that waits for people: while it runs, show each checklist item once
 * it waits for a sign-off (at a terminal: offer to sign it now), and who may approve a pending approval.
 * Runbooks with more to ask (full-site recovery's pause) add their own step to each round.
 */
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { approvalStateQuery } from '../workflows/approval';
import { checkItemUpdate, checklistQuery, type ChecklistItem, type ChecklistSnapshot } from '../workflows/checklist';
import { when } from './format';
import { CliError, within } from './temporal';
import { rootMessage } from '../common/errors';
import { askOrWithdrawn, interactive, note } from './terminal';

export { ask, interactive } from './terminal';

/** Sign off (or skip) a checklist item through the Update `checkItem`; a refusal is one clear line. */
export async function signOff(client: Client, wf: string, item: string, by: string, note?: string, skip?: boolean): Promise<ChecklistItem> {
  try {
    return await client.workflow.getHandle(wf).executeUpdate(checkItemUpdate, { args: [{ item, by, note, ...(skip ? { skip: true } : {}) }] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(`refused: ${rootMessage(err)}`);
    throw err;
  }
}

/** One more thing to look at each round; `shown` remembers what was already printed. */
export type GuideStep = (handle: WorkflowHandle, shown: Set<string>) => Promise<void>;

/** Who may sign: the allowlist (for a hint) and the requester (who may not sign "not the requester" items). */
export interface GuideSigners {
  approvers: string[];
  requestedBy: string;
}

/**
 * While a sign-off question is open, watch the item: when someone signs (or skips) it elsewhere — another
 * terminal, Slack, the UI — withdraw the question and say who did it.
 */
function watchItem(handle: WorkflowHandle, id: string, ended: () => boolean): { signal: AbortSignal; by: () => ChecklistItem | undefined; stop: () => void } {
  const ctl = new AbortController();
  let done: ChecklistItem | undefined;
  const timer = setInterval(() => {
    if (ended()) {
      ctl.abort(); // the runbook (or the CLI's wait on it) is over: nobody needs the answer
      return;
    }
    void within(handle.query(checklistQuery), 3000)
      .then((lists) => {
        const now = lists.flatMap((l) => l.items).find((i) => i.id === id);
        if (now && now.state !== 'pending' && !ctl.signal.aborted) {
          done = now;
          ctl.abort();
        }
      })
      .catch(() => undefined);
  }, 1000);
  return { signal: ctl.signal, by: () => done, stop: () => clearInterval(timer) };
}

export async function guide(client: Client, wf: string, me: string, done: () => boolean, extra?: GuideStep, signers?: GuideSigners): Promise<void> {
  const handle = client.workflow.getHandle(wf);
  const shown = new Set<string>();
  while (!done()) {
    try {
      const lists = await within(handle.query(checklistQuery), 3000).catch(() => [] as ChecklistSnapshot[]);
      for (const item of lists.flatMap((l) => l.items)) {
        if (item.kind !== 'manual' || item.state !== 'pending' || shown.has(item.id)) continue;
        shown.add(item.id);
        const others = signers ? signers.approvers.filter((a) => a !== signers.requestedBy) : [];
        const secondPerson = Boolean(item.notRequester && signers && me === signers.requestedBy);
        note(
          `\n  ☐ waiting for sign-off: ${item.title}${item.optional ? ' (optional)' : ''}\n    pgdr check ${wf} ${item.id} --as ${secondPerson && others[0] ? others[0] : '<you>'} [--note …]${item.optional ? ' [--skip --note <why>]' : ''}\n` +
            (secondPerson ? `    (someone other than ${me}${others.length ? `: ${others.join(', ')}` : ''})\n` : ''),
        );
        if (!interactive() || done()) continue;
        const watch = watchItem(handle, item.id, done);
        try {
          const signer = secondPerson
            ? await askOrWithdrawn(`    Who signs "${item.title}" (not ${me}${others.length ? `; one of ${others.join(', ')}` : ''})? [name, Enter = later] `, { signal: watch.signal })
            : undefined;
          const a = secondPerson
            ? signer
              ? 'y'
              : signer
            : (await askOrWithdrawn(`    Sign off "${item.title}" as ${me} now? [y/N${item.optional ? '/s=skip' : ''}] `, { signal: watch.signal }))?.toLowerCase();
          if (a === undefined && done()) break;
          if (a === undefined) {
            const by = watch.by();
            note(`    ✓ "${item.title}" was ${by?.state ?? 'decided'} by ${by?.by ?? 'someone else'}${by?.at ? ` at ${when(by.at)}` : ''}${by?.note ? ` (${by.note})` : ''}; question withdrawn\n`);
            continue;
          }
          if (a !== 'y' && a !== 'yes' && !(a === 's' && item.optional)) continue;
          const note2 = await askOrWithdrawn(a === 's' ? '    Why skip it: ' : '    Note (optional): ', { signal: watch.signal, ...(a === 's' ? { required: 'a reason is needed to skip an item' } : {}) });
          if (note2 === undefined && done()) break;
          if (note2 === undefined) {
            const by = watch.by();
            note(`    ✓ "${item.title}" was ${by?.state ?? 'decided'} by ${by?.by ?? 'someone else'} meanwhile; question withdrawn\n`);
            continue;
          }
          const who = signer ?? me;
          await signOff(client, wf, item.id, who, note2 || undefined, a === 's').then(
            (r) => note(`    ✓ ${r.state} by ${who}\n`),
            (e) => {
              note(`    ${(e as Error).message}\n`);
              shown.delete(item.id); // offer it again once its checklist is open
            },
          );
        } finally {
          watch.stop();
        }
      }
      const p = (await within(handle.query(approvalStateQuery), 3000).catch(() => undefined))?.pending;
      if (p && !shown.has(`approval:${p.approvalId}`)) {
        shown.add(`approval:${p.approvalId}`);
        note(
          `\n  ⏳ waiting for ${p.required} approval(s) (${p.approvalId}) from ${p.mayStillVote.join(', ') || 'nobody — check approvals in the config'} until ${when(p.deadline)}\n` +
            `    pgdr approve ${wf} --as ${p.mayStillVote[0] ?? '<approver>'}   (or the Slack buttons, or the Temporal UI's Update "approve")\n`,
        );
      }
      await extra?.(handle, shown);
    } catch {
      /* not answerable yet */
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
