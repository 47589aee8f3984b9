/**
 * One answer whichever worker answers: three worker PROCESSES (hosts a, b, c), each with its own pgdr.yaml
 * whose host-local fields differ (stateDir, the other hosts' cluster paths and ports, worker limits, UI URL)
 * and whose shared part is the same, serve one shared task queue. Against a real Temporal dev server, real
 * PostgreSQL 15 and real pgBackRest:
 * - routing: a backup (and `info`) of each cluster runs on its own host's worker, whoever answered
 *   describeCluster — and every worker answered some;
 * - the approval policy is the same whoever answered approvalPolicy, and the audit log is appended on
 *   approvals.auditHost only;
 * - a fourth worker whose shared part differs refuses to start, naming the paths, both fingerprints, who
 *   published and the fix; `pgdr config check` says the same;
 * - after `pgdr config publish` of a changed shared part, a worker still running with the old one stops
 *   serving the shared queue at its next decision (retryable SharedConfigMismatch, another worker takes the
 *   retry) with a clear log line, keeps its host queue, and the others go on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig } from '../common/config';
import { sharedDifferences, sharedFingerprint } from '../common/shared-config';
import { hostTaskQueue, type BackupResult, type SetupStanzaResult, type StanzaInfo } from '../common/types';
import type { ApprovalStateAnswer } from '../common/approvals';
import { configYaml, type LocalCluster } from '../worker/local-cluster';
import { sharedConfigWorkflowId, type PublishedSharedConfig } from '../workflows/shared-config';
import { run } from '../activities/process';
import { CONFIG_DECISIONS } from '../activities';
import { CHECK_CACHE_MS } from '../worker/shared-config-guard';
import { Harness, pgbackrestJson, stopWorkerProcess, waitFor } from './helpers/harness';

const h = new Harness('shared-config');
const QUEUE = 'pgdr-shared-config-test';
const HOSTS = ['a', 'b', 'c'] as const;
type Host = (typeof HOSTS)[number];
const CLUSTER_OF: Record<Host, string> = { a: 'alpha', b: 'beta', c: 'gamma' };
const AUDIT_HOST: Host = 'b';
const clusters: Partial<Record<Host, LocalCluster>> = {};
let bundle: string;

/** A worker process of one host: its pid (identity `<pid>@<hostname>`) and everything it logged. */
interface HostWorker {
  host: Host;
  file: string;
  proc: ChildProcess;
  log: () => string;
}
const workers: Partial<Record<Host, HostWorker>> = {};
const allProcs: ChildProcess[] = [];

/** Spawn test/helpers/worker-process.js for one host; resolves when ready, rejects with its stderr when it exits. */
function spawnWorker(file: string, host: string): { proc: ChildProcess; ready: Promise<void>; log: () => string } {
  let out = '';
  const proc = spawn(process.execPath, [join(__dirname, 'helpers', 'worker-process.js'), file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its log lines on stderr (the test reads them), whatever PGDR_LOG_FILE the suite sets.
    env: { ...process.env, PGDR_WORKFLOW_BUNDLE: bundle, PGDR_WORKER_HOSTS: host, PGDR_LOG_LEVEL: 'warn', PGDR_LOG_FILE: '' },
  });
  allProcs.push(proc);
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    proc.on('exit', (code) => reject(Object.assign(new Error(`worker ${host} exited ${code}: ${out}`), { code, stderr: out })));
  });
  return { proc, ready, log: () => out };
}

async function startHostWorker(host: Host, file: string): Promise<HostWorker> {
  const w = spawnWorker(file, host);
  await w.ready;
  workers[host] = { host, file, proc: w.proc, log: w.log };
  return workers[host]!;
}

const identityOf = (w: HostWorker) => `${w.proc.pid}@`;
const hostOfIdentity = (identity: string): Host | undefined => HOSTS.find((x) => workers[x] && identity.startsWith(identityOf(workers[x]!)));

/**
 * Each host's file: every cluster (shared part identical), the host's own cluster with its real paths, the
 * others' host-local fields as placeholders that differ per file. `change` alters the shared part.
 */
