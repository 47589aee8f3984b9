/**
 * The approval gate: one reusable workflow step that stops a runbook until the right people decide.
 *
 * ```ts
 * const decision = await rb.step('Wait for approval', () =>
 *   requestApproval({ kind: 'restoreInPlace', action: 'Restore cluster main IN PLACE to 2025-01-15 14:30:00+00',
 *     details: { cluster: 'main', target: '2025-01-15 14:30:00+00' }, requestedBy, reason, runbook: rb }));
 * // … the destructive steps …
 * await condition(allHandlersFinished); // before the runbook returns (see below)
 * return { …, approvals: approvalAudit() };
 * ```
 *
 * - Policy (approvers, required, expiry, reminders) comes from the config (`approvals.<kind>`) through the
 *   `approvalPolicy` activity. A runbook may only narrow the approvers and raise `required`.
 * - Decisions arrive as the Updates `approve` / `reject` with one object
 *   `{ approvalId, by, comment?, via?, slackUserName? }` — from `pgdr approve`, the Slack button
 *   (`pgdr slack-server`) or the Temporal UI's Update form. A synchronous validator refuses, with a message
 *   the caller sees: unknown or stale approval ids, votes after the decision or the deadline, identities not
 *   on the allowlist, the requester voting on their own request, a second vote by the same person, and a
 *   Slack click coming from another approval's message. One rejection decides; `required` approvals from
 *   distinct people decide.
 * - Returns the decision when approved; throws a non-retryable ApplicationFailure of type
 *   `ApprovalRejected` or `ApprovalExpired` (details: the approval record) otherwise, before anything
 *   destructive. It never approves by itself.
 * - Every request, vote and outcome is appended to the audit log (activity `appendApprovalAudit`) and is
 *   part of `approvalAudit()`, which runbooks put into their result.
 * - Several approvals in one workflow are fine (ids approval-1, approval-2, …); votes for an older one are
 *   refused as stale.
 * - An approval belongs to one Temporal run (`grantedInRun`): `approvalOfThisRun` asks again after a Reset
 *   (whose history replays the old run's votes) or for a new run under a reused workflow id.
 *
 * Runbook authors: the vote handlers are synchronous today, but end your workflow with
 * `await condition(allHandlersFinished)` so that no Update is cut off if a handler ever awaits.
 *
 * Note on identities: the CLI's `--as` and the UI's `by` are claims; whoever can send Updates to this
 * Temporal namespace can make them. Slack clicks are authenticated by Slack's signature and authorized on
 * the Slack user id. Protect the namespace accordingly.
 */
