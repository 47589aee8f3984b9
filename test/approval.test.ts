/**
 * The approval gate against a real Temporal dev server, with the Slack Web API faked locally and
 * interactivity requests signed with a test signing secret, sent to `pgdr slack-server`'s handler.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApprovalAuditRecord, ApprovalStateAnswer, ApprovalView, DemoApprovalResult } from '../common/approvals';
import type { ChecklistSnapshot } from '../workflows/checklist';
import { run } from '../activities/process';
import { approvalAuditFile } from '../activities/approval';
import { slackSignature, startSlackServer, verifySlackSignature, type ClickOutcome, type RunningSlackServer } from '../client/slack-server';
import { Harness, waitFor } from './helpers/harness';
import { SlackFake, type SlackCall } from './helpers/slack-fake';
import { when } from '../common/human-time';

const SECRET = 'test-signing-secret-5f0c9a';
const CHANNEL = 'C0APPROVALS';
const h = new Harness('approval');
const slack = new SlackFake();
let srv: RunningSlackServer;
const outcomes: ClickOutcome[] = [];
const started: WorkflowHandle[] = [];
let nohostStarted: Promise<unknown> | undefined;
/** The activities of host "nohost" (whose pgBackRest config does not exist: full-site checks there fail and pause). */
const nohostWorker = () => (nohostStarted ??= h.startWorker({ hosts: ['nohost'], workflows: false }));

before(async () => {
  await h.startTemporal();
  const apiUrl = await slack.start();
  process.env.PGDR_TEST_SLACK_TOKEN = 'xoxb-test-token';
  process.env.PGDR_TEST_SLACK_SECRET = SECRET;
  h.writeConfig({
    slack: { channel: CHANNEL, tokenEnv: 'PGDR_TEST_SLACK_TOKEN', signingSecretEnv: 'PGDR_TEST_SLACK_SECRET', apiUrl },
    approvals: {
      demo: { approvers: ['alice', 'bob', 'dave', 'U0ALICE', 'U0BOB', 'U0CAROL', 'U0DAVE'], required: 1, expiresIn: '5m', remindEvery: '2m' },
      // Sign-offs and pause decisions of a full-site recovery: only these people, on every channel.
      fullSiteRecovery: { approvers: ['dave', 'U0BOB'] },
      people: { U0ALICE: 'alice', U0BOB: 'bob', U0DAVE: 'dave' },
      // The audit log is appended on this host's queue (not "nohost", whose worker starts only when needed).
      auditHost: 'audit',
    },
  });
  await h.startWorker({ hosts: [] });
  await h.startWorker({ hosts: ['audit'], workflows: false });
  srv = await startSlackServer({ config: h.config, client: h.client, signingSecret: SECRET, port: 0, onOutcome: (o) => outcomes.push(o) });
});

after(async () => {
  for (const w of started) await w.terminate('test cleanup').catch(() => undefined);
  await srv?.close();
  await slack.stop();
  await h.teardown();
});

// ---------------------------------------------------------------------------------------------------------
// helpers

async function startDemo(input: Record<string, unknown>): Promise<WorkflowHandle> {
  const handle = await h.start('demoApproval', { reason: 'test', ...input });
  started.push(handle);
  return handle;
}

const state = (w: WorkflowHandle) => w.query<ApprovalStateAnswer>('approvalState');

/** Wait until the workflow waits on `approvalId` and its Slack message is posted. */
async function pending(w: WorkflowHandle, approvalId = 'approval-1'): Promise<ApprovalView> {
  return waitFor(`${w.workflowId} to wait for ${approvalId}`, async () => {
    const s = await state(w).catch(() => undefined);
    return s?.pending?.approvalId === approvalId && s.pending.slack ? s.pending : undefined;
  });
}

/** The chat.postMessage call that carried this approval's request. */
function requestMessage(v: ApprovalView): SlackCall {
  const call = slack.callsOf('chat.postMessage').find((c) => !c.fields.thread_ts && JSON.stringify(c.fields.blocks ?? '').includes(`\\"a\\":\\"${v.approvalId}\\"`) && JSON.stringify(c.fields.blocks).includes(v.workflowId));
  assert.ok(call, `a request message for ${v.workflowId}/${v.approvalId} was posted`);
  return call;
}

type Button = { action_id: string; style?: string; value: string; confirm?: { text: { text: string } } };
function buttons(v: ApprovalView): { approve: Button; reject: Button } {
  const blocks = requestMessage(v).fields.blocks as { type: string; elements?: Button[] }[];
  const els = blocks.find((b) => b.type === 'actions')!.elements!;
  return { approve: els.find((e) => e.action_id === 'pgdr_approve')!, reject: els.find((e) => e.action_id === 'pgdr_reject')! };
}