function writeHostFile(host: Host, name: string, change: (doc: { approvals: Record<string, unknown>; clusters: Record<string, unknown>[] }) => void = () => undefined): string {
  const stateDir = join(h.root, `state-${host}`);
  mkdirSync(stateDir, { recursive: true });
  const entries = HOSTS.map((x, i) => {
    const c = clusters[x]!;
    if (x === host) return { ...c.configEntry, retention: { full: 2 } };
    // Not on this host: placeholders (never read here for a decision), different in every file.
    return {
      ...c.configEntry,
      retention: { full: 2 },
      pgbackrestConfig: `/nonexistent/${host}/${c.name}/pgbackrest.conf`,
      dataDir: `/nonexistent/${host}/${c.name}/data`,
      socketDir: `/nonexistent/${host}/${c.name}/socket`,
      port: 40000 + HOSTS.indexOf(host) * 10 + i,
      serverLog: `/nonexistent/${host}/${c.name}.log`,
    };
  });
  const doc = {
    approvals: {
      demo: { approvers: ['alice', 'bob'], required: 1, expiresIn: '5m', remindEvery: '5m' },
      restoreInPlace: { approvers: ['alice', 'dave'], required: 2 },
      auditHost: AUDIT_HOST,
    } as Record<string, unknown>,
    clusters: entries as Record<string, unknown>[],
  };
  change(doc);
  const file = join(h.root, name);
  writeFileSync(
    file,
    configYaml({
      clusters: doc.clusters,
      temporalAddress: h.env.connection.options.address,
      taskQueue: QUEUE,
      stateDir,
      uiUrl: `http://ui-of-${host}.example:8233`,
      extra: { worker: { metricsPort: 0, maxConcurrentActivities: 10 + HOSTS.indexOf(host) }, approvals: doc.approvals },
    }),
  );
  return file;
}

/** Who ran each activity of a run: [activity type, task queue, host of the worker that ran it, attempt, last failure type]. */
async function activityRuns(handle: WorkflowHandle): Promise<{ type: string; queue: string; host?: Host; attempt: number; lastFailureType?: string }[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!]));
  return events
    .filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => {
      const s = e.activityTaskStartedEventAttributes!;
      const sch = scheduled.get(String(s.scheduledEventId))!;
      return {
        type: sch.activityType!.name!,
        queue: sch.taskQueue!.name!,
        host: hostOfIdentity(s.identity ?? ''),
        attempt: s.attempt ?? 1,
        lastFailureType: s.lastFailure?.applicationFailureInfo?.type ?? undefined,
      };
    });
}

const startRun = (type: string, input: unknown) =>
  h.client.workflow.start(type, { taskQueue: QUEUE, workflowId: `${type}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`, args: [input] });

/** A demo approval, approved by bob once pending; the pending view's policy and the run's activities. */
async function approvedDemo(): Promise<{ view: ApprovalStateAnswer['pending']; runs: Awaited<ReturnType<typeof activityRuns>>; handle: WorkflowHandle }> {
  const handle = await startRun('demoApproval', { requestedBy: 'carol', reason: 'shared-config test' });
  const pending = await waitFor('the approval to be pending', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined, 30_000, 100);
  await handle.executeUpdate('approve', { args: [{ approvalId: pending.approvalId, by: 'bob', via: 'cli', comment: 'ok' }] });
  await handle.result();
  return { view: pending, runs: await activityRuns(handle), handle };
}

const pgdr = (args: string[]) => run('node', ['bin/pgdr', ...args], { cwd: join(__dirname, '..', '..') });
const auditFile = (host: Host) => join(h.root, `state-${host}`, 'audit', 'approvals.jsonl');

before(async () => {
  await h.startTemporal();
  bundle = await h.workflowBundleFile();
  for (const host of HOSTS) clusters[host] = await h.addCluster({ name: CLUSTER_OF[host], host });
  for (const host of HOSTS) writeHostFile(host, `${host}.yaml`);
  // The first worker publishes its file's shared part; the others agree with it.
  await startHostWorker('a', join(h.root, 'a.yaml'));
  await Promise.all((['b', 'c'] as const).map((x) => startHostWorker(x, join(h.root, `${x}.yaml`))));
});

