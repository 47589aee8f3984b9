/**
 * CLI commands of the approval gate: `pgdr approvals list`, `pgdr approve`, `pgdr reject`,
 * `pgdr slack-server` and `pgdr demo approval`. Registered on the main program by client/cli.ts.
 */
import { userInfo } from 'node:os';
import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Command } from 'commander';
import {
  APPROVAL_RUNBOOKS,
  listOr,
  type ApprovalStateAnswer,
  type ApprovalView,
  type DemoApprovalInput,
  type DemoApprovalResult,
  type VoteArgs,
  type VoteDecision,
} from '../common/approvals';
import type { LoadedConfig } from '../common/config';
import { approvalStateQuery, approveUpdate, rejectUpdate } from '../workflows/approval';
import { demoApproval } from '../workflows/demo-approval';
import { workflowUrl } from '../common/slack';
import { when } from './format';
import { signingSecretFromEnv, startSlackServer } from './slack-server';
import { CliError, connectClient, workflowId as newWorkflowId } from './temporal';
import { rootMessage } from '../common/errors';

export interface CliContext {
  config: () => LoadedConfig;
  print: (text: string, json: unknown) => void;
}

/** Who am I: $PGDR_IDENTITY, else the OS user name. */
export function defaultIdentity(): string {
  if (process.env.PGDR_IDENTITY) return process.env.PGDR_IDENTITY;
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

function inMinutes(iso: string): string {
  const ms = Date.parse(iso) - Date.now();
  if (ms <= 0) return 'past';
  const m = Math.round(ms / 60_000);
  return m < 1 ? `in ${Math.round(ms / 1000)} s` : m < 120 ? `in ${m} min` : `in ${(m / 60).toFixed(1)} h`;
}

/** A pending approval as a few readable lines. */
export function formatPending(v: ApprovalView): string {
  const approvals = v.votes.filter((x) => x.decision === 'approve').length;
  return [
    `${v.workflowId}  ${v.approvalId}  (${v.kind === v.workflowType ? v.kind : `approvals.${v.kind}, runbook ${v.workflowType}`})`,
    `  action:       ${v.action}`,
    ...Object.entries(v.details)
      .filter(([, x]) => x !== null && x !== undefined && x !== '')
      .map(([k, x]) => `    ${k}: ${typeof x === 'object' ? JSON.stringify(x) : String(x)}`),
    `  requested by: ${v.requestedBy} — ${v.reason}`,
    `  needs:        ${v.required} approval(s), ${approvals} so far; may approve: ${listOr(v.mayStillVote) || 'nobody'}`,
    ...v.votes.map((x) => `  vote:         ${x.decision} by ${x.by}${x.slackUserName ? ` (${x.slackUserName})` : ''} via ${x.via} at ${when(x.at)}${x.comment ? ` — ${x.comment}` : ''}`),
    `  deadline:     ${when(v.deadline)} (${inMinutes(v.deadline)})`,
    `  approve:      pgdr approve ${v.workflowId} --approval ${v.approvalId} --as <you> [--comment …]`,
  ].join('\n');
}

async function queryState(client: Client, workflowId: string, timeoutMs = 3000): Promise<ApprovalStateAnswer | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      client.workflow.getHandle(workflowId).query(approvalStateQuery),
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), timeoutMs);
      }),
    ]);
  } catch {
    return undefined; // not a workflow with approvals, or no worker to answer
  } finally {
    clearTimeout(timer);
  }
}

/** Pending approvals across the running workflows of pgdr's task queue. */
export async function listPendingApprovals(client: Client, config: LoadedConfig): Promise<ApprovalView[]> {
  const ids: string[] = [];
  // Only the runbooks with an approval gate (not schedules' routine runs, not the shared-config record).
  const types = APPROVAL_RUNBOOKS.map((t) => `"${t}"`).join(', ');
  const q = `ExecutionStatus = "Running" AND TaskQueue = "${config.temporal.taskQueue.replace(/"/g, '')}" AND WorkflowType IN (${types})`;
  for await (const w of client.workflow.list({ query: q })) ids.push(w.workflowId);
  const out: ApprovalView[] = [];
  for (let i = 0; i < ids.length; i += 8) {
    const answers = await Promise.all(ids.slice(i, i + 8).map((id) => queryState(client, id)));
    for (const a of answers) if (a?.pending) out.push(a.pending);
  }
  return out.sort((a, b) => a.deadline.localeCompare(b.deadline));
}

