/**
 * Finding runs. Runbooks started the way the CLI starts them carry pgdr's search
 * attributes; `pgdr runs`, `pgdr status`, `pgdr cancel` and visibility queries find and handle them; the
 * outcome is set when a run ends; a namespace without the attributes still runs everything, and
 * `pgdr search-attributes apply` registers them (idempotent).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { run } from '../activities/process';
import { PROJECT_ROOT } from '../common/paths';
import { PGDR_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { applySearchAttributes } from '../client/search-attributes';
import { startRunbook, workflowId } from '../client/temporal';
import type { RunRow } from '../client/runs-cli';
import { createWorkerSet } from '../worker/worker';
import * as runbooks from '../workflows';
import { Harness, runbookNamed, waitFor, workflowBundle } from './helpers/harness';

const h = new Harness('runs');
const started: WorkflowHandle[] = [];

before(async () => {
  await h.startTemporal();
  h.writeConfig({ approvals: { demo: { approvers: ['alice'], required: 1, expiresIn: '10m' }, fullSiteRecovery: { approvers: ['dave'] } } });
  await h.startWorker({ hosts: ['nohost'] }); // "nohost": the placeholder cluster's host (activities that fail: no pgBackRest config there)
});

after(async () => {
  for (const w of started) await w.terminate('test cleanup').catch(() => undefined);
  await h.teardown();
});

async function pgdr<T = unknown>(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; json: T }> {
  const r = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'pgdr'), '--config', h.configFile, '--json', ...args]);
  let json: T = undefined as T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    /* asserted by the caller */
  }
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr, json };
}

async function start(workflowType: string, input: object, summary: string, kind = workflowType): Promise<WorkflowHandle> {
  const handle = await startRunbook(h.client, h.config, { workflow: runbookNamed(workflowType), input: input as never, id: workflowId(kind, (input as { cluster?: string }).cluster), summary });
  started.push(handle);
  return handle;
}

const listIds = async (query: string) => {
  const ids: string[] = [];
  for await (const w of h.client.workflow.list({ query })) ids.push(w.workflowId);
  return ids;
};

