/**
 * Re-record the replay histories on purpose (`npm run record-histories`): one per runbook and important path,
 * from real runs on a dev server, a small PostgreSQL 15 cluster with pgBackRest and a pgdr worker (the test
 * harness). Runs are started the way the CLI starts them (client/temporal.ts startRunbook: summaries and
 * search attributes), people are played by Updates. A history taken while a run waits (for a sign-off, an
 * approval, a decision after a pause) is kept as it is: replaying an unfinished history is what a worker does
 * after a deploy. Only the histories named on the command line are rewritten, e.g.
 * `npm run record-histories -- restoreInPlace demoApproval`; none: all.
 *
 * Re-record after a change of a runbook that is meant to change new runs only AND after making sure that the
 * old recordings still replay (`node --test dist/test/replay.test.js` before re-recording): the committed
 * histories are what runs in flight look like.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { startRunbook } from '../client/temporal';
import { loadConfig, type LoadedConfig } from '../common/config';
import { configYaml, type LocalCluster } from '../worker/local-cluster';
import { Harness, runbookNamed, sql, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { signOffWhenAsked, signPostRestore, signPreRestore, voteWhenAsked } from './helpers/people';
import { HISTORIES_DIR, historyFileName, historyToFile } from './histories';

const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
const only = new Set(process.argv.slice(2));
const wanted = (runbook: string) => !only.size || only.has(runbook);

const h = new Harness('record');
let main: LocalCluster;
let n = 0;
const written: string[] = [];

/** A config for the harness: cluster `main` (real) and `lost` (host `nohost`, no pgBackRest config: full-site drills pause). */
function writeRecordingConfig(mainExtra: Record<string, unknown> = {}): LoadedConfig {
  const file = join(h.root, `pgdr-${++n}.yaml`);
  const lost = { name: 'lost', host: 'nohost', stanza: 'lost', pgbackrestConfig: '/nonexistent/pgbackrest.conf', dataDir: '/nonexistent/data', port: 5432, socketDir: '/tmp' };
  writeFileSync(
    file,
    configYaml({
      clusters: [{ ...main.configEntry, ...mainExtra }, lost],
      temporalAddress: h.env.connection.options.address,
      taskQueue: 'pgdr-record',
      extra: {
        worker: { metricsPort: 0 },
        approvals: {
          demo: { approvers: ['alice'], required: 1, expiresIn: '10m' },
          restoreInPlace: { approvers: ['alice', 'bob'], required: 1, expiresIn: '10m' },
          cleanup: { approvers: ['alice'] },
          fullSiteRecovery: { approvers: ['dave'] },
        },
      },
    }),
  );
  h.configFile = file;
  h.config = loadConfig(file);
  return h.config;
}

async function restartWorker(mainExtra: Record<string, unknown> = {}) {
  await h.stopWorkers();
  writeRecordingConfig(mainExtra);
  await h.startWorker();
}

