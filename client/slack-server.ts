/**
 * `pgdr slack-server`: receives Slack interactivity requests (the Approve / Reject buttons of approval
 * messages) and turns each click into the workflow's `approve` / `reject` Update.
 *
 * For every POST:
 * 1. read the raw body (at most 256 KiB) and verify Slack's v0 signature over exactly those bytes
 *    (HMAC-SHA256 with the signing secret, constant-time comparison), and refuse timestamps more than
 *    5 minutes away from our clock in either direction (replays, and requests "from the future");
 * 2. parse the `block_actions` payload; anything malformed is refused with 400 and nothing happens;
 * 3. answer 200 at once (Slack wants an answer within 3 s), then send the Update, with the voter
 *    authorized on `user.id` (never the user name) by the workflow's own validator, under a strict
 *    deadline;
 * 4. update the message (chat.update) to show the votes and the decision, rendered from the approval's
 *    current state (the `approvalState` query), never from the Update's result: Temporal answers a repeated
 *    update id (a replayed click) with the first click's cached result, which may be long out of date;
 *    a refused click tells the clicker privately (chat.postEphemeral, else a thread reply) why.
 *
 * The signing secret and the bot token come from the environment variables the config names.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { LoadedConfig } from '../common/config';
import {
  SLACK_ACTION,
  decodeButtonValue,
  personOf,
  type ApprovalView,
  type VoteArgs,
  type VoteDecision,
} from '../common/approvals';
import { log } from '../common/log';
import { slackTarget, updateApprovalMessage } from '../common/slack';
import { rootMessage } from '../common/errors';
import { approvalStateQuery, approveUpdate, rejectUpdate } from '../workflows/approval';
import { checkItemUpdate } from '../workflows/checklist';
import { pauseUpdates, type PauseChoice } from '../workflows/pause';

/** Largest request body accepted. */
const MAX_BODY = 256 * 1024;
/** Largest allowed difference between the request timestamp and our clock, either direction. */
export const MAX_CLOCK_SKEW_S = 5 * 60;

/** `v0=` + hex HMAC-SHA256(secret, `v0:{timestamp}:{body}`). */
export function slackSignature(signingSecret: string, timestamp: string, rawBody: string | Buffer): string {
  const h = createHmac('sha256', signingSecret);
  h.update(`v0:${timestamp}:`);
  h.update(rawBody);
  return `v0=${h.digest('hex')}`;
}

export type Verification = { ok: true } | { ok: false; reason: string };

/** Verify Slack's request signature over the raw body and the timestamp window (both directions). */
export function verifySlackSignature(o: {
  signingSecret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: string | Buffer;
  nowMs?: number;
}): Verification {
  if (!o.timestamp || !/^\d{1,12}$/.test(o.timestamp)) return { ok: false, reason: 'missing or malformed X-Slack-Request-Timestamp' };
  if (!o.signature || !/^v0=[0-9a-f]{64}$/.test(o.signature)) return { ok: false, reason: 'missing or malformed X-Slack-Signature' };
  const nowS = Math.floor((o.nowMs ?? Date.now()) / 1000);
  const skew = Number(o.timestamp) - nowS;
  if (skew < -MAX_CLOCK_SKEW_S) return { ok: false, reason: `request timestamp is ${-skew} s old (more than ${MAX_CLOCK_SKEW_S} s): possible replay` };
  if (skew > MAX_CLOCK_SKEW_S) return { ok: false, reason: `request timestamp is ${skew} s in the future (more than ${MAX_CLOCK_SKEW_S} s)` };
  const expected = Buffer.from(slackSignature(o.signingSecret, o.timestamp, o.rawBody), 'utf8');
  const given = Buffer.from(o.signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch' };
  return { ok: true };
}

/** A parsed, signed button click. */
export interface Click {
  /**
   * A vote; 'check': the sign-off of the checklist item named in approvalId; 'retry' / 'abort': the
   * decision on a paused full-site recovery (approvalId holds the pause's start time).
   */
  decision: VoteDecision | 'check' | PauseChoice;
  workflowId: string;
  approvalId: string;
  userId: string;
  userName?: string;
  channel: string;
  messageTs: string;
  actionTs?: string;
}

/** Parse a `block_actions` form body into a click, or say why it is malformed. */
export function parseClick(rawBody: string): { click: Click } | { ignore: string } | { malformed: string } {
  const form = new URLSearchParams(rawBody);
  const payloadText = form.get('payload');
  if (!payloadText) return { malformed: 'no payload field' };
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(payloadText) as Record<string, unknown>;
  } catch {
    return { malformed: 'payload is not JSON' };
  }
  if (!p || typeof p !== 'object') return { malformed: 'payload is not an object' };
  if (p.type !== 'block_actions') return { ignore: `payload type ${JSON.stringify(p.type)} is not handled` };
  const actions = p.actions;
  if (!Array.isArray(actions) || actions.length !== 1) return { malformed: 'expected exactly one action' };
  const a = actions[0] as Record<string, unknown>;
  const byAction: Record<string, Click['decision']> = {
    [SLACK_ACTION.approve]: 'approve',
    [SLACK_ACTION.reject]: 'reject',
    [SLACK_ACTION.check]: 'check',
    [SLACK_ACTION.retry]: 'retry',
    [SLACK_ACTION.abort]: 'abort',
    [SLACK_ACTION.keep]: 'keep',
    [SLACK_ACTION.rollBack]: 'rollBack',
  };
  const decision = typeof a.action_id === 'string' ? byAction[a.action_id] : undefined;
  if (!decision) return { ignore: `action ${JSON.stringify(a.action_id)} is not pgdr's` };
  const value = decodeButtonValue(a.value);
  if (!value) return { malformed: 'button value does not name a workflow and an approval' };
  const user = p.user as Record<string, unknown> | undefined;
  if (!user || typeof user.id !== 'string' || !/^[UW][A-Z0-9]{2,}$/.test(user.id)) return { malformed: 'no valid user.id' };
  const channel = (p.channel as Record<string, unknown> | undefined)?.id ?? (p.container as Record<string, unknown> | undefined)?.channel_id;
  const messageTs = (p.container as Record<string, unknown> | undefined)?.message_ts ?? (p.message as Record<string, unknown> | undefined)?.ts;
  if (typeof channel !== 'string' || typeof messageTs !== 'string') return { malformed: 'no channel / message_ts' };
  const userName = typeof user.name === 'string' ? user.name : typeof user.username === 'string' ? user.username : undefined;
  return {
    click: {
      decision,
      workflowId: value.w,
      approvalId: value.a,
      userId: user.id,
      userName,
      channel,
      messageTs,
      actionTs: typeof a.action_ts === 'string' ? a.action_ts : undefined,
    },
  };
}

