/**
 * Temporal Schedules from the config, against a real Temporal dev server, a real PostgreSQL 15
 * cluster and real pgBackRest. What the server describes is what is asserted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { LoadedConfig } from '../common/config';
import type { BackupResult } from '../common/types';
import { applySchedules, ownedScheduleIds, pauseSchedule, resumeSchedule, SCHEDULE_KINDS, triggerSchedule } from '../client/schedules';
import { run } from '../activities/process';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness, pgbackrestJson, waitFor } from './helpers/harness';

const h = new Harness('schedules');
let main: LocalCluster;
let base: LoadedConfig;

const ids = (cluster: string) => SCHEDULE_KINDS.map((k) => `pgdr:${cluster}:${k}`).sort();
/** The config plus a second cluster "second" (same host) with default schedules. */
const withSecond = (cfg: LoadedConfig): LoadedConfig => ({ ...cfg, clusters: [...cfg.clusters, { ...cfg.clusters[0], name: 'second', stanza: 'second' }] });
const describeSchedule = (id: string) => h.client.schedule.getHandle(id).describe();

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  // The worker applies the schedules at start (worker.applySchedules), like the embedded default does.
  base = h.writeConfig(
    { worker: { metricsPort: 0, applySchedules: true } },
    // Every kind on, including the quarterly full-site DR drill (off by default).
    { main: { schedules: { incr: { every: '10m', jitter: '30s' }, fullSiteDrill: { cron: '0 5 1 */3 *' } } } },
  );
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
});
after(() => h.teardown());

