/**
 * Human approval: the shared vocabulary of the approval gate (workflows/approval.ts), its activities
 * (activities/approval.ts), the Slack interactivity server and the CLI. Pure types and pure functions
 * only: workflows import this file (no Node modules, deterministic).
 */
import { z } from 'zod';

/** Runbook kinds with an approval policy in the config (`approvals.<kind>`). */
export type ApprovalKind = 'restoreInPlace' | 'fullSiteRecovery' | 'cleanup' | 'demo';

/** The runbooks (workflow types) that can wait at an approval gate: where `pgdr approvals list` looks. */
export const APPROVAL_RUNBOOKS = ['restoreInPlace', 'fullSiteRecovery', 'cleanupRestore', 'demoApproval'] as const;
export const APPROVAL_KINDS: readonly ApprovalKind[] = ['restoreInPlace', 'fullSiteRecovery', 'cleanup', 'demo'];

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired';
export type VoteChannel = 'cli' | 'slack' | 'ui';
export type VoteDecision = 'approve' | 'reject';

/** Update names; every Update takes one JSON object (`VoteArgs`) so that the Temporal UI form works. */
export const APPROVE_UPDATE = 'approve';
export const REJECT_UPDATE = 'reject';
export const APPROVAL_STATE_QUERY = 'approvalState';

/**
 * Slack action ids: the two approval buttons, the sign-off button of a checklist item (value {w, a: item id}),
 * and retry / abort of a paused full-site recovery (value {w, a: the pause's start time}).
 */
export const SLACK_ACTION = {
  approve: 'pgdr_approve',
  reject: 'pgdr_reject',
  check: 'pgdr_check',
  retry: 'pgdr_retry',
  abort: 'pgdr_abort',
  keep: 'pgdr_keep',
  rollBack: 'pgdr_rollback',
} as const;

/** The policy the gate applies, resolved from the config by the `approvalPolicy` activity. */
export interface ResolvedApprovalPolicy {
  kind: ApprovalKind;
  /** CLI identities and/or Slack user ids allowed to vote. */
  approvers: string[];
  required: number;
  expiresIn: string;
  remindEvery: string;
  /** Slack user id → person (CLI identity), so that one person is one voter whichever channel they use. */
  people: Record<string, string>;
  /** True when Slack messages can be sent (channel and token present). */
  slack: boolean;
  /**
   * Task queue of approvals.auditHost, where the audit log is appended whichever worker runs the gate
   * (absent in answers recorded before it existed: those runs append on the shared queue as they did).
   */
  auditTaskQueue?: string;
}

/** The arguments of the `approve` / `reject` Updates. */
export interface VoteArgs {
  approvalId: string;
  /** CLI identity or Slack user id (U…) of the voter. */
  by: string;
  comment?: string;
  via?: VoteChannel;
  /** Display name of a Slack voter, for the audit trail only (authorization is on `by`). */
  slackUserName?: string;
  /** For `via: 'slack'`: the message the button was clicked in; must be this approval's message. */
  slackChannel?: string;
  slackMessageTs?: string;
}

export interface Vote {
  approvalId: string;
  decision: VoteDecision;
  by: string;
  /** The person behind `by` (the same as `by` unless the config maps a Slack user id to a name). */
  person: string;
  via: VoteChannel;
  slackUserId?: string;
  slackUserName?: string;
  comment?: string;
  at: string;
}

/** Where the Slack request message is (when one was posted). */
export interface SlackMessageRef {
  channel: string;
  ts: string;
}

/** One approval request and everything that happened to it. Part of the workflow result (the audit trail). */
export interface ApprovalView {
  approvalId: string;
  workflowId: string;
  runId: string;
  workflowType: string;
  kind: ApprovalKind;
  /** The action in plain words. */
  action: string;
  /** The exact parameters of the destructive action. */
  details: Record<string, string | number | boolean | null>;
  requestedBy: string;
  reason: string;
  requestedAt: string;
  deadline: string;
  approvers: string[];
  required: number;
  votes: Vote[];
  /** Allowlisted people who have not voted and are not the requester (empty once decided). */
  mayStillVote: string[];
  status: ApprovalStatus;
  decidedAt?: string;
  /** Who made the deciding vote(s). */
  decidedBy?: string[];
  slack?: SlackMessageRef;
  /** Reminders sent so far. */
  reminders: number;
}

/** What `approvalState` answers. */
export interface ApprovalStateAnswer {
  workflowId: string;
  /** The approval being waited for, if any. */
  pending: ApprovalView | null;
  /** Every approval of this workflow, oldest first. */
  all: ApprovalView[];
}

