/**
 * Activities of the approval gate (workflows/approval.ts): the policy from the config, the Slack request
 * message with its buttons, reminders, the final message update, and the append-only audit log.
 * They run on the shared task queue. Slack failures never fail the gate: the CLI and the Temporal UI still
 * work, so the message functions log and return `delivered: 'log'`.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { KnownBlock } from '@slack/web-api';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadedConfig } from '../common/config';
import {
  APPROVAL_KINDS,
  SLACK_ACTION,
  encodeButtonValue,
  isSlackUserId,
  listOr,
  type ApprovalAuditRecord,
  type ApprovalKind,
  type ApprovalView,
  type ResolvedApprovalPolicy,
  type SlackMessageRef,
} from '../common/approvals';
import { when } from '../common/human-time';
import { log } from '../common/log';
import { hostTaskQueue } from '../common/types';
import type { ActivityDeps } from './context';
import { slackTarget, workflowUrl } from './slack';

/** The audit log file: JSON lines, only ever appended to. */
export function approvalAuditFile(config: LoadedConfig): string {
  return join(config.stateDirAbs, 'audit', 'approvals.jsonl');
}

/** `<@U123>` for Slack user ids (a mention), the name otherwise. */
export function mention(identity: string): string {
  return isSlackUserId(identity) ? `<@${identity}>` : identity;
}

function who(v: { by: string; slackUserName?: string }): string {
  return isSlackUserId(v.by) ? `<@${v.by}>${v.slackUserName ? ` (${v.slackUserName})` : ''}` : v.by;
}

function paramLines(view: ApprovalView): string[] {
  return Object.entries(view.details).map(([k, v]) => `• ${k}: \`${v === null ? '—' : String(v)}\``);
}

/** Plain-text fallback (notifications, logs, screen readers). */
export function approvalText(view: ApprovalView): string {
  const head: Record<ApprovalView['status'], string> = {
    pending: 'Approval needed',
    approved: 'APPROVED',
    rejected: 'REJECTED',
    expired: 'EXPIRED (nothing was done)',
  };
  return `${head[view.status]}: ${view.action} — requested by ${view.requestedBy}: ${view.reason} (workflow ${view.workflowId}, ${view.approvalId})`;
}

/** "a, b and c": everyone who decided (listOr is for who may still vote). */
function listAnd(names: string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** The Block Kit message for an approval in its current state: buttons while pending, the outcome after. */
export function approvalBlocks(view: ApprovalView, url?: string): KnownBlock[] {
  const icon: Record<ApprovalView['status'], string> = { pending: ':lock:', approved: ':white_check_mark:', rejected: ':x:', expired: ':hourglass:' };
  const blocks: KnownBlock[] = [
    { type: 'section', text: { type: 'mrkdwn', text: truncate(`${icon[view.status]} *${view.status === 'pending' ? 'Approval needed' : view.status.toUpperCase()}:* ${view.action}`, 3000) } },
  ];
  const params = paramLines(view);
  if (params.length) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncate(`*Exact parameters*\n${params.join('\n')}`, 3000) } });
  blocks.push({
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: truncate(
        [
          `*Requested by* ${mention(view.requestedBy)} — _${view.reason}_`,
          `*Needs* ${view.required} approval${view.required > 1 ? 's' : ''} from ${listOr(view.approvers.map(mention))} · *deadline* ${when(view.deadline)}`,
        ].join('\n'),
        3000,
      ),
    },
  });
  if (view.votes.length) {
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: truncate(
          view.votes.map((v) => `${v.decision === 'approve' ? ':white_check_mark: approved' : ':x: rejected'} by ${who(v)} via ${v.via} at ${when(v.at)}${v.comment ? ` — “${v.comment}”` : ''}`).join('\n'),
          3000,
        ),
      },
    });
  }
  if (view.status === 'pending') {
    const value = encodeButtonValue({ w: view.workflowId, a: view.approvalId });
    blocks.push({
      type: 'actions',
      block_id: `pgdr-approval-${view.approvalId}`,
      elements: [
        {
          type: 'button',
          action_id: SLACK_ACTION.approve,
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          value,
          confirm: {
            title: { type: 'plain_text', text: 'Approve this action?' },
            text: { type: 'mrkdwn', text: truncate(`${view.action}\n${params.join('\n')}`, 300) },
            confirm: { type: 'plain_text', text: 'Approve' },
            deny: { type: 'plain_text', text: 'Cancel' },
            style: 'danger',
          },
        },
        { type: 'button', action_id: SLACK_ACTION.reject, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value },
      ],
    });
  } else {
    const outcome =
      view.status === 'expired'
        ? `:hourglass: Expired at ${when(view.decidedAt ?? view.deadline)} with no decision — the runbook stopped and nothing destructive was done.`
        : `${view.status === 'approved' ? ':white_check_mark: Approved' : ':x: Rejected'} by ${listAnd((view.decidedBy ?? []).map((b) => who(view.votes.find((v) => v.by === b) ?? { by: b })))} at ${when(view.decidedAt ?? '')}.`;
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: outcome } });
  }
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: truncate(`${url ? `<${url}|workflow ${view.workflowId}>` : `workflow ${view.workflowId}`} · ${view.approvalId} · kind ${view.kind}`, 3000) }],
  });
  return blocks;
}

function currentWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
  }
}

export interface MessageResult {
  delivered: 'slack' | 'log';
  slack?: SlackMessageRef;
  error?: string;
}

/** chat.update of an approval message; used by the worker and by `pgdr slack-server`. Never throws. */
export async function updateApprovalMessage(config: LoadedConfig, view: ApprovalView, opts: { retries?: number } = {}): Promise<MessageResult> {
  if (!view.slack) return { delivered: 'log' };
  const slack = slackTarget(config, opts);
  if (!slack) return { delivered: 'log' };
  try {
    await slack.client.chat.update({
      channel: view.slack.channel,
      ts: view.slack.ts,
      text: approvalText(view),
      blocks: approvalBlocks(view, workflowUrl(config, view.workflowId)),
    });
    return { delivered: 'slack', slack: view.slack };
  } catch (err) {
    log.warn({ err: (err as Error).message, approvalId: view.approvalId }, 'slack: updating the approval message failed');
    return { delivered: 'log', error: (err as Error).message };
  }
}

export function approvalActivities({ config }: ActivityDeps) {
  return {
    /** The approval policy of a runbook kind, from the config. */
    async approvalPolicy({ kind }: { kind: ApprovalKind }): Promise<ResolvedApprovalPolicy> {
      if (!APPROVAL_KINDS.includes(kind)) {
        throw ApplicationFailure.nonRetryable(`unknown approval kind "${kind}" (known: ${APPROVAL_KINDS.join(', ')})`, 'BadInput');
      }
      const p = config.approvals[kind];
      return {
        kind,
        approvers: [...p.approvers],
        required: p.required,
        expiresIn: p.expiresIn,
        remindEvery: p.remindEvery,
        people: { ...config.approvals.people },
        slack: Boolean(slackTarget(config)),
        // One audit log for the installation: the gate appends it on this host's queue (its stateDir).
        auditTaskQueue: hostTaskQueue(config.approvals.auditHost ?? config.clusters[0].host),
      };
    },

    /** Post the request (Slack message with buttons, or the log). Never throws. */
    async postApprovalRequest({ view }: { view: ApprovalView }): Promise<MessageResult> {
      const url = workflowUrl(config, view.workflowId);
      log.warn({ approval: { ...view, url } }, `approval needed: ${view.action} — may approve: ${view.mayStillVote.join(', ') || 'nobody'}`);
      const slack = slackTarget(config);
      if (!slack) return { delivered: 'log' };
      try {
        const res = await slack.client.chat.postMessage({ channel: slack.channel, text: approvalText(view), blocks: approvalBlocks(view, url) });
        if (!res.ts || !res.channel) return { delivered: 'log', error: 'Slack answered without channel/ts' };
        return { delivered: 'slack', slack: { channel: res.channel, ts: res.ts } };
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'slack: posting the approval request failed; approve with the CLI or the Temporal UI');
        return { delivered: 'log', error: (err as Error).message };
      }
    },

    /** A reminder mentioning who may still approve, in the request's thread. Never throws. */
    async remindApproval({ view }: { view: ApprovalView }): Promise<MessageResult> {
      const text = `:alarm_clock: Reminder: still waiting for approval of *${view.action}* — ${listOr(view.mayStillVote.map(mention))}, please decide before ${when(view.deadline)} (${view.votes.filter((v) => v.decision === 'approve').length} of ${view.required} approvals so far).`;
      log.warn({ approvalId: view.approvalId, workflowId: view.workflowId ?? currentWorkflowId() }, text);
      const slack = slackTarget(config);
      if (!slack) return { delivered: 'log' };
      try {
        await slack.client.chat.postMessage({ channel: view.slack?.channel ?? slack.channel, thread_ts: view.slack?.ts, text });
        return { delivered: 'slack', slack: view.slack };
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'slack: reminder failed');
        return { delivered: 'log', error: (err as Error).message };
      }
    },

    /** Show the outcome on the request message (buttons removed). Never throws. */
    async finishApprovalMessage({ view }: { view: ApprovalView }): Promise<MessageResult> {
      log.warn({ approvalId: view.approvalId, workflowId: view.workflowId, status: view.status, decidedBy: view.decidedBy }, approvalText(view));
      return updateApprovalMessage(config, view);
    },

    /**
     * Append audit records to audit/approvals.jsonl under the state folder (created if missing). Append
     * only; a retried activity may write a record twice (same content), never lose one. Runs on the task
     * queue of approvals.auditHost (approvalPolicy's auditTaskQueue), so the log is in one place.
     */
    async appendApprovalAudit({ records }: { records: ApprovalAuditRecord[] }): Promise<{ file: string; written: number }> {
      const file = approvalAuditFile(config);
      await mkdir(join(config.stateDirAbs, 'audit'), { recursive: true, mode: 0o750 });
      if (records.length) await appendFile(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''), { flag: 'a', mode: 0o640 });
      return { file, written: records.length };
    },

    /** The demo runbook's "action" after approval: harmless, only logged. */
    async demoAfterApproval({ approvalId, approvedBy }: { approvalId: string; approvedBy: string[] }): Promise<{ ranAt: string }> {
      log.warn({ approvalId, approvedBy }, 'demo: the approved action runs now (it only writes this log line)');
      return { ranAt: new Date().toISOString() };
    },
  };
}
