/**
 * Benchmark: one worker process serving many clusters — 7 schedules per cluster firing
 * every few minutes — while runbooks wait for approval. Not a test: it prints figures measured side by side
 * in one run (a small and a large fleet, same Temporal dev server, same worker options) and never fails on
 * time.
 *
 * What runs (printed again at the start):
 * - 2 real PostgreSQL 15 clusters with pgBackRest stanzas and one full backup each. The config names
 *   `clusters` made-up clusters `c001…`; each is an alias of one real cluster (same stanza, paths, port), all
 *   on one host `bench`, so every activity really runs (pgbackrest info, SQL, health-state files).
 * - Per cluster the 7 schedule kinds of client/schedules.ts (ids `pgdr:<cluster>:<kind>`, overlap SKIP,
 *   memo, from `desiredSchedules()`), each `every <PGDR_BENCH_SCALE_EVERY>` with jitter of the same length
 *   so that the fleet produces a steady stream. `freshness` runs the real `backupFreshness`; full, diff,
 *   incr, expire, drill and archiveHealth run `backupStatus` (pgbackrest info, the read-only step those
 *   runbooks start with) — a real backup, drill or `pgbackrest check` (a forced 16 MB WAL switch) per
 *   cluster every 2 minutes is not possible on one small machine.
 * - `approvalsPerCluster` × clusters `demoApproval` runbooks waiting at the approval gate for the whole
 *   window, plus a pool that is approved one by one at an even pace during the window: Update `approve`
 *   sent → Update completed.
 * - The worker is test/helpers/worker-process.ts in a child process (prebuilt workflow bundle); its VmRSS
 *   and utime+stime are sampled from /proc every second.
 *
 * Schedule lag = the action's start − its (jittered) due time, both from the schedule's `recentActions`
 * (scheduledAt, takenAt: every action of the window); for a sample, from the workflow history: due →
 * WorkflowExecutionStarted, due → first WorkflowTaskStarted (the worker picked it up), due → closed.
 *
 * Server (PGDR_BENCH_SCALE_SERVER): `dev` (default), the `temporal server start-dev` the README starts
 * (SQLite in memory, one history shard); or `sql`, the production-shaped server of the tests
 * (test/helpers/temporal-server.ts: go.temporal.io/server on PostgreSQL, 4 shards, mTLS), to tell what the
 * worker costs from what the dev server's single SQLite writer costs.
 *
 * Knobs (environment): PGDR_BENCH_SCALE_CLUSTERS (default "20,200"), PGDR_BENCH_SCALE_MINUTES (firing
 * minutes per fleet, default "10,10"; a window shorter than the interval fires a part of the fleet only),
 * PGDR_BENCH_SCALE_EVERY (default 5m), PGDR_BENCH_APPROVALS_PER_CLUSTER
 * (default 5: 1,000 pending at 200), PGDR_BENCH_APPROVAL_SAMPLES (default 150), PGDR_BENCH_HISTORY_SAMPLES
 * (default 300), PGDR_BENCH_WORKER (JSON merged into the config's `worker:` section, e.g.
 * '{"maxCachedWorkflows":1500}'), PGDR_BENCH_WORKER_NODE_OPTIONS (NODE_OPTIONS of the worker process, e.g.
 * '--max-old-space-size=256').
 */
import { ScheduleNotFoundError, type Client, type ScheduleExecutionResult } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { desiredSchedules, SCHEDULE_KINDS, type DesiredSchedule } from '../client/schedules';
import { APPROVAL_STATE_QUERY, APPROVE_UPDATE, type ApprovalStateAnswer } from '../common/approvals';
import { loadConfig, type LoadedConfig } from '../common/config';
import { configYaml, type LocalCluster } from '../worker/local-cluster';
import { Harness, startWorkerProcess, stopWorkerProcess, waitFor } from '../test/helpers/harness';
import { startTemporalServer, TEMPORAL_SERVER_VERSION } from '../test/helpers/temporal-server';
import { runBench } from './helpers/cluster';
import { pct, pool, procSample, ProcSampler, table, type ProcStats } from './helpers/stats';

