/**
 * Restores and point-in-time recovery against real components: rows present or absent after each restore,
 * directories moved aside and kept, timelines, and refusals that leave the cluster untouched.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { serverState } from '../activities/postgres';
import type { BackupResult } from '../common/types';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { RestoreToNewClusterResult } from '../workflows/restore-to-new-cluster';
import type { LocalCluster } from '../worker/local-cluster';
import { query } from '../activities/postgres';
import { Harness, sql, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { signPostRestore, signPreRestore, voteWhenAsked } from './helpers/people';

const h = new Harness('restore');
let main: LocalCluster;
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
const marks: Record<string, string> = {};
let firstFull: BackupResult;

const tags = async (port: number, socketDir: string, database = 'app') =>
  (await query<{ tag: string; n: string }>({ ...main, port, socketDir }, 'SELECT tag, count(*) AS n FROM orders GROUP BY tag ORDER BY tag', [], database)).map((r) => `${r.tag}:${r.n}`);

/** The messages of a failure and all its causes, for matching. */
const failureText = (e: unknown): string => {
  const parts: string[] = [];
  for (let x = e as { message?: string; cause?: unknown } | undefined; x; x = x.cause as typeof x) parts.push(String(x.message));
  return parts.join(' | ');
};
const rejectsWith = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => (assert.match(failureText(e), re), true));

const serverNow = async () => (await sql<{ t: Date }>(main, 'SELECT clock_timestamp() AS t'))[0].t.toISOString();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keptDirs = () => readdirSync(join(main.dir)).filter((n) => n.startsWith('data.'));

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  h.writeConfig(
    { approvals: { restoreInPlace: { approvers: ['alice', 'bob'], required: 1, expiresIn: '10m', remindEvery: '5m' }, cleanup: { approvers: ['alice'] } } },
    { main: { restore: { expectTables: { orders: 1 } }, drill: { migrationsTable: '_prisma_migrations' } } },
  );
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE DATABASE app');
  await sql(main, 'CREATE DATABASE other');
  await sql(main, "CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL); CREATE TABLE _prisma_migrations (id text PRIMARY KEY, migration_name text, started_at timestamptz DEFAULT now()); INSERT INTO _prisma_migrations VALUES ('1', '0001_init')", [], 'app');
  firstFull = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
  await sql(main, "INSERT INTO orders (tag) SELECT 't1' FROM generate_series(1, 100)", [], 'app');
  await pause(1100);
  marks.t1 = await serverNow();
  await pause(1100);
  await sql(main, "INSERT INTO orders (tag) SELECT 't2' FROM generate_series(1, 50)", [], 'app');
  await h.execute<BackupResult>('backup', { cluster: 'main', snapshot: 'before-t3' });
  await sql(main, "INSERT INTO orders (tag) SELECT 't3' FROM generate_series(1, 25)", [], 'app');
  await switchWalAndWaitArchived(main);
});
after(() => h.teardown());

describe('restore into a new cluster', () => {
  const restoreNew = (name: string, target: object, extra: object = {}) =>
    h.execute<RestoreToNewClusterResult>('restoreToNewCluster', { cluster: 'main', name, target, ...extra });

  test('to a time between two inserts: the first rows are there, the later ones are not', async () => {
    const r = await restoreNew('pitr', { type: 'time', value: marks.t1 });
    assert.deepEqual(await tags(r.port, r.socketDir), ['t1:100']);
    assert.match(r.recovery.stoppedAt ?? '', /recovery stopping before commit/);
    assert.equal(await serverState({ ...main, dataDir: main.dataDir }), 'running', 'production untouched');
    assert.deepEqual(await tags(main.port, main.socketDir), ['t1:100', 't2:50', 't3:25']);
    const post = r.checklists[1];
    assert.ok(post.items.every((i) => i.state === 'passed'), JSON.stringify(post.items));
  });

  test('to the restore point of a named snapshot', async () => {
    const r = await restoreNew('snap', { type: 'name', value: 'before-t3' });
    assert.deepEqual(await tags(r.port, r.socketDir), ['t1:100', 't2:50']);
  });

  test('to latest: every archived row', async () => {
    const r = await restoreNew('latest', { type: 'latest' });
    assert.deepEqual(await tags(r.port, r.socketDir), ['t1:100', 't2:50', 't3:25']);
  });

  test('from a specific set, at its end (immediate)', async () => {
    const r = await restoreNew('first', { type: 'immediate', set: firstFull.set.label });
    assert.equal(r.set, firstFull.set.label);
    assert.deepEqual(await tags(r.port, r.socketDir), []);
  });

  test('one database only: the others are dropped, the asked one is intact', async () => {
    const r = await restoreNew('onlyapp', { type: 'latest' }, { databases: ['app'] });
    const dbs = (await query<{ datname: string }>({ ...main, port: r.port, socketDir: r.socketDir }, 'SELECT datname FROM pg_database ORDER BY 1')).map((x) => x.datname);
    assert.deepEqual(dbs, ['app', 'postgres', 'template0', 'template1']);
    assert.deepEqual(r.droppedDatabases, ['other']);
    assert.deepEqual(await tags(r.port, r.socketDir), ['t1:100', 't2:50', 't3:25']);
  });

  test('restored clusters are listed, and dropped without touching production', async () => {
    const list = await h.execute<{ name: string; running: boolean; dataDir: string }[]>('restoredClusters', {});
    assert.deepEqual(list.map((r) => r.name).sort(), ['first', 'latest', 'onlyapp', 'pitr', 'snap']);
    assert.ok(list.every((r) => r.running));
    for (const r of list) {
      await h.execute('dropRestoredCluster', { name: r.name });
      assert.equal(existsSync(r.dataDir), false);
    }
    assert.deepEqual(await h.execute('restoredClusters', {}), []);
    const f = await h.expectFailure('dropRestoredCluster', { name: 'main' });
    assert.match(f.message, /no restored cluster named "main"/);
    assert.equal(await serverState(main), 'running');
  });

  test('a new cluster may not take a production name, and a failed target creates nothing', async () => {
    assert.match((await h.expectFailure('restoreToNewCluster', { cluster: 'main', name: 'main', target: { type: 'latest' } })).message, /configured production cluster/);
    const f = await h.expectFailure('restoreToNewCluster', { cluster: 'main', name: 'nope', target: { type: 'time', value: '2000-01-01 00:00:00+00' } });
    assert.match(f.message, /before the oldest backup ends; the recoverable window is/);
    assert.equal(existsSync(join(h.root, 'restored', 'nope')), false);
  });
});