interface ClickOpts {
  user: string;
  userName?: string;
  decision?: 'approve' | 'reject';
  /** Override the button value (e.g. naming another workflow). */
  value?: string;
  /** Seconds added to the timestamp. */
  skewS?: number;
  secret?: string;
  /** Change the body after signing. */
  tamper?: (body: string) => string;
  /** Replace the whole body (signed correctly). */
  rawBody?: string;
  /** The action's action_ts (default: a fresh one): the same click replayed has the same one. */
  actionTs?: string;
}

let actionSeq = 0;
/** POST a signed block_actions click for the message of `v`; returns the HTTP status once processed. */
async function click(v: ApprovalView, o: ClickOpts): Promise<{ status: number; outcome?: ClickOutcome }> {
  const decision = o.decision ?? 'approve';
  const b = buttons(v);
  return postAction({ ...o, channel: v.slack!.channel, messageTs: v.slack!.ts, actionId: decision === 'approve' ? 'pgdr_approve' : 'pgdr_reject', value: o.value ?? (decision === 'approve' ? b.approve.value : b.reject.value) });
}

/** POST a signed block_actions payload with one button action to the slack-server; returns once processed. */
async function postAction(o: Omit<ClickOpts, 'decision' | 'value'> & { channel: string; messageTs: string; actionId: string; value: string }): Promise<{ status: number; outcome?: ClickOutcome }> {
  const payload = {
    type: 'block_actions',
    team: { id: 'T0TEST', domain: 'test' },
    user: { id: o.user, username: o.userName ?? o.user.toLowerCase(), name: o.userName ?? o.user.toLowerCase(), team_id: 'T0TEST' },
    api_app_id: 'A0TEST',
    container: { type: 'message', message_ts: o.messageTs, channel_id: o.channel, is_ephemeral: false },
    channel: { id: o.channel, name: 'dr-approvals' },
    message: { ts: o.messageTs, type: 'message' },
    response_url: 'https://hooks.slack.invalid/actions/T0TEST/1/x',
    actions: [{ type: 'button', action_id: o.actionId, block_id: 'b', value: o.value, action_ts: o.actionTs ?? `${Date.now() / 1000}.${++actionSeq}` }],
  };
  let body = o.rawBody ?? `payload=${encodeURIComponent(JSON.stringify(payload))}`;
  const ts = String(Math.floor(Date.now() / 1000) + (o.skewS ?? 0));
  const sig = slackSignature(o.secret ?? SECRET, ts, body);
  if (o.tamper) body = o.tamper(body);
  const before = outcomes.length;
  const res = await fetch(`http://127.0.0.1:${srv.port}/slack/interactivity`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': ts, 'x-slack-signature': sig },
    body,
  });
  await res.text();
  await srv.handler.idle();
  return { status: res.status, outcome: outcomes.length > before ? outcomes[outcomes.length - 1] : undefined };
}

/** Update events accepted by a workflow (validator-refused Updates never reach the history). */
async function acceptedUpdates(w: WorkflowHandle): Promise<number> {
  const hist = await w.fetchHistory();
  return (hist.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;
}

/** True once an activity of this type has completed in the workflow's history. */
async function activityCompleted(w: WorkflowHandle, type: string): Promise<boolean> {
  const events = (await w.fetchHistory()).events ?? [];
  const scheduled = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type).map((e) => String(e.eventId)));
  return events.some((e) => e.activityTaskCompletedEventAttributes && scheduled.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)));
}

function audit(): ApprovalAuditRecord[] {
  return readFileSync(approvalAuditFile(h.config), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ApprovalAuditRecord);
}

const chatUpdatesOf = (v: ApprovalView) => slack.callsOf('chat.update').filter((c) => c.fields.ts === v.slack!.ts);
const ephemeralsTo = (user: string) => slack.callsOf('chat.postEphemeral').filter((c) => c.fields.user === user);

async function pgdr(args: string[], env: Record<string, string> = {}) {
  return run('node', ['bin/pgdr', '--config', h.configFile, ...args], { env: { PGDR_LOG_LEVEL: 'error', ...env } });
}

// ---------------------------------------------------------------------------------------------------------

describe('Slack request signatures', () => {
  // Slack's worked example in "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack).
  const DOC_SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
  const DOC_TS = '1531420618';
  const DOC_BODY =
    'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
  const DOC_SIG = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';

  test("Slack's published worked example verifies, and only within 5 minutes of its timestamp", () => {
    assert.equal(slackSignature(DOC_SECRET, DOC_TS, DOC_BODY), DOC_SIG);
    const at = (s: number) => verifySlackSignature({ signingSecret: DOC_SECRET, timestamp: DOC_TS, signature: DOC_SIG, rawBody: DOC_BODY, nowMs: (Number(DOC_TS) + s) * 1000 });
    assert.deepEqual(at(0), { ok: true });
    assert.deepEqual(at(299), { ok: true });
    assert.deepEqual(at(-299), { ok: true });
    assert.match((at(301) as { reason: string }).reason, /old/);
    assert.match((at(-301) as { reason: string }).reason, /future/);
    const changed = verifySlackSignature({ signingSecret: DOC_SECRET, timestamp: DOC_TS, signature: DOC_SIG, rawBody: DOC_BODY.replace('roadrunner', 'roadrunnex'), nowMs: Number(DOC_TS) * 1000 });
    assert.deepEqual(changed, { ok: false, reason: 'signature mismatch' });
  });
});