export interface ClickOutcome {
  click: Click;
  ok: boolean;
  /** Why the click was refused (the workflow validator's message, or why it could not be delivered). */
  reason?: string;
  /** The approval as the workflow holds it after the click (from the `approvalState` query). */
  view?: ApprovalView;
  /** Milliseconds (performance.now()) when the request arrived and when the Update completed or failed. */
  receivedAt: number;
  decidedAt: number;
}

export interface SlackHandlerOptions {
  config: LoadedConfig;
  client: Client;
  signingSecret: string;
  /** Clock for the timestamp check (tests). */
  now?: () => number;
  /** Strict deadline for the Update (default 10 s). */
  updateTimeoutMs?: number;
  /** Called after each click was processed (tests, benchmark). */
  onOutcome?: (o: ClickOutcome) => void;
}

export interface SlackRequestHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Resolves when every click received so far has been processed. */
  idle(): Promise<void>;
}

function reply(res: ServerResponse, status: number, text = ''): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The request handler of `pgdr slack-server` (exported so tests can serve it on a free port). */
export function createSlackRequestHandler(o: SlackHandlerOptions): SlackRequestHandler {
  const inFlight = new Set<Promise<void>>();
  const now = o.now ?? Date.now;
  const timeoutMs = o.updateTimeoutMs ?? 10_000;

  /** A sign-off button of a checklist item: the Update `checkItem`, signed as the person behind the Slack user. */
  async function handleSignOff(click: Click, receivedAt: number): Promise<void> {
    const by = personOf(click.userId, o.config.approvals.people);
    let outcome: ClickOutcome;
    try {
      const item = await withTimeout(
        o.client.workflow.getHandle(click.workflowId).executeUpdate(checkItemUpdate, {
          args: [{ item: click.approvalId, by, note: `signed off in Slack by ${click.userName ?? click.userId} (${click.userId})` }],
          updateId: `slack-${click.messageTs}-${click.userId}-${click.actionTs ?? 'x'}-check-${click.approvalId}`.slice(0, 200),
        }),
        timeoutMs,
        'the Temporal Update',
      );
      outcome = { click, ok: true, receivedAt, decidedAt: performance.now() };
      await slackTarget(o.config, { retries: 2 })
        ?.client.chat.postMessage({ channel: click.channel, thread_ts: click.messageTs, text: `:white_check_mark: ${item.title} — signed off by <@${click.userId}>` })
        .catch((err: Error) => log.warn({ err: err.message }, 'slack: could not confirm a sign-off'));
    } catch (err) {
      const reason = err instanceof WorkflowUpdateFailedError ? rootMessage(err) : `could not deliver the sign-off: ${rootMessage(err)} — use \`pgdr check\``;
      outcome = { click, ok: false, reason, receivedAt, decidedAt: performance.now() };
      await tellRefused(click, `:no_entry: Your sign-off of "${click.approvalId}" was not recorded: ${reason}`);
    }
    o.onOutcome?.(outcome);
    log.info({ workflowId: click.workflowId, item: click.approvalId, user: click.userId, ok: outcome.ok, reason: outcome.reason }, 'slack sign-off');
  }

  /**
   * A decision on a paused runbook (workflows/pause.ts: retry / abort / keep / roll back), as the person behind
   * the Slack user, bound to that pause. The workflow's validator applies the allowlist, as for every channel.
   */
  async function handleResume(click: Click, receivedAt: number): Promise<void> {
    const by = personOf(click.userId, o.config.approvals.people);
    const who = `${click.userName ?? click.userId} (${click.userId})`;
    const done = { retry: 'retried', abort: 'aborted', keep: 'kept', rollBack: 'rolled back' }[click.decision as PauseChoice];
    const args = { by, pause: click.approvalId, note: `${done} from Slack by ${who}`, ...(click.decision === 'abort' ? { reason: `${done} from Slack by ${who}` } : {}) };
    let outcome: ClickOutcome;
    try {
      await withTimeout(
        o.client.workflow.getHandle(click.workflowId).executeUpdate(pauseUpdates[click.decision as PauseChoice], {
          args: [args],
          updateId: `slack-${click.messageTs}-${click.userId}-${click.actionTs ?? 'x'}-${click.decision}`.slice(0, 200),
        }),
        timeoutMs,
        'the Temporal Update',
      );
      outcome = { click, ok: true, receivedAt, decidedAt: performance.now() };
      await slackTarget(o.config, { retries: 2 })
        ?.client.chat.postMessage({ channel: click.channel, thread_ts: click.messageTs, text: `${{ retry: ':repeat: Retrying the step', abort: ':octagonal_sign: Aborted', keep: ':white_check_mark: Restore kept', rollBack: ':rewind: Rolling back' }[click.decision as PauseChoice]} — <@${click.userId}>` })
        .catch((err: Error) => log.warn({ err: err.message }, 'slack: could not confirm a pause decision'));
    } catch (err) {
      const reason = err instanceof WorkflowUpdateFailedError ? rootMessage(err) : `could not deliver it: ${rootMessage(err)} — use \`pgdr decide ${click.workflowId} ${click.decision === 'rollBack' ? 'roll-back' : click.decision}\``;
      outcome = { click, ok: false, reason, receivedAt, decidedAt: performance.now() };
      await tellRefused(click, `:no_entry: Your ${click.decision} was not recorded: ${reason}`);
    }
    o.onOutcome?.(outcome);
    log.info({ workflowId: click.workflowId, decision: click.decision, user: click.userId, ok: outcome.ok, reason: outcome.reason }, 'slack pause decision');
  }

  /** Tell the clicker why nothing happened: ephemeral, else a thread reply. */
  async function tellRefused(click: Click, text: string): Promise<void> {
    const slack = slackTarget(o.config, { retries: 2 });
    if (!slack) return;
    try {
      await slack.client.chat.postEphemeral({ channel: click.channel, user: click.userId, text });
    } catch {
      await slack.client.chat.postMessage({ channel: click.channel, thread_ts: click.messageTs, text: `<@${click.userId}> ${text}` }).catch((err: Error) => {
        log.warn({ err: err.message }, 'slack: could not tell the user why their click was refused');
      });
    }
  }

  /** The clicked approval as the workflow holds it now, or undefined when the workflow cannot say. */
  async function currentApproval(click: Click): Promise<ApprovalView | undefined> {
    try {
      const s = await withTimeout(o.client.workflow.getHandle(click.workflowId).query(approvalStateQuery), timeoutMs, 'the approvalState query');
      return s.all.find((v) => v.approvalId === click.approvalId);
    } catch (err) {
      log.warn({ workflowId: click.workflowId, err: rootMessage(err) }, 'slack-server: could not read the approval state; the message is left as it is');
      return undefined;
    }
  }

  async function handleClick(click: Click, receivedAt: number): Promise<void> {
    if (click.decision === 'check') return handleSignOff(click, receivedAt);
    if (['retry', 'abort', 'keep', 'rollBack'].includes(click.decision)) return handleResume(click, receivedAt);
    const args: VoteArgs = {
      approvalId: click.approvalId,
      by: click.userId,
      via: 'slack',
      ...(click.userName ? { slackUserName: click.userName } : {}),
      slackChannel: click.channel,
      slackMessageTs: click.messageTs,
    };
    let outcome: ClickOutcome;
    try {
      // The result is not used: for a repeated update id it is the first click's, not the current state.
      await withTimeout(
        o.client.workflow.getHandle(click.workflowId).executeUpdate(click.decision === 'approve' ? approveUpdate : rejectUpdate, {
          args: [args],
          // Slack may deliver a click twice; the same update id makes the second one a no-op.
          updateId: `slack-${click.messageTs}-${click.userId}-${click.actionTs ?? 'x'}-${click.decision}`.slice(0, 200),
        }),
        timeoutMs,
        'the Temporal Update',
      );
      outcome = { click, ok: true, receivedAt, decidedAt: performance.now() };
    } catch (err) {
      let reason: string;
      if (err instanceof WorkflowUpdateFailedError) reason = rootMessage(err);
      else if (err instanceof WorkflowNotFoundError || /not found|already completed/i.test(rootMessage(err))) {
        reason = `workflow ${click.workflowId} is not waiting for approval any more (finished or unknown)`;
      } else reason = `could not deliver the vote: ${rootMessage(err)} — try again, or use \`pgdr approve\``;
      outcome = { click, ok: false, reason, receivedAt, decidedAt: performance.now() };
    }
    const view = await currentApproval(click);
    if (view) outcome.view = view;
    o.onOutcome?.(outcome);
    log.info({ workflowId: click.workflowId, approvalId: click.approvalId, user: click.userId, decision: click.decision, ok: outcome.ok, reason: outcome.reason }, 'slack click');
    const slack = slackTarget(o.config, { retries: 2 });
    if (!slack) return;
    // A vote shows on the message; a refused click on a decided approval re-renders its outcome (its
    // message may be stale); a refused click on a pending one changes nothing.
    if (view && (outcome.ok || view.status !== 'pending')) await updateApprovalMessage(o.config, view, { retries: 2 });
    if (outcome.ok) return;
    await tellRefused(click, `:no_entry: Your ${click.decision} of ${click.approvalId} was not recorded: ${outcome.reason}`);
  }

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    const receivedAt = performance.now();
    if (req.method === 'GET' && (req.url === '/healthz' || req.url === '/')) return reply(res, 200, 'ok\n');
    if (req.method !== 'POST') return reply(res, 405, 'POST only\n');
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        tooBig = true;
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => reply(res, 400, 'bad request\n'));
    req.on('end', () => {
      if (tooBig) return reply(res, 413, 'body too large\n');
      const raw = Buffer.concat(chunks);
      const header = (n: string) => {
        const v = req.headers[n];
        return Array.isArray(v) ? v[0] : v;
      };
      const check = verifySlackSignature({
        signingSecret: o.signingSecret,
        timestamp: header('x-slack-request-timestamp'),
        signature: header('x-slack-signature'),
        rawBody: raw,
        nowMs: now(),
      });
      if (!check.ok) {
        log.warn({ reason: check.reason, from: req.socket.remoteAddress }, 'slack-server: refused an unverified request');
        return reply(res, 401, 'invalid request signature\n');
      }
      const parsed = parseClick(raw.toString('utf8'));
      if ('malformed' in parsed) {
        log.warn({ reason: parsed.malformed }, 'slack-server: malformed interactivity payload');
        return reply(res, 400, `malformed payload: ${parsed.malformed}\n`);
      }
      if ('ignore' in parsed) return reply(res, 200);
      // Acknowledge first: Slack needs the answer within 3 s; the Update and message changes follow.
      reply(res, 200);
      const p = handleClick(parsed.click, receivedAt)
        .catch((err: Error) => log.error({ err: err.message }, 'slack-server: processing a click failed'))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    });
  }) as SlackRequestHandler;
  handler.idle = async () => {
    while (inFlight.size) await Promise.allSettled([...inFlight]);
  };
  return handler;
}

export interface RunningSlackServer {
  server: Server;
  port: number;
  handler: SlackRequestHandler;
  close(): Promise<void>;
}

/** Serve the handler on host:port (port 0 = a free one). */
export async function startSlackServer(o: SlackHandlerOptions & { port: number; host?: string }): Promise<RunningSlackServer> {
  const handler = createSlackRequestHandler(o);
  const server = createServer(handler);
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    handler,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await handler.idle();
    },
  };
}

/** The signing secret from the environment variable the config names, or a clear error. */
export function signingSecretFromEnv(config: LoadedConfig): string {
  if (!config.slack) throw new Error(`no "slack" section in ${config.file}: add slack.channel (and the app's env vars) first`);
  const v = process.env[config.slack.signingSecretEnv];
  if (!v) throw new Error(`environment variable ${config.slack.signingSecretEnv} (the Slack app's signing secret) is not set`);
  return v;
}