const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((x) => Number(x.trim()));
const SIZES = list(process.env.PGDR_BENCH_SCALE_CLUSTERS, '20,200');
const MINUTES = list(process.env.PGDR_BENCH_SCALE_MINUTES, '10,10');
const SERVER = process.env.PGDR_BENCH_SCALE_SERVER === 'sql' ? 'sql' : 'dev';
// Every 2 minutes (1,400 schedules → ~12 starts/s) overloads the dev server on 2 cores (in-memory SQLite,
// one shard: DescribeSchedule and workflow updates time out): 5 minutes by default.
const EVERY = process.env.PGDR_BENCH_SCALE_EVERY ?? '5m';
const APPROVALS_PER_CLUSTER = Number(process.env.PGDR_BENCH_APPROVALS_PER_CLUSTER ?? 5);
const APPROVAL_SAMPLES = Number(process.env.PGDR_BENCH_APPROVAL_SAMPLES ?? 150);
const HISTORY_SAMPLES = Number(process.env.PGDR_BENCH_HISTORY_SAMPLES ?? 300);
const WORKER_OPTIONS = JSON.parse(process.env.PGDR_BENCH_WORKER ?? '{}') as Record<string, unknown>;
const WORKER_NODE_OPTIONS = process.env.PGDR_BENCH_WORKER_NODE_OPTIONS;
const REAL_CLUSTERS = 2;
const RUNS_FRESHNESS = new Set(['freshness']);
const KINDS = SCHEDULE_KINDS.filter((k) => k !== 'fullSiteDrill');

interface PhaseResult {
  clusters: number;
  schedules: number;
  pending: number;
  minutes: number;
  setupS: number;
  proc: ProcStats;
  idle: ProcStats;
  actions: number;
  skippedOverlap: number;
  missedCatchup: number;
  lagStart: number[];
  histStart: number[];
  histPickup: number[];
  histClosed: number[];
  failed: number;
  approvals: number[];
  approvalErrors: number;
  rpcGaveUp: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let rpcGaveUp = 0;
/** An RPC to a busy dev server: retried a few times; undefined (and counted) when it keeps failing. */
async function retried<T>(fn: () => Promise<T>): Promise<T | undefined> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ScheduleNotFoundError || i >= 4) {
        rpcGaveUp++;
        return undefined;
      }
      await sleep(2000 * (i + 1));
    }
  }
}
const tsMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);

/** Where the benchmark's Temporal is: the address and, for the `sql` server, the mTLS client side. */
interface BenchTemporal {
  client: Client;
  temporal: Record<string, unknown>;
  stop(): Promise<void>;
}

async function startBenchTemporal(h: Harness): Promise<BenchTemporal> {
  if (SERVER === 'dev') {
    await h.startTemporal();
    return { client: h.client, temporal: { address: h.env.connection.options.address, namespace: 'default' }, stop: async () => undefined };
  }
  const ts = await startTemporalServer({ dir: join(h.root, 'temporal') });
  console.log(`  Temporal: go.temporal.io/server ${TEMPORAL_SERVER_VERSION} on PostgreSQL 15, mTLS, ready in ${ts.timings.total} ms`);
  return { client: await ts.client(), temporal: { address: ts.address, namespace: ts.namespace, tls: ts.tls }, stop: () => ts.stop() };
}

function writeBenchConfig(t: BenchTemporal, file: string, clusters: Record<string, unknown>[], taskQueue: string, stateDir: string, worker: Record<string, unknown>): LoadedConfig {
  writeFileSync(
    file,
    configYaml({
      clusters,
      temporalAddress: String(t.temporal.address),
      taskQueue,
      stateDir,
      extra: { temporal: { uiUrl: 'http://127.0.0.1:8233', ...t.temporal, taskQueue }, worker: { metricsPort: 0, ...worker } },
    }),
  );
  return loadConfig(file);
}

function fleetConfig(t: BenchTemporal, real: LocalCluster[], n: number, dir: string): { file: string; config: LoadedConfig } {
  const spec = { every: EVERY, jitter: EVERY };
  // Fresh objects per cluster (shared ones would become YAML aliases, which loadConfig limits).
  const clusters = Array.from({ length: n }, (_, i) => structuredClone({
    ...real[i % real.length].configEntry,
    name: `c${String(i + 1).padStart(3, '0')}`,
    host: 'bench',
    schedules: { ...Object.fromEntries(KINDS.map((k) => [k, spec])), fullSiteDrill: false },
    health: { maxAgeFull: '7d', maxAgeDiff: '7d', maxAgeIncr: '7d', maxArchiveAge: '7d' },
  }));
  const file = join(dir, 'pgdr.yaml');
  return { file, config: writeBenchConfig(t, file, clusters, `pgdr-scale-${n}`, join(dir, 'state'), WORKER_OPTIONS) };
}

/** The schedule as pgdr builds it, with the stand-in workflow for the kinds that cannot really run here. */
function benchAction(d: DesiredSchedule): DesiredSchedule['action'] {
  if (RUNS_FRESHNESS.has(d.kind)) return d.action;
  return { ...d.action, workflowType: 'backupStatus', args: [{ cluster: d.cluster }], staticSummary: `bench stand-in for ${d.kind} of ${d.cluster}: backupStatus (pgbackrest info)` };
}