/** One line of the append-only audit log (audit/approvals.jsonl). */
export interface ApprovalAuditRecord {
  event: 'approval.requested' | 'approval.vote' | 'approval.decided';
  at: string;
  workflowId: string;
  runId: string;
  approvalId: string;
  kind: ApprovalKind;
  action: string;
  details: ApprovalView['details'];
  requestedBy: string;
  reason: string;
  vote?: Vote;
  status?: ApprovalStatus;
  deadline?: string;
  approvers?: string[];
  required?: number;
}

/** The button value: binds a click to one workflow and one approval. No secrets. */
export interface ButtonValue {
  w: string;
  a: string;
}

export { durationMs } from './types';

/** The person behind an identity (Slack user ids map to names through `people`). */
export function personOf(identity: string, people: Record<string, string>): string {
  return people[identity] ?? identity;
}

/** Allowlisted people (distinct) who may still vote on a pending approval. */
export function mayStillVote(view: Pick<ApprovalView, 'approvers' | 'requestedBy' | 'votes' | 'status'>, people: Record<string, string>): string[] {
  if (view.status !== 'pending') return [];
  const requester = personOf(view.requestedBy, people);
  const voted = new Set(view.votes.map((v) => v.person));
  const out: string[] = [];
  for (const a of view.approvers) {
    const p = personOf(a, people);
    if (p === requester || voted.has(p) || out.some((o) => personOf(o, people) === p)) continue;
    out.push(a);
  }
  return out;
}

const VOTE_FIELDS = new Set(['approvalId', 'by', 'comment', 'via', 'slackUserName', 'slackChannel', 'slackMessageTs']);

/** Shape check of an Update argument (it may come as raw JSON from the Temporal UI). Returns a message or undefined. */
export function voteArgsProblem(args: unknown): string | undefined {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    return 'the argument must be one JSON object, e.g. {"approvalId": "approval-1", "by": "alice", "comment": "checked the target time"}';
  }
  const a = args as Record<string, unknown>;
  const unknown = Object.keys(a).filter((k) => !VOTE_FIELDS.has(k));
  if (unknown.length) return `unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; allowed: ${[...VOTE_FIELDS].join(', ')}`;
  if (typeof a.approvalId !== 'string' || !a.approvalId) return 'approvalId is required (see the approvalState query or `pgdr approvals list`)';
  if (typeof a.by !== 'string' || !a.by.trim()) return 'by is required: your identity (a name from the allowlist or your Slack user id)';
  if (a.by.length > 100) return 'by: at most 100 characters';
  if (a.comment !== undefined && (typeof a.comment !== 'string' || a.comment.length > 2000)) return 'comment: text of at most 2000 characters';
  if (a.via !== undefined && a.via !== 'cli' && a.via !== 'slack' && a.via !== 'ui') return 'via must be one of cli, slack, ui';
  for (const k of ['slackUserName', 'slackChannel', 'slackMessageTs'] as const) {
    if (a[k] !== undefined && (typeof a[k] !== 'string' || (a[k] as string).length > 200)) return `${k}: text of at most 200 characters`;
  }
  return undefined;
}

/**
 * Why a vote must be refused, or undefined when it is acceptable. Synchronous and pure: used by the Update
 * validator in the workflow (with workflow time) and nowhere else, so every channel gets the same rules.
 */
export function voteRefusal(all: readonly ApprovalView[], args: VoteArgs, people: Record<string, string>, nowMs: number): string | undefined {
  const shape = voteArgsProblem(args);
  if (shape) return shape;
  const view = all.find((v) => v.approvalId === args.approvalId);
  if (!view) {
    const pending = all.find((v) => v.status === 'pending');
    return `unknown approval id "${args.approvalId}"${pending ? ` (the pending one is "${pending.approvalId}")` : ' (nothing is waiting for approval)'}`;
  }
  if (view.status !== 'pending') {
    const by = view.decidedBy?.length ? ` by ${view.decidedBy.join(', ')}` : '';
    return `approval "${view.approvalId}" is already ${view.status}${by} at ${view.decidedAt ?? view.deadline}; votes are closed`;
  }
  if (nowMs >= Date.parse(view.deadline)) return `approval "${view.approvalId}" expired at ${view.deadline}; votes are closed`;
  const via = args.via ?? 'ui';
  if (via === 'slack') {
    if (!view.slack) return `approval "${view.approvalId}" has no Slack message; use the CLI or the Temporal UI`;
    if (args.slackMessageTs !== view.slack.ts || (args.slackChannel !== undefined && args.slackChannel !== view.slack.channel)) {
      return `this button does not belong to approval "${view.approvalId}" of workflow ${view.workflowId}`;
    }
  }
  const by = args.by.trim();
  const person = personOf(by, people);
  if (person === personOf(view.requestedBy, people)) {
    return `"${by}" requested this action and cannot vote on their own request (another approver must decide)`;
  }
  const allowed = view.approvers.some((a) => a === by || personOf(a, people) === person);
  if (!allowed) {
    return `"${by}" is not on the allowlist for ${view.kind} approvals (allowed: ${view.approvers.join(', ') || 'nobody — set approvals.' + view.kind + '.approvers in the config'})`;
  }
  const earlier = view.votes.find((v) => v.person === person);
  if (earlier) return `"${by}" already voted (${earlier.decision} at ${earlier.at} via ${earlier.via}); each person votes once`;
  return undefined;
}