describe('approval through a Slack button', () => {
  test('a valid signed click approves: the workflow continues, the message is updated, the audit log has the vote', async () => {
    const w = await startDemo({ requestedBy: 'carol', reason: 'try the gate' });
    const v = await pending(w);
    // The request message: the action, its parameters, who asked and why, the deadline, the two buttons.
    const msg = requestMessage(v);
    assert.equal(msg.fields.channel, CHANNEL);
    const text = JSON.stringify(msg.fields.blocks);
    assert.match(text, /Run the demo action/);
    assert.match(text, /runbook: `demoApproval`/);
    assert.match(text, /Requested by\* carol/);
    assert.match(text, /try the gate/);
    assert.ok(text.includes(when(v.deadline)), 'deadline shown, in the one human time format');
    assert.match(text, /<@U0ALICE>/, 'approvers are mentioned');
    const b = buttons(v);
    assert.equal(b.approve.style, 'primary');
    assert.equal(b.reject.style, 'danger');
    assert.match(b.approve.confirm!.text.text, /Run the demo action[\s\S]*round: `1`/, 'the confirm dialog repeats the parameters');
    assert.deepEqual(JSON.parse(b.approve.value), { w: w.workflowId, a: 'approval-1' });

    const r = await click(v, { user: 'U0ALICE', userName: 'alice.smith' });
    assert.equal(r.status, 200);
    assert.equal(r.outcome?.ok, true, r.outcome?.reason);
    const result = (await w.result()) as DemoApprovalResult;
    assert.equal(result.ranAt.length, 1, 'the approved action ran');
    const a = result.approvals[0];
    assert.equal(a.status, 'approved');
    assert.deepEqual(a.decidedBy, ['U0ALICE']);
    assert.equal(a.votes.length, 1);
    assert.deepEqual({ ...a.votes[0], at: undefined }, { approvalId: 'approval-1', decision: 'approve', by: 'U0ALICE', person: 'alice', via: 'slack', slackUserId: 'U0ALICE', slackUserName: 'alice.smith', at: undefined });

    const updates = chatUpdatesOf(v);
    assert.ok(updates.length >= 1, 'chat.update recorded');
    const last = updates[updates.length - 1];
    assert.equal(last.fields.channel, CHANNEL);
    assert.match(String(last.fields.text), /^APPROVED/);
    assert.match(JSON.stringify(last.fields.blocks), /Approved by <@U0ALICE> \(alice\.smith\)/);
    assert.ok(!(last.fields.blocks as { type: string }[]).some((x) => x.type === 'actions'), 'no buttons once decided');

    const mine = audit().filter((x) => x.workflowId === w.workflowId);
    assert.deepEqual(
      mine.map((x) => x.event),
      ['approval.requested', 'approval.vote', 'approval.decided'],
    );
    const vote = mine[1];
    assert.equal(vote.vote?.by, 'U0ALICE');
    assert.equal(vote.vote?.slackUserName, 'alice.smith');
    assert.equal(vote.vote?.via, 'slack');
    assert.deepEqual(vote.details, { runbook: 'demoApproval', round: 1, effect: 'one log line on the worker' });
    assert.equal(vote.action, a.action);
    assert.equal(mine[2].status, 'approved');
  });

  test('a checklist item is signed off with its Slack button, as the person behind the Slack user', async () => {
    const w = await startDemo({ requestedBy: 'carol', reason: 'sign-off by button', signOff: true });
    const msg = await waitFor('the sign-off request in Slack', async () =>
      slack.callsOf('chat.postMessage').find((c) => JSON.stringify(c.fields.blocks ?? '').includes('pgdr_check') && JSON.stringify(c.fields.blocks).includes(w.workflowId)),
    );
    assert.match(String(msg.fields.text), /Sign-off needed — Demo checklist of demoApproval: The demo is ready to run/);
    const button = (msg.fields.blocks as { accessory?: Button }[]).find((b) => b.accessory?.action_id === 'pgdr_check')!.accessory!;
    assert.deepEqual(JSON.parse(button.value), { w: w.workflowId, a: 'demo-ready' });
    const at = { channel: CHANNEL, messageTs: '1700000000.777777', actionId: 'pgdr_check' };
    const wrong = await postAction({ ...at, user: 'U0BOB', value: JSON.stringify({ w: w.workflowId, a: 'no-such-item' }) });
    assert.equal(wrong.outcome?.ok, false);
    assert.match(wrong.outcome!.reason!, /no checklist item "no-such-item"/);
    assert.ok(ephemeralsTo('U0BOB').some((c) => /sign-off of "no-such-item" was not recorded/.test(String(c.fields.text))), 'the clicker is told why');
    const ok = await postAction({ ...at, user: 'U0BOB', userName: 'bob.jones', value: button.value });
    assert.equal(ok.outcome?.ok, true, ok.outcome?.reason);
    const item = (await w.query<ChecklistSnapshot[]>('checklist'))[0].items[0];
    assert.deepEqual([item.state, item.by], ['signed', 'bob'], 'signed as the person behind U0BOB');
    assert.match(item.note ?? '', /signed off in Slack by bob\.jones \(U0BOB\)/);
    assert.ok(slack.callsOf('chat.postMessage').some((c) => c.fields.thread_ts === at.messageTs && /signed off by <@U0BOB>/.test(String(c.fields.text))));
    const again = await postAction({ ...at, user: 'U0BOB', value: button.value });
    assert.match(again.outcome!.reason!, /already signed by bob/);
    // Then the approval as usual.
    const v = await pending(w);
    await w.executeUpdate('approve', { args: [{ approvalId: v.approvalId, by: 'alice' }] });
    assert.equal(((await w.result()) as DemoApprovalResult).ranAt.length, 1);
  });

  test('a paused full-site recovery is retried and aborted with its Slack buttons; a stale button is refused', async () => {
    // A DR drill onto host "nohost" (its worker: activities only), whose pgBackRest config does not exist:
    // an automated check fails and the runbook pauses with Retry / Abort buttons.
    await nohostWorker();
    const w = await h.start('fullSiteRecovery', { cluster: 'main', targetHost: 'nohost', drill: true, reason: 'slack buttons', requestedBy: 'carol' });
    started.push(w);
    for (const item of ['host-provisioned', 'packages-installed', 'secrets-in-place']) {
      await waitFor(`sign-off of ${item}`, () => w.executeUpdate('checkItem', { args: [{ item, by: 'dave' }] }).then(() => true, () => false));
    }
    const pauseMessages = () =>
      slack.callsOf('chat.postMessage').filter((c) => JSON.stringify(c.fields.blocks ?? '').includes('pgdr_retry') && JSON.stringify(c.fields.blocks).includes(w.workflowId));
    const buttonsOf = (c: SlackCall) => {
      const els = (c.fields.blocks as { type: string; elements?: Button[] }[]).find((b) => b.type === 'actions')!.elements!;
      return { retry: els.find((e) => e.action_id === 'pgdr_retry')!, abort: els.find((e) => e.action_id === 'pgdr_abort')! };
    };
    const first = buttonsOf(await waitFor('the pause alert with buttons', async () => pauseMessages()[0], 60_000));
    assert.equal(first.abort.style, 'danger');
    assert.ok(first.abort.confirm, 'abort asks for confirmation');
    const at = { channel: CHANNEL, messageTs: '1700000000.888888' };
    // Anyone in the channel can click; only people on approvals.fullSiteRecovery.approvers decide.
    const outsider = await postAction({ ...at, user: 'U0EVE', actionId: 'pgdr_abort', value: first.abort.value });
    assert.equal(outsider.outcome?.ok, false);
    assert.match(outsider.outcome!.reason!, /"U0EVE" may not abort/);
    const retried = await postAction({ ...at, user: 'U0BOB', actionId: 'pgdr_retry', value: first.retry.value });
    assert.equal(retried.outcome?.ok, true, retried.outcome?.reason);
    // The step fails again: a second pause, with its own buttons; the first pause's buttons are stale now.
    const second = buttonsOf(await waitFor('the second pause', async () => pauseMessages()[1], 60_000));
    const stale = await postAction({ ...at, user: 'U0BOB', actionId: 'pgdr_abort', value: first.abort.value });
    assert.equal(stale.outcome?.ok, false);
    assert.match(stale.outcome!.reason!, /belongs to an earlier pause/);
    const aborted = await postAction({ ...at, user: 'U0BOB', userName: 'bob.jones', actionId: 'pgdr_abort', value: second.abort.value });
    assert.equal(aborted.outcome?.ok, true, aborted.outcome?.reason);
    await assert.rejects(w.result(), (e: Error) => /aborted by bob at .*aborted from Slack by bob\.jones \(U0BOB\)/.test(String((e.cause as Error)?.message)));
    assert.ok(slack.callsOf('chat.postMessage').some((c) => c.fields.thread_ts === at.messageTs && /Retrying the step/.test(String(c.fields.text))));
  });

  test('refused clicks change nothing; 2-of-M needs two distinct approvers; clicks after the decision are refused', async () => {
    const w = await startDemo({ requestedBy: 'U0CAROL', reason: 'two of them', required: 2, rounds: 2 });
    const other = await startDemo({ requestedBy: 'carol', reason: 'another one' });
    const v = await pending(w);
    const ov = await pending(other);

    const unchanged = async (what: string) => {
      const s = await state(w);
      assert.equal(s.pending?.votes.length ?? -1, 0, `${what}: no vote recorded`);
      assert.equal(await acceptedUpdates(w), 0, `${what}: no Update accepted`);
      assert.equal(chatUpdatesOf(v).length, 0, `${what}: message not changed`);
    };
    const n = outcomes.length;
    // Unverifiable requests: 401, nothing reaches Temporal.
    assert.equal((await click(v, { user: 'U0ALICE', secret: 'not-the-secret' })).status, 401);
    assert.equal((await click(v, { user: 'U0ALICE', tamper: (b) => b.replace('U0ALICE', 'U0BOB') })).status, 401);
    assert.equal((await click(v, { user: 'U0ALICE', skewS: -6 * 60 })).status, 401);
    assert.equal((await click(v, { user: 'U0ALICE', skewS: 6 * 60 })).status, 401);
    // Signed but malformed: 400.
    assert.equal((await click(v, { user: 'U0ALICE', rawBody: 'payload=%7Bnot-json' })).status, 400);
    assert.equal((await click(v, { user: 'U0ALICE', rawBody: `payload=${encodeURIComponent(JSON.stringify({ type: 'block_actions', user: { id: 'U0ALICE' } }))}` })).status, 400);
    assert.equal((await click(v, { user: 'U0ALICE', value: 'workflow=anything' })).status, 400);
    assert.equal(outcomes.length, n, 'none of these was sent to the workflow');
    await unchanged('bad signatures and malformed payloads');

    // Signed, well-formed, refused by the workflow's validator; the clicker is told why.
    const mallory = await click(v, { user: 'U0MALLORY' });
    assert.equal(mallory.status, 200);
    assert.equal(mallory.outcome?.ok, false);
    assert.match(mallory.outcome!.reason!, /"U0MALLORY" is not on the allowlist/);
    assert.match(String(ephemeralsTo('U0MALLORY').at(-1)?.fields.text), /not recorded: "U0MALLORY" is not on the allowlist/);
    const requester = await click(v, { user: 'U0CAROL' });
    assert.match(requester.outcome!.reason!, /cannot vote on their own request/);
    assert.equal(ephemeralsTo('U0CAROL').length, 1);
    // The button of one approval replayed against another workflow's approval.
    const cross = await click(v, { user: 'U0ALICE', value: JSON.stringify({ w: other.workflowId, a: 'approval-1' }) });
    assert.match(cross.outcome!.reason!, /does not belong to approval "approval-1" of workflow/);
    assert.equal((await state(other)).pending?.votes.length, 0, 'the other workflow got no vote');
    assert.equal(await acceptedUpdates(other), 0);
    await unchanged('refused votes');
    assert.equal(ov.status, 'pending');

    // 2-of-M: one approval is not enough.
    const first = await click(v, { user: 'U0ALICE' });
    assert.equal(first.outcome?.ok, true, first.outcome?.reason);
    let s = await state(w);
    assert.equal(s.pending?.approvalId, 'approval-1');
    assert.equal(s.pending?.votes.length, 1);
    assert.deepEqual(s.pending?.mayStillVote, ['bob', 'dave'], 'alice has voted; carol asked');
    assert.match(JSON.stringify(chatUpdatesOf(v).at(-1)?.fields.blocks), /approved by <@U0ALICE>[\s\S]*pgdr_approve/, 'message shows the vote and keeps the buttons');
    // The same person again — by the same Slack id, or by their CLI name through the UI.
    const again = await click(v, { user: 'U0ALICE' });
    assert.match(again.outcome!.reason!, /"U0ALICE" already voted/);
    await assert.rejects(w.executeUpdate('approve', { args: [{ approvalId: 'approval-1', by: 'alice' }] }), (e: unknown) => e instanceof WorkflowUpdateFailedError && /already voted/.test(String(((e as Error).cause as Error | undefined)?.message)));
    s = await state(w);
    assert.equal(s.pending?.votes.length, 1);
    assert.equal(await acceptedUpdates(w), 1);

    // The second distinct approver completes it; the workflow moves on to its second approval.
    const second = await click(v, { user: 'U0BOB' });
    assert.equal(second.outcome?.ok, true, second.outcome?.reason);
    assert.equal(second.outcome?.view?.status, 'approved');
    const v2 = await pending(w, 'approval-2');
    assert.deepEqual(
      (await state(w)).all.map((x) => [x.approvalId, x.status]),
      [
        ['approval-1', 'approved'],
        ['approval-2', 'pending'],
      ],
    );
    // A click on the first (decided) message is refused: stale.
    const late = await click(v, { user: 'U0DAVE' });
    assert.match(late.outcome!.reason!, /approval "approval-1" is already approved by U0ALICE, U0BOB/);
    assert.equal((await state(w)).pending?.votes.length, 0, 'nothing recorded on approval-2');

    // Reject the second one from Slack: the workflow stops after round 1's action only.
    const rej = await click(v2, { user: 'U0DAVE', decision: 'reject' });
    assert.equal(rej.outcome?.ok, true, rej.outcome?.reason);
    await assert.rejects(w.result(), (e: unknown) => /rejected by U0DAVE/.test(String((e as { cause?: Error }).cause?.message)));
    const ran = (await h.scheduledActivities(w)).filter((a) => a === 'demoAfterApproval');
    assert.equal(ran.length, 1, 'only the approved round ran');
    assert.match(String(chatUpdatesOf(v2).at(-1)?.fields.text), /^REJECTED/);
    // Any click after the workflow finished is refused too.
    const afterEnd = await click(v2, { user: 'U0BOB' });
    assert.equal(afterEnd.outcome?.ok, false);
    assert.match(afterEnd.outcome!.reason!, /not waiting for approval any more|already rejected/);
    await other.terminate('done');
  });

  test('a replayed click after the decision leaves the message decided, without buttons', async () => {
    const w = await startDemo({ requestedBy: 'carol', reason: 'replay', required: 2, rounds: 2 });
    const v = await pending(w);
    const first = await click(v, { user: 'U0ALICE' });
    assert.equal(first.outcome?.ok, true, first.outcome?.reason);
    assert.equal((await click(v, { user: 'U0BOB' })).outcome?.ok, true);
    await pending(w, 'approval-2');
    const decided = () => {
      const last = chatUpdatesOf(v).at(-1)!;
      assert.match(String(last.fields.text), /^APPROVED/);
      assert.doesNotMatch(JSON.stringify(last.fields.blocks), /pgdr_approve|pgdr_reject|Approval needed/);
      assert.match(JSON.stringify(last.fields.blocks), /Approved by <@U0ALICE> \(u0alice\) and <@U0BOB>/);
    };
    decided();
    // Slack (or an attacker holding a captured request) sends the first click again, freshly signed: Temporal
    // answers the same update id with the first click's cached result ("1 of 2", pending).
    const n = chatUpdatesOf(v).length;
    await click(v, { user: 'U0ALICE', actionTs: first.outcome!.click.actionTs });
    assert.ok(chatUpdatesOf(v).length >= n);
    decided();
    assert.equal((await state(w)).all[0].votes.length, 2, 'no vote added');
    // And again once the workflow has finished.
    await w.executeUpdate('reject', { args: [{ approvalId: 'approval-2', by: 'dave' }] });
    await assert.rejects(w.result());
    await click(v, { user: 'U0ALICE', actionTs: first.outcome!.click.actionTs });
    decided();
  });
});

