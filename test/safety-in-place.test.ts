/**
 * The safety invariants of the destructive runbooks, proven as a matrix (runbook × fault × point → outcome)
 * against real components: a Temporal dev server with a database file (restarted mid-run), PostgreSQL 15,
 * pgBackRest 2.45, and a pgdr worker in a child process that is SIGKILLed exactly at named stop points
 * (activities/stop-points.ts, test/helpers/pgbackrest-hook.sh) — small data, no timing luck.
 *
 * After every cell: the cluster runs and answers with either the original data or the restore target, the
 * original data directory is in exactly one place (live or kept aside under this run's name), every
 * directory beside it carries a pgdr marker, no staging folder, stray postmaster or pgBackRest is left.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { serverState } from '../activities/postgres';
import type { ApprovalStateAnswer } from '../common/approvals';
import { runWorkflow } from '../client/temporal';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { Pause } from '../workflows/pause';
import type { LocalCluster } from '../worker/local-cluster';
import * as runbooks from '../workflows';
import { Harness, sql, startWorkerProcess, stopWorkerProcess, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { assertNothingLost, besides, Matrix, outcome, plant, StopPoints, strays, whereIs, CRASH_TEST_WORKER, crashableWorker } from './helpers/invariants';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';

const h = new Harness('safety-in-place');
const matrix = new Matrix();
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
let main: LocalCluster;
let worker: ChildProcess;
let points: StopPoints;
let env: Record<string, string>;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rows = async (tag: string) => Number((await sql<{ n: string }>(main, 'SELECT count(*) AS n FROM orders WHERE tag = $1', [tag], 'app'))[0].n);
/** When the postmaster started: unchanged means production was never stopped. */
const postmasterPid = async () => (await sql<{ p: string }>(main, 'SELECT pg_postmaster_start_time()::text AS p'))[0].p;
/** The configured application check fails while this file exists. */
const appBroken = () => join(points.dir, 'app-broken');
const breakApp = () => writeFileSync(appBroken(), '');
const fixApp = () => rmSync(appBroken(), { force: true });

async function crashWorker(): Promise<void> {
  await stopWorkerProcess(worker, 'SIGKILL');
  worker = await startWorkerProcess(h.configFile, env);
}

/** The accident of one cell: 5 rows tagged `name` exist at the target time, then they are deleted. */
async function accident(name: string): Promise<{ name: string; target: string }> {
  await sql(main, "INSERT INTO orders (tag) SELECT $1 FROM generate_series(1, 5)", [name], 'app');
  await pause(1100);
  const [{ t }] = await sql<{ t: Date }>(main, 'SELECT clock_timestamp() AS t');
  await pause(1100);
  await sql(main, 'DELETE FROM orders WHERE tag = $1', [name], 'app');
  await switchWalAndWaitArchived(main);
  plant(main.dataDir, name); // follows the original data directory wherever it goes
  return { name, target: t.toISOString() };
}

const start = (a: { name: string; target: string }, id = `ip-${a.name}-${Date.now()}`) =>
  h.start('restoreInPlace', { cluster: 'main', target: { type: 'time', value: a.target }, confirmation: TOKEN, reason: `safety ${a.name}`, requestedBy: 'carol' }, id);

/** An Update refused by the workflow's validator, with a reason matching `re`. */
const refusedWith = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: Error) => (assert.match(String((e as { cause?: Error }).cause?.message ?? e.message), re), true));

/** bob confirms the target (carol requested it), alice approves. */
async function people(handle: WorkflowHandle): Promise<void> {
  await signOffWhenAsked(handle, 'target-confirmed', 'bob', { note: 'checked' });
  await voteWhenAsked(handle, 'approve', 'alice');
}

async function assertHealthy(): Promise<void> {
  assert.equal(await serverState(main), 'running', 'the cluster runs');
  assert.equal((await sql<{ one: number }>(main, 'SELECT 1 AS one'))[0].one, 1, 'and answers');
  await waitFor('no stray postmaster or pgBackRest', async () => (await strays(h.root, [main.dataDir])).length === 0, 20_000);
}

