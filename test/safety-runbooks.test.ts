/**
 * The safety matrix of the other runbooks that restore or run pgBackRest (the in-place restore has its own,
 * test/safety-in-place-*.test.ts): restore into a new cluster, the verification drill, the full-site recovery
 * drill and the backup, each with its worker SIGKILLed and its workflow cancelled exactly inside pgBackRest
 * (test/helpers/pgbackrest-hook.sh) or at a named stop point. After every cell: production untouched
 * (running since before, same rows), no scratch copy, staging folder, stray postmaster or pgBackRest left,
 * and the runbook ended.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { serverState } from '../activities/postgres';
import type { ChecklistSnapshot } from '../workflows/checklist';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness, pgbackrestJson, sql, startWorkerProcess, stopWorkerProcess, waitFor } from './helpers/harness';
import { Matrix, outcome, StopPoints, strays, CRASH_TEST_WORKER, crashableWorker } from './helpers/invariants';

const h = new Harness('safety-runbooks');
const matrix = new Matrix();
let main: LocalCluster;
let worker: ChildProcess;
let points: StopPoints;
let env: Record<string, string>;
let productionSince: string;
let rowsBefore: number;

const rows = async () => Number((await sql<{ n: string }>(main, 'SELECT count(*) AS n FROM orders', [], 'app'))[0].n);
const startedAt = async () => (await sql<{ p: string }>(main, 'SELECT pg_postmaster_start_time()::text AS p'))[0].p;
const scratchRoot = () => join(main.dir, 'pgdr-scratch');
const restoredRoot = () => join(h.root, 'restored');

async function crashWorker(): Promise<void> {
  await stopWorkerProcess(worker, 'SIGKILL');
  worker = await startWorkerProcess(h.configFile, env);
}

/** Production untouched, nothing left behind. */
async function assertClean(what: string): Promise<void> {
  assert.equal(await serverState(main), 'running', 'production runs');
  assert.equal(await startedAt(), productionSince, 'production was never restarted');
  assert.equal(await rows(), rowsBefore, 'production rows unchanged');
  await waitFor(`no stray postmaster or pgBackRest after ${what}`, async () => (await strays(h.root, [main.dataDir])).length === 0, 30_000);
  const leftovers = [scratchRoot(), restoredRoot()].filter(existsSync).flatMap((d) => readdirSync(d).map((n) => join(d, n)));
  assert.deepEqual(leftovers.filter((d) => !d.endsWith('/kept')), [], 'no scratch copy or new-cluster folder left');
}

