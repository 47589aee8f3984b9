/**
 * The fixture of the in-place safety matrix (test/safety-in-place-*.test.ts): one Temporal dev server with a
 * database file (restartable), one cluster `main` with an `orders` table and a full backup, and a pgdr worker
 * in a child process that is SIGKILLed exactly at named stop points (activities/stop-points.ts,
 * test/helpers/pgbackrest-hook.sh). The matrix is split over several files so that they run side by side;
 * each file has its own fixture (its own server, cluster and worker).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { serverState } from '../../activities/postgres';
import type { RestoreInPlaceResult } from '../../workflows/restore-in-place';
import type { LocalCluster } from '../../worker/local-cluster';
import { Harness, sql, startWorkerProcess, stopWorkerProcess, waitFor } from './harness';
import { accident as accidentOn, assertNothingLost, Matrix, outcome, StopPoints, strays, whereIs, CRASH_TEST_WORKER, crashableWorker } from './invariants';
import { signOffWhenAsked, voteWhenAsked } from './people';

export let h: Harness;
export const matrix = new Matrix();
export const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
export let main: LocalCluster;
let worker: ChildProcess;
export let points: StopPoints;
let env: Record<string, string>;

export const rows = async (tag: string) => Number((await sql<{ n: string }>(main, 'SELECT count(*) AS n FROM orders WHERE tag = $1', [tag], 'app'))[0].n);
/** When the postmaster started: unchanged means production was never stopped. */
export const postmasterPid = async () => (await sql<{ p: string }>(main, 'SELECT pg_postmaster_start_time()::text AS p'))[0].p;
/** The configured application check fails while this file exists. */
const appBroken = () => join(points.dir, 'app-broken');
export const breakApp = () => writeFileSync(appBroken(), '');
export const fixApp = () => rmSync(appBroken(), { force: true });

export async function crashWorker(): Promise<void> {
  await stopWorkerProcess(worker, 'SIGKILL');
  worker = await startWorkerProcess(h.configFile, env);
}

/** The accident of one cell (invariants.ts): 5 rows tagged `name` exist at the target time, then they are deleted. */
export const accident = (name: string) => accidentOn(main, name);

export const start = (a: { name: string; target: string }, id = `ip-${a.name}-${Date.now()}`) =>
  h.start('restoreInPlace', { cluster: 'main', target: { type: 'time', value: a.target }, confirmation: TOKEN, reason: `safety ${a.name}`, requestedBy: 'carol' }, id);

/** An Update refused by the workflow's validator, with a reason matching `re`. */
export const refusedWith = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: Error) => (assert.match(String((e as { cause?: Error }).cause?.message ?? e.message), re), true));

/** bob confirms the target (carol requested it), alice approves. */
export async function people(handle: WorkflowHandle): Promise<void> {
  await signOffWhenAsked(handle, 'target-confirmed', 'bob', { note: 'checked' });
  await voteWhenAsked(handle, 'approve', 'alice');
}

export async function assertHealthy(): Promise<void> {
  assert.equal(await serverState(main), 'running', 'the cluster runs');
  assert.equal((await sql<{ one: number }>(main, 'SELECT 1 AS one'))[0].one, 1, 'and answers');
  await waitFor('no stray postmaster or pgBackRest', async () => (await strays(h.root, [main.dataDir])).length === 0, 20_000);
}

/** Restored: the rows are back, the original is kept aside under this run's name. */
export async function assertRestored(a: { name: string }, r: RestoreInPlaceResult | undefined, failure?: string): Promise<void> {
  assert.ok(r, `the runbook finished: ${failure}`);
  await assertHealthy();
  assert.equal(await rows(a.name), 5, 'the deleted rows are back');
  assertNothingLost(main, a.name, 'kept');
  assert.equal(whereIs(main, a.name)[0], `data.pre-restore-${r.run}`, 'kept under this run\'s own name');
}

/** Rolled back: the original runs with its data (the rows stay deleted), nothing lost. */
export async function assertRolledBack(a: { name: string }, failure: string | undefined, re: RegExp): Promise<void> {
  assert.match(failure ?? 'it succeeded', re);
  await assertHealthy();
  assert.equal(await rows(a.name), 0, 'the original data, as before the restore');
  assertNothingLost(main, a.name, 'live');
}

/** Register this file's fixture: `name` names its folder and its part of the matrix. */
export function inPlaceSuite(name: string, part: string): void {
  h = new Harness(name);
  before(setUp);
  after(async () => {
    points?.release();
    matrix.print(`Safety matrix, in-place restore: ${part}`);
    if (worker) await stopWorkerProcess(worker, 'SIGKILL');
    await h.teardown();
  });
}

async function setUp(): Promise<void> {
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
}

/** A completed run, for the Reset, same-id and cleanup cells: a restore of an accident, with no fault. */
export interface CompletedRun { id: string; runId: string; run: string; name: string }
let completed: Promise<CompletedRun> | undefined;
export function aCompletedRun(): Promise<CompletedRun> {
  completed ??= (async () => {
    const a = await accident('completed');
    const handle = await start(a);
    await people(handle);
    const o = await outcome<RestoreInPlaceResult>(handle);
    await assertRestored(a, o.result, o.failure);
    return { id: handle.workflowId, runId: (await handle.describe()).runId, run: o.result!.run, name: a.name };
  })();
  return completed;
}

