/**
 * A deploy does not strand a recovery. Runs started under version N wait (a demo approval, a
 * full-site DR drill paused on a failed check); the worker stops; version N+1 — with a new step before
 * those waits, guarded by patched() (test/upgrade-workflows/) — takes over the same task queue; both runs
 * finish as people decide, without the new step, while a run started under N+1 takes it. The same change
 * without patched() would break the waiting run's replay.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { startRunbook, workflowId } from '../client/temporal';
import { PGDR_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { createWorkerSet, type WorkerSet } from '../worker/worker';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../worker/workflow-bundle';
import { Harness, runbookNamed, waitFor } from './helpers/harness';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';
import { NEW_STEP_TITLE } from './upgrade-workflows';

const h = new Harness('upgrade');
const started: WorkflowHandle[] = [];
const quiet = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m), log: () => undefined } as never;
const bundle = (path: string): Promise<WorkflowBundleWithSourceMap> => bundleWorkflowCode({ workflowsPath: require.resolve(path), workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES, logger: quiet });

before(async () => {
  await h.startTemporal();
  h.writeConfig({ approvals: { demo: { approvers: ['alice'], required: 1, expiresIn: '10m' }, fullSiteRecovery: { approvers: ['dave'] } }, worker: { metricsPort: 0, stickyQueueTimeout: '1s' } });
});

after(async () => {
  for (const w of started) await w.terminate('test cleanup').catch(() => undefined);
  await h.teardown();
});

async function start(workflowType: string, input: object): Promise<WorkflowHandle> {
  const handle = await startRunbook(h.client, h.config, { workflow: runbookNamed(workflowType), input: input as never, id: workflowId(workflowType, (input as { cluster?: string }).cluster), summary: `${workflowType} (upgrade test)` });
  started.push(handle);
  return handle;
}

/** What the history of a run holds: the new step (its notification), the patch marker, replay failures. */
async function traces(handle: WorkflowHandle) {
  const events = (await handle.fetchHistory()).events ?? [];
  return {
    newStep: events.some((e) => e.activityTaskScheduledEventAttributes && Buffer.from(e.userMetadata?.summary?.data ?? []).toString().includes(NEW_STEP_TITLE)),
    // The only patch in play: its marker (core_patch) is in the history of runs that took the new path.
    marker: events.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch'),
    failedTasks: events.filter((e) => e.workflowTaskFailedEventAttributes).map((e) => e.workflowTaskFailedEventAttributes!.failure?.message ?? '?'),
  };
}

describe('deploying version N+1 while runbooks wait', () => {
  let demo: WorkflowHandle;
  let drill: WorkflowHandle;
  let n1: WorkerSet;
  let n1Done: Promise<void>;

  test('version N: a demo approval waits for its approver, a full-site drill is paused', async () => {
    await h.startWorker({ hosts: ['nohost'] }); // version N: the harness bundle (workflows/)
    demo = await start('demoApproval', { reason: 'deploy while waiting', requestedBy: 'carol' });
    drill = await start('fullSiteRecovery', { cluster: 'main', targetHost: 'nohost', drill: true, reason: 'deploy while paused', requestedBy: 'carol' });
    await waitFor('the demo approval request', async () => (await demo.query<{ pending?: unknown }>('approvalState')).pending);
    for (const item of ['host-provisioned', 'packages-installed', 'secrets-in-place']) await signOffWhenAsked(drill, item, 'dave');
    await waitFor('the drill to pause', async () => (await drill.query<{ paused: unknown }>('fullSiteState')).paused, 60_000);
    await h.stopWorkers();
  });

  test('the same change without patched() would break the waiting run', async () => {
    const unsafe = await bundle('./upgrade-workflows/unsafe');
    await assert.rejects(Worker.runReplayHistory({ workflowBundle: unsafe }, await demo.fetchHistory()), (e: Error) => e.name === 'DeterminismViolationError' && /Nondeterminism/i.test(e.message));
    // …and with patched() it replays.
    await Worker.runReplayHistory({ workflowBundle: await bundle('./upgrade-workflows') }, await demo.fetchHistory());
  });

  test('version N+1 takes over: both waiting runs finish as decided, without the new step', async () => {
    n1 = await createWorkerSet({ config: h.config, hosts: ['nohost'], connection: h.env.nativeConnection, workflowBundle: await bundle('./upgrade-workflows') });
    n1Done = n1.run();
    await voteWhenAsked(demo, 'approve', 'alice');
    const r = await demo.result();
    assert.equal((r as { ranAt: string[] }).ranAt.length, 1, 'the approved action ran once');

    await drill.executeUpdate('retry', { args: [{ by: 'dave', note: 'after the deploy' }] });
    await waitFor('the second pause', async () => ((await drill.query<{ paused: { attempt: number } | null }>('fullSiteState')).paused?.attempt ?? 0) > 1, 60_000);
    await drill.executeUpdate('abort', { args: [{ by: 'dave', reason: 'drill host not ready' }] });
    await assert.rejects(drill.result(), (e: Error) => /aborted by dave/.test(String((e.cause as Error)?.message)));
    assert.equal((await drill.describe()).typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.outcome), 'aborted');

    for (const w of [demo, drill]) {
      const t = await traces(w);
      assert.deepEqual(t.failedTasks, [], `${w.workflowId}: no workflow task failed (no nondeterminism)`);
      assert.equal(t.newStep, false, `${w.workflowId}: started under N, it does not take the new step`);
      assert.equal(t.marker, false);
    }
  });

  test('a run started under N+1 takes the new step', async () => {
    const fresh = await start('demoApproval', { reason: 'after the deploy', requestedBy: 'carol' });
    await voteWhenAsked(fresh, 'approve', 'alice');
    await fresh.result();
    const t = await traces(fresh);
    assert.equal(t.newStep, true, 'the new step ran');
    assert.equal(t.marker, true, 'with its patch marker');
    n1.shutdown();
    await n1Done;
  });
});