async function createSchedules(client: Client, desired: DesiredSchedule[]): Promise<void> {
  await pool(desired, 16, (d) =>
    client.schedule.create({ scheduleId: d.scheduleId, spec: d.spec, action: benchAction(d), policies: d.policies, memo: { pgdr: d.owner }, state: { note: 'pgdr scale benchmark' } }),
  );
}

async function harvest(client: Client, desired: DesiredSchedule[], into: Map<string, ScheduleExecutionResult>): Promise<{ skipped: number; missed: number }> {
  let skipped = 0;
  let missed = 0;
  await pool(desired, 8, async (d) => {
    const desc = await retried(() => client.schedule.getHandle(d.scheduleId).describe());
    if (!desc) return;
    for (const a of desc.info.recentActions) into.set(a.action.workflow.workflowId, a);
    skipped += desc.info.numActionsSkippedOverlap;
    missed += desc.info.numActionsMissedCatchupWindow;
  });
  return { skipped, missed };
}

async function phase(h: Harness, t: BenchTemporal, real: LocalCluster[], bundle: string, n: number, minutes: number): Promise<PhaseResult> {
  const t0 = Date.now();
  rpcGaveUp = 0;
  const dir = join(h.root, `fleet-${n}`);
  mkdirSync(dir, { recursive: true });
  const { file, config } = fleetConfig(t, real, n, dir);
  const client = t.client;
  const queue = config.temporal.taskQueue;
  const worker: ChildProcess = await startWorkerProcess(file, {
    PGDR_WORKFLOW_BUNDLE: bundle,
    PGDR_LOG_LEVEL: process.env.PGDR_BENCH_WORKER_LOG_LEVEL ?? 'error',
    ...(WORKER_NODE_OPTIONS ? { NODE_OPTIONS: WORKER_NODE_OPTIONS } : {}),
  });
  const idleSampler = new ProcSampler(worker.pid!).start();
  await sleep(5000);
  const idle = idleSampler.stop();
  const sampler = new ProcSampler(worker.pid!).start();
  const pendingN = n * APPROVALS_PER_CLUSTER;
  const input = { requestedBy: 'bench', reason: 'scale benchmark', expiresIn: '6h', remindEvery: '6h' };
  const ids = Array.from({ length: pendingN + APPROVAL_SAMPLES }, (_, i) => `scale-${n}-approval-${i}`);
  const desired = desiredSchedules(config);
  try {
    await pool(ids, 16, (id) => client.workflow.start('demoApproval', { taskQueue: queue, workflowId: id, args: [input] }));
    const approvalIds = await pool(ids, 16, (id) =>
      waitFor(`${id} pending`, async () => (await client.workflow.getHandle(id).query<ApprovalStateAnswer>(APPROVAL_STATE_QUERY).catch(() => undefined))?.pending?.approvalId, 120_000, 250),
    );
    await createSchedules(client, desired);
    const setupS = (Date.now() - t0) / 1000;
    console.log(`  [${n}] ${pendingN} runbooks pending approval (+${APPROVAL_SAMPLES} to approve), ${desired.length} schedules created (${setupS.toFixed(0)} s); firing for ${minutes} min`);

    // The window: everything due from now on, for `minutes`. Approvals at an even pace over it.
    const winStart = Date.now();
    const winEnd = winStart + minutes * 60_000;
    const actions = new Map<string, ScheduleExecutionResult>();
    const approvals: number[] = [];
    let approvalErrors = 0;
    const gap = (minutes * 60_000) / (APPROVAL_SAMPLES + 1);
    const approving = (async () => {
      for (let i = 0; i < APPROVAL_SAMPLES; i++) {
        await sleep(Math.max(0, winStart + gap * (i + 1) - Date.now()));
        const idx = pendingN + i;
        const t = performance.now();
        try {
          await client.workflow.getHandle(ids[idx]).executeUpdate(APPROVE_UPDATE, { args: [{ approvalId: approvalIds[idx], by: 'alice', comment: 'scale benchmark' }] });
          approvals.push(performance.now() - t);
        } catch (e) {
          approvalErrors++;
          if (approvalErrors <= 3) console.error(`  approval ${ids[idx]}: ${(e as Error).message}`);
        }
      }
    })();
    // recentActions holds the last 10 per schedule: harvest often enough for long windows.
    const harvestEvery = Math.max(60_000, 8 * parseEvery(EVERY));
    let nextHarvest = winStart + harvestEvery;
    let lastProgress = winStart;
    while (Date.now() < winEnd) {
      await sleep(1000);
      if (Date.now() >= nextHarvest) {
        await harvest(client, desired, actions);
        nextHarvest += harvestEvery;
      }
      if (Date.now() - lastProgress >= 60_000) {
        lastProgress = Date.now();
        console.log(`  [${n}] ${((Date.now() - winStart) / 60_000).toFixed(0)} min: ${approvals.length} approvals, worker RSS ${procSample(worker.pid!)?.rssMb.toFixed(0)} MB`);
      }
    }
    await approving;
    // Stop the firing, give the last starts a few seconds to finish, then read what happened.
    await pool(desired, 8, (d) => retried(() => client.schedule.getHandle(d.scheduleId).pause('benchmark window over')));
    await sleep(10_000);
    const proc = sampler.stop();
    const { skipped, missed } = await harvest(client, desired, actions);
    const inWindow = [...actions.values()].filter((a) => a.scheduledAt.getTime() >= winStart && a.scheduledAt.getTime() <= winEnd);
    const lagStart = inWindow.map((a) => a.takenAt.getTime() - a.scheduledAt.getTime());
    const sample = [...inWindow].sort(() => Math.random() - 0.5).slice(0, HISTORY_SAMPLES);
    const histStart: number[] = [];
    const histPickup: number[] = [];
    const histClosed: number[] = [];
    let failed = 0;
    await pool(sample, 8, async (a) => {
      const hist = await retried(() => client.workflow.getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId).fetchHistory());
      const ev = hist?.events ?? [];
      if (!ev.length) return;
      const due = a.scheduledAt.getTime();
      histStart.push(tsMs(ev[0]?.eventTime) - due);
      const wts = ev.find((e) => e.workflowTaskStartedEventAttributes);
      if (wts) histPickup.push(tsMs(wts.eventTime) - due);
      const last = ev[ev.length - 1];
      if (last?.workflowExecutionCompletedEventAttributes) histClosed.push(tsMs(last.eventTime) - due);
      else if (last?.workflowExecutionFailedEventAttributes) failed++;
    });
    return {
      clusters: n,
      schedules: desired.length,
      pending: pendingN,
      minutes,
      setupS,
      proc,
      idle,
      actions: inWindow.length,
      skippedOverlap: skipped,
      missedCatchup: missed,
      lagStart,
      histStart,
      histPickup,
      histClosed,
      failed,
      approvals,
      approvalErrors,
      rpcGaveUp,
    };
  } finally {
    await pool(desired, 16, (d) => client.schedule.getHandle(d.scheduleId).delete().catch((e) => (e instanceof ScheduleNotFoundError ? undefined : console.error(e.message))));
    await pool(ids, 16, (id) => client.workflow.getHandle(id).terminate('benchmark over').catch(() => undefined));
    await stopWorkerProcess(worker);
  }
}

