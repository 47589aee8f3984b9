/**
 * The in-place safety matrix, part 1 (test/helpers/in-place-suite.ts has the fixture): the worker is
 * SIGKILLed at every step of the destructive part and while waiting for the approval; the restore finishes.
 * After every cell the cluster runs and answers with the restore target, the original data directory is kept
 * aside under this run's name, and no staging folder, stray postmaster or pgBackRest is left.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ApprovalStateAnswer } from '../common/approvals';
import { outcome } from './helpers/invariants';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import { waitFor } from './helpers/harness';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';
import {
  matrix,
  points,
  crashWorker,
  accident,
  start,
  people,
  assertRestored,
  inPlaceSuite,
} from './helpers/in-place-suite';

inPlaceSuite('safety-in-place-kill', 'SIGKILL of the worker');

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
