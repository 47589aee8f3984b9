/**
 * Activities of the approval gate (workflows/approval.ts): the policy from the config, the Slack request
 * message with its buttons, reminders, the final message update, and the append-only audit log.
 * They run on the shared task queue. Slack failures never fail the gate: the CLI and the Temporal UI still
 * work, so the message functions log and return `delivered: 'log'`.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadedConfig } from '../common/config';
import {
  APPROVAL_KINDS,
  listOr,
  type ApprovalAuditRecord,
  type ApprovalKind,
  type ApprovalView,
  type ResolvedApprovalPolicy,
} from '../common/approvals';
import { when } from '../common/human-time';
import { log } from '../common/log';
import { hostTaskQueue } from '../common/types';
import type { ActivityDeps } from './context';
import { approvalBlocks, approvalText, mention, slackTarget, updateApprovalMessage, workflowUrl, type MessageResult } from '../common/slack';

/** The audit log file: JSON lines, only ever appended to. */
export function approvalAuditFile(config: LoadedConfig): string {
  return join(config.stateDirAbs, 'audit', 'approvals.jsonl');
}

function currentWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
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