function parseEvery(s: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(s);
  if (!m) return 120_000;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);
const tri = (xs: number[]) => `${ms(pct(xs, 50))} / ${ms(pct(xs, 99))} / ${ms(pct(xs, 100))}`;

function report(rs: PhaseResult[]): void {
  const growth = (f: (r: PhaseResult) => number | undefined) => {
    if (rs.length < 2) return '';
    const a = f(rs[0]);
    const b = f(rs[rs.length - 1]);
    return a && b ? `${(b / a).toFixed(2)}×` : '-';
  };
  const rows: string[][] = [['', ...rs.map((r) => `${r.clusters} clusters`), rs.length > 1 ? 'growth' : '', 'aim']];
  const add = (label: string, f: (r: PhaseResult) => string, g?: (r: PhaseResult) => number | undefined, aim = '') => rows.push([label, ...rs.map(f), g ? growth(g) : '', aim]);
  add('schedules (7 per cluster)', (r) => String(r.schedules), (r) => r.schedules);
  add('runbooks pending approval', (r) => String(r.pending), (r) => r.pending);
  add('firing window', (r) => `${r.minutes} min`);
  add('actions due in the window', (r) => String(r.actions), (r) => r.actions);
  add('  per second', (r) => (r.actions / (r.minutes * 60)).toFixed(1), (r) => r.actions / (r.minutes * 60));
  add('  skipped (overlap) / missed', (r) => `${r.skippedOverlap} / ${r.missedCatchup}`);
  add('worker RSS idle (MB)', (r) => r.idle.rssEndMb.toFixed(0), (r) => r.idle.rssEndMb);
  add('worker RSS median / max (MB)', (r) => `${r.proc.rssMedianMb.toFixed(0)} / ${r.proc.rssMaxMb.toFixed(0)}`, (r) => r.proc.rssMaxMb, 'max < 400');
  add('worker CPU avg / peak 10 s (% core)', (r) => `${r.proc.cpuAvgPct.toFixed(0)} / ${r.proc.cpuPeak10sPct.toFixed(0)}`, (r) => r.proc.cpuAvgPct);
  add('  its children (pgbackrest, runuser) avg', (r) => `${r.proc.childCpuAvgPct.toFixed(0)} %`, (r) => r.proc.childCpuAvgPct);
  add('lag due→started p50/p99/max (all)', (r) => tri(r.lagStart), (r) => pct(r.lagStart, 99), 'p99 < 2 s');
  add('  history sample (n)', (r) => String(r.histStart.length));
  add('  due→started p50/p99/max', (r) => tri(r.histStart), (r) => pct(r.histStart, 99));
  add('  due→worker picked up p50/p99/max', (r) => tri(r.histPickup), (r) => pct(r.histPickup, 99));
  add('  due→completed p50/p99/max', (r) => tri(r.histClosed), (r) => pct(r.histClosed, 99));
  add('  failed', (r) => String(r.failed));
  add('dev-server RPCs given up (after retries)', (r) => String(r.rpcGaveUp));
  add('approvals measured (errors)', (r) => `${r.approvals.length} (${r.approvalErrors})`);
  add('approval Update p50/p99/max', (r) => tri(r.approvals), (r) => pct(r.approvals, 99), 'p99 < 300 ms');
  console.log(table(rows));
}

