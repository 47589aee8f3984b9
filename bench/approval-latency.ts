/**
 * Benchmark: approval latency on loopback — from the signed Slack interactivity POST leaving the client to
 * the workflow's `approve` Update having completed (the decision is in the workflow). Real Temporal dev
 * server, in-process worker, `pgdr slack-server`'s handler, the Slack Web API faked locally.
 * Prints p50/p90/p99/max; never passes or fails on time. PGDR_BENCH_APPROVALS sets the count (default 300).
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ApprovalStateAnswer, ApprovalView } from '../common/approvals';
import { encodeButtonValue } from '../common/approvals';
import { slackSignature, startSlackServer, type ClickOutcome } from '../client/slack-server';
import { Harness, waitFor } from '../test/helpers/harness';
import { runBench } from './helpers/cluster';
import { SlackFake } from '../test/helpers/slack-fake';

const TOTAL = Number(process.env.PGDR_BENCH_APPROVALS ?? 300);
const BATCH = 50;
const WARMUP = 5;
const SECRET = 'bench-signing-secret';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main(): Promise<void> {
  const h = new Harness('bench-approval');
  const slack = new SlackFake();
  try {
    await h.startTemporal();
    const apiUrl = await slack.start();
    process.env.PGDR_BENCH_SLACK_TOKEN = 'xoxb-bench';
    h.writeConfig({
      slack: { channel: 'C0BENCH', tokenEnv: 'PGDR_BENCH_SLACK_TOKEN', signingSecretEnv: 'PGDR_BENCH_SLACK_SECRET', apiUrl },
      approvals: { demo: { approvers: ['U0ALICE'], required: 1, expiresIn: '30m', remindEvery: '30m' } },
    });
    await h.startWorker({ hosts: [] });
    const outcomes = new Map<string, ClickOutcome>();
    const srv = await startSlackServer({ config: h.config, client: h.client, signingSecret: SECRET, port: 0, onOutcome: (o) => outcomes.set(o.click.workflowId, o) });

    const latencies: number[] = [];
    const acks: number[] = [];
    let refused = 0;
    for (let done = 0; done < TOTAL + WARMUP; done += BATCH) {
      const n = Math.min(BATCH, TOTAL + WARMUP - done);
      const handles: WorkflowHandle[] = await Promise.all(
        Array.from({ length: n }, (_, i) => h.start('demoApproval', { requestedBy: 'bench', reason: 'latency' }, `bench-approval-${done + i}-${Date.now()}`)),
      );
      const views: ApprovalView[] = [];
      for (const w of handles) {
        views.push(
          await waitFor('approval to be pending', async () => {
            const s = await w.query<ApprovalStateAnswer>('approvalState').catch(() => undefined);
            return s?.pending?.slack ? s.pending : undefined;
          }),
        );
      }
      for (const v of views) {
        const payload = {
          type: 'block_actions',
          user: { id: 'U0ALICE', username: 'alice', name: 'alice' },
          container: { type: 'message', message_ts: v.slack!.ts, channel_id: v.slack!.channel },
          channel: { id: v.slack!.channel },
          actions: [{ type: 'button', action_id: 'pgdr_approve', value: encodeButtonValue({ w: v.workflowId, a: v.approvalId }), action_ts: `${Date.now() / 1000}` }],
        };
        const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
        const ts = String(Math.floor(Date.now() / 1000));
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${srv.port}/`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': ts, 'x-slack-signature': slackSignature(SECRET, ts, body) },
          body,
        });
        await res.text();
        const tAck = performance.now();
        await srv.handler.idle();
        const o = outcomes.get(v.workflowId);
        if (!o?.ok) {
          refused++;
          continue;
        }
        latencies.push(o.decidedAt - t0);
        acks.push(tAck - t0);
      }
      await Promise.all(handles.map((w) => w.result().catch(() => undefined)));
    }
    const lat = latencies.slice(WARMUP).sort((a, b) => a - b);
    const ack = acks.slice(WARMUP).sort((a, b) => a - b);
    const f = (x: number) => `${x.toFixed(1)} ms`;
    process.stdout.write(
      [
        `approvals measured: ${lat.length} (after ${WARMUP} warm-up), refused: ${refused}`,
        `signed POST -> Update completed: p50 ${f(pct(lat, 50))}  p90 ${f(pct(lat, 90))}  p99 ${f(pct(lat, 99))}  max ${f(lat[lat.length - 1])}  (aim: p99 < 300 ms)`,
        `signed POST -> HTTP 200 ack:     p50 ${f(pct(ack, 50))}  p99 ${f(pct(ack, 99))}  (Slack needs < 3000 ms)`,
        '',
      ].join('\n'),
    );
    await srv.close();
  } finally {
    await slack.stop();
    await h.teardown();
  }
}

runBench(main);