describe('schedules apply', () => {
  test('the worker created one schedule per kind at start, as the config describes them', async () => {
    const owned = await waitFor('schedules listed', async () => {
      const got = await ownedScheduleIds(h.client, base);
      return got.length === SCHEDULE_KINDS.length ? got : undefined;
    });
    assert.deepEqual(owned, ids('main'));

    const full = await describeSchedule('pgdr:main:full');
    assert.equal(full.action.type, 'startWorkflow');
    if (full.action.type !== 'startWorkflow') return;
    assert.equal(full.action.workflowType, 'backup');
    assert.deepEqual(full.action.args, [{ cluster: 'main', type: 'full' }]);
    assert.equal(full.action.taskQueue, base.temporal.taskQueue);
    assert.equal(full.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(full.policies.catchupWindow, 6 * 3600 * 1000);
    assert.equal(full.spec.jitter, 10 * 60 * 1000, 'default jitter of the full backup: 10m');
    // Default full: 02:00 UTC daily. The server shows the cron as a calendar.
    const cal = full.spec.calendars?.[0];
    assert.deepEqual(cal?.hour, [{ start: 2, end: 2, step: 1 }]);
    assert.deepEqual(cal?.minute, [{ start: 0, end: 0, step: 1 }]);
    for (const t of full.info.nextActionTimes) {
      // Next runs fall between 02:00 and 02:10 UTC (jitter).
      assert.equal(t.getUTCHours(), 2);
      assert.ok(t.getUTCMinutes() < 10);
    }
    const incr = await describeSchedule('pgdr:main:incr');
    assert.equal(incr.spec.intervals?.[0].every, 10 * 60 * 1000);
    assert.equal(incr.spec.jitter, 30 * 1000);
    const drill = await describeSchedule('pgdr:main:drill');
    assert.equal(drill.action.type === 'startWorkflow' && drill.action.workflowType, 'verifyDrill');
    assert.deepEqual(drill.action.type === 'startWorkflow' && drill.action.args, [{ cluster: 'main' }]);
    const dr = await describeSchedule('pgdr:main:fullSiteDrill');
    assert.equal(dr.action.type === 'startWorkflow' && dr.action.workflowType, 'fullSiteRecovery');
    assert.deepEqual(dr.action.type === 'startWorkflow' && dr.action.args, [
      { cluster: 'main', targetHost: 'main', drill: true, reason: 'scheduled full-site DR drill', requestedBy: 'pgdr-schedule' },
    ]);
    const fresh = await describeSchedule('pgdr:main:freshness');
    assert.equal(fresh.spec.intervals?.[0].every, 15 * 60 * 1000);
    assert.equal(fresh.action.type === 'startWorkflow' && fresh.action.workflowType, 'backupFreshness');
  });

  test('applying twice changes nothing (the server shows no update)', async () => {
    const before = await Promise.all(ids('main').map(async (id) => (await describeSchedule(id)).info.lastUpdatedAt?.getTime() ?? null));
    const r = await applySchedules(h.client, base);
    assert.deepEqual(r.created, []);
    assert.deepEqual(r.updated, []);
    assert.deepEqual(r.deleted, []);
    assert.deepEqual([...r.unchanged].sort(), ids('main'));
    const after = await Promise.all(ids('main').map(async (id) => (await describeSchedule(id)).info.lastUpdatedAt?.getTime() ?? null));
    assert.deepEqual(after, before);
  });

  test('a new cluster gets its schedules; a changed config updates only what changed; a disabled kind is deleted', async () => {
    const r1 = await applySchedules(h.client, withSecond(base));
    assert.deepEqual([...r1.created].sort(), ids('second'));
    assert.deepEqual(r1.updated, []);

    const changed = withSecond(base);
    changed.clusters = changed.clusters.map((c) =>
      c.name === 'main' ? { ...c, schedules: { ...c.schedules, incr: { every: '7m' }, drill: false as const } } : c,
    );
    const r2 = await applySchedules(h.client, changed);
    assert.deepEqual(r2.updated, ['pgdr:main:incr']);
    assert.deepEqual(r2.deleted, ['pgdr:main:drill']);
    assert.deepEqual(r2.created, []);
    const incr = await describeSchedule('pgdr:main:incr');
    assert.equal(incr.spec.intervals?.[0].every, 7 * 60 * 1000);
    assert.equal(incr.spec.jitter ?? 0, 0, 'jitter removed with the config');
    await assert.rejects(describeSchedule('pgdr:main:drill'), ScheduleNotFoundError);
    const r3 = await applySchedules(h.client, changed);
    assert.equal(r3.updated.length + r3.created.length + r3.deleted.length, 0, 'second apply of the changed config: no change');
  });

  test('removing a cluster deletes its schedules and never touches foreign ones', async () => {
    // Someone else's schedules: one without the prefix, one with the prefix but without pgdr's memo.
    const foreignAction = { type: 'startWorkflow' as const, workflowType: 'nightlyReport', args: [{}], taskQueue: 'reports' };
    await h.client.schedule.create({ scheduleId: 'nightly-report', spec: { intervals: [{ every: '1d' }] }, action: foreignAction });
    await h.client.schedule.create({ scheduleId: 'pgdr:legacy:full', spec: { intervals: [{ every: '1d' }] }, action: foreignAction });

    const r = await applySchedules(h.client, base);
    assert.deepEqual([...r.deleted].sort(), ids('second'));
    for (const id of ids('second')) await assert.rejects(describeSchedule(id), ScheduleNotFoundError);
    assert.deepEqual(r.created, ['pgdr:main:drill'], 'drill is back: base has it');

    const foreign = await describeSchedule('nightly-report');
    assert.equal(foreign.spec.intervals?.[0].every, 24 * 3600 * 1000);
    const legacy = await describeSchedule('pgdr:legacy:full');
    assert.equal(legacy.action.type === 'startWorkflow' && legacy.action.workflowType, 'nightlyReport');

    // Now a foreign schedule at an id pgdr wants: pgdr reports the conflict and leaves it as it is.
    await h.client.schedule.create({ scheduleId: 'pgdr:second:expire', spec: { intervals: [{ every: '2d' }] }, action: foreignAction, memo: { owner: 'ops' } });
    const r2 = await applySchedules(h.client, withSecond(base));
    assert.deepEqual(r2.conflicts, ['pgdr:second:expire']);
    const squat = await describeSchedule('pgdr:second:expire');
    assert.equal(squat.action.type === 'startWorkflow' && squat.action.workflowType, 'nightlyReport');
    assert.equal(squat.spec.intervals?.[0].every, 2 * 24 * 3600 * 1000);
    const r3 = await applySchedules(h.client, base);
    assert.ok(!r3.deleted.includes('pgdr:second:expire'), 'a foreign schedule is never deleted');
    await describeSchedule('pgdr:second:expire');
    for (const id of ['nightly-report', 'pgdr:legacy:full', 'pgdr:second:expire']) await h.client.schedule.getHandle(id).delete();
  });

  test('pause survives an apply; resume', async () => {
    await pauseSchedule(h.client, base, 'main:incr', 'maintenance window');
    assert.equal((await describeSchedule('pgdr:main:incr')).state.paused, true);
    const changed = { ...base, clusters: base.clusters.map((c) => ({ ...c, schedules: { ...c.schedules, incr: { every: '20m' } } })) };
    const r = await applySchedules(h.client, changed);
    assert.deepEqual(r.updated, ['pgdr:main:incr']);
    const d = await describeSchedule('pgdr:main:incr');
    assert.equal(d.state.paused, true, 'still paused after the update');
    assert.equal(d.spec.intervals?.[0].every, 20 * 60 * 1000);
    await resumeSchedule(h.client, base, 'pgdr:main:incr');
    assert.equal((await describeSchedule('pgdr:main:incr')).state.paused, false);
    await applySchedules(h.client, base);
    await assert.rejects(pauseSchedule(h.client, base, 'nope:full'), /no schedule "pgdr:nope:full"/);
  });
});

describe('scheduled runs', () => {
  test('a triggered scheduled full backup runs and lands in pgbackrest info', async () => {
    await triggerSchedule(h.client, base, 'main:full');
    const workflowId = await waitFor('the schedule to start a workflow', async () => {
      const d = await describeSchedule('pgdr:main:full');
      return d.info.recentActions[0]?.action.workflow.workflowId;
    });
    assert.match(workflowId, /^pgdr-main-full-/);
    const handle = h.client.workflow.getHandle(workflowId);
    const result = (await handle.result()) as BackupResult;
    assert.equal(result.set.type, 'full');
    const info = (await pgbackrestJson(main, ['info'])) as { backup: { label: string; type: string }[] }[];
    assert.deepEqual(
      info[0].backup.map((b) => [b.label, b.type]),
      [[result.set.label, 'full']],
    );
    const desc = await handle.describe();
    assert.equal(desc.memo?.pgdrSchedule, 'pgdr:main:full');
  });

  test('`pgdr schedules list` shows next run times; `schedules apply --dry-run` shows no change', async () => {
    const list = await run('node', ['bin/pgdr', '--config', h.configFile, 'schedules', 'list']);
    assert.equal(list.exitCode, 0, list.stderr);
    assert.match(list.stdout, /pgdr:main:full {2}backup {2}cron "0 2 \* \* \*" UTC, jitter 10m/);
    assert.match(list.stdout, /next: \d{4}-\d\d-\d\d 02:0\d:\d\d UTC/);
    assert.match(list.stdout, /pgdr:main:full[\s\S]*last: .*pgdr-main-full-/);
    const dry = await run('node', ['bin/pgdr', '--config', h.configFile, 'schedules', 'apply', '--dry-run']);
    assert.equal(dry.exitCode, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`0 would be created, 0 would be updated, ${SCHEDULE_KINDS.length} unchanged, 0 would be deleted`));
  });
});