/**
 * Who may take an action other than a vote — sign a checklist item, decide a paused runbook: people on the
 * allowlist of `approvals.<kind>`, and not the requester where `notRequester` (a second pair of eyes).
 * Pure and synchronous: the Update validators call it, so the CLI, Slack and the Temporal UI get one rule.
 */
export interface ActorPolicy {
  kind: ApprovalKind;
  approvers: string[];
  people: Record<string, string>;
  requestedBy: string;
}

export function actorRefusal(policy: ActorPolicy | undefined, by: string, what: string, notRequester = false): string | undefined {
  if (!policy) return `${what}: the policy is not loaded yet; try again in a moment`;
  const person = personOf(by.trim(), policy.people);
  if (!policy.approvers.some((a) => a === by.trim() || personOf(a, policy.people) === person)) {
    return `"${by}" may not ${what}: only people on approvals.${policy.kind}.approvers may (${policy.approvers.join(', ') || 'nobody is configured'})`;
  }
  if (notRequester && person === personOf(policy.requestedBy, policy.people)) {
    return `"${by}" requested this runbook and may not ${what} themselves: another person on approvals.${policy.kind}.approvers must`;
  }
  return undefined;
}

/** The status after adding a vote: one rejection decides; `required` distinct approvals decide. */
export function statusAfter(view: Pick<ApprovalView, 'votes' | 'required'>): ApprovalStatus {
  if (view.votes.some((v) => v.decision === 'reject')) return 'rejected';
  const approvers = new Set(view.votes.filter((v) => v.decision === 'approve').map((v) => v.person));
  return approvers.size >= view.required ? 'approved' : 'pending';
}

/** "alice, bob or <@U123>" for messages. */
export function listOr(names: string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** Slack user ids look like U… or W… (upper case letters and digits). */
export function isSlackUserId(s: string): boolean {
  return /^[UW][A-Z0-9]{2,}$/.test(s);
}

export function encodeButtonValue(v: ButtonValue): string {
  return JSON.stringify(v);
}

export function decodeButtonValue(s: unknown): ButtonValue | undefined {
  if (typeof s !== 'string' || s.length > 2000) return undefined;
  try {
    const v = JSON.parse(s) as Partial<ButtonValue>;
    if (typeof v.w === 'string' && v.w && typeof v.a === 'string' && v.a) return { w: v.w, a: v.a };
  } catch {
    /* not JSON */
  }
  return undefined;
}

/** Input of the demo runbook `demoApproval` (`pgdr demo approval`). */
export const demoApprovalInputSchema = z
  .object({
    requestedBy: z.string({ required_error: 'requestedBy is required' }).min(1, 'requestedBy is required').max(100),
    reason: z.string({ required_error: 'reason is required' }).min(1, 'reason is required').max(500),
    /** Several approvals in a row (one workflow, approval-1, approval-2, …). */
    rounds: z.number().int().min(1).max(5).optional(),
    /** A manual checklist item to sign off before the approval. */
    signOff: z.boolean().optional(),
    /** Demo knobs; the gate never goes below the config's `required`. */
    required: z.number().int().min(1).max(10).optional(),
    expiresIn: z.string().regex(/^\d+(ms|s|m|h|d)$/, "a duration like '90s' or '15m'").optional(),
    remindEvery: z.string().regex(/^\d+(ms|s|m|h|d)$/, "a duration like '90s' or '15m'").optional(),
  })
  .strict();
export type DemoApprovalInput = z.infer<typeof demoApprovalInputSchema>;

export interface DemoApprovalResult {
  ranAt: string[];
  /** The audit trail: every request and vote. */
  approvals: ApprovalView[];
}
