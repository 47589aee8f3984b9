/**
 * The notifier: runbook start/success/failure and health alerts go to Slack when it is configured, and
 * always to the log. A notification never fails or blocks a runbook: Slack errors are retried with
 * backoff by the client, then logged and swallowed.
 */
import type { ChatPostMessageArguments, KnownBlock } from '@slack/web-api';
import { Context } from '@temporalio/activity';
import { times } from '../common/human-time';
import { log } from '../common/log';
import type { ActivityDeps } from './context';
import { slackTarget, workflowUrl } from '../common/slack';

export type NoticeLevel = 'info' | 'success' | 'warning' | 'alert' | 'recovery';

export interface Notice {
  level: NoticeLevel;
  title: string;
  cluster?: string;
  runbook?: string;
  step?: string;
  text?: string;
  error?: string;
  /** Reply in this thread (the `ts` of the run's first message). */
  threadTs?: string;
  /** Link to this workflow in the Temporal UI (default: the calling workflow). */
  workflowId?: string;
  /** A thread reply that is also shown in the channel (Slack `reply_broadcast`). */
  broadcast?: boolean;
  /** Extra facts shown as fields (e.g. "failing WAL" → name). */
  fields?: Record<string, string>;
  /** Buttons under the message (their clicks come back through `pgdr slack-server`). */
  buttons?: { actionId: string; text: string; value: string; style?: 'primary' | 'danger'; confirm?: string }[];
}

export interface NoticeResult {
  delivered: 'slack' | 'log';
  ts?: string;
  error?: string;
}

const ICON: Record<NoticeLevel, string> = { info: ':information_source:', success: ':white_check_mark:', warning: ':warning:', alert: ':rotating_light:', recovery: ':large_green_circle:' };

export function noticeText(n: Notice, url?: string): string {
  const parts = [
    `${ICON[n.level]} ${n.title}`,
    [n.cluster && `cluster *${n.cluster}*`, n.runbook && `runbook *${n.runbook}*`, n.step && `step: ${n.step}`].filter(Boolean).join(' · '),
    n.text,
    ...Object.entries(n.fields ?? {}).map(([k, v]) => `${k}: ${v}`),
    n.error && `error: ${n.error}`,
    url && `<${url}|open in Temporal UI>`,
  ];
  return parts.filter(Boolean).join('\n');
}

/** Slack's limit for a section block's text is 3000 characters. */
const clip = (s: string, max = 2900) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** Block Kit layout of a notice; `text` (noticeText) is always sent too, for notifications and screen readers. */
export function noticeBlocks(n: Notice, url?: string): KnownBlock[] {
  const blocks: KnownBlock[] = [{ type: 'section', text: { type: 'mrkdwn', text: clip(`${ICON[n.level]} *${n.title}*`) } }];
  const facts: string[] = [];
  if (n.cluster) facts.push(`*Cluster*\n${n.cluster}`);
  if (n.runbook) facts.push(`*Runbook*\n${n.runbook}`);
  if (n.step) facts.push(`*Step*\n${n.step}`);
  for (const [k, v] of Object.entries(n.fields ?? {})) facts.push(`*${k}*\n${v}`);
  if (facts.length) blocks.push({ type: 'section', fields: facts.slice(0, 10).map((f) => ({ type: 'mrkdwn', text: clip(f, 1900) })) });
  if (n.text) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(times(n.text)) } });
  if (n.error) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(`*Error*\n\`\`\`${times(n.error)}\`\`\``) } });
  if (n.buttons?.length) {
    blocks.push({
      type: 'actions',
      elements: n.buttons.map((b) => ({
        type: 'button',
        action_id: b.actionId,
        text: { type: 'plain_text', text: b.text },
        value: b.value,
        ...(b.style ? { style: b.style } : {}),
        ...(b.confirm
          ? { confirm: { title: { type: 'plain_text', text: b.text }, text: { type: 'mrkdwn', text: clip(b.confirm, 290) }, confirm: { type: 'plain_text', text: b.text }, deny: { type: 'plain_text', text: 'Cancel' } } }
          : {}),
      })),
    });
  }
  if (url) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${url}|Open in the Temporal UI>` }] });
  return blocks;
}

export function notifyActivities({ config }: ActivityDeps) {
  return {
    /** Send a notification; returns where it went. Never throws. */
    async notify(n: Notice): Promise<NoticeResult> {
      let workflowId = n.workflowId;
      try {
        workflowId ??= Context.current().info.workflowExecution?.workflowId;
      } catch {
        /* not in an activity */
      }
      const url = workflowId !== undefined ? workflowUrl(config, workflowId) : undefined;
      const text = noticeText(n, url);
      log[n.level === 'alert' ? 'error' : n.level === 'warning' ? 'warn' : 'info']({ notice: { ...n, url } }, n.title);
      const slack = slackTarget(config);
      if (!slack) return { delivered: 'log' };
      try {
        // The WebClient retries 5xx and network errors with backoff and waits out 429 Retry-After
        // (common/slack.ts); the workflow bounds the whole call with a short activity timeout.
        const args = { channel: slack.channel, text, blocks: noticeBlocks(n, url), unfurl_links: false } as Record<string, unknown>;
        if (n.threadTs) {
          args.thread_ts = n.threadTs;
          if (n.broadcast) args.reply_broadcast = true;
        }
        const res = await slack.client.chat.postMessage(args as unknown as ChatPostMessageArguments);
        return { delivered: 'slack', ts: res.ts };
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'slack notification failed; logged only');
        return { delivered: 'log', error: (err as Error).message };
      }
    },
  };
}
