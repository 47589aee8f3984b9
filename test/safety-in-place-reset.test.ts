/**
 * The in-place safety matrix, part 3 (test/helpers/in-place-suite.ts has the fixture): a Reset of a completed
 * run, a reused workflow id, a restarted Temporal server, sign-off misuse and the cleanup of kept directories.
 * None of them reuses an approval, touches another run's directories or loses live data.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ApprovalStateAnswer } from '../common/approvals';
import { runWorkflow } from '../client/temporal';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import * as runbooks from '../workflows';
import { sql, waitFor } from './helpers/harness';
import { besides, plant, whereIs, outcome } from './helpers/invariants';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';
import {
  h,
  matrix,
  main,
  points,
  rows,
  postmasterPid,
  crashWorker,
  accident,
  start,
  people,
  assertHealthy,
  assertRestored,
  aCompletedRun,
  inPlaceSuite,
} from './helpers/in-place-suite';

inPlaceSuite('safety-in-place-reset', 'Reset, reused ids, server restarts, misuse');

describe('Reset and reused workflow ids never reuse an approval or another run\'s directories', () => {
  async function resetTo(id: string, runId: string, activity: string, nth = 1): Promise<string> {
    const events = (await h.client.workflow.getHandle(id, runId).fetchHistory()).events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity)[nth - 1];
    assert.ok(scheduled, `${activity} #${nth} was scheduled in ${id}`);
    const wftCompleted = scheduled.activityTaskScheduledEventAttributes!.workflowTaskCompletedEventId!;
    const r = await h.client.workflowService.resetWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: id, runId },
      reason: `test: reset to ${activity}`,
      workflowTaskFinishEventId: wftCompleted,
      requestId: `${id}-${activity}-${Date.now()}`,
    });
    return r.runId!;
  }

  const resets: [string, string, number][] = [
    ['the approval check (whichRun)', 'whichRun', 2],
    ['stopCluster', 'stopCluster', 1],
    ['moveDataDirAside', 'moveDataDirAside', 1],
    ['restoreIntoDataDir', 'restoreIntoDataDir', 1],
  ];
  for (const [label, activity, nth] of resets) {
    test(`Reset of a completed run to ${label}: live data untouched`, () =>
      matrix.cell('restoreInPlace', 'Reset', label, async () => {
        const completed = await aCompletedRun();
        const since = `since-${activity}`;
        await sql(main, 'INSERT INTO orders (tag) SELECT $1 FROM generate_series(1, 7)', [since], 'app');
        plant(main.dataDir, since);
        const startedAt = await postmasterPid();
        const dirsBefore = besides(main).map((b) => b.name).sort();
        const newRun = await resetTo(completed.id, completed.runId, activity, nth);
        const handle = h.client.workflow.getHandle(completed.id, newRun);
        let note: string;
        if (activity === 'whichRun') {
          // The votes of the old run are in the replayed history: this run asks again.
          const st = await waitFor('a new approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined, 60_000);
          assert.match(st.reason, /asked again/);
          await handle.executeUpdate('reject', { args: [{ approvalId: st.approvalId, by: 'alice', via: 'cli', comment: 'no' }] });
          note = 'asked for approval again; rejected';
        } else note = 'refused: the approval belongs to another run';
        const o = await outcome<RestoreInPlaceResult>(handle);
        assert.ok(o.failure, 'the reset run did not restore');
        if (activity !== 'whichRun') assert.match(o.failure, /approval was given to run .* not to this run/);
        await assertHealthy();
        assert.equal(await rows(since), 7, 'every row written since is there');
        assert.deepEqual(whereIs(main, since), ['live'], 'the live data directory was not moved');
        assert.equal(await postmasterPid(), startedAt, 'production was never stopped');
        assert.deepEqual(besides(main).map((b) => b.name).sort(), dirsBefore, 'no directory created or removed');
        return note;
      }));
  }

  test('Reset of a completed run to its first step: a new approval, its own directory names', () =>
    matrix.cell('restoreInPlace', 'Reset', 'first step (describeCluster)', async () => {
      const completed = await aCompletedRun();
      plant(main.dataDir, 'reset-first');
      const newRun = await resetTo(completed.id, completed.runId, 'describeCluster', 1);
      const handle = h.client.workflow.getHandle(completed.id, newRun);
      await people(handle);
      const o = await outcome<RestoreInPlaceResult>(handle);
      assert.ok(o.result, o.failure);
      assert.notEqual(o.result!.run, completed.run, 'a new run tag');
      await assertHealthy();
      assert.equal(await rows(completed.name), 5);
      assert.equal(whereIs(main, 'reset-first')[0], `data.pre-restore-${o.result!.run}`, 'what was live is kept under the new run\'s name');
      assert.ok(existsSync(join(main.dir, `data.pre-restore-${completed.run}`)), 'the old run\'s kept directory is untouched');
      return 'new approval; kept under its own name';
    }));

  test('the same workflow id started again: a new run with its own names; the CLI refuses a duplicate id', () =>
    matrix.cell('restoreInPlace', 'same id', 'after completion', async () => {
      const completed = await aCompletedRun();
      const a = await accident('sameid');
      await assert.rejects(
        runWorkflow(h.client, h.config, { workflow: runbooks.restoreInPlace, id: completed.id, input: {} as never, summary: 'x', destructive: true }),
        /already started|AlreadyStarted/i,
        'destructive runbooks are started with REJECT_DUPLICATE',
      );
      const handle = await start(a, completed.id); // the UI or an old client may still reuse it
      await people(handle);
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      assert.notEqual(o.result!.run, completed.run);
      assert.ok(existsSync(join(main.dir, `data.pre-restore-${completed.run}`)), 'the first run\'s kept directory is untouched');
      return 'new run, own names; CLI refuses the id';
    }));
});

describe('a restarted Temporal server', () => {
  test('while waiting for approval', () =>
    matrix.cell('restoreInPlace', 'server restart', 'waiting for approval', async () => {
      const a = await accident('srvwait');
      const handle = await start(a);
      await signOffWhenAsked(handle, 'target-confirmed', 'bob');
      await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending);
      await h.restartTemporal();
      await voteWhenAsked(handle, 'approve', 'alice');
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      return 'restored';
    }));
  test('while restoring', () =>
    matrix.cell('restoreInPlace', 'server restart', 'pgbackrest-restore', async () => {
      const a = await accident('srvrestore');
      points.hold('pgbackrest-restore');
      const handle = await start(a);
      await people(handle);
      await points.reached('pgbackrest-restore');
      await h.restartTemporal();
      points.release('pgbackrest-restore');
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      return 'restored';
    }));
});

describe('sign-offs and cleanup: only allowed people, exact names, only the approved run', () => {
  test('the requester cannot confirm their own target; outsiders cannot sign', () =>
    matrix.cell('restoreInPlace', 'misuse', 'sign-off policy', async () => {
      const a = await accident('policy');
      const handle = await start(a);
      await waitFor('the checklist', async () => handle.query<unknown[]>('checklist').then((l) => l.length > 0, () => false));
      const refused = (by: string) => waitFor(`refusal of ${by}`, () => handle.executeUpdate('checkItem', { args: [{ item: 'target-confirmed', by }] }).then(() => 'signed', (e: Error) => (/is already|not active|no checklist item/.test(String((e.cause as Error)?.message)) ? undefined : String((e.cause as Error)?.message))));
      assert.match(await refused('carol'), /requested this runbook and may not sign off "target-confirmed" themselves/);
      assert.match(await refused('mallory'), /"mallory" may not sign off/);
      await handle.terminate('test done');
      await assertHealthy();
      return 'requester and outsider refused';
    }));

  test('cleanup deletes exactly the named run\'s kept directories, after an approval given to that cleanup run', () =>
    matrix.cell('cleanupRestore', 'SIGKILL+Reset', 'approval', async () => {
      const completed = await aCompletedRun();
      const tag = completed.run;
      // Look-alikes that a prefix match would take: another run's names and unmarked folders.
      const lookAlikes = [`data.failed-restore-${tag}x`, `data.pre-restore-${tag}9`].map((n) => join(main.dir, n));
      for (const d of lookAlikes) mkdirSync(d);
      const c = await h.start('cleanupRestore', { cluster: 'main', run: tag, reason: 'verified', requestedBy: 'carol' }, `cleanup-${Date.now()}`);
      await waitFor('cleanup approval asked', async () => (await c.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending);
      await crashWorker();
      await voteWhenAsked(c, 'approve', 'alice');
      const r = (await c.result()) as { removed: string[] };
      assert.deepEqual(r.removed, [join(main.dir, `data.pre-restore-${tag}`)]);
      for (const d of lookAlikes) assert.ok(existsSync(d), `${d} is untouched`);
      // A Reset of the cleanup to after its approval does not delete again without a new approval.
      const desc = await c.describe();
      const events = (await c.fetchHistory()).events ?? [];
      const s = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'whichRun')[1];
      const rr = await h.client.workflowService.resetWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: c.workflowId, runId: desc.runId }, reason: 'test', workflowTaskFinishEventId: s.activityTaskScheduledEventAttributes!.workflowTaskCompletedEventId!, requestId: `r-${Date.now()}` });
      const again = h.client.workflow.getHandle(c.workflowId, rr.runId!);
      await waitFor('a new approval', async () => (await again.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending, 60_000);
      await again.terminate('test done');
      await assertHealthy();
      return 'exact names; a Reset asks again';
    }));
});
