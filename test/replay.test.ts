/**
 * Every recorded history (test/histories/, `npm run record-histories`) replays with the current
 * workflow code. A runbook change that adds, removes or reorders an activity, timer, notification or
 * search-attribute upsert without `patched()` fails here, naming the runbook, the path and the event — the
 * same failure a worker would hit on a run in flight after the deploy.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { installRuntime } from '../worker/worker';
import { workflowBundle } from './helpers/harness';
import { describeEvent, recordedHistories, type RecordedHistory } from './histories';

const histories = recordedHistories();

/**
 * The events a replay failure message names: by id ("event id 12", "HistoryEvent(id: 12, …)"), or by the
 * activity type of the recorded event ("Activity type of scheduled event 'approvalPolicy' does not match…").
 */
function eventsIn(message: string, history: RecordedHistory['history']): number[] {
  const ids = [...message.matchAll(/(?:event[ _]?id|HistoryEvent\(id|eventId)\D{0,3}(\d+)/gi)].map((m) => Number(m[1]));
  if (ids.length) return ids;
  const activity = /scheduled event '([^']+)'/.exec(message)?.[1];
  const e = activity && history.events?.find((x) => x.activityTaskScheduledEventAttributes?.activityType?.name === activity);
  return e ? [Number(e.eventId)] : [];
}

describe('recorded histories replay with the current workflow code', () => {
  test('there is a recording for every runbook the brief names', () => {
    const runbooks = new Set(histories.map((x) => x.runbook));
    for (const r of ['restoreInPlace', 'fullSiteRecovery', 'backup', 'verifyDrill', 'restoreToNewCluster', 'cleanupRestore', 'demoApproval']) {
      assert.ok(runbooks.has(r), `no recorded history of ${r} in test/histories (npm run record-histories)`);
    }
  });

  for (const rec of histories) {
    test(`${rec.runbook} — ${rec.path}`, async () => {
      installRuntime();
      try {
        await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: `replay-${rec.runbook}` }, rec.history);
      } catch (err) {
        const message = (err as Error).message;
        const events = eventsIn(message, rec.history).map((id) => describeEvent(rec.history, id));
        assert.fail(
          `${rec.runbook} (${rec.path}, test/histories/${rec.file}) no longer replays${events.length ? ` at ${events.join(', ')}` : ''}: ${message}\n` +
            'A run in flight like this one would fail after the deploy. Guard the change with patched() (README: "Changing a runbook safely").',
        );
      }
    });
  }
});