/** Restored: the rows are back, the original is kept aside under this run's name. */
async function assertRestored(a: { name: string }, r: RestoreInPlaceResult | undefined, failure?: string): Promise<void> {
  assert.ok(r, `the runbook finished: ${failure}`);
  await assertHealthy();
  assert.equal(await rows(a.name), 5, 'the deleted rows are back');
  assertNothingLost(main, a.name, 'kept');
  assert.equal(whereIs(main, a.name)[0], `data.pre-restore-${r.run}`, 'kept under this run\'s own name');
}

/** Rolled back: the original runs with its data (the rows stay deleted), nothing lost. */
async function assertRolledBack(a: { name: string }, failure: string | undefined, re: RegExp): Promise<void> {
  assert.match(failure ?? 'it succeeded', re);
  await assertHealthy();
  assert.equal(await rows(a.name), 0, 'the original data, as before the restore');
  assertNothingLost(main, a.name, 'live');
}

before(async () => {
  await h.startTemporal({ persistent: true });
  main = await h.addCluster({ name: 'main' });
  ({ points, env } = await crashableWorker(h));
  const hookDir = points.dir;
  h.writeConfig(
    {
      worker: CRASH_TEST_WORKER,
      approvals: { restoreInPlace: { approvers: ['alice', 'bob', 'carol'], required: 1, expiresIn: '30m' }, cleanup: { approvers: ['alice', 'bob'] } },
    },
    {
      main: {
        backup: { processMax: 1 },
        restore: {
          safetyBackup: false,
          preChecklist: { remove: ['stakeholders-notified'] },
          // The application check fails while <hooks>/app-broken exists.
          postChecklist: { remove: ['app-health', 'monitoring'], add: [{ id: 'app-check', title: 'The application answers', command: ['test', '!', '-e', join(hookDir, 'app-broken')] }] },
          pauseTimeout: '30m',
        },
      },
    },
  );
  worker = await startWorkerProcess(h.configFile, env);
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE DATABASE app');
  await sql(main, 'CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL)', [], 'app');
  await h.execute('backup', { cluster: 'main', type: 'full' });
});
after(async () => {
  points?.release();
  matrix.print('Safety matrix, in-place restore');
  if (worker) await stopWorkerProcess(worker, 'SIGKILL');
  await h.teardown();
});

/** A completed run, for the Reset and same-id cells. */
let completed: { id: string; runId: string; run: string; name: string } | undefined;

describe('SIGKILL of the worker at every step of the destructive part: the restore finishes', () => {
  const killPoints = ['stopCluster', 'moveDataDirAside:before-rename', 'pgbackrest-restore', 'restore:before-rename', 'startClusterAndWait'];
  killPoints.forEach((point, i) => {
    test(`SIGKILL at ${point}`, () =>
      matrix.cell('restoreInPlace', 'SIGKILL', point, async () => {
        const a = await accident(`kill${i}`);
        points.hold(point);
        const handle = await start(a);
        await people(handle);
        await points.reached(point);
        await crashWorker();
        points.release(point);
        const o = await outcome<RestoreInPlaceResult>(handle);
        await assertRestored(a, o.result, o.failure);
        if (point === 'pgbackrest-restore') {
          const history = (await handle.fetchHistory()).events ?? [];
          const restoreIds = new Set(history.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'restoreIntoDataDir').map((e) => String(e.eventId)));
          const attempts = history.filter((e) => restoreIds.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId))).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
          assert.ok(Math.max(...attempts) >= 2, 'the restore ran again after the crash');
        }
        const desc = await handle.describe();
        completed ??= { id: handle.workflowId, runId: desc.runId, run: o.result!.run, name: a.name };
        return 'restored after a restart; original kept aside';
      }));
  });
  test('SIGKILL in a short step after the promotion is noticed in seconds, not minutes', () =>
    matrix.cell('restoreInPlace', 'SIGKILL', 'postRestoreCheck:connectivity', async () => {
      const a = await accident('killcheck');
      points.hold('postRestoreCheck:connectivity');
      const handle = await start(a);
      await people(handle);
      await points.reached('postRestoreCheck:connectivity');
      await crashWorker();
      const killedAt = Date.now();
      points.release('postRestoreCheck:connectivity');
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      const tookS = (Date.now() - killedAt) / 1000;
      assert.ok(tookS < 45, `finished ${tookS.toFixed(1)} s after the crash (every activity heartbeats; worker.heartbeatTimeout 3s)`);
      assert.deepEqual(o.result!.warnings, [], 'no false warning about archiving');
      return `finished ${tookS.toFixed(0)} s after the crash`;
    }));
  test('SIGKILL during the new timeline\'s archive check: checked again, no false warning', () =>
    matrix.cell('restoreInPlace', 'SIGKILL', 'waitForWalArchived', async () => {
      const a = await accident('killarchive');
      points.hold('waitForWalArchived');
      const handle = await start(a);
      await people(handle);
      await points.reached('waitForWalArchived');
      await crashWorker();
      points.release('waitForWalArchived');
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      assert.deepEqual(o.result!.warnings, [], 'archiving works: no warning sends an operator to fix a non-problem');
      return 'restored; no false archiving warning';
    }));
  test('SIGKILL while waiting for the approval', () =>
    matrix.cell('restoreInPlace', 'SIGKILL', 'waiting for approval', async () => {
      const a = await accident('killwait');
      const handle = await start(a);
      await signOffWhenAsked(handle, 'target-confirmed', 'bob');
      await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending);
      await crashWorker();
      await voteWhenAsked(handle, 'approve', 'alice');
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      return 'restored after a restart';
    }));
});

