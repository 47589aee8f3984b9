/**
 * Restore targets reach PostgreSQL exactly as given, against real components: a time with microseconds
 * (the row committed at that microsecond is there, the next one is not) and a restore point whose name
 * holds a quote and a backslash (the copy starts and stops at the point).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackupResult } from '../common/types';
import type { RestoreToNewClusterResult } from '../workflows/restore-to-new-cluster';
import { startLocalCluster, stopLocalCluster, type LocalCluster } from '../worker/local-cluster';
import { Harness, sql, switchWalAndWaitArchived } from './helpers/harness';

const h = new Harness('precision');
let main: LocalCluster;
let full: BackupResult;
/** The commit time of row `target`, to the microsecond, with a sub-millisecond part. */
let commitTime = '';
let targetTag = '';
const POINT = "it's a \\ point";

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const insert = (tag: string) => sql(main, 'INSERT INTO events (tag) VALUES ($1)', [tag]);
/** When the row's transaction committed, in UTC to the microsecond, and its sub-millisecond part. */
const committed = async (tag: string) =>
  (
    await sql<{ at: string; us: number }>(
      main,
      `SELECT to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS at,
              (extract(microseconds FROM pg_xact_commit_timestamp(xmin))::bigint % 1000)::int AS us FROM events WHERE tag = $1`,
      [tag],
    )
  )[0];
const tagsIn = async (r: RestoreToNewClusterResult) => (await sql<{ tag: string }>({ ...main, port: r.port, socketDir: r.socketDir }, 'SELECT tag FROM events ORDER BY id')).map((x) => x.tag);

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  // Commit timestamps, to know to the microsecond when a row committed.
  await sql(main, 'ALTER SYSTEM SET track_commit_timestamp = on');
  await stopLocalCluster(main);
  await startLocalCluster(main);
  h.writeConfig();
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE TABLE events (id serial PRIMARY KEY, tag text NOT NULL)');
  full = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
  await pause(1100); // after the backup's stop second
  // Until one commits off a whole millisecond (a millisecond-cut target would then stop before it).
  for (let i = 0; !commitTime; i++) {
    targetTag = `target-${i}`;
    await insert(targetTag);
    const c = await committed(targetTag);
    if (c.us !== 0) commitTime = c.at;
  }
  await pause(20);
  await insert('after-target');
  await insert('before-point');
  await sql(main, 'SELECT pg_create_restore_point($1)', [POINT]);
  await insert('after-point');
  await switchWalAndWaitArchived(main);
});
after(() => h.teardown());

describe('restore targets reach PostgreSQL exactly', () => {
  test('a time with microseconds: the row committed at that microsecond is restored, the next one is not', async () => {
    assert.match(commitTime, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$/);
    const r = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', { cluster: 'main', name: 'micro', target: { type: 'time', value: commitTime } });
    const tags = await tagsIn(r);
    assert.equal(tags[tags.length - 1], targetTag, `the row committed at ${commitTime} is there: ${tags.join(', ')}`);
    assert.ok(!tags.includes('after-target'));
    assert.equal(r.target, `time ${commitTime} from full backup ${full.set.label}`);
    assert.match(r.recovery.stoppedAt ?? '', /recovery stopping before commit/);
  });

  test('a restore point named with a quote and a backslash: the copy starts and stops at the point', async () => {
    const r = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', {
      cluster: 'main',
      name: 'quoted',
      target: { type: 'name', value: POINT, set: full.set.label, confirmUnknownName: true },
    });
    const tags = await tagsIn(r);
    assert.deepEqual(tags.slice(-2), ['after-target', 'before-point']);
    assert.ok(!tags.includes('after-point'));
    assert.ok(r.recovery.stoppedAt?.startsWith(`recovery stopping at restore point "${POINT}", time `), r.recovery.stoppedAt ?? 'no stop logged');
  });
});