describe('expiry', () => {
  test('reminders are sent, then the runbook stops as expired and nothing destructive runs', async () => {
    const f = await h.expectFailure('demoApproval', { requestedBy: 'carol', reason: 'nobody answers', expiresIn: '4s', remindEvery: '1s' });
    assert.equal(f.type, 'ApprovalExpired');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /expired; Run the demo action .* was not done/);
    assert.ok(!(await h.scheduledActivities(f.handle)).includes('demoAfterApproval'), 'the post-approval activity was never scheduled');
    const req = slack.callsOf('chat.postMessage').find((c) => !c.fields.thread_ts && JSON.stringify(c.fields.blocks).includes(f.handle.workflowId))!;
    assert.ok(req, 'request posted');
    const ts = (await f.handle.query<ApprovalStateAnswer>('approvalState')).all[0].slack!.ts;
    const reminders = slack.callsOf('chat.postMessage').filter((c) => c.fields.thread_ts === ts);
    assert.ok(reminders.length >= 2, `at least 2 reminders, got ${reminders.length}`);
    for (const r of reminders) assert.match(String(r.fields.text), /Reminder[\s\S]*alice, bob, dave or <@U0CAROL>, please decide before/);
    assert.match(String(slack.callsOf('chat.update').filter((c) => c.fields.ts === ts).at(-1)?.fields.text), /^EXPIRED/);
    const st = await f.handle.query<ApprovalStateAnswer>('approvalState');
    assert.equal(st.all[0].status, 'expired');
    assert.ok(st.all[0].reminders >= 2);
    const mine = audit().filter((x) => x.workflowId === f.handle.workflowId);
    assert.deepEqual(mine.map((x) => [x.event, x.status ?? null]), [
      ['approval.requested', null],
      ['approval.decided', 'expired'],
    ]);
  });
});