/** Sign off the manual pre-restore items and vote, as people would from the CLI. */
async function drive(handle: WorkflowHandle, vote: { decision: 'approve' | 'reject'; by: string } | undefined) {
  await signPreRestore(handle);
  if (vote) await voteWhenAsked(handle, vote.decision, vote.by);
}

describe('restore in place', () => {
  const start = (input: object) => h.start('restoreInPlace', { cluster: 'main', reason: 'test', requestedBy: 'carol', confirmation: TOKEN, ...input });

  async function assertUntouched(before: string[]) {
    assert.equal(await serverState(main), 'running', 'still running');
    assert.deepEqual(await tags(main.port, main.socketDir), before, 'same data');
    assert.deepEqual(keptDirs(), [], 'no directory moved');
  }

  test('refusals leave the cluster untouched', async () => {
    const before = await tags(main.port, main.socketDir);
    const cases: [object, RegExp][] = [
      [{ confirmation: 'yes please', target: { type: 'latest' } }, /confirmation token does not match.*Nothing was touched/],
      [{ target: { type: 'time', value: '2000-01-01 00:00:00+00' } }, /before the oldest backup ends; the recoverable window is .* Nothing was touched/],
      [{ target: { type: 'time', value: '2099-01-01 00:00:00+00' } }, /in the future/],
      [{ target: { type: 'latest', set: '20990101-000000F' } }, /backup set 20990101-000000F does not exist/],
      [{ target: { type: 'name', value: 'never-made' } }, /did not create a restore point named "never-made"/],
      [{ target: { type: 'time', value: '2025-01-15 14:30' } }, /time zone/],
      [{ target: { type: 'time', value: 'yesterday' } }, /not a time with a time zone/],
      [{ target: { type: 'latest' }, reason: '' }, /reason is required/],
    ];
    for (const [input, re] of cases) {
      const f = await h.expectFailure('restoreInPlace', { cluster: 'main', reason: 'test', requestedBy: 'carol', confirmation: TOKEN, ...input });
      assert.match(f.message, re);
      assert.equal(f.nonRetryable, true);
      assert.ok(!(await h.scheduledActivities(f.handle)).some((a) => ['stopCluster', 'moveDataDirAside', 'restoreIntoDataDir'].includes(a)));
    }
    await assertUntouched(before);
  });

  test('a rejected approval stops before anything destructive', async () => {
    const before = await tags(main.port, main.socketDir);
    const handle = await start({ target: { type: 'latest' } });
    await drive(handle, { decision: 'reject', by: 'bob' });
    await rejectsWith(handle.result(), /rejected by bob/);
    assert.ok(!(await h.scheduledActivities(handle)).some((a) => ['takeBackup', 'stopCluster', 'moveDataDirAside'].includes(a)));
    await assertUntouched(before);
  });

  test('after an accidental DELETE: restored with its rows, the old directory kept, a new timeline', async () => {
    await pause(1100);
    const beforeDelete = await serverNow();
    await pause(1100);
    await sql(main, 'DELETE FROM orders', [], 'app');
    await switchWalAndWaitArchived(main);
    const [{ tli: tliBefore }] = await sql<{ tli: number }>(main, 'SELECT timeline_id AS tli FROM pg_control_checkpoint()');
    const handle = await start({ target: { type: 'time', value: beforeDelete } });
    await drive(handle, { decision: 'approve', by: 'alice' });
    await signPostRestore(handle);
    const r = (await handle.result()) as RestoreInPlaceResult;
    assert.deepEqual(await tags(main.port, main.socketDir), ['t1:100', 't2:50', 't3:25'], 'the deleted rows are back');
    assert.ok(existsSync(join(r.keptOriginalAt, 'PG_VERSION')), 'the pre-restore directory is kept');
    assert.ok(statSync(r.keptOriginalAt).isDirectory());
    assert.ok(r.recovery.timeline! > tliBefore, `timeline ${r.recovery.timeline} after ${tliBefore}`);
    assert.ok(r.safetyBackup, 'a safety backup was taken while the cluster ran');
    assert.deepEqual(r.warnings, [], 'the new timeline is archived');
    assert.deepEqual(r.approvals[0].votes.map((v) => [v.by, v.decision]), [['alice', 'approve']]);
    const post = r.checklists[1].items;
    assert.ok(post.find((i) => i.id === 'connectivity')?.state === 'passed');
    assert.ok(post.find((i) => i.id === 'table-counts')?.state === 'passed');
    const migrations = post.find((i) => i.id === 'migrations');
    assert.equal(migrations?.state, 'passed');
    assert.equal(migrations?.note, '1 rows in app._prisma_migrations; newest: 0001_init', 'rows named by migration_name');
    // Right after the restore the archive holds the new timeline's history file but perhaps no segment of
    // it yet, and the newest backup is the safety net taken on the old timeline past the branch point:
    // a restore must not pick that set (PostgreSQL would refuse it: "not a child of this server's history").
    const copy = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', { cluster: 'main', name: 'aftertl', target: { type: 'latest' } });
    assert.notEqual(copy.set, r.safetyBackup!.label, 'the safety-net set is on the old timeline');
    assert.deepEqual(await tags(copy.port, copy.socketDir), ['t1:100', 't2:50', 't3:25']);
    await h.execute('dropRestoredCluster', { name: 'aftertl' });
    // The cleanup needs its own approval and removes only what this run kept.
    const c = await h.start('cleanupRestore', { cluster: 'main', run: r.run, reason: 'verified', requestedBy: 'carol' });
    await waitFor('cleanup approval asked', async () => (await c.query<{ pending: unknown }>('approvalState').catch(() => undefined))?.pending);
    assert.ok(existsSync(r.keptOriginalAt), 'nothing deleted before the approval');
    await voteWhenAsked(c, 'approve', 'alice');
    await c.result();
    assert.equal(existsSync(r.keptOriginalAt), false);
    assert.deepEqual(await tags(main.port, main.socketDir), ['t1:100', 't2:50', 't3:25']);
  });

  test('a failure after the stop rolls back: the original runs with its data, nothing is left behind', async () => {
    await sql(main, "INSERT INTO orders (tag) SELECT 't4' FROM generate_series(1, 10)", [], 'app');
    const before = await tags(main.port, main.socketDir);
    const backup = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
    // Make one file of the chosen set unreadable to pgBackRest (it runs as postgres).
    const setDir = join(main.repoPath, 'backup', main.stanza, backup.set.label, 'pg_data', 'base');
    const victim = readdirSync(setDir)
      .flatMap((db) => readdirSync(join(setDir, db)).map((f) => join(setDir, db, f)))
      .sort((a, b) => statSync(b).size - statSync(a).size)[0];
    chmodSync(victim, 0o000);
    try {
      const handle = await start({ target: { type: 'immediate', set: backup.set.label } });
      await drive(handle, { decision: 'approve', by: 'bob' });
      await rejectsWith(handle.result(), /\[13\] Permission denied — ROLLED BACK: the original is back in /);
      assert.equal(await serverState(main), 'running');
      assert.deepEqual(await tags(main.port, main.socketDir), before, 'original data');
      const kept = keptDirs();
      // pgBackRest failed inside this run's staging folder: that partial restore (never user data) is removed;
      // a restore that had reached the data directory would be kept as data.failed-restore-<run>.
      assert.ok(!kept.some((n) => n.includes('.restoring-')), `no staging folder left: ${kept.join(', ')}`);
      assert.ok(!kept.some((n) => n.startsWith('data.pre-restore-')), 'the original is back in place, not left aside');
    } finally {
      chmodSync(victim, 0o640);
    }
  });
});

describe('approval expiry', () => {
  test('an expired approval stops the restore with nothing destructive done', async () => {
    await h.stopWorkers();
    h.writeConfig(
      { approvals: { restoreInPlace: { approvers: ['alice', 'bob'], required: 1, expiresIn: '3s', remindEvery: '1s' } } },
      { main: { restore: { expectTables: { orders: 1 } } } },
    );
    await h.startWorker();
    const before = await tags(main.port, main.socketDir);
    const kept = keptDirs();
    const handle = await h.start('restoreInPlace', { cluster: 'main', reason: 'test', requestedBy: 'carol', confirmation: TOKEN, target: { type: 'latest' } });
    await drive(handle, undefined);
    await rejectsWith(handle.result(), /expired/i);
    assert.ok(!(await h.scheduledActivities(handle)).some((a) => ['takeBackup', 'stopCluster', 'moveDataDirAside'].includes(a)));
    assert.equal(await serverState(main), 'running');
    assert.deepEqual(await tags(main.port, main.socketDir), before);
    assert.deepEqual(keptDirs(), kept);
  });
});
