/**
 * Fast in-place restores: on a filesystem that clones files (a small XFS with reflink=1 on a loop device,
 * made by this test) the restore runs `--delta` onto a reflink clone of the original, which itself stays
 * untouched where it was moved aside. Also: a worker killed during the delta restore, a clone that fails
 * part-way (falls back to a full restore), and the fallback on ext4. Needs root (mount); skipped otherwise.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { run } from '../activities/process';
import type { ApprovalStateAnswer } from '../common/approvals';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import { stopLocalCluster, type LocalCluster } from '../worker/local-cluster';
import { Harness, sql, startWorkerProcess, stopWorkerProcess, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { accident as accidentOn, assertNothingLost, besides, outcome, StopPoints, CRASH_TEST_WORKER, crashableWorker } from './helpers/invariants';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';

const h = new Harness('restore-reflink');
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
let xfs = '';
let skip: string | false = false;
let main: LocalCluster;
let onExt4: LocalCluster;
let worker: ChildProcess;
let points: StopPoints;
let env: Record<string, string>;

const rows = async (tag: string) => Number((await sql<{ n: string }>(main, 'SELECT count(*) AS n FROM orders WHERE tag = $1', [tag], 'app'))[0].n);

async function restartWorker(extra: Record<string, string> = {}): Promise<void> {
  await stopWorkerProcess(worker, 'SIGKILL');
  worker = await startWorkerProcess(h.configFile, { ...env, ...extra });
}

/** The accident (invariants.ts): 5 rows tagged `name` at the target time, deleted afterwards; the target. */
const accident = async (name: string): Promise<string> => (await accidentOn(main, name)).target;

async function restore(c: LocalCluster, target: string): Promise<WorkflowHandle> {
  const handle = await h.start('restoreInPlace', { cluster: c.name, target: { type: 'time', value: target }, confirmation: TOKEN, reason: 'reflink test', requestedBy: 'carol' });
  await signOffWhenAsked(handle, 'target-confirmed', 'bob');
  return handle;
}

