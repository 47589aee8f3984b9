/**
 * The in-place restore survives a worker crash: the only worker (a child process) is SIGKILLed right after
 * the data directory was moved aside, and again in the middle of `pgbackrest restore`; a new worker takes
 * over and the runbook finishes (or rolls back). The original data is never lost.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { serverState } from '../activities/postgres';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness, processesMatching, sql, startWorkerProcess, stopWorkerProcess, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { signPostRestore, signPreRestore, voteWhenAsked } from './helpers/people';

const h = new Harness('restore-crash');
let main: LocalCluster;
let worker: ChildProcess;
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';

const count = async () => Number((await sql<{ n: string }>(main, 'SELECT count(*) AS n FROM orders', [], 'app'))[0].n);
const serverNow = async () => (await sql<{ t: Date }>(main, 'SELECT clock_timestamp() AS t'))[0].t.toISOString();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  h.writeConfig({ approvals: { restoreInPlace: { approvers: ['alice'], required: 1 } } }, { main: { backup: { processMax: 1 } } });
  worker = await startWorkerProcess(h.configFile);
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE DATABASE app');
  // Enough data that the restore lasts long enough to be interrupted.
  await sql(main, 'CREATE TABLE orders AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) AS note FROM generate_series(1, 1200000) g', [], 'app');
  await sql(main, 'VACUUM FREEZE orders', [], 'app');
  await h.execute('backup', { cluster: 'main', type: 'full' });
});
after(async () => {
  if (worker) await stopWorkerProcess(worker, 'SIGKILL');
  await h.teardown();
});

/** Crash the worker when `moment` comes, start a new one, and return how the runbook ended. */
async function crashDuring(name: string, moment: (run: string) => Promise<boolean>) {
  const wanted = await count();
  await pause(1100);
  const target = await serverNow();
  await pause(1100);
  await sql(main, 'DELETE FROM orders WHERE id % 2 = 0', [], 'app');
  const afterDelete = await count();
  await switchWalAndWaitArchived(main);
  const id = `${name}-${Date.now()}`;
  const handle = await h.start('restoreInPlace', { cluster: 'main', target: { type: 'time', value: target }, confirmation: TOKEN, reason: 'crash test', requestedBy: 'carol' }, id);
  await signPreRestore(handle);
  await voteWhenAsked(handle, 'approve', 'alice');
  await waitFor(`the moment to crash (${name})`, () => moment(id), 120_000, 20);
  await stopWorkerProcess(worker, 'SIGKILL');
  worker = await startWorkerProcess(h.configFile);
  let result: RestoreInPlaceResult | undefined;
  let failure = '';
  try {
    const signing = signPostRestore(handle).catch(() => undefined);
    result = (await handle.result()) as RestoreInPlaceResult;
    await signing;
  } catch (e) {
    for (let x = e as { message?: string; cause?: unknown } | undefined; x; x = x.cause as typeof x) failure += `${x.message} | `;
  }
  const history = (await handle.fetchHistory()).events ?? [];
  return { handle, result, failure, wanted, afterDelete, aside: `${main.dataDir}.pre-restore-${id}`, history };
}

function attemptsOf(history: Awaited<ReturnType<typeof crashDuring>>['history'], activity: string): number[] {
  const scheduled = new Map<string, string>();
  for (const e of history) if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType!.name!);
  return history
    .filter((e) => e.activityTaskStartedEventAttributes && scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)) === activity)
    .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
}

test('worker killed right after the data directory was moved aside: the restore finishes after a restart', async () => {
  const r = await crashDuring('moved', async (run) => existsSync(`${main.dataDir}.pre-restore-${run}/PG_VERSION`));
  assert.equal(r.failure, '', `the runbook finished: ${r.failure}`);
  assert.equal(await serverState(main), 'running');
  assert.equal(await count(), r.wanted, 'the deleted rows are back');
  assert.ok(existsSync(`${r.aside}/PG_VERSION`), 'the original data directory is kept');
});

test('worker killed during pgbackrest restore: a new worker restores again and the runbook finishes', async () => {
  const r = await crashDuring('restoring', async () => (await processesMatching('pgbackrest', `--pg1-path=${main.dataDir}`, ' restore')).length > 0);
  assert.equal(r.failure, '', `the runbook finished: ${r.failure}`);
  assert.ok(Math.max(...attemptsOf(r.history, 'restoreIntoDataDir')) >= 2, 'the restore ran again after the crash');
  assert.equal(await serverState(main), 'running');
  assert.equal(await count(), r.wanted, 'the deleted rows are back');
  assert.ok(existsSync(`${r.aside}/PG_VERSION`), 'the original data directory is kept');
  assert.deepEqual(await processesMatching('pgbackrest', `--pg1-path=${main.dataDir}`, ' restore'), [], 'no stray restore left');
});