describe('cancel before the point of no return: rolled back on its own, nothing lost', () => {
  const cancelPoints = ['stopCluster', 'moveDataDirAside:before-rename', 'pgbackrest-restore', 'restore:before-rename', 'startClusterAndWait'];
  cancelPoints.forEach((point, i) => {
    test(`cancel at ${point}`, () =>
      matrix.cell('restoreInPlace', 'cancel', point, async () => {
        const a = await accident(`cancel${i}`);
        points.hold(point);
        const handle = await start(a);
        await people(handle);
        await points.reached(point);
        await handle.cancel();
        const o = await outcome<RestoreInPlaceResult>(handle); // the held step sees the cancellation itself
        points.release(point);
        await assertRolledBack(a, o.failure, /was cancelled — ROLLED BACK/);
        return /moved nothing aside/.test(o.failure!) ? 'rolled back: nothing had been moved' : 'rolled back: original live, failed restore kept';
      }));
  });
  test('SIGKILL during the rollback itself', () =>
    matrix.cell('restoreInPlace', 'cancel+SIGKILL', 'rollBackInPlace:before-put-back', async () => {
      const a = await accident('cancelkill');
      points.hold('startClusterAndWait');
      points.hold('rollBackInPlace:before-put-back');
      const handle = await start(a);
      await people(handle);
      await points.reached('startClusterAndWait');
      await handle.cancel();
      await points.reached('rollBackInPlace:before-put-back');
      await crashWorker();
      points.release();
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRolledBack(a, o.failure, /was cancelled — ROLLED BACK: the original is back/);
      return 'the rollback resumed after a restart';
    }));
});

describe('a rollback that fails pauses for a person; the original stays kept', () => {
  test('cancel, then the rollback fails: paused; retried after the fix', () =>
    matrix.cell('restoreInPlace', 'cancel+rollback fails', 'rollBackInPlace:before-put-back', async () => {
      const a = await accident('rollfail');
      points.hold('startClusterAndWait');
      points.fail('rollBackInPlace:before-put-back');
      const handle = await start(a);
      await people(handle);
      await points.reached('startClusterAndWait');
      await handle.cancel();
      const p = await waitFor('the rollback pause', async () => (await handle.query<Pause | null>('pause').catch(() => null)) ?? undefined, 120_000);
      assert.equal(p.step, 'Roll back');
      assert.deepEqual(p.choices, ['retry', 'abort']);
      assert.deepEqual(whereIs(main, a.name).length, 1, 'the original is in one place while it waits');
      assert.match(whereIs(main, a.name)[0], /\.pre-restore-/, 'kept aside under this run\'s name');
      points.release();
      await handle.executeUpdate('retry', { args: [{ by: 'bob', note: 'disk fixed' }] });
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRolledBack(a, o.failure, /was cancelled — ROLLED BACK: the original is back/);
      return 'paused; retried by bob; rolled back';
    }));
});

