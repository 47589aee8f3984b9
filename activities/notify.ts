/**
 * The notifier: runbook start/success/failure and health alerts go to Slack when it is configured, and
 * always to the log. A notification never fails or blocks a runbook: Slack errors are retried with
 * backoff by the client, then logged and swallowed.
 */
import { Context } from '@temporalio/activity';
import { log } from '../common/log';
import type { ActivityDeps } from './context';
import { slackTarget, workflowUrl } from './slack';

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
    n.error && `error: ${n.error}`,
    url && `<${url}|open in Temporal UI>`,
  ];
  return parts.filter(Boolean).join('\n');
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
        const res = await slack.client.chat.postMessage({
          channel: slack.channel,
          text,
          thread_ts: n.threadTs,
          blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }],
        });
        return { delivered: 'slack', ts: res.ts };
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'slack notification failed; logged only');
        return { delivered: 'log', error: (err as Error).message };
      }
    },
  };
}