after(async () => {
  for (const p of allProcs) await stopWorkerProcess(p).catch(() => undefined);
  await h.teardown();
});

describe('one shared configuration, whichever worker answers', () => {
  test('the three files differ in host-local fields only: one fingerprint; the first worker published it', async () => {
    const [a, b, c] = HOSTS.map((x) => loadConfig(join(h.root, `${x}.yaml`)));
    assert.notEqual(a.stateDirAbs, b.stateDirAbs);
    assert.notEqual(a.clusters[1].dataDir, b.clusters[1].dataDir);
    assert.equal(sharedFingerprint(a), sharedFingerprint(b));
    assert.equal(sharedFingerprint(a), sharedFingerprint(c));
    assert.deepEqual(sharedDifferences(a, c), []);
    const d = await h.client.workflow.getHandle(sharedConfigWorkflowId(QUEUE)).describe();
    const rec = d.memo?.sharedConfig as PublishedSharedConfig;
    assert.equal(rec.fingerprint, sharedFingerprint(a));
    assert.match(rec.publishedBy, new RegExp(`pid ${workers.a!.proc.pid} at start \\(first worker\\)`));
    const q = await h.client.workflow.getHandle(sharedConfigWorkflowId(QUEUE)).query<PublishedSharedConfig>('sharedConfig');
    assert.equal(q.fingerprint, rec.fingerprint);
  });

  test('routing: each cluster is set up, backed up and read on its own host, whoever answered describeCluster', async () => {
    const answeredBy = new Set<Host>();
    for (const host of HOSTS) {
      const c = clusters[host]!;
      const setup = await startRun('setupStanza', { cluster: c.name });
      assert.equal(((await setup.result()) as SetupStanzaResult).stanza, c.stanza);
      const backup = await startRun('backup', { cluster: c.name, type: 'full' });
      const r = (await backup.result()) as BackupResult;
      // The set is in that cluster's own repository (pgBackRest ran with its host's config).
      const sets = ((await pgbackrestJson(c, ['info'])) as { backup: { label: string }[] }[])[0].backup.map((s) => s.label);
      assert.ok(sets.includes(r.set.label), `${r.set.label} in ${c.name}'s repository`);
      for (const handle of [setup, backup]) {
        for (const a of await activityRuns(handle)) {
          if (a.queue === QUEUE) {
            if (a.type === 'describeCluster' && a.host) answeredBy.add(a.host);
          } else {
            assert.equal(a.queue, hostTaskQueue(host), `${a.type} of ${c.name} on its host's queue`);
            assert.equal(a.host, host, `${a.type} of ${c.name} ran on host ${host}'s worker`);
          }
        }
      }
    }
    // `info` of every cluster until every worker has answered describeCluster a few times.
    const count: Record<Host, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 90 && HOSTS.some((x) => count[x] < 2); i++) {
      const host = HOSTS[i % 3];
      const handle = await startRun('backupStatus', { cluster: CLUSTER_OF[host] });
      const info = (await handle.result()) as StanzaInfo;
      assert.equal(info.stanza, clusters[host]!.stanza);
      assert.ok(info.sets.length >= 1);
      for (const a of await activityRuns(handle)) {
        if (a.type === 'describeCluster' && a.host) count[a.host]++;
        if (a.queue !== QUEUE) assert.equal(a.host, host, `${a.type} of ${CLUSTER_OF[host]} ran on host ${host}`);
      }
    }
    assert.ok(HOSTS.every((x) => count[x] >= 2), `every worker answered describeCluster: ${JSON.stringify(count)}`);
  });

  test('the approval policy is the same whoever answers, and the audit log is appended on approvals.auditHost only', async () => {
    const count: Record<Host, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 40 && HOSTS.some((x) => count[x] < 1); i++) {
      const { view, runs } = await approvedDemo();
      assert.deepEqual(view!.approvers, ['alice', 'bob']);
      assert.equal(view!.required, 1);
      const policy = runs.find((r) => r.type === 'approvalPolicy')!;
      if (policy.host) count[policy.host]++;
      const audits = runs.filter((r) => r.type === 'appendApprovalAudit');
      assert.ok(audits.length >= 2, 'the request, then the vote with the outcome, appended');
      for (const a of audits) {
        assert.equal(a.queue, hostTaskQueue(AUDIT_HOST));
        assert.equal(a.host, AUDIT_HOST);
      }
    }
    assert.ok(HOSTS.every((x) => count[x] >= 1), `every worker answered approvalPolicy: ${JSON.stringify(count)}`);
    const lines = readFileSync(auditFile(AUDIT_HOST), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string });
    const demos = Object.values(count).reduce((x, y) => x + y, 0);
    for (const event of ['approval.requested', 'approval.vote', 'approval.decided']) {
      assert.ok(lines.filter((l) => l.event === event).length >= demos, `every ${event} record in host ${AUDIT_HOST}'s log`);
    }
    for (const x of HOSTS.filter((y) => y !== AUDIT_HOST)) assert.ok(!existsSync(auditFile(x)), `no audit log in host ${x}'s stateDir`);
    // A vote by someone outside the shared allowlist is refused, whoever answered the policy.
    const handle = await startRun('demoApproval', { requestedBy: 'carol', reason: 'outsider' });
    const pending = await waitFor('pending', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending ?? undefined);
    await assert.rejects(handle.executeUpdate('approve', { args: [{ approvalId: pending.approvalId, by: 'mallory', via: 'cli' }] }), (e: Error) =>
      /"mallory" is not on the allowlist for demo approvals \(allowed: alice, bob\)/.test(`${e.message} ${(e.cause as Error | undefined)?.message}`),
    );
    await handle.terminate('test done');
  });

  test('a fourth worker whose shared part differs refuses to start, naming the paths, both fingerprints, the publisher and the fix', async (t) => {
    const file = writeHostFile('c', 'd.yaml', (doc) => {
      (doc.approvals.demo as { approvers: string[] }).approvers.push('mallory');
      (doc.clusters[1] as { retention: { full: number } }).retention.full = 9;
    });
    const published = sharedFingerprint(loadConfig(join(h.root, 'a.yaml')));
    const mine = sharedFingerprint(loadConfig(file));
    const w = spawnWorker(file, 'd');
    const err = (await w.ready.then(
      () => assert.fail('the fourth worker started'),
      (e: { code: number; stderr: string }) => e,
    )) as { code: number; stderr: string };
    assert.equal(err.code, 1);
    t.diagnostic(err.stderr.split('\n').find((l) => l.includes('refuses to start')) ?? err.stderr);
    assert.match(err.stderr, /refuses to start/);
    assert.match(err.stderr, /approvals\.demo\.approvers/);
    assert.match(err.stderr, /clusters\[beta\]\.retention\.full/);
    assert.ok(err.stderr.includes(published) && err.stderr.includes(mine), 'both fingerprints');
    assert.match(err.stderr, new RegExp(`published by worker .* pid ${workers.a!.proc.pid}`));
    assert.ok(err.stderr.includes(`pgdr config publish --config ${file}`), 'the fix');
    // `pgdr config check` says the same, before anyone starts a worker; an agreeing file passes.
    const bad = await pgdr(['--config', file, 'config', 'check']);
    assert.equal(bad.exitCode, 3, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /approvals\.demo\.approvers/);
    const good = await pgdr(['--config', join(h.root, 'b.yaml'), 'config', 'check']);
    assert.equal(good.exitCode, 0, good.stderr);
    assert.match(good.stdout, new RegExp(`shared configuration ${published}: agrees with the published one`));
  });

  test('after `pgdr config publish`, a worker still on the old shared part stops serving the shared queue; the others go on', async (t) => {
    // The new reference: erin may approve demos too. Hosts a and b get it and restart; c keeps running on the old file.
    const withErin = (doc: { approvals: Record<string, unknown> }) => (doc.approvals.demo as { approvers: string[] }).approvers.push('erin');
    const a2 = writeHostFile('a', 'a2.yaml', withErin);
    const b2 = writeHostFile('b', 'b2.yaml', withErin);
    const pub = await pgdr(['--config', a2, 'config', 'publish']);
    assert.equal(pub.exitCode, 0, pub.stdout + pub.stderr);
    assert.match(pub.stdout, /published shared configuration [0-9a-f]{16} .*changed: approvals\.demo\.approvers/);
    const publishedAt = Date.now();
    for (const [host, file] of [['a', a2], ['b', b2]] as const) {
      await stopWorkerProcess(workers[host]!.proc);
      await startHostWorker(host, file);
    }
    // A running worker compares with the published record at most CHECK_CACHE_MS old (the documented window).
    await new Promise((r) => setTimeout(r, Math.max(0, publishedAt + CHECK_CACHE_MS + 500 - Date.now())));
    const c = workers.c!;
    const stopLine = /shared configuration mismatch: this worker stops serving the shared task queue .*approvals\.demo\.approvers/;
    // Decisions until c meets one: it fails that attempt (SharedConfigMismatch) and another worker takes the retry.
    let retried: { type: string; host?: Host } | undefined;
    for (let i = 0; i < 60 && !(stopLine.test(c.log()) && retried); i++) {
      const { view, runs } = await approvedDemo();
      assert.deepEqual(view!.approvers, ['alice', 'bob', 'erin'], 'the new policy, whoever answered');
      // A decision is never answered by the disagreeing worker (it refuses; the retry goes elsewhere).
      for (const r of runs) if (r.queue === QUEUE && CONFIG_DECISIONS.includes(r.type as never)) assert.notEqual(r.host, 'c', `${r.type} answered by the disagreeing worker`);
      retried ??= runs.find((r) => r.lastFailureType === 'SharedConfigMismatch' && r.attempt > 1);
    }
    assert.match(c.log(), stopLine);
    t.diagnostic(c.log().split('\n').find((l) => stopLine.test(l)) ?? '');
    assert.ok(retried, 'an activity c refused was retried');
    assert.ok(retried.host === 'a' || retried.host === 'b', `the retry ran on an agreeing worker (${retried.host})`);
    assert.equal(c.proc.exitCode, null, 'c still runs');
    // c no longer answers on the shared queue, and still serves its own host's queue.
    for (let i = 0; i < 6; i++) {
      const handle = await startRun('backupStatus', { cluster: CLUSTER_OF.c });
      await handle.result();
      for (const r of await activityRuns(handle)) {
        if (r.queue === QUEUE) assert.notEqual(r.host, 'c', `${r.type} answered by c after it stopped`);
        else assert.equal(r.host, 'c', `${r.type} of gamma still runs on c`);
      }
    }
  });

  test('`pgdr config publish` works when no worker serves the shared queue (all refuse): a new run holds the record', async () => {
    for (const host of HOSTS) await stopWorkerProcess(workers[host]!.proc);
    const file = join(h.root, 'd.yaml');
    const pub = await pgdr(['--config', file, 'config', 'publish']);
    assert.equal(pub.exitCode, 0, pub.stdout + pub.stderr);
    assert.match(pub.stdout, /no worker answered the Update .*started a new run with the record/);
    const rec = (await h.client.workflow.getHandle(sharedConfigWorkflowId(QUEUE)).describe()).memo?.sharedConfig as PublishedSharedConfig;
    assert.equal(rec.fingerprint, sharedFingerprint(loadConfig(file)));
    // A worker with that file now starts; one with the former reference refuses.
    await startHostWorker('c', file);
    const w = spawnWorker(join(h.root, 'a2.yaml'), 'a');
    await assert.rejects(w.ready, (e: { stderr: string }) => /refuses to start.*approvals\.demo\.approvers/.test(e.stderr));
  });
});