import { ApplicationFailure, condition, defineQuery, defineUpdate, log, setCurrentDetails, setHandler, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import { AUDIT_HOST_WAIT, auditOn, messages } from './activity-options';
import {
  APPROVAL_STATE_QUERY,
  APPROVE_UPDATE,
  REJECT_UPDATE,
  durationMs,
  isSlackUserId,
  listOr,
  mayStillVote,
  personOf,
  statusAfter,
  voteRefusal,
  type ApprovalAuditRecord,
  type ApprovalKind,
  type ApprovalStateAnswer,
  type ApprovalView,
  type Vote,
  type VoteArgs,
  type VoteDecision,
} from '../common/approvals';
import type { Runbook } from './runbook';

export const approveUpdate = defineUpdate<ApprovalView, [VoteArgs]>(APPROVE_UPDATE);
export const rejectUpdate = defineUpdate<ApprovalView, [VoteArgs]>(REJECT_UPDATE);
export const approvalStateQuery = defineQuery<ApprovalStateAnswer>(APPROVAL_STATE_QUERY);


export interface ApprovalRequest {
  /** The action in plain words, e.g. "Restore cluster main IN PLACE to 2025-01-15 14:30:00+00 — the data directory will be moved aside". */
  action: string;
  /** The exact destructive parameters, shown in Slack, the CLI and the audit log. */
  details: Record<string, string | number | boolean | null>;
  kind: ApprovalKind;
  /** Restrict the config's approvers to these (never widens the allowlist). */
  approvers?: string[];
  /** Raise the number of approvals needed (never below the config's). */
  required?: number;
  expiresIn?: string;
  remindEvery?: string;
  /** Who asked: a CLI identity or a Slack user id. They cannot vote on their own request. */
  requestedBy: string;
  reason: string;
  /** Show "waiting for approval from …" under this runbook's steps (else setCurrentDetails directly). */
  runbook?: Runbook;
}

export interface ApprovalDecision {
  approvalId: string;
  status: 'approved';
  /**
   * The Temporal run the approval was given to (read by an activity, so a Reset replays the OLD run id).
   * Destructive activities refuse to act for any other run: a Reset or a reused workflow id asks again.
   */
  grantedInRun: string;
  approvedBy: string[];
  votes: Vote[];
  request: ApprovalView;
}

// Per-workflow state (each workflow execution has its own module instance).
const approvals: ApprovalView[] = [];
const peopleOf = new Map<string, Record<string, string>>();
const unwritten: ApprovalAuditRecord[] = [];
let seq = 0;
let registered = false;
let shownIn: Runbook | undefined;
/** approvals.auditHost's task queue (approvalPolicy's answer): the one place the audit log is appended. */
let auditQueue: string | undefined;


/** Every approval of this workflow so far (requests, votes, outcomes): put it into the runbook's result. */
export function approvalAudit(): ApprovalView[] {
  return approvals.map((v) => ({ ...v, votes: [...v.votes] }));
}

function record(event: ApprovalAuditRecord['event'], v: ApprovalView, extra: Partial<ApprovalAuditRecord> = {}): ApprovalAuditRecord {
  return {
    event,
    at: new Date().toISOString(),
    workflowId: v.workflowId,
    runId: v.runId,
    approvalId: v.approvalId,
    kind: v.kind,
    action: v.action,
    details: v.details,
    requestedBy: v.requestedBy,
    reason: v.reason,
    ...extra,
  };
}

function pendingView(): ApprovalView | undefined {
  return approvals.find((v) => v.status === 'pending');
}

function waitingMarkdown(): string {
  const v = pendingView();
  if (!v) return '';
  const approvals = v.votes.filter((x) => x.decision === 'approve').length;
  return [
    '',
    `**Waiting for approval** (${v.approvalId}, ${approvals} of ${v.required}) from ${listOr(v.mayStillVote)} until ${v.deadline}`,
    `- action: ${v.action}`,
    ...Object.entries(v.details).map(([k, x]) => `- ${k}: \`${String(x)}\``),
    `- requested by ${v.requestedBy}: ${v.reason}`,
    ...v.votes.map((x) => `- ${x.decision === 'approve' ? '✓ approved' : '✗ rejected'} by ${x.by} via ${x.via}${x.comment ? ` — ${x.comment}` : ''}`),
    `- approve: \`pgdr approve ${v.workflowId} --approval ${v.approvalId} --as <you>\`, the Slack button, or the \`approve\` Update here`,
  ].join('\n');
}

function render(): void {
  if (shownIn) shownIn.render();
  else setCurrentDetails(waitingMarkdown().trim());
}

function vote(decision: VoteDecision) {
  return (args: VoteArgs): ApprovalView => {
    const view = approvals.find((v) => v.approvalId === args.approvalId);
    if (!view || view.status !== 'pending') throw new Error(`approval "${args.approvalId}" is not pending`); // the validator already refused these
    const people = peopleOf.get(view.approvalId) ?? {};
    const by = args.by.trim();
    const v: Vote = {
      approvalId: view.approvalId,
      decision,
      by,
      person: personOf(by, people),
      via: args.via ?? 'ui',
      ...(isSlackUserId(by) ? { slackUserId: by } : {}),
      ...(args.slackUserName ? { slackUserName: args.slackUserName } : {}),
      ...(args.comment ? { comment: args.comment } : {}),
      at: new Date().toISOString(),
    };
    view.votes.push(v);
    unwritten.push(record('approval.vote', view, { vote: v }));
    const status = statusAfter(view);
    if (status !== 'pending') {
      view.status = status;
      view.decidedAt = v.at;
      view.decidedBy = status === 'rejected' ? [by] : view.votes.filter((x) => x.decision === 'approve').map((x) => x.by);
    }
    view.mayStillVote = mayStillVote(view, people);
    render();
    return view;
  };
}

function register(): void {
  if (registered) return;
  registered = true;
  const validator = (args: VoteArgs) => {
    const view = args && typeof args === 'object' ? approvals.find((v) => v.approvalId === args.approvalId) : undefined;
    const refusal = voteRefusal(approvals, args, view ? (peopleOf.get(view.approvalId) ?? {}) : {}, Date.now());
    if (refusal) throw new Error(refusal);
  };
  setHandler(approveUpdate, vote('approve'), {
    validator,
    description: 'Approve the pending approval: {"approvalId": "approval-1", "by": "<your identity>", "comment": "why"}',
  });
  setHandler(rejectUpdate, vote('reject'), {
    validator,
    description: 'Reject the pending approval (one rejection stops the runbook): {"approvalId": "approval-1", "by": "<your identity>", "comment": "why"}',
  });
  setHandler(approvalStateQuery, () => ({ workflowId: workflowInfo().workflowId, pending: pendingView() ?? null, all: approvals }), {
    description: 'The approval being waited for (request, votes, who may still vote, deadline) and all earlier ones',
  });
}

async function flushAudit(): Promise<void> {
  while (unwritten.length) {
    const batch = unwritten.splice(0, unwritten.length);
    try {
      if (!auditQueue) await messages.appendApprovalAudit({ records: batch }); // runs recorded before approvals.auditHost
      else {
        try {
          await auditOn(auditQueue).appendApprovalAudit({ records: batch });
        } catch (err) {
          if (!(err instanceof Error && err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START)) throw err;
          log.warn(`no worker on ${auditQueue} (approvals.auditHost) for ${AUDIT_HOST_WAIT}: the approval audit records go to the shared queue's worker instead`);
          auditQueue = undefined;
          await messages.appendApprovalAudit({ records: batch });
        }
      }
    } catch (err) {
      unwritten.unshift(...batch);
      throw err;
    }
  }
}

function bad(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`approval request: ${message}`, 'BadInput');
}