/** Sign every pending manual item as dave (on approvals.fullSiteRecovery.approvers), until the run ends. */
async function signAll(handle: WorkflowHandle, until: Promise<unknown>): Promise<void> {
  let done = false;
  void until.finally(() => (done = true)).catch(() => undefined);
  while (!done) {
    const lists = await handle.query<ChecklistSnapshot[]>('checklist').catch(() => [] as ChecklistSnapshot[]);
    for (const i of lists.flatMap((l) => l.items)) {
      if (i.kind === 'manual' && i.state === 'pending') await handle.executeUpdate('checkItem', { args: [{ item: i.id, by: 'dave' }] }).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  ({ points, env } = await crashableWorker(h));
  h.writeConfig(
    { worker: CRASH_TEST_WORKER, approvals: { fullSiteRecovery: { approvers: ['dave'] } } },
    { main: { backup: { processMax: 1 }, restore: { newClusterDir: restoredRoot() }, drill: { scratchDir: scratchRoot() } } },
  );
  worker = await startWorkerProcess(h.configFile, env);
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE DATABASE app');
  await sql(main, "CREATE TABLE orders AS SELECT g AS id, 'x' AS tag FROM generate_series(1, 500) g", [], 'app');
  await h.execute('backup', { cluster: 'main', type: 'full' });
  productionSince = await startedAt();
  rowsBefore = await rows();
});
after(async () => {
  points?.release();
  matrix.print('Safety matrix, other runbooks');
  if (worker) await stopWorkerProcess(worker, 'SIGKILL');
  await h.teardown();
});

describe('restore into a new cluster', () => {
  for (const point of ['pgbackrest-restore', 'restore:before-rename']) {
    test(`SIGKILL at ${point}: finishes; nothing of the first attempt is left`, () =>
      matrix.cell('restoreToNewCluster', 'SIGKILL', point, async () => {
        points.hold(point);
        const name = `k${point.length}`;
        const handle = await h.start('restoreToNewCluster', { cluster: 'main', name, target: { type: 'latest' } });
        await points.reached(point);
        await crashWorker();
        points.release(point);
        const o = await outcome<{ port: number; socketDir: string; dataDir: string }>(handle);
        assert.ok(o.result, o.failure);
        const copied = await sql<{ n: string }>({ ...main, port: o.result.port, socketDir: o.result.socketDir }, 'SELECT count(*) AS n FROM orders', [], 'app');
        assert.equal(Number(copied[0].n), rowsBefore, 'the copy holds the rows');
        assert.deepEqual(readdirSync(join(restoredRoot(), name)).filter((n) => n.includes('.restoring-')), [], 'no staging folder left');
        await h.execute('dropRestoredCluster', { name });
        await assertClean(point);
        return 'restored after a restart; dropped cleanly';
      }));
  }
  test('cancel at pgbackrest-restore: the new cluster is removed, production untouched', () =>
    matrix.cell('restoreToNewCluster', 'cancel', 'pgbackrest-restore', async () => {
      points.hold('pgbackrest-restore');
      const handle = await h.start('restoreToNewCluster', { cluster: 'main', name: 'cancelled', target: { type: 'latest' } });
      await points.reached('pgbackrest-restore');
      await handle.cancel();
      const o = await outcome(handle);
      points.release('pgbackrest-restore');
      assert.match(o.failure ?? 'succeeded', /cancel/i);
      assert.deepEqual(await h.execute('restoredClusters', {}), [], 'nothing registered');
      await assertClean('cancel');
      return 'cancelled; new cluster removed';
    }));
});

describe('verification drill', () => {
  test('SIGKILL at pgbackrest-restore: the drill passes, its scratch copy is gone', () =>
    matrix.cell('verifyDrill', 'SIGKILL', 'pgbackrest-restore', async () => {
      points.hold('pgbackrest-restore');
      const handle = await h.start('verifyDrill', { cluster: 'main' });
      await points.reached('pgbackrest-restore');
      await crashWorker();
      points.release('pgbackrest-restore');
      const o = await outcome<{ passed: boolean }>(handle);
      assert.equal(o.result?.passed, true, o.failure);
      await assertClean('drill');
      return 'passed; scratch removed';
    }));
  test('cancel at pgbackrest-restore: cleanup still runs', () =>
    matrix.cell('verifyDrill', 'cancel', 'pgbackrest-restore', async () => {
      points.hold('pgbackrest-restore');
      const handle = await h.start('verifyDrill', { cluster: 'main' });
      await points.reached('pgbackrest-restore');
      await handle.cancel();
      const o = await outcome(handle);
      points.release('pgbackrest-restore');
      assert.ok(o.failure, 'the drill did not pass');
      await assertClean('drill cancel');
      return 'cancelled; scratch removed';
    }));
  test('SIGKILL inside pgbackrest verify (the restore runs beside it): the drill passes', () =>
    matrix.cell('verifyDrill', 'SIGKILL', 'pgbackrest-verify', async () => {
      points.hold('pgbackrest-verify');
      const handle = await h.start('verifyDrill', { cluster: 'main' });
      await points.reached('pgbackrest-verify');
      await crashWorker();
      points.release('pgbackrest-verify');
      const o = await outcome<{ passed: boolean }>(handle);
      assert.equal(o.result?.passed, true, o.failure);
      await assertClean('drill verify');
      return 'passed; scratch removed';
    }));
});

describe('full-site recovery drill', () => {
  for (const fault of ['SIGKILL', 'cancel'] as const) {
    test(`${fault} at pgbackrest-restore: the scratch cluster is torn down`, () =>
      matrix.cell('fullSiteRecovery', fault, 'pgbackrest-restore', async () => {
        points.hold('pgbackrest-restore');
        const handle = await h.start('fullSiteRecovery', { cluster: 'main', targetHost: 'main', drill: true, reason: 'safety', requestedBy: 'oncall' });
        const result = outcome<{ outcome: string }>(handle);
        const signing = signAll(handle, result);
        await points.reached('pgbackrest-restore');
        if (fault === 'SIGKILL') {
          await crashWorker();
          points.release('pgbackrest-restore');
        } else await handle.cancel();
        const o = await result;
        await signing;
        points.release('pgbackrest-restore');
        if (fault === 'SIGKILL') assert.equal(o.result?.outcome, 'drill-passed', o.failure);
        else assert.ok(o.failure, 'cancelled');
        await assertClean(`full-site ${fault}`);
        return fault === 'SIGKILL' ? 'drill passed; scratch torn down' : 'cancelled; scratch torn down';
      }));
  }
});

describe('backup', () => {
  test('SIGKILL inside pgbackrest backup: one new set, no stray pgBackRest', () =>
    matrix.cell('backup', 'SIGKILL', 'pgbackrest-backup', async () => {
      const before = ((await pgbackrestJson(main, ['info'])) as { backup: unknown[] }[])[0].backup.length;
      points.hold('pgbackrest-backup');
      const handle = await h.start('backup', { cluster: 'main', type: 'incr' });
      await points.reached('pgbackrest-backup');
      await crashWorker();
      points.release('pgbackrest-backup');
      const o = await outcome(handle);
      assert.ok(o.result, o.failure);
      const sets = ((await pgbackrestJson(main, ['info'])) as { backup: unknown[] }[])[0].backup.length;
      assert.equal(sets, before + 1, 'exactly one new backup set');
      await assertClean('backup');
      return 'one set; no stray';
    }));
  test('cancel inside pgbackrest backup: pgBackRest is stopped', () =>
    matrix.cell('backup', 'cancel', 'pgbackrest-backup', async () => {
      points.hold('pgbackrest-backup');
      const handle = await h.start('backup', { cluster: 'main', type: 'incr' });
      await points.reached('pgbackrest-backup');
      await handle.cancel();
      const o = await outcome(handle);
      points.release('pgbackrest-backup');
      assert.ok(o.failure, 'cancelled');
      await assertClean('backup cancel');
      return 'cancelled; no stray';
    }));
});