describe('after the point of no return nothing is undone without a person', () => {
  test('a failing application check pauses; retry after the fix finishes the restore', () =>
    matrix.cell('restoreInPlace', 'check fails', 'post-restore checklist', async () => {
      const a = await accident('appfix');
      breakApp();
      const handle = await start(a);
      await people(handle);
      const p = await waitFor('the pause', async () => (await handle.query<Pause | null>('pause').catch(() => null)) ?? undefined, 120_000);
      assert.deepEqual(p.choices, ['retry', 'keep', 'rollBack']);
      assert.match(p.error, /The application answers/);
      assert.equal(await rows(a.name), 5, 'the restore stands while it waits');
      // Only people on the allowlist decide, and the requester never rolls back alone.
      await refusedWith(handle.executeUpdate('rollBack', { args: [{ by: 'mallory' }] }), /"mallory" may not roll back/);
      await refusedWith(handle.executeUpdate('rollBack', { args: [{ by: 'carol' }] }), /requested this runbook and may not roll back/);
      await refusedWith(handle.executeUpdate('abort', { args: [{ by: 'bob', reason: 'x' }] }), /offers retry, keep, rollBack, not abort/);
      fixApp();
      await handle.executeUpdate('retry', { args: [{ by: 'bob', note: 'app restarted' }] });
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      assert.deepEqual(o.result!.pauses.map((x) => [x.decision, x.by]), [['retry', 'bob']]);
      return 'paused; retried by bob; restored';
    }));

  test('a person keeps the restore although a check keeps failing', () =>
    matrix.cell('restoreInPlace', 'check fails', 'post-restore → keep', async () => {
      const a = await accident('appkeep');
      breakApp();
      const handle = await start(a);
      await people(handle);
      await waitFor('the pause', async () => (await handle.query<Pause | null>('pause').catch(() => null)) ?? undefined, 120_000);
      await handle.executeUpdate('keep', { args: [{ by: 'alice', note: 'app team knows' }] });
      fixApp();
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      assert.match(o.result!.warnings.join(' '), /kept with an incomplete post-restore checklist \(kept by alice: app team knows\)/);
      return 'kept by alice; warning reported';
    }));

  test('a person rolls back a promoted restore: every write since the promotion is kept aside', () =>
    matrix.cell('restoreInPlace', 'check fails', 'post-restore → rollBack', async () => {
      const a = await accident('approll');
      breakApp();
      const handle = await start(a);
      await people(handle);
      await waitFor('the pause', async () => (await handle.query<Pause | null>('pause').catch(() => null)) ?? undefined, 120_000);
      await sql(main, "INSERT INTO orders (tag) VALUES ('written-after-promotion')", [], 'app');
      plant(main.dataDir, 'after-promotion');
      await handle.executeUpdate('rollBack', { args: [{ by: 'bob', note: 'app cannot work with it' }] });
      fixApp();
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRolledBack(a, o.failure, /ROLLED BACK by bob after the promotion/);
      const kept = whereIs(main, 'after-promotion');
      assert.equal(kept.length, 1);
      assert.match(kept[0], /\.rolled-back-/, 'the promoted restore with its writes is kept aside');
      assert.equal(besides(main).find((b) => b.name === kept[0])?.marker?.what, 'writes after promotion, kept aside');
      // The abandoned restore's timeline is in the archive: production must now be on a newer one, so that a
      // restore to "latest" follows production (with a row written after the rollback), not the abandoned branch.
      assert.match(o.failure!, /runs on timeline \d+, above the abandoned restore's/);
      await sql(main, "INSERT INTO orders (tag) VALUES ('after-rollback')", [], 'app');
      await switchWalAndWaitArchived(main);
      const copy = await h.execute<{ port: number; socketDir: string }>('restoreToNewCluster', { cluster: 'main', name: 'afterroll', target: { type: 'latest' } });
      const seen = await sql<{ tag: string }>({ ...main, port: copy.port, socketDir: copy.socketDir }, "SELECT tag FROM orders WHERE tag IN ('after-rollback', 'written-after-promotion')", [], 'app');
      assert.deepEqual(seen.map((r) => r.tag), ['after-rollback'], 'latest follows production after the rollback');
      await h.execute('dropRestoredCluster', { name: 'afterroll' });
      return 'rolled back by bob; writes since promotion kept aside; new timeline';
    }));

  test('cancel after the point of no return pauses for a person instead of rolling back', () =>
    matrix.cell('restoreInPlace', 'cancel', 'after promotion', async () => {
      const a = await accident('cancelponr');
      breakApp();
      const handle = await start(a);
      await people(handle);
      await waitFor('the pause', async () => (await handle.query<Pause | null>('pause').catch(() => null)) ?? undefined, 120_000);
      const first = (await handle.query<Pause | null>('pause'))!;
      await handle.cancel();
      const p = await waitFor('the cancellation pause', async () => {
        const q = await handle.query<Pause | null>('pause').catch(() => null);
        return q && q.since !== first.since ? q : undefined;
      });
      assert.deepEqual(p.choices, ['keep', 'rollBack']);
      assert.equal(await rows(a.name), 5, 'still restored while it waits');
      await handle.executeUpdate('keep', { args: [{ by: 'alice' }] });
      fixApp();
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      return 'paused; kept by alice';
    }));
});

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
        assert.ok(completed, 'a completed run exists');
        const since = `since-${activity}`;
        await sql(main, 'INSERT INTO orders (tag) SELECT $1 FROM generate_series(1, 7)', [since], 'app');
        plant(main.dataDir, since);
        const startedAt = await postmasterPid();
        const dirsBefore = besides(main).map((b) => b.name).sort();
        const newRun = await resetTo(completed!.id, completed!.runId, activity, nth);
        const handle = h.client.workflow.getHandle(completed!.id, newRun);
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
      assert.ok(completed);
      plant(main.dataDir, 'reset-first');
      const newRun = await resetTo(completed!.id, completed!.runId, 'describeCluster', 1);
      const handle = h.client.workflow.getHandle(completed!.id, newRun);
      await people(handle);
      const o = await outcome<RestoreInPlaceResult>(handle);
      assert.ok(o.result, o.failure);
      assert.notEqual(o.result!.run, completed!.run, 'a new run tag');
      await assertHealthy();
      assert.equal(await rows(completed!.name), 5);
      assert.equal(whereIs(main, 'reset-first')[0], `data.pre-restore-${o.result!.run}`, 'what was live is kept under the new run\'s name');
      assert.ok(existsSync(join(main.dir, `data.pre-restore-${completed!.run}`)), 'the old run\'s kept directory is untouched');
      return 'new approval; kept under its own name';
    }));

  test('the same workflow id started again: a new run with its own names; the CLI refuses a duplicate id', () =>
    matrix.cell('restoreInPlace', 'same id', 'after completion', async () => {
      assert.ok(completed);
      const a = await accident('sameid');
      await assert.rejects(
        runWorkflow(h.client, h.config, { workflow: runbooks.restoreInPlace, id: completed!.id, input: {} as never, summary: 'x', destructive: true }),
        /already started|AlreadyStarted/i,
        'destructive runbooks are started with REJECT_DUPLICATE',
      );
      const handle = await start(a, completed!.id); // the UI or an old client may still reuse it
      await people(handle);
      const o = await outcome<RestoreInPlaceResult>(handle);
      await assertRestored(a, o.result, o.failure);
      assert.notEqual(o.result!.run, completed!.run);
      assert.ok(existsSync(join(main.dir, `data.pre-restore-${completed!.run}`)), 'the first run\'s kept directory is untouched');
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
      assert.ok(completed);
      const tag = completed!.run;
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