/** Send one vote as the `approve` / `reject` Update; the workflow's validator decides. */
export async function castVote(client: Client, o: { workflowId: string; approvalId?: string; decision: VoteDecision; by: string; comment?: string; via?: VoteArgs['via'] }): Promise<ApprovalView> {
  const handle = client.workflow.getHandle(o.workflowId);
  let approvalId = o.approvalId;
  if (!approvalId) {
    const state = await queryState(client, o.workflowId, 5000);
    if (!state) throw new CliError(`workflow ${o.workflowId} does not answer the approvalState query`, 'is it running, and is a pgdr worker up? `pgdr approvals list` shows what waits');
    if (!state.pending) throw new CliError(`workflow ${o.workflowId} is not waiting for an approval`);
    approvalId = state.pending.approvalId;
  }
  const args: VoteArgs = { approvalId, by: o.by, via: o.via ?? 'cli', ...(o.comment ? { comment: o.comment } : {}) };
  try {
    return await handle.executeUpdate(o.decision === 'approve' ? approveUpdate : rejectUpdate, { args: [args] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(rootMessage(err).replace(/\s*\n\s*/g, ' '));
    if (err instanceof WorkflowNotFoundError || /not found|already completed/i.test(rootMessage(err))) {
      throw new CliError(`workflow ${o.workflowId} is not running (finished or unknown)`);
    }
    throw err;
  }
}

function voteSummary(v: ApprovalView, decision: VoteDecision, by: string): string {
  if (v.status === 'approved') return `${v.approvalId} of ${v.workflowId} is approved (by ${v.decidedBy?.join(', ')}); the runbook continues.`;
  if (v.status === 'rejected') return `${v.approvalId} of ${v.workflowId} is rejected by ${by}; the runbook stops without doing it.`;
  const n = v.votes.filter((x) => x.decision === 'approve').length;
  return `${decision === 'approve' ? 'Approval' : 'Vote'} recorded for ${v.approvalId} of ${v.workflowId} as ${by}: ${n} of ${v.required}; still needed from ${listOr(v.mayStillVote)}.`;
}

export function registerApprovalCommands(program: Command, ctx: CliContext): void {
  const approvals = program.command('approvals').description('human approvals of destructive runbooks');
  approvals
    .command('list')
    .description('pending approvals across running workflows, with their parameters and deadlines')
    .action(async () => {
      const cfg = ctx.config();
      const client = await connectClient(cfg);
      const pending = await listPendingApprovals(client, cfg);
      ctx.print(pending.length ? pending.map(formatPending).join('\n\n') : 'No approvals are pending.', pending);
    });

  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(`${decision} <workflowId>`)
      .description(`${decision} a pending approval (checked against the allowlist by the workflow)`)
      .option('--approval <id>', 'approval id (default: the one pending)')
      .option('--as <identity>', 'your identity (default: $PGDR_IDENTITY or the OS user)')
      .option('--comment <text>', 'why (recorded in the audit log)')
      .action(async (wf: string, o: { approval?: string; as?: string; comment?: string }) => {
        const cfg = ctx.config();
        const client = await connectClient(cfg);
        const by = o.as ?? defaultIdentity();
        const view = await castVote(client, { workflowId: wf, approvalId: o.approval, decision, by, comment: o.comment });
        ctx.print(voteSummary(view, decision, by), view);
      });
  }

  program
    .command('slack-server')
    .description('receive Slack button clicks (interactivity requests) and turn them into approve/reject Updates')
    .option('--port <n>', 'port (default: slack.interactivityPort)', (v) => Number(v))
    .option('--host <addr>', 'address to listen on (put a TLS reverse proxy in front)', '127.0.0.1')
    .action(async (o: { port?: number; host: string }) => {
      const cfg = ctx.config();
      let secret: string;
      try {
        secret = signingSecretFromEnv(cfg);
      } catch (err) {
        throw new CliError((err as Error).message, 'see "Creating the Slack app" in the README');
      }
      if (!process.env[cfg.slack!.tokenEnv]) process.stderr.write(`pgdr: warning: ${cfg.slack!.tokenEnv} is not set; votes work but messages will not be updated\n`);
      const client = await connectClient(cfg);
      const srv = await startSlackServer({ config: cfg, client, signingSecret: secret, port: o.port ?? cfg.slack!.interactivityPort, host: o.host });
      process.stderr.write(`pgdr slack-server listening on http://${o.host}:${srv.port}/ (Slack interactivity request URL)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void srv.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  const demo = program.command('demo').description('try pgdr features on the embedded demo');
  demo
    .command('approval')
    .description('start a runbook that waits for approval; approve it with `pgdr approve`')
    .option('--requested-by <identity>', 'who asks (default: $PGDR_IDENTITY or the OS user)')
    .option('--reason <text>', 'why', 'trying the approval gate')
    .option('--rounds <n>', 'approvals in a row', (v) => Number(v))
    .option('--required <n>', 'approvals needed (not below the config)', (v) => Number(v))
    .option('--expires-in <duration>', "e.g. '10m' (default: approvals.demo.expiresIn)")
    .option('--remind-every <duration>', "e.g. '2m'")
    .option('--no-wait', 'print who may approve and return')
    .action(async (o: { requestedBy?: string; reason: string; rounds?: number; required?: number; expiresIn?: string; remindEvery?: string; wait: boolean }) => {
      const cfg = ctx.config();
      const client = await connectClient(cfg);
      const input: DemoApprovalInput = JSON.parse(
        JSON.stringify({ requestedBy: o.requestedBy ?? defaultIdentity(), reason: o.reason, rounds: o.rounds, required: o.required, expiresIn: o.expiresIn, remindEvery: o.remindEvery }),
      );
      const id = newWorkflowId('demo-approval');
      const handle = await client.workflow.start(demoApproval, {
        taskQueue: cfg.temporal.taskQueue,
        workflowId: id,
        args: [input],
        staticSummary: `Demo: an action that needs approval (requested by ${input.requestedBy})`,
        staticDetails: ['```json', JSON.stringify(input, null, 2), '```'].join('\n'),
      });
      const deadline = Date.now() + 30_000;
      let shown = '';
      const show = async () => {
        const st = await queryState(client, id);
        if (st?.pending && st.pending.approvalId !== shown) {
          shown = st.pending.approvalId;
          process.stderr.write(`\nWaiting for approval — ${workflowUrl(cfg, id)}\n${formatPending(st.pending)}\n`);
          process.stderr.write(`\n  e.g. pgdr approve ${id} --as ${st.pending.mayStillVote[0] ?? '<approver>'} --comment "looks right"\n`);
          process.stderr.write(`       pgdr reject ${id} --as ${st.pending.mayStillVote[0] ?? '<approver>'} --comment "not now"\n`);
        }
        return st;
      };
      while (!(await show())?.pending) {
        if (Date.now() > deadline) throw new CliError(`workflow ${id} did not reach the approval gate in 30 s`, 'is a pgdr worker running? (`npm start`)');
        await new Promise((r) => setTimeout(r, 250));
      }
      if (!o.wait) {
        ctx.print(`started ${id}`, { workflowId: id });
        return;
      }
      let done = false;
      const follower = (async () => {
        while (!done) {
          await new Promise((r) => setTimeout(r, 1000));
          if (!done) await show().catch(() => undefined);
        }
      })();
      try {
        const r = (await handle.result()) as DemoApprovalResult;
        const last = r.approvals[r.approvals.length - 1];
        ctx.print(`Approved by ${last?.decidedBy?.join(', ')}; the demo action ran at ${r.ranAt.join(', ')}.`, r);
      } catch (err) {
        if (err instanceof WorkflowFailedError) throw new CliError(rootMessage(err), `see ${workflowUrl(cfg, id)}`);
        throw err;
      } finally {
        done = true;
        await follower;
      }
    });
}
