/**
 * The in-place safety matrix, part 2 (test/helpers/in-place-suite.ts has the fixture): cancel before the point
 * of no return rolls back on its own (also when the worker dies during the rollback, and when the rollback
 * fails: a pause for a person); after the point of no return nothing is undone without a person.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { Pause } from '../workflows/pause';
import { sql, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { besides, plant, whereIs, outcome } from './helpers/invariants';
import {
  h,
  matrix,
  main,
  points,
  rows,
  breakApp,
  fixApp,
  crashWorker,
  accident,
  start,
  refusedWith,
  people,
  assertRestored,
  assertRolledBack,
  inPlaceSuite,
} from './helpers/in-place-suite';

inPlaceSuite('safety-in-place-cancel', 'cancel and the point of no return');

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
