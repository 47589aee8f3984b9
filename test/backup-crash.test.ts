/**
 * A backup survives a worker crash without running twice: the only worker (a child process whose pgBackRest
 * goes through test/helpers/pgbackrest-hook.sh) is SIGKILLed while `pgbackrest backup` is held, or right after
 * it finished (stop point `backup-taken`). The retried activity stops the stray pgBackRest of the dead worker,
 * or reuses the set it finished, so exactly one set carries the snapshot name.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { PROJECT_ROOT } from '../common/paths';
import type { BackupResult } from '../common/types';
import { type LocalCluster } from '../worker/local-cluster';
import { makeOwnedDir } from '../common/os-user';
import { Harness, pgbackrestJson, processesMatching, startWorkerProcess, stopWorkerProcess, waitFor } from './helpers/harness';
import { CRASH_TEST_WORKER } from './helpers/invariants';

const h = new Harness('backup-crash');
let main: LocalCluster;
let worker: ChildProcess;
const hooks = join(h.root, 'hooks');
const hold = join(hooks, 'pgbackrest-backup.hold');
const reached = join(hooks, 'pgbackrest-backup.reached');
const workerEnv = () => ({ PGDR_HOOK_DIR: hooks, PGDR_PGBACKREST_BIN: join(PROJECT_ROOT, 'test/helpers/pgbackrest-hook.sh') });

type RawSet = { label: string; annotation?: Record<string, string> };
const repoSets = async () => ((await pgbackrestJson(main, ['info'])) as { backup: RawSet[] }[])[0].backup;
const strayBackups = () => processesMatching('pgbackrest', `--config=${main.pgbackrestConfig}`, `--stanza=${main.stanza}`, ' backup');
/** Running (a zombie nobody reaped yet counts as gone: PID 1 here may be slow to reap orphans). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  makeOwnedDir(hooks, main.osUser, 0o755); // the hook runs as the cluster's OS user
  h.writeConfig({ worker: CRASH_TEST_WORKER });
  worker = await startWorkerProcess(h.configFile, workerEnv());
  await h.execute('setupStanza', { cluster: 'main' });
});
after(async () => {
  for (const f of [hold, join(hooks, 'backup-taken.hold')]) rmSync(f, { force: true });
  if (worker) await stopWorkerProcess(worker, 'SIGKILL');
  await h.teardown();
});

/** Start a snapshot with `pgbackrest backup` held, SIGKILL the worker there; returns the held stray's pid. */
async function crashWhileBackupHeld(snapshot: string): Promise<{ handle: WorkflowHandle; stray: number }> {
  rmSync(reached, { force: true });
  writeFileSync(hold, '');
  const handle = await h.start('backup', { cluster: 'main', snapshot });
  const stray = await waitFor('pgbackrest backup to be held', async () => existsSync(reached) && Number(readFileSync(reached, 'utf8')), 60_000, 50);
  rmSync(reached);
  await stopWorkerProcess(worker, 'SIGKILL');
  assert.ok(alive(stray), 'the killed worker left its pgBackRest behind');
  return { handle, stray };
}

async function takeBackupAttempts(handle: WorkflowHandle): Promise<number> {
  const events = (await handle.fetchHistory()).events ?? [];
  const ids = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'takeBackup').map((e) => String(e.eventId)));
  return Math.max(...events.filter((e) => e.activityTaskStartedEventAttributes && ids.has(String(e.activityTaskStartedEventAttributes.scheduledEventId))).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1));
}

async function assertOneSnapshotSet(snapshot: string, before: RawSet[], r: BackupResult) {
  const sets = await repoSets();
  const added = sets.filter((s) => !before.some((b) => b.label === s.label));
  assert.deepEqual(added.map((s) => s.label), [r.set.label], 'exactly one new backup set');
  assert.deepEqual(sets.filter((s) => s.annotation?.['pgdr-snapshot'] === snapshot).map((s) => s.label), [r.set.label], 'the snapshot name is on exactly one set');
  assert.deepEqual(await strayBackups(), [], 'no pgBackRest backup left running');
}

test('worker killed while pgbackrest backup starts: the retry stops the stray and takes exactly one backup', async () => {
  const before = await repoSets();
  const { handle, stray } = await crashWhileBackupHeld('crash-held');
  worker = await startWorkerProcess(h.configFile, workerEnv());
  // The retried attempt reaches pgBackRest again (still held): by then the dead worker's must be gone.
  await waitFor('the retried pgbackrest backup', async () => existsSync(reached), 120_000, 50);
  const strayAlive = alive(stray);
  rmSync(hold);
  const r = (await handle.result()) as BackupResult;
  assert.equal(strayAlive, false, "the retry stopped the dead worker's pgBackRest before its own");
  assert.ok((await takeBackupAttempts(handle)) >= 2, 'the backup activity was retried');
  await assertOneSnapshotSet('crash-held', before, r);
});

test('worker killed after pgbackrest backup finished: the retry reuses that set instead of taking a second one', async () => {
  const before = await repoSets();
  const taken = join(hooks, 'backup-taken');
  rmSync(`${taken}.reached`, { force: true });
  writeFileSync(`${taken}.hold`, '');
  const handle = await h.start('backup', { cluster: 'main', snapshot: 'crash-finished' });
  await waitFor('the backup to be taken', async () => existsSync(`${taken}.reached`), 120_000, 50);
  await stopWorkerProcess(worker, 'SIGKILL');
  rmSync(`${taken}.hold`);
  const finished = (await repoSets()).filter((s) => s.annotation?.['pgdr-snapshot'] === 'crash-finished').length;
  worker = await startWorkerProcess(h.configFile, workerEnv());
  const r = (await handle.result()) as BackupResult;
  assert.equal(finished, 1, "the dead worker's backup completed");
  assert.ok((await takeBackupAttempts(handle)) >= 2, 'the backup activity was retried');
  assert.equal(r.snapshot?.name, 'crash-finished');
  await assertOneSnapshotSet('crash-finished', before, r);
});

test('a second snapshot with the same name is refused before any backup', async () => {
  const before = await repoSets();
  const f = await h.expectFailure('backup', { cluster: 'main', snapshot: 'crash-held' });
  assert.match(f.message, /snapshot "crash-held" already exists/);
  assert.equal(f.type, 'BadInput');
  assert.ok(!(await h.scheduledActivities(f.handle)).includes('takeBackup'));
  assert.equal((await repoSets()).length, before.length);
});