describe('impossible policies', () => {
  test('more approvals required than eligible approvers fails at once, before any request is posted', async () => {
    const f = await h.expectFailure('demoApproval', { requestedBy: 'carol', reason: 'too many', required: 5 });
    assert.equal(f.type, 'ApprovalImpossible');
    assert.match(f.message, /needs 5 approval\(s\) from people other than the requester carol, but the allowlist has 4/);
    const acts = await h.scheduledActivities(f.handle);
    assert.ok(!acts.includes('postApprovalRequest') && !acts.includes('demoAfterApproval'), acts.join(', '));
  });
});

describe('CLI and Temporal UI', () => {
  test('at a terminal, the full-site pause question is withdrawn when someone decides elsewhere, naming who', async () => {
    // `pgdr dr full-site --drill` onto "nohost" (no pgBackRest config there): an automated check fails and the
    // runbook pauses; the CLI asks retry/abort. dave retries from elsewhere: the question goes away.
    await nohostWorker();
    const out: string[] = [];
    const cli = spawn('script', ['-q', '-e', '-E', 'never', '-c', `PGDR_IDENTITY=carol node bin/pgdr --config ${h.configFile} dr full-site --cluster main --host nohost --drill --reason "pause prompt"`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    cli.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
    cli.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
    const text = () => out.join('');
    try {
      const id = await waitFor('the workflow id', async () => /workflow (dr-drill-main-\S+)/.exec(text())?.[1], 60_000);
      const w = h.client.workflow.getHandle(id);
      started.push(w);
      for (const item of ['host-provisioned', 'packages-installed', 'secrets-in-place']) {
        await waitFor(`sign-off of ${item}`, () => w.executeUpdate('checkItem', { args: [{ item, by: 'dave' }] }).then(() => true, () => false));
      }
      await waitFor('the pause question', async () => /\[r\]etry now, \[a\]bort, or leave it paused/.test(text()), 60_000);
      await w.executeUpdate('retry', { args: [{ by: 'dave', note: 'from another terminal' }] });
      await waitFor('the question withdrawn', async () => /": retry by dave at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(from another terminal\); question withdrawn/.test(text()), 15_000);
      const p = await waitFor('the second pause', async () => (await w.query<{ since: string }[]>('pauses')).filter(Boolean)[1], 60_000);
      await w.executeUpdate('abort', { args: [{ by: 'dave', reason: 'test done', pause: p.since }] });
    } finally {
      cli.kill('SIGTERM');
    }
  });

  test('pgdr approvals list, approve (refused, then accepted) and reject', async () => {
    const w = await startDemo({ requestedBy: 'carol', reason: 'cli check' });
    await pending(w);
    const list = await pgdr(['approvals', 'list']);
    assert.equal(list.exitCode, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${w.workflowId}  approval-1`));
    assert.match(list.stdout, /action: +Run the demo action/);
    assert.match(list.stdout, /round: 1/);
    assert.match(list.stdout, /requested by: carol — cli check/);
    assert.match(list.stdout, /may approve: alice, bob, dave or U0CAROL/);
    assert.match(list.stdout, /deadline: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);

    const mallory = await pgdr(['approve', w.workflowId, '--as', 'mallory']);
    assert.notEqual(mallory.exitCode, 0);
    assert.equal(mallory.stderr.trim().split('\n').length, 1, `one line: ${mallory.stderr}`);
    assert.match(mallory.stderr, /^pgdr: error: "mallory" is not on the allowlist for demo approvals/);
    const self = await pgdr(['approve', w.workflowId, '--as', 'carol']);
    assert.notEqual(self.exitCode, 0);
    assert.match(self.stderr, /cannot vote on their own request/);
    assert.equal((await state(w)).pending?.votes.length, 0);

    const ok = await pgdr(['approve', w.workflowId, '--approval', 'approval-1', '--as', 'alice', '--comment', 'checked the parameters']);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /approval-1 of .* is approved \(by alice\)/);
    const r = (await w.result()) as DemoApprovalResult;
    assert.deepEqual(
      r.approvals[0].votes.map((x) => [x.by, x.via, x.comment]),
      [['alice', 'cli', 'checked the parameters']],
    );
    assert.match(String(chatUpdatesOf(r.approvals[0]).at(-1)?.fields.text), /^APPROVED/, 'Slack message updated after a CLI decision');

    // Reject, with the identity from $PGDR_IDENTITY.
    const w2 = await startDemo({ requestedBy: 'carol', reason: 'cli reject' });
    await pending(w2);
    const no = await pgdr(['reject', w2.workflowId, '--comment', 'not now'], { PGDR_IDENTITY: 'bob' });
    assert.equal(no.exitCode, 0, no.stderr);
    assert.match(no.stdout, /rejected by bob/);
    await assert.rejects(w2.result(), (e: unknown) => {
      const c = (e as { cause?: { type?: string; message?: string; nonRetryable?: boolean } }).cause;
      return c?.type === 'ApprovalRejected' && c.nonRetryable === true && /rejected by bob: not now/.test(c.message ?? '');
    });
    assert.ok(!(await h.scheduledActivities(w2)).includes('demoAfterApproval'));
    const late = await pgdr(['approve', w2.workflowId, '--approval', 'approval-1', '--as', 'alice']);
    assert.notEqual(late.exitCode, 0);
    assert.match(late.stderr, /not running/);
    const votes = audit().filter((x) => x.workflowId === w2.workflowId && x.event === 'approval.vote');
    assert.deepEqual(votes.map((x) => [x.vote?.by, x.vote?.decision, x.vote?.via, x.vote?.comment]), [['bob', 'reject', 'cli', 'not now']]);
  });

  test('`pgdr demo approval` waits, shows who may approve, and continues after `pgdr approve`', async () => {
    const child = spawn('node', ['bin/pgdr', '--config', h.configFile, 'demo', 'approval', '--requested-by', 'carol', '--reason', 'done-when'], {
      env: { ...process.env, PGDR_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const id = await waitFor('the demo to show who may approve', async () => /pgdr approve (\S+) --as alice/.exec(err)?.[1], 30_000, 100);
      assert.match(err, /may approve: alice, bob, dave or U0CAROL/);
      assert.match(err, /Run the demo action/);
      started.push(h.client.workflow.getHandle(id));
      const ok = await pgdr(['approve', id, '--as', 'alice']);
      assert.equal(ok.exitCode, 0, ok.stderr);
      assert.equal(await exited, 0, err);
      assert.match(out, /Approved by alice; the demo action ran at \d{4}-/);
    } finally {
      child.kill();
    }
  });

  test('with Slack unreachable, the approval still works through the Update (CLI/UI)', async () => {
    slack.failNext({ status: 500 }, 5); // the first post and its 4 retries
    const w = await startDemo({ requestedBy: 'carol', reason: 'slack down' });
    await waitFor('postApprovalRequest to complete', () => activityCompleted(w, 'postApprovalRequest'), 30_000);
    const v = (await state(w)).pending!;
    assert.equal(v.approvalId, 'approval-1');
    assert.equal(v.slack, undefined, 'no Slack message could be posted');
    assert.equal(slack.callsOf('chat.postMessage').filter((c) => JSON.stringify(c.fields.blocks ?? '').includes(w.workflowId)).length, 5, 'tried 5 times');
    const view = await w.executeUpdate<ApprovalView, [object]>('approve', { args: [{ approvalId: 'approval-1', by: 'dave', via: 'cli' }] });
    assert.equal(view.status, 'approved');
    assert.equal(((await w.result()) as DemoApprovalResult).ranAt.length, 1);
  });

  test('a UI-style Update with one raw JSON object goes through the same validator', async () => {
    const w = await startDemo({ requestedBy: 'carol', reason: 'ui check' });
    await pending(w);
    const refused = async (arg: unknown, re: RegExp) =>
      assert.rejects(w.executeUpdate('approve', { args: [arg] }), (e: unknown) => e instanceof WorkflowUpdateFailedError && re.test(String(((e as Error).cause as Error | undefined)?.message)));
    await refused({ approvalId: 'approval-1', by: 'bob', typo: 1 }, /unknown field\(s\) "typo"/);
    await refused({ approvalId: 'approval-9', by: 'bob' }, /unknown approval id "approval-9" \(the pending one is "approval-1"\)/);
    await refused({ approvalId: 'approval-1' }, /by is required/);
    await refused('approve please', /must be one JSON object/);
    await refused({ approvalId: 'approval-1', by: 'bob', via: 'slack', slackMessageTs: '1.2' }, /does not belong/);
    assert.equal(await acceptedUpdates(w), 0);

    // The Temporal UI shows who may approve (setCurrentDetails).
    const meta = await w.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(String(meta.currentDetails), /Waiting for approval\*\* \(approval-1, 0 of 1\) from alice, bob, dave or U0CAROL/);

    const view = await w.executeUpdate<ApprovalView, [object]>('approve', { args: [{ approvalId: 'approval-1', by: 'bob', comment: 'from the UI' }] });
    assert.equal(view.status, 'approved');
    assert.deepEqual([view.votes[0].by, view.votes[0].via, view.votes[0].comment], ['bob', 'ui', 'from the UI']);
    const r = (await w.result()) as DemoApprovalResult;
    assert.equal(r.ranAt.length, 1);
  });
});