before(async () => {
  await h.startTemporal();
  // A 600 MB XFS with reflinks, on a loop device, inside this test's folder.
  xfs = join(h.root, 'xfs');
  mkdirSync(xfs);
  const img = join(h.root, 'xfs.img');
  await run('truncate', ['-s', '600M', img]);
  const mk = await run('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
  const mount = mk.exitCode === 0 ? await run('mount', ['-o', 'loop', img, xfs]) : mk;
  if (mount.exitCode !== 0) {
    skip = `cannot make a loop-mounted XFS here (${mount.stderr.trim()}): needs root and xfsprogs`;
    return;
  }
  chmodSync(xfs, 0o755);
  main = await h.addCluster({ name: 'main', dir: join(xfs, 'main') });
  onExt4 = await h.addCluster({ name: 'ext4' });
  ({ points, env } = await crashableWorker(h));
  const restore = { safetyBackup: false, preChecklist: { remove: ['stakeholders-notified'] }, postChecklist: { remove: ['app-health', 'monitoring'] } };
  h.writeConfig(
    { worker: CRASH_TEST_WORKER, approvals: { restoreInPlace: { approvers: ['alice', 'bob'], required: 1 } } },
    { main: { restore }, ext4: { restore: { ...restore, copyDelta: true } } },
  );
  worker = await startWorkerProcess(h.configFile, env);
  for (const c of [main, onExt4]) await h.execute('setupStanza', { cluster: c.name });
  await sql(main, 'CREATE DATABASE app');
  await sql(main, "CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL); INSERT INTO orders (tag) SELECT 'base' FROM generate_series(1, 20000)", [], 'app');
  await h.execute('backup', { cluster: 'main', type: 'full' });
});
after(async () => {
  points?.release();
  if (worker) await stopWorkerProcess(worker, 'SIGKILL');
  if (main) await stopLocalCluster(main).catch(() => undefined);
  if (xfs) await run('umount', ['-l', xfs]);
  await h.teardown();
});

describe('in-place restore on a filesystem with reflinks', () => {
  test('delta onto a reflink clone: the rows are back, the original untouched where it was moved', async (t) => {
    if (skip) return t.skip(skip);
    const target = await accident('fast');
    const inode = statSync(main.dataDir).ino;
    const handle = await restore(main, target);
    const st = await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined, 60_000);
    assert.match(String(st.details.mode), /delta restore onto a reflink clone of the original/, 'the approver sees the mode');
    assert.match(String(st.details.expected), /cloned in seconds/);
    await voteWhenAsked(handle, 'approve', 'alice');
    const o = await outcome<RestoreInPlaceResult>(handle);
    assert.ok(o.result, o.failure);
    const r = o.result.restore;
    assert.deepEqual([r.planned, r.mode], ['reflink-delta', 'reflink-delta']);
    assert.ok(r.cloneMs !== undefined && r.spaceUsedBytes >= 0, JSON.stringify(r));
    assert.equal(await rows('fast'), 5, 'the deleted rows are back');
    assert.equal(await rows('base'), 20000);
    assertNothingLost(main, 'fast', 'kept');
    assert.equal(statSync(o.result.keptOriginalAt).ino, inode, 'the kept directory IS the original (renamed, never rewritten)');
  });

  test('worker killed during the delta restore: resumes, the original intact', async (t) => {
    if (skip) return t.skip(skip);
    const target = await accident('killdelta');
    const inode = statSync(main.dataDir).ino;
    points.hold('pgbackrest-restore');
    const handle = await restore(main, target);
    await voteWhenAsked(handle, 'approve', 'alice');
    await points.reached('pgbackrest-restore');
    await restartWorker();
    points.release('pgbackrest-restore');
    const o = await outcome<RestoreInPlaceResult>(handle);
    assert.ok(o.result, o.failure);
    assert.equal(o.result.restore.mode, 'reflink-delta');
    assert.equal(await rows('killdelta'), 5);
    assertNothingLost(main, 'killdelta', 'kept');
    assert.equal(statSync(o.result.keptOriginalAt).ino, inode);
    assert.deepEqual(besides(main).filter((b) => b.name.includes('.restoring-')), [], 'no staging folder left');
  });

  test('a clone that fails part-way falls back to a full restore, cleanly', async (t) => {
    if (skip) return t.skip(skip);
    await restartWorker({ PGDR_CP_BIN: join(__dirname, '../../test/helpers/cp-fails.sh') });
    try {
      const target = await accident('clonefails');
      const handle = await restore(main, target);
      await voteWhenAsked(handle, 'approve', 'alice');
      const o = await outcome<RestoreInPlaceResult>(handle);
      assert.ok(o.result, o.failure);
      assert.deepEqual([o.result.restore.planned, o.result.restore.mode], ['reflink-delta', 'full']);
      assert.match(o.result.warnings.join(' '), /planned delta restore onto a reflink clone of the original, ran a full restore: the reflink clone of .* failed/);
      assert.equal(await rows('clonefails'), 5);
      assertNothingLost(main, 'clonefails', 'kept');
    } finally {
      await restartWorker();
    }
  });

  test('on ext4 there are no reflinks: the plan says why, and measures a copy against a full restore', async (t) => {
    if (skip) return t.skip(skip);
    await h.execute('backup', { cluster: 'ext4', type: 'full' });
    await sql(onExt4, 'CREATE TABLE x (i int)');
    await switchWalAndWaitArchived(onExt4);
    const handle = await h.start('restoreInPlace', { cluster: 'ext4', target: { type: 'latest' }, confirmation: TOKEN, reason: 'plan only', requestedBy: 'carol' });
    await signOffWhenAsked(handle, 'target-confirmed', 'bob');
    const st = await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined, 60_000);
    // No reflinks; restore.copyDelta lets pgdr measure a plain copy against a full restore and pick the faster.
    assert.match(String(st.details.mode), /^in place, (full restore|delta restore onto a copy of the original)$/);
    assert.match(String(st.details.why), /cannot clone files .*; restore\.copyDelta: a (plain copy|full restore) \(~.*\) is faster than a (full restore|plain copy) \(~.*\): copy \d+ MB\/s measured now/);
    await handle.executeUpdate('reject', { args: [{ approvalId: st.approvalId, by: 'alice', via: 'cli' }] });
    await outcome(handle);
    assert.ok(existsSync(join(onExt4.dataDir, 'PG_VERSION')), 'nothing touched');
  });
});
