/**
 * The Slack Web API client, built from the config: bot token from the environment variable the config
 * names (never from the file), an optional API URL override (a local fake in tests), and retries with
 * backoff that honour Retry-After on 429. `undefined` when Slack is not configured: callers fall back to
 * the log.
 */
import { WebClient, LogLevel } from '@slack/web-api';
import type { LoadedConfig } from '../common/config';

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