describe('finding runs', () => {
  let drill: WorkflowHandle;
  let demo: WorkflowHandle;
  let lookup: WorkflowHandle;

  before(async () => {
    // A full-site DR drill of "main" waits for its sign-offs; a demo approval waits for its approver; a
    // read-only lookup of "main" fails at once (its pgBackRest config does not exist).
    drill = await start('fullSiteRecovery', { cluster: 'main', targetHost: 'nohost', drill: true, reason: 'find me', requestedBy: 'carol' }, 'DR DRILL of main onto nohost', 'dr-drill');
    demo = await start('demoApproval', { reason: 'find me too', requestedBy: 'carol' }, 'Demo approval');
    lookup = await start('backupStatus', { cluster: 'main' }, 'Backup status of cluster main', 'status');
    await assert.rejects(lookup.result());
  });

  test('a run starts with its search attributes and a summary', async () => {
    const d = await drill.describe();
    const k = PGDR_SEARCH_ATTRIBUTES;
    assert.equal(d.typedSearchAttributes.get(k.cluster), 'main');
    assert.equal(d.typedSearchAttributes.get(k.host), 'nohost');
    assert.equal(d.typedSearchAttributes.get(k.runbook), 'fullSiteRecovery');
    assert.equal(d.typedSearchAttributes.get(k.destructive), false, 'a drill is not destructive');
    assert.equal(d.typedSearchAttributes.get(k.outcome), 'running');
    assert.equal(await d.staticSummary(), 'DR DRILL of main onto nohost');
  });

  test('the on-call query finds the running runbooks of a cluster', async () => {
    const ids = await waitFor('visibility to list the drill', async () => {
      const found = await listIds('PgdrCluster="main" AND ExecutionStatus="Running"');
      return found.includes(drill.workflowId) && found;
    });
    assert.ok(!ids.includes(lookup.workflowId), 'a failed lookup is not running');
    assert.deepEqual(await listIds(`PgdrRunbook="fullSiteRecovery" AND PgdrDestructive=false AND TaskQueue="${h.config.temporal.taskQueue}"`), [drill.workflowId]);
  });

  test('pgdr runs --cluster main --running', async () => {
    const r = await pgdr<{ query: string; runs: RunRow[] }>('runs', '--cluster', 'main', '--running');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.json.query, /PgdrCluster="main"/);
    assert.deepEqual(
      r.json.runs.map((x) => x.workflowId),
      [drill.workflowId],
    );
    assert.equal(r.json.runs[0].summary, 'DR DRILL of main onto nohost');
  });

  test('read-only lookups do not bury the runbooks: only with --all or --runbook', async () => {
    const ids = async (...args: string[]) => (await pgdr<{ runs: RunRow[] }>('runs', ...args)).json.runs.map((x) => x.workflowId);
    await waitFor('visibility to list the lookup', async () => (await ids('--all')).includes(lookup.workflowId));
    const plain = await ids();
    assert.ok(plain.includes(drill.workflowId) && plain.includes(demo.workflowId));
    assert.ok(!plain.includes(lookup.workflowId), 'backupStatus is hidden by default');
    assert.deepEqual(await ids('--runbook', 'backupStatus', '--failed'), [lookup.workflowId]);
    assert.deepEqual(await ids('--failed'), [], 'no runbook failed');
    assert.deepEqual((await ids('--since', '1d', '--cluster', 'main', '--all')).sort(), [drill.workflowId, lookup.workflowId].sort());
    const bad = await pgdr('runs', '--since', 'yesterday');
    assert.equal(bad.code, 3);
  });

  test('pgdr status shows the state and the steps', async () => {
    await waitFor('the drill waits for sign-offs', async () => (await drill.query<{ steps: { name: string }[] }>('steps')).steps.length > 1);
    const r = await pgdr<RunRow & { steps: { name: string; state: string }[] }>('status', drill.workflowId);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.status, 'RUNNING');
    assert.equal(r.json.cluster, 'main');
    assert.match(r.json.steps[0]?.name ?? '', /^Look up the cluster/, JSON.stringify(r.json.steps));
    const missing = await pgdr('status', 'no-such-run');
    assert.equal(missing.code, 3);
  });

  test('pgdr cancel --reason cancels a run; its outcome says so; a failed lookup says failed', async () => {
    assert.equal((await pgdr('cancel', demo.workflowId)).code, 3, '--reason is required');
    const r = await pgdr('cancel', demo.workflowId, '--reason', 'not needed any more', '--as', 'carol');
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(demo.result());
    const d = await demo.describe();
    assert.equal(d.status.name, 'CANCELLED');
    assert.equal(d.typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.outcome), 'cancelled');
    const history = await demo.fetchHistory();
    const req = history.events!.find((e) => e.workflowExecutionCancelRequestedEventAttributes)!.workflowExecutionCancelRequestedEventAttributes!;
    assert.match(req.cause ?? '', /not needed any more \(by carol\)/);
    assert.equal((await lookup.describe()).typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.outcome), 'failed');
    assert.equal((await pgdr('cancel', demo.workflowId, '--reason', 'again')).code, 3, 'not running any more');
  });
});

describe('a namespace without pgdr search attributes', () => {
  test('runs still start and finish; search-attributes apply registers them, twice is a no-op', async () => {
    const namespace = `bare-${Date.now()}`;
    await h.client.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: { seconds: 86400 } as never });
    const client = new Client({ connection: h.client.connection, namespace });
    const config = { ...h.config, temporal: { ...h.config.temporal, namespace, taskQueue: `${h.config.temporal.taskQueue}-bare` } };
    await waitFor('the namespace', () => client.workflowService.describeNamespace({ namespace }).then(() => true, () => false), 30_000);
    const set = await createWorkerSet({ config, hosts: ['nohost'], connection: h.env.nativeConnection, workflowBundle: await workflowBundle() });
    const running = set.run();
    try {
      const handle = await startRunbook(client, config, { workflow: runbooks.backupStatus, input: { cluster: 'main' }, id: workflowId('status', 'main'), summary: 'bare' });
      // The run goes to its own end (the placeholder cluster has no pgBackRest config), not stuck on BadSearchAttributes.
      await assert.rejects(handle.result(), (e: Error) => e instanceof WorkflowFailedError);
      assert.equal((await handle.describe()).typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.runbook), undefined);
      const first = await applySearchAttributes(client, namespace);
      assert.deepEqual(first.added.sort(), ['PgdrCluster', 'PgdrDestructive', 'PgdrHost', 'PgdrOutcome', 'PgdrRunbook']);
      const again = await waitFor('the attributes to show', async () => {
        const r = await applySearchAttributes(client, namespace, { dryRun: true });
        return r.added.length === 0 && r;
      });
      assert.equal(again.present.length, 5);
    } finally {
      set.shutdown();
      await running;
    }
  });
});