function start(workflowType: string, input: object, summary: string): Promise<WorkflowHandle> {
  const id = `${workflowType}-rec-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
  return startRunbook(h.client, h.config, { workflow: runbookNamed(workflowType), input: input as never, id, summary, destructive: ['restoreInPlace', 'cleanupRestore'].includes(workflowType) });
}

/** Nothing runs and nothing changes for a moment: the run waits for a person. */
async function quiescent(handle: WorkflowHandle): Promise<void> {
  let last = -1;
  await waitFor(
    `${handle.workflowId} to wait`,
    async () => {
      const d = await handle.describe();
      const still = (d.raw.pendingActivities ?? []).length === 0 && d.historyLength === last;
      last = d.historyLength;
      return still;
    },
    180_000,
    700,
  );
}

async function record(handle: WorkflowHandle, runbook: string, path: string): Promise<void> {
  if (!wanted(runbook)) return;
  const history = await handle.fetchHistory();
  const file = historyFileName(runbook, path);
  writeFileSync(join(HISTORIES_DIR, file), historyToFile(history));
  written.push(`${file} (${history.events?.length ?? 0} events)`);
  process.stdout.write(`recorded ${file}\n`);
}

async function finished(handle: WorkflowHandle, runbook: string, path: string, expectFailure = false): Promise<unknown> {
  let result: unknown;
  try {
    result = await handle.result();
    if (expectFailure) throw new Error(`${runbook} (${path}) was expected to fail`);
  } catch (err) {
    if (!expectFailure) throw err;
  }
  await record(handle, runbook, path);
  return result;
}

async function main_() {
  mkdirSync(HISTORIES_DIR, { recursive: true });
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  await restartWorker({ restore: { expectTables: { orders: 1 } } });

  await finished(await start('setupStanza', { cluster: 'main' }, 'Stanza setup for cluster main'), 'setupStanza', 'happy');
  await sql(main, 'CREATE DATABASE app');
  await sql(main, "CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL); INSERT INTO orders (tag) SELECT 't1' FROM generate_series(1, 10)", [], 'app');
  await finished(await start('backup', { cluster: 'main', type: 'full' }, 'full backup of cluster main'), 'backup', 'happy');
  await finished(await start('backup', { cluster: 'main', snapshot: 'before-t2' }, 'snapshot before-t2 of cluster main'), 'backup', 'snapshot');
  await sql(main, "INSERT INTO orders (tag) SELECT 't2' FROM generate_series(1, 5)", [], 'app');
  await switchWalAndWaitArchived(main);
  await finished(await start('backupStatus', { cluster: 'main' }, 'Backup status of cluster main'), 'backupStatus', 'happy');
  await finished(await start('backupFreshness', { cluster: 'main' }, 'Backup freshness of cluster main'), 'backupFreshness', 'happy');
  await finished(await start('archiveHealth', { cluster: 'main' }, 'WAL archive health of cluster main'), 'archiveHealth', 'happy');
  await finished(await start('expire', { cluster: 'main', dryRun: true }, 'Expire backups of cluster main (dry run)'), 'expire', 'dry-run');
  await finished(await start('backup', { cluster: 'nope', type: 'full' }, 'full backup of cluster nope'), 'backup', 'bad-input', true);

  if (wanted('verifyDrill')) await finished(await start('verifyDrill', { cluster: 'main' }, 'Verification drill of cluster main'), 'verifyDrill', 'happy');

  if (wanted('restoreToNewCluster') || wanted('restoredClusters') || wanted('dropRestoredCluster')) {
    await finished(await start('restoreToNewCluster', { cluster: 'main', name: 'copy', target: { type: 'latest' }, requestedBy: 'carol' }, 'Restore main into new cluster copy (latest)'), 'restoreToNewCluster', 'happy');
    await finished(await start('restoredClusters', {}, 'Restored clusters'), 'restoredClusters', 'happy');
    await finished(await start('dropRestoredCluster', { name: 'copy' }, 'Drop restored cluster copy'), 'dropRestoredCluster', 'happy');
  }

  // demoApproval: waiting for a sign-off, waiting for approval, approved; rejected.
  {
    const w = await start('demoApproval', { reason: 'recording', requestedBy: 'carol', signOff: true }, 'Demo: an action that needs approval');
    await quiescent(w);
    await record(w, 'demoApproval', 'waiting-for-sign-off');
    await signOffWhenAsked(w, 'demo-ready', 'bob');
    await waitFor('the demo approval request', async () => (await w.query<{ pending?: unknown }>('approvalState')).pending);
    await quiescent(w);
    await record(w, 'demoApproval', 'waiting-for-approval');
    await voteWhenAsked(w, 'approve', 'alice');
    await finished(w, 'demoApproval', 'approved');
    const r = await start('demoApproval', { reason: 'recording', requestedBy: 'carol' }, 'Demo: an action that needs approval');
    await voteWhenAsked(r, 'reject', 'alice');
    await finished(r, 'demoApproval', 'rejected', true);
  }

  // restoreInPlace (happy): waiting for sign-off, waiting for approval, done; then cleanupRestore.
  if (wanted('restoreInPlace') || wanted('cleanupRestore')) {
    const input = { cluster: 'main', target: { type: 'latest' }, confirmation: TOKEN, reason: 'recording', requestedBy: 'carol' };
    const w = await start('restoreInPlace', input, 'IN-PLACE restore of main (latest) requested by carol');
    await quiescent(w);
    await record(w, 'restoreInPlace', 'waiting-for-sign-off');
    await signPreRestore(w);
    await waitFor('the in-place approval request', async () => (await w.query<{ pending?: unknown }>('approvalState')).pending);
    await quiescent(w);
    await record(w, 'restoreInPlace', 'waiting-for-approval');
    await voteWhenAsked(w, 'approve', 'alice');
    await signPostRestore(w);
    const r = (await finished(w, 'restoreInPlace', 'happy')) as { run: string };

    const c = await start('cleanupRestore', { cluster: 'main', run: r.run, reason: 'recording', requestedBy: 'carol' }, `Clean up in-place restore ${r.run} of main`);
    await voteWhenAsked(c, 'approve', 'alice');
    await finished(c, 'cleanupRestore', 'happy');
  }

  // restoreInPlace past the point of no return: a post-restore check fails → paused → rolled back.
  if (wanted('restoreInPlace')) {
    await restartWorker({ restore: { expectTables: { orders: 1_000_000 } } });
    const input = { cluster: 'main', target: { type: 'latest' }, confirmation: TOKEN, reason: 'recording', requestedBy: 'carol' };
    const w = await start('restoreInPlace', input, 'IN-PLACE restore of main (latest) requested by carol');
    await signPreRestore(w);
    await voteWhenAsked(w, 'approve', 'alice');
    await signPostRestore(w);
    await waitFor('the post-restore pause', async () => (await w.query<unknown>('pause').catch(() => null)) !== null, 180_000);
    await quiescent(w);
    await record(w, 'restoreInPlace', 'paused-after-failed-check');
    await w.executeUpdate('rollBack', { args: [{ by: 'alice', note: 'recording' }] });
    await finished(w, 'restoreInPlace', 'rolled-back', true);
    await restartWorker({ restore: { expectTables: { orders: 1 } } });
  }

  // fullSiteRecovery drill onto a host without pgBackRest config: waiting for sign-offs, paused, retried, aborted.
  if (wanted('fullSiteRecovery')) {
    const w = await start('fullSiteRecovery', { cluster: 'lost', targetHost: 'nohost', drill: true, reason: 'recording', requestedBy: 'carol' }, 'DR DRILL of lost onto nohost');
    await quiescent(w);
    await record(w, 'fullSiteRecovery', 'waiting-for-sign-off');
    for (const item of ['host-provisioned', 'packages-installed', 'secrets-in-place']) await signOffWhenAsked(w, item, 'dave');
    const paused = async () => (await w.query<{ paused: unknown }>('fullSiteState')).paused;
    await waitFor('the full-site pause', paused, 180_000);
    await quiescent(w);
    await record(w, 'fullSiteRecovery', 'paused-on-failed-step');
    await w.executeUpdate('retry', { args: [{ by: 'dave', note: 'recording' }] });
    await waitFor('the second pause', async () => ((await w.query<{ paused: { attempt?: number } | null }>('fullSiteState')).paused?.attempt ?? 0) > 1, 180_000);
    await quiescent(w);
    await w.executeUpdate('abort', { args: [{ by: 'dave', reason: 'recording' }] });
    await finished(w, 'fullSiteRecovery', 'aborted', true);
  }
}

main_()
  .then(async () => {
    await h.teardown();
    process.stdout.write(`\n${written.length} histories in ${HISTORIES_DIR}:\n${written.map((w) => `  ${w}`).join('\n')}\n`);
    process.exit(0);
  })
  .catch(async (err) => {
    process.stderr.write(`record-histories: ${(err as Error).stack ?? String(err)}\n(kept ${h.root}: set PGDR_KEEP_TEST_DIRS=1 to keep it always)\n`);
    process.env.PGDR_KEEP_TEST_DIRS = '1';
    await h.teardown().catch(() => undefined);
    process.exit(1);
  });