/**
 * The approval for the destructive steps that follow, given to THIS run: when `decision` was given to an
 * earlier run (this run is a Reset of it), ask again with the same request.
 */
export async function approvalOfThisRun(decision: ApprovalDecision, req: ApprovalRequest): Promise<ApprovalDecision> {
  const { runId } = await messages.whichRun();
  if (decision.grantedInRun === runId) return decision;
  return requestApproval({ ...req, reason: `${req.reason} (asked again: the approval ${decision.approvalId} was given to run ${decision.grantedInRun}, before a Reset)` });
}

/** Ask for approval and wait for the decision. See the file comment. */
export async function requestApproval(req: ApprovalRequest): Promise<ApprovalDecision> {
  register();
  if (!req || typeof req.action !== 'string' || !req.action.trim()) throw bad('action is required');
  if (typeof req.requestedBy !== 'string' || !req.requestedBy.trim()) throw bad('requestedBy is required (who asks for this)');
  if (typeof req.reason !== 'string' || !req.reason.trim()) throw bad('reason is required (why this is needed)');
  if (pendingView()) throw bad(`another approval (${pendingView()!.approvalId}) is still pending in this workflow`);

  const policy = await messages.approvalPolicy({ kind: req.kind });
  auditQueue = policy.auditTaskQueue;
  const approvers = req.approvers ? policy.approvers.filter((a) => req.approvers!.includes(a)) : policy.approvers;
  const required = Math.max(policy.required, req.required ?? 0);
  const expiresIn = req.expiresIn ?? policy.expiresIn;
  const remindEvery = req.remindEvery ?? policy.remindEvery;
  let expiresMs: number;
  let remindMs: number;
  try {
    expiresMs = durationMs(expiresIn);
    remindMs = durationMs(remindEvery);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (expiresMs <= 0 || remindMs <= 0) throw bad('expiresIn and remindEvery must be positive');

  const info = workflowInfo();
  const now = Date.now();
  const view: ApprovalView = {
    approvalId: `approval-${++seq}`,
    workflowId: info.workflowId,
    runId: info.runId,
    workflowType: info.workflowType,
    kind: policy.kind,
    action: req.action.trim(),
    details: { ...(req.details ?? {}) },
    requestedBy: req.requestedBy.trim(),
    reason: req.reason.trim(),
    requestedAt: new Date(now).toISOString(),
    deadline: new Date(now + expiresMs).toISOString(),
    approvers,
    required,
    votes: [],
    mayStillVote: [],
    status: 'pending',
    reminders: 0,
  };
  const people = policy.people;
  peopleOf.set(view.approvalId, people);
  view.mayStillVote = mayStillVote(view, people);
  const eligible = new Set(view.mayStillVote.map((a) => personOf(a, people))).size;
  if (eligible < required) {
    throw ApplicationFailure.nonRetryable(
      `${policy.kind} needs ${required} approval(s) from people other than the requester ${view.requestedBy}, but the allowlist has ${eligible} (${approvers.join(', ') || 'empty'}); set approvals.${policy.kind}.approvers in ${'the config'}`,
      'ApprovalImpossible',
    );
  }

  approvals.push(view);
  unwritten.push(record('approval.requested', view, { deadline: view.deadline, approvers, required }));
  if (req.runbook) {
    shownIn = req.runbook;
    shownIn.showAlso(waitingMarkdown);
  } else render();
  await flushAudit();

  const posted = await messages.postApprovalRequest({ view });
  if (posted.slack) view.slack = posted.slack;

  const deadlineMs = Date.parse(view.deadline);
  let nextReminder = now + remindMs;
  while (view.status === 'pending') {
    const t = Date.now();
    if (t >= deadlineMs) {
      view.status = 'expired';
      view.decidedAt = new Date(t).toISOString();
      view.mayStillVote = [];
      break;
    }
    const seen = view.votes.length;
    await condition(() => view.status !== 'pending' || view.votes.length !== seen, Math.max(1, Math.min(deadlineMs, nextReminder) - t), {
      summary: `wait for approval ${view.approvalId}`,
    });
    await flushAudit();
    if (view.status !== 'pending') break;
    const t2 = Date.now();
    if (t2 >= nextReminder && t2 < deadlineMs) {
      view.reminders++;
      await messages.remindApproval({ view });
      while (nextReminder <= Date.now()) nextReminder += remindMs;
    }
  }

  unwritten.push(record('approval.decided', view, { status: view.status }));
  await flushAudit();
  render();
  await messages.finishApprovalMessage({ view });
  if (shownIn) {
    shownIn.showAlso(() => '');
    shownIn = undefined;
  }

  if (view.status === 'approved') {
    const { runId: grantedInRun } = await messages.whichRun();
    return { approvalId: view.approvalId, status: 'approved', grantedInRun, approvedBy: view.decidedBy ?? [], votes: [...view.votes], request: view };
  }
  const reject = view.votes.find((v) => v.decision === 'reject');
  const message =
    view.status === 'rejected'
      ? `rejected by ${reject?.by ?? '?'}${reject?.comment ? `: ${reject.comment}` : ''} — ${view.action} was not done`
      : `no decision before ${view.deadline} (${view.votes.length} vote(s), ${view.required} approval(s) needed) — expired; ${view.action} was not done`;
  throw ApplicationFailure.create({
    type: view.status === 'rejected' ? 'ApprovalRejected' : 'ApprovalExpired',
    message,
    nonRetryable: true,
    details: [view],
  });
}