async function main() {
  const h = new Harness('bench-scale');
  let t: BenchTemporal | undefined;
  try {
    console.log(`scale: fleets of ${SIZES.join(' and ')} clusters, firing ${MINUTES.join(' and ')} min, every ${EVERY} with jitter ${EVERY}, ${APPROVALS_PER_CLUSTER} pending approvals per cluster`);
    console.log(`  each cluster is an alias of one of ${REAL_CLUSTERS} real PostgreSQL 15 clusters (pgBackRest stanza, one full backup), all on host "bench"`);
    console.log('  schedules: freshness → backupFreshness (real); full, diff, incr, expire, drill, archiveHealth → backupStatus (pgbackrest info) as a stand-in');
    console.log(`  worker: one child process (test/helpers/worker-process.js), options ${JSON.stringify({ maxCachedWorkflows: 200, maxConcurrentActivities: 20, stickyQueueTimeout: '10s', ...WORKER_OPTIONS })}${WORKER_NODE_OPTIONS ? `, NODE_OPTIONS ${WORKER_NODE_OPTIONS}` : ''}`);
    console.log(`  Temporal: ${SERVER === 'dev' ? 'temporal server start-dev (SQLite in memory)' : 'the production-shaped server of the tests'}`);
    t = await startBenchTemporal(h);
    const real: LocalCluster[] = [];
    for (let i = 1; i <= REAL_CLUSTERS; i++) real.push(await h.addCluster({ name: `real${i}` }));
    const bundle = await h.workflowBundleFile();
    // Stanzas and a full backup of the real clusters, by a worker of their own.
    const setupFile = join(h.root, 'setup.yaml');
    const setupConfig = writeBenchConfig(t, setupFile, real.map((c) => c.configEntry), 'pgdr-scale-setup', join(h.root, 'setup-state'), {});
    const setupWorker = await startWorkerProcess(setupFile, { PGDR_WORKFLOW_BUNDLE: bundle });
    try {
      for (const c of real) {
        for (const [wf, input] of [['setupStanza', { cluster: c.name }], ['backup', { cluster: c.name, type: 'full' }]] as const) {
          await t.client.workflow.execute(wf, { taskQueue: setupConfig.temporal.taskQueue, workflowId: `scale-setup-${wf}-${c.name}-${Date.now()}`, args: [input] });
        }
      }
    } finally {
      await stopWorkerProcess(setupWorker);
    }
    const results: PhaseResult[] = [];
    for (let i = 0; i < SIZES.length; i++) results.push(await phase(h, t, real, bundle, SIZES[i], MINUTES[i] ?? MINUTES[MINUTES.length - 1]));
    console.log('');
    console.log(`Temporal: ${SERVER === 'dev' ? 'dev server' : 'production-shaped server (PostgreSQL, 4 shards, mTLS)'}`);
    report(results);
  } finally {
    await t?.stop();
    await h.teardown();
  }
}

runBench(main);
