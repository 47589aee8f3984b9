/**
 * Slack for pgdr: the Web API client, built from the config: bot token from the environment variable the config
 * names (never from the file), an optional API URL override (a local fake in tests), and retries with
 * backoff that honour Retry-After on 429. `undefined` when Slack is not configured: callers fall back to
 * the log. And the approval message (text, blocks, chat.update), rendered the same by the worker and by
 * `pgdr slack-server`.
 */
import { WebClient, LogLevel, type KnownBlock } from '@slack/web-api';
import { encodeButtonValue, isSlackUserId, listOr, SLACK_ACTION, type ApprovalView, type SlackMessageRef } from './approvals';
import type { LoadedConfig } from './config';
import { when } from './human-time';
import { log } from './log';

const clients = new Map<string, WebClient>();

export interface SlackTarget {
  client: WebClient;
  channel: string;
}

export function slackTarget(config: LoadedConfig, opts: { retries?: number } = {}): SlackTarget | undefined {
  const s = config.slack;
  if (!s) return undefined;
  const token = process.env[s.tokenEnv];
  if (!token) return undefined;
  const retries = opts.retries ?? 4;
  const key = `${token}|${s.apiUrl ?? ''}|${retries}`;
  let client = clients.get(key);
  if (!client) {
    client = new WebClient(token, {
      slackApiUrl: s.apiUrl,
      logLevel: LogLevel.ERROR,
      // Backoff for 5xx and network errors; 429 waits for Retry-After (rejectRateLimitedCalls: false).
      retryConfig: { retries, factor: 2, minTimeout: 200, maxTimeout: 5_000, randomize: true },
      timeout: 10_000,
    });
    clients.set(key, client);
  }
  return { client, channel: s.channel };
}

/** Link to a workflow in the Temporal UI. */
export function workflowUrl(config: LoadedConfig, workflowId: string, runId?: string): string {
  const base = config.temporal.uiUrl.replace(/\/$/, '');
  return `${base}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}${runId ? `/${runId}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------------
// The approval message

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
