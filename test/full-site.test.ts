/**
 * Full-site recovery against real components: a Temporal dev server, PostgreSQL 15, pgBackRest, and two pgdr
 * worker processes standing for two hosts ("old" and "new": separate task queues pgdr-host-old /
 * pgdr-host-new, separate config files, data directories, ports and state folders; one repository with an
 * encrypted repo1 and a plain repo2 both hosts reach). Plus unit tests of the DR report renderer.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { query, stopServer, type PgTarget } from '../activities/postgres';
import { run } from '../activities/process';
import type { ApprovalStateAnswer } from '../common/approvals';
import { loadConfig } from '../common/config';
import { followUps, renderDrReport, renderGanttSvg, replayReached, type DrPause, type DrReportData } from '../common/dr-report';
import type { ChecklistSnapshot } from '../workflows/checklist';
import type { FullSiteRecoveryResult, FullSiteState } from '../workflows/full-site-recovery';
import { configYaml, pgbackrestConf, PG_BIN_DIR, type LocalCluster } from '../worker/local-cluster';
import { makeOwnedDir } from '../common/os-user';
import { freePort, Harness, processesMatching, sql, startWorkerProcess as startProcess, stopWorkerProcess, switchWalAndWaitArchived } from './helpers/harness';
import { formatDuration } from '../common/human-time';

// ------------------------------------------------------------------------------------------------------
// The report renderer (pure).

const t = (s: number) => new Date(Date.UTC(2026, 0, 15, 10, 0, 0) + s * 1000).toISOString();

function fixture(over: Partial<DrReportData> = {}): DrReportData {
  return {
    workflowId: 'dr-main-1',
    cluster: 'main',
    targetHost: 'db2',
    previousHost: 'db1',
    drill: false,
    outcome: 'recovered',
    requestedBy: 'oncall',
    reason: 'db1 burned down',
    startedAt: t(0),
    endedAt: t(600),
    repo: { index: 2, name: 'offsite' },
    set: { label: '20260115-020000F', type: 'full', stoppedAt: t(-28000), size: 1 << 30 },
    target: { requested: 'latest', description: 'latest (end of archived WAL) from full backup 20260115-020000F (repo2)' },
    location: { dataDir: '/var/lib/postgresql/15/main', port: 5432 },
    reached: { recoveryMs: 4200, lastReplayLsn: '0/5000028', lastReplayTime: t(-60), timeline: 2, stoppedAt: null, walMax: '000000010000000000000004', reachedWalMax: true },
    steps: [
      { name: 'Approval (approvals.fullSiteRecovery)', state: 'done', startedAt: t(0), endedAt: t(120), durationMs: 120_000, note: 'approved by alice, bob' },
      { name: 'Check the cipher passphrase of repo2', state: 'failed', startedAt: t(120), endedAt: t(121), durationMs: 1000, note: 'status 99' },
      { name: 'Paused: "Check <cipher> | passphrase" failed', state: 'done', startedAt: t(121), endedAt: t(300), durationMs: 179_000, note: 'retry by carol: fixed the file' },
      { name: 'Restore latest', state: 'done', startedAt: t(300), endedAt: t(500), durationMs: 200_000 },
    ],
    approvals: [{ approvalId: 'approval-1', status: 'approved', required: 2, requestedAt: t(0), decidedAt: t(120), votes: [
      { by: 'alice', decision: 'approve', via: 'cli', at: t(60) },
      { by: 'bob', decision: 'approve', via: 'slack', at: t(120), comment: 'go' },
    ] }],
    checklists: [{ name: 'Before the rebuild', items: [
      { id: 'host-provisioned', title: 'Host db2 is provisioned', kind: 'manual', state: 'signed', by: 'dave', at: t(130) },
      { id: 'monitoring', title: 'Error rates watched', kind: 'manual', state: 'skipped', by: 'dave', note: 'no dashboards yet', optional: true },
    ] }],
    pauses: [{ step: 'Check the cipher passphrase of repo2', error: 'wrong passphrase (status 99)', since: t(121), attempt: 1, decidedAt: t(300), decision: 'retry', by: 'carol', note: 'fixed the file' }],
    rto: { target: '2h', targetMs: 7_200_000 },
    databaseAvailableAt: t(550),
    ...over,
  };
}

describe('DR report renderer', () => {
  test('timeline rows with durations, approvers, recovery point, RTO, checklists, pauses, follow-ups', () => {
    const md = renderDrReport(fixture(), { svgFile: 'dr-main-1.svg' });
    assert.match(md, /^# Full-site recovery of cluster main onto host db2 — RECOVERED/);
    for (const [i, name, dur] of [
      [1, 'Approval \\(approvals.fullSiteRecovery\\)', '2 min 00 s'],
      [2, 'Check the cipher passphrase of repo2', '1.0 s'],
      [4, 'Restore latest', '3 min 20 s'],
    ] as const) {
      assert.match(md, new RegExp(`\\| ${i} \\| ${name} \\| \\d\\d:\\d\\d:\\d\\d \\| \\d\\d:\\d\\d:\\d\\d \\| ${dur} \\|`), `row ${i}`);
    }
    assert.match(md, /\| 3 \| Paused: "Check <cipher> \\\| passphrase" failed \|/, 'pipes in names are escaped');
    assert.match(md, /\| ✓ done \| approved by alice, bob \|/);
    assert.match(renderDrReport(fixture({ steps: [{ ...fixture().steps[0], note: undefined }] })), /\| ✓ done \| approved by alice, approved by bob \|/);
    assert.match(md, /✓ approved by \*\*bob\*\* via slack at 10:02:00 — go/);
    assert.match(md, /Repository: repo2 \(offsite\)/);
    assert.match(md, /Point actually reached: last replayed WAL position 0\/5000028;.*timeline 2 after promotion/);
    assert.match(md, /Newest archived WAL segment in the repository: 000000010000000000000004 — replayed/);
    assert.match(md, /\| Measured, start → end \| 10 min 00 s — within target \|/);
    assert.match(md, /Database available .* \| after 9 min 10 s \|/);
    assert.match(md, /Time paused after failures \| 2 min 59 s in 1 pause/);
    assert.match(md, /✓ Host db2 is provisioned — signed by dave at 10:02:10/);
    assert.match(md, /\*\*Check the cipher passphrase of repo2\*\* \(attempt 1\) failed at 10:02:01: wrong passphrase \(status 99\) → retry by carol at 10:05:00 \(fixed the file\)/);
    assert.match(md, /- \[ \] The recovery used repo2 \(offsite\): check or rebuild repo1/);
    assert.match(md, /- \[ \] Take a new full backup of main on db2/);
    assert.match(md, /"Error rates watched" was skipped \(no dashboards yet\)/);
    assert.match(md, /Timeline chart: `dr-main-1.svg`/);
  });

  test('RTO exceeded, aborted runs and drills say so', () => {
    const slow = renderDrReport(fixture({ endedAt: t(3 * 3600), rto: { target: '2h', targetMs: 7_200_000 } }));
    assert.match(slow, /\| 3 h 00 min — \*\*EXCEEDED\*\* \|/);
    assert.ok(followUps(fixture({ endedAt: t(3 * 3600) })).some((f) => /RTO target exceeded \(3 h 00 min against 2h\)/.test(f)));
    const aborted = fixture({ outcome: 'aborted', error: 'aborted by carol at "Check": no key', databaseAvailableAt: undefined, reached: undefined });
    const md = renderDrReport(aborted);
    assert.match(md, /— ABORTED/);
    assert.match(md, /- Aborted: aborted by carol/);
    assert.match(md, /Point actually reached: — \(not started\)/);
    assert.ok(followUps(aborted)[0].startsWith('Cluster main is NOT recovered on db2'));
    const drill = renderDrReport(fixture({ drill: true, outcome: 'drill-passed', approvals: [] }));
    assert.match(drill, /^# DR drill of cluster main/);
    assert.match(drill, /none: a drill does not touch production/);
    assert.doesNotMatch(drill, /Take a new full backup/);
  });

  test('the SVG has one bar per step, escapes names and marks the RTO when it falls inside', () => {
    const svg = renderGanttSvg(fixture());
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((svg.match(/<rect x="[\d.]+" y="\d+" width="[\d.]+" height="14" rx="2"/g) ?? []).length, 4);
    assert.match(svg, /Check &lt;cipher&gt; \| passphrase/);
    assert.doesNotMatch(svg, /<cipher>/);
    assert.doesNotMatch(svg, /RTO 2h<\/text>/, 'a 10-minute run does not reach the 2 h line');
    assert.match(renderGanttSvg(fixture({ endedAt: t(3 * 3600) })), /RTO 2h<\/text>/);
    assert.match(svg, /fill="#c62828"><title>Check the cipher passphrase of repo2: failed/);
  });

  test('durations and the WAL comparison', () => {
    assert.deepEqual([850, 12_345, 245_000, 3_720_000].map(formatDuration), ['850 ms', '12.3 s', '4 min 05 s', '1 h 02 min']);
    assert.equal(replayReached('0/4000028', '000000010000000000000004'), true);
    assert.equal(replayReached('0/5000000', '000000020000000000000004'), true, 'past the segment (switch record end)');
    assert.equal(replayReached('0/3FFFFF0', '000000010000000000000004'), false);
    assert.equal(replayReached(null, '000000010000000000000004'), null);
  });
});

// ------------------------------------------------------------------------------------------------------
// Real components.

const h = new Harness('fullsite');
const QUEUE = 'pgdr-fullsite';
const PASS = 'correct-horse-battery-staple-42';
const WRONG = 'not-the-passphrase';
let old: LocalCluster;
let newDir: string;
let newPort: number;
let newTarget: PgTarget;
let passFile: string;
let scratchRoot: string;
let dnsFile: string;
let appServer: Server;
let appHits = 0;
const workers: ChildProcess[] = [];
/** A worker process for one "host", stopped at the end of the file. */
const startWorkerProcess = async (configFile: string, host: string) => {
  const p = await startProcess(configFile, { PGDR_WORKER_HOSTS: host });
  workers.push(p);
  return p;
};
let oldWorker: ChildProcess;

const tags = async (c: PgTarget) => (await query<{ tag: string; n: string }>(c, 'SELECT tag, count(*) AS n FROM orders GROUP BY tag ORDER BY tag')).map((r) => `${r.tag}:${r.n}`);

interface Outcome {
  result?: FullSiteRecoveryResult;
  failure?: { type?: string; message: string; details?: FullSiteRecoveryResult };
  pauses: FullSiteState['paused'][];
}

/**
 * Play the people: approve with two distinct identities, sign off every manual item as `signer`, and
 * answer pauses with `onPause`.
 */
async function drive(handle: WorkflowHandle, o: { approvers?: string[]; signer: string; onPause?: (p: DrPause) => Promise<{ action: 'retry'; note: string } | { action: 'abort'; reason: string }> }): Promise<Outcome> {
  let settled = false;
  const out: Outcome = { pauses: [] };
  const done = handle.result().then(
    (r) => (out.result = r as FullSiteRecoveryResult),
    (err) => {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const cause = err.cause as { type?: string; message: string; details?: unknown[] };
      out.failure = { type: cause?.type, message: cause?.message ?? err.message, details: cause?.details?.[0] as FullSiteRecoveryResult };
    },
  ).finally(() => (settled = true));
  const voted = new Set<string>();
  const seenPause = new Set<string>();
  while (!settled) {
    try {
      const a = await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined);
      const pend = a?.pending;
      if (pend) {
        for (const who of (o.approvers ?? []).filter((x) => pend.mayStillVote.includes(x)).slice(0, 1)) {
          if (voted.has(`${pend.approvalId}:${who}`)) continue;
          voted.add(`${pend.approvalId}:${who}`);
          await handle.executeUpdate('approve', { args: [{ approvalId: pend.approvalId, by: who, via: 'cli', comment: `ok from ${who}` }] });
        }
      }
      const lists = await handle.query<ChecklistSnapshot[]>('checklist').catch(() => [] as ChecklistSnapshot[]);
      for (const item of lists.flatMap((l) => l.items)) {
        if (item.kind !== 'manual' || item.state !== 'pending') continue;
        await handle.executeUpdate('checkItem', { args: [{ item: item.id, by: o.signer, note: `checked by the test` }] }).catch(() => undefined); // not active yet
      }
      const st = await handle.query<FullSiteState>('fullSiteState').catch(() => undefined);
      if (st?.paused && !seenPause.has(st.paused.since)) {
        seenPause.add(st.paused.since);
        out.pauses.push(st.paused);
        if (!o.onPause) throw new Error(`unexpected pause at ${st.paused.step}: ${st.paused.error}`);
        const d = await o.onPause(st.paused);
        if (d.action === 'retry') await handle.executeUpdate('retry', { args: [{ by: 'carol', note: d.note }] });
        else await handle.executeUpdate('abort', { args: [{ by: 'carol', reason: d.reason }] });
      }
    } catch (err) {
      if (settled) break;
      if ((err as Error).message.startsWith('unexpected pause')) {
        await handle.terminate('test: unexpected pause').catch(() => undefined);
        throw err;
      }
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  await done;
  return out;
}

const start = (input: object, id: string) => h.client.workflow.start('fullSiteRecovery', { taskQueue: QUEUE, workflowId: id, args: [input] });

before(async () => {
  await h.startTemporal();
  // --- the old host: cluster main, repo1 encrypted (passphrase in its pgBackRest config), repo2 plain ---
  old = await h.addCluster({ name: 'main', host: 'old', repo2: true }, { cipher: true });
  writeFileSync(old.pgbackrestConfig, pgbackrestConf(old, { cipher: true }).replace('repo1-cipher-type=aes-256-cbc', `repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=${PASS}`));
  // dave and erin sign the checklists: every sign-off and pause decision needs someone on this allowlist.
  // The audit log on the host that survives (approvals.auditHost: any host with a worker).
  const approvals = { fullSiteRecovery: { approvers: ['alice', 'bob', 'carol', 'dave', 'erin'], required: 2, expiresIn: '10m', remindEvery: '5m' }, auditHost: 'new' };
  const address = h.env.connection.options.address;
  const oldFile = join(h.root, 'old.yaml');

  // --- the new host: its own folders, port, pgBackRest config (same repositories), secret file, state ---
  newDir = join(h.root, 'new');
  newPort = await freePort();
  makeOwnedDir(newDir, 'postgres', 0o755);
  for (const d of ['socket', 'log', 'lock', 'spool']) makeOwnedDir(join(newDir, d), 'postgres', 0o750);
  scratchRoot = join(newDir, 'scratch');
  makeOwnedDir(scratchRoot, 'postgres', 0o755);
  writeFileSync(join(scratchRoot, 'keep-me.txt'), 'not pgdr\'s\n');
  const newConf = join(newDir, 'pgbackrest.conf');
  writeFileSync(
    newConf,
    [
      '[global]',
      `repo1-path=${old.repoPath}`,
      'repo1-cipher-type=aes-256-cbc',
      `repo2-path=${old.repo2Path}`,
      `log-path=${join(newDir, 'log')}`,
      `lock-path=${join(newDir, 'lock')}`,
      `spool-path=${join(newDir, 'spool')}`,
      'start-fast=y',
      'compress-type=lz4',
      'repo1-retention-full=9999999',
      'repo2-retention-full=9999999',
      '',
      '[main]',
      `pg1-path=${join(newDir, 'data')}`,
      `pg1-port=${newPort}`,
      `pg1-socket-path=${join(newDir, 'socket')}`,
      '',
    ].join('\n'),
    { mode: 0o640 },
  );
  const pg = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'))!.split(':');
  chownSync(newConf, Number(pg[2]), Number(pg[3]));
  mkdirSync(join(h.root, 'new-secrets'), { mode: 0o700 });
  passFile = join(h.root, 'new-secrets', 'repo1.pass');
  writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
  dnsFile = join(h.root, 'dns-switched');
  appServer = createServer((rq, rs) => {
    appHits++;
    rs.writeHead(rq.url === '/healthz' ? 200 : 404).end('ok');
  });
  const appPort = await freePort();
  await new Promise<void>((r) => appServer.listen(appPort, '127.0.0.1', r));
  newTarget = { dataDir: join(newDir, 'data'), port: newPort, socketDir: join(newDir, 'socket'), osUser: 'postgres', pgBinDir: PG_BIN_DIR, dbUser: 'postgres', database: 'postgres' };
  // One shared configuration (worker/shared-config-guard.ts): both files say the same about main — its home host
  // "old", restore settings, applications — and differ in host-local fields only (paths, port, secrets, state).
  const mainShared = {
    restore: { expectTables: { orders: 1 }, copyDelta: true, newTimelineArchiveWait: '8s' },
    applications: [{ id: 'api-health', title: 'The API answers /healthz', url: `http://127.0.0.1:${appPort}/healthz` }],
  };
  const newFile = join(h.root, 'new.yaml');
  writeFileSync(
    newFile,
    configYaml({
      clusters: [
        {
          name: 'main',
          host: 'old',
          stanza: 'main',
          pgbackrestConfig: newConf,
          dataDir: newTarget.dataDir,
          port: newPort,
          socketDir: newTarget.socketDir,
          osUser: 'postgres',
          pgBinDir: PG_BIN_DIR,
          serverLog: join(newDir, 'log', 'postgresql.log'),
          repos: [
            { index: 1, name: 'local', cipherPassFile: passFile },
            { index: 2, name: 'offsite' },
          ],
          ...mainShared,
          fullSite: { scratchDir: scratchRoot, dnsSwitchCommand: ['sh', '-c', `echo "$PGDR_CLUSTER $PGDR_TARGET_HOST $PGDR_PORT" > ${dnsFile}`] },
        },
      ],
      temporalAddress: address,
      taskQueue: QUEUE,
      stateDir: join(h.root, 'new-state'),
      extra: { worker: { metricsPort: 0 }, approvals },
    }),
  );
  loadConfig(newFile);
  writeFileSync(
    oldFile,
    configYaml({
      clusters: [{ ...old.configEntry, ...mainShared }],
      temporalAddress: address,
      taskQueue: QUEUE,
      stateDir: join(h.root, 'old-state'),
      extra: { worker: { metricsPort: 0 }, approvals },
    }),
  );
  loadConfig(oldFile);

  // --- production on the old host: stanza, a full backup in each repo, then more rows, archived ---
  oldWorker = await startWorkerProcess(oldFile, 'old');
  await sql(old, "CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL); INSERT INTO orders (tag) SELECT 'before-backup' FROM generate_series(1, 100)");
  await h.client.workflow.execute('setupStanza', { taskQueue: QUEUE, workflowId: `setup-${Date.now()}`, args: [{ cluster: 'main' }] });
  // A full backup in each repo. (pgBackRest directly: pgdr's `backup` runbook reads `info` across all repos,
  // which answers status 4 "different across repos" while only one of them has a backup.)
  for (const repo of [1, 2]) {
    const b = await run('pgbackrest', [`--config=${old.pgbackrestConfig}`, '--stanza=main', `--repo=${repo}`, '--type=full', '--log-level-console=warn', 'backup'], { user: 'postgres' });
    assert.equal(b.exitCode, 0, b.stderr);
  }
  await sql(old, "INSERT INTO orders (tag) SELECT 'after-backup' FROM generate_series(1, 50)");
  await switchWalAndWaitArchived(old);
  // Only now the new host's worker joins (both serve the shared workflow queue from here on).
  await startWorkerProcess(newFile, 'new');
});

after(async () => {
  for (const w of workers) await stopWorkerProcess(w).catch(() => undefined);
  await stopServer(newTarget).catch(() => undefined);
  appServer?.close();
  await h.teardown();
});

describe('full-site recovery', () => {
  test('drill: restores into the new host\'s scratch area, checks it, tears it down; production and DNS untouched', async () => {
    const prodBefore = { rows: await tags(old), auto: readFileSync(join(old.dataDir, 'postgresql.auto.conf'), 'utf8') };
    const scratchBefore = readdirSync(scratchRoot).sort();
    const id = `dr-drill-${Date.now()}`;
    const out = await drive(await start({ cluster: 'main', targetHost: 'new', reason: 'quarterly DR drill', requestedBy: 'oncall', drill: true }, id), { signer: 'dave' });
    assert.ok(out.result, out.failure?.message);
    const r = out.result!;
    assert.equal(r.outcome, 'drill-passed');
    assert.equal(r.drill, true);
    // The copy held production's data: the post-restore table count saw all 150 rows.
    const post = r.checklists.find((c) => c.name.startsWith('After the restore'))!;
    assert.match(post.items.find((i) => i.id === 'table-counts')!.note ?? '', /orders: 150/);
    assert.equal(post.items.find((i) => i.id === 'point-reached')!.state, 'passed');
    // Production-only items skipped with "drill"; no approval; applications and DNS not touched.
    const items = r.checklists.flatMap((c) => c.items);
    for (const id2 of ['old-host-fenced', 'api-health', 'dns-hook', 'dns-switched']) {
      const it = items.find((i) => i.id === id2)!;
      assert.equal(it.state, 'skipped', id2);
      assert.equal(it.note, 'drill');
    }
    assert.equal(r.approvals.length, 0);
    assert.equal(appHits, 0, 'no application check ran');
    assert.ok(!existsSync(dnsFile), 'the DNS hook did not run');
    assert.ok(r.steps.some((s) => s.name === 'Tear down the scratch cluster' && s.state === 'done'));
    // Production as it was; the new host's scratch area as it was; nothing running from the scratch copy.
    assert.deepEqual({ rows: await tags(old), auto: readFileSync(join(old.dataDir, 'postgresql.auto.conf'), 'utf8') }, prodBefore);
    assert.deepEqual(readdirSync(scratchRoot).sort(), scratchBefore);
    assert.ok(!existsSync(newTarget.dataDir), 'the new host\'s data directory was not created');
    assert.deepEqual(await processesMatching('postgres', '-D', scratchRoot), []);
    assert.ok(r.report.file && existsSync(r.report.file) && r.report.file.startsWith(join(h.root, 'new-state', 'audit', 'dr-reports')), r.report.file);
    assert.match(r.report.markdown, /^# DR drill of cluster main onto host new — DRILL PASSED/);
    console.log(`drill: ${formatDuration(r.rto.measuredMs!)} wall, restore+start ${r.reached ? formatDuration(r.reached.recoveryMs) : '?'} to promoted`);
  });

  test('a failing automated step (wrong cipher passphrase) pauses with a clear error; abort stops with a report', async () => {
    writeFileSync(passFile, `${WRONG}\n`);
    const id = `dr-abort-${Date.now()}`;
    const handle = await start({ cluster: 'main', targetHost: 'new', reason: 'test abort', requestedBy: 'oncall' }, id);
    await assert.rejects(handle.executeUpdate('retry', { args: [{ by: 'carol' }] }), (e: Error) => e instanceof WorkflowUpdateFailedError && /not paused/.test(String((e as { cause?: Error }).cause?.message)));
    const out = await drive(handle, {
      approvers: ['alice', 'bob'],
      signer: 'dave',
      onPause: async (p) => {
        assert.equal(p.step, 'Check the cipher passphrase of repo1');
        assert.match(p.error, /cannot decrypt repo1 with the passphrase from file .*repo1\.pass \(info status 99: wrong or missing cipher passphrase\)/);
        assert.ok(!p.error.includes(WRONG) && !p.error.includes(PASS), 'no passphrase in the error');
        // Only people on approvals.fullSiteRecovery.approvers decide a pause, on every channel.
        await assert.rejects(handle.executeUpdate('abort', { args: [{ by: 'mallory', reason: 'I can' }] }), (e: Error) => /"mallory" may not abort/.test(String((e as { cause?: Error }).cause?.message)));
        return { action: 'abort', reason: 'no access to the key vault' };
      },
    });
    assert.equal(out.pauses.length, 1);
    assert.equal(out.failure?.type, 'FullSiteRecoveryAborted');
    const r = out.failure!.details!;
    assert.equal(r.outcome, 'aborted');
    assert.match(r.error ?? '', /aborted by carol at "Check the cipher passphrase of repo1": no access to the key vault/);
    assert.ok(r.report.file && existsSync(r.report.file));
    const md = readFileSync(r.report.file!, 'utf8');
    assert.match(md, /— ABORTED/);
    assert.match(md, /→ abort by carol .*\(no access to the key vault\)/);
    assert.match(md, /Cluster main is NOT recovered on new/);
    assert.ok(!md.includes(WRONG) && !md.includes(PASS));
    assert.ok(!existsSync(newTarget.dataDir), 'nothing was restored');
    assert.equal(await h.client.workflow.getHandle(id).query<string>('drReport').then((m) => /ABORTED/.test(m)), true, 'the report is queryable after the end');
  });

  test('the old host is lost: rebuilt on the new host from repo1 — paused on the passphrase, fixed, retried — data up to the last archived WAL', async () => {
    // The loss: production stops, its data directory is removed, its host's worker is gone.
    const expected = await tags(old);
    await stopServer(old);
    rmSync(old.dataDir, { recursive: true, force: true });
    await stopWorkerProcess(oldWorker);
    assert.equal(readFileSync(passFile, 'utf8').trim(), WRONG);
    const id = `dr-main-${Date.now()}`;
    const out = await drive(await start({ cluster: 'main', targetHost: 'new', reason: 'host old is gone', requestedBy: 'oncall' }, id), {
      approvers: ['alice', 'bob'],
      signer: 'dave',
      onPause: async (p) => {
        assert.match(p.error, /info status 99/);
        writeFileSync(passFile, `${PASS}\n`);
        return { action: 'retry', note: 'fixed the passphrase file' };
      },
    });
    assert.ok(out.result, out.failure?.message);
    const r = out.result!;
    assert.equal(r.outcome, 'recovered');
    assert.equal(r.repo, 1);
    // The cluster runs on the new host, its port, with every row up to the last archived WAL.
    assert.deepEqual(expected, ['after-backup:50', 'before-backup:100']);
    assert.deepEqual(await tags(newTarget), expected);
    const [s] = await query<{ port: string; ac: string; rec: boolean }>(newTarget, "SELECT current_setting('port') AS port, current_setting('archive_command') AS ac, pg_is_in_recovery() AS rec");
    assert.equal(Number(s.port), newPort);
    assert.equal(s.rec, false);
    assert.match(s.ac, new RegExp(`--config=${join(newDir, 'pgbackrest.conf')}`));
    assert.equal(r.reached?.timeline, 2);
    // Pause → retry: the failed step, the pause and the second attempt are in the timeline.
    assert.equal(r.pauses.length, 1);
    assert.deepEqual([r.pauses[0].decision, r.pauses[0].by, r.pauses[0].note], ['retry', 'carol', 'fixed the passphrase file']);
    const names = r.steps.map((x) => `${x.name}:${x.state}`);
    const i = names.indexOf('Check the cipher passphrase of repo1:failed');
    assert.ok(i >= 0 && names[i + 1].startsWith('Paused: "Check the cipher passphrase of repo1" failed') && names[i + 2] === 'Check the cipher passphrase of repo1 (attempt 2):done', names.join('\n'));
    // Applications checked, DNS hook run with the context, people signed off.
    assert.ok(appHits >= 1);
    assert.equal(readFileSync(dnsFile, 'utf8').trim(), `main new ${newPort}`);
    const items = r.checklists.flatMap((c) => c.items);
    for (const m of ['old-host-fenced', 'host-provisioned', 'packages-installed', 'secrets-in-place', 'dns-switched']) assert.equal(items.find((x) => x.id === m)?.by, 'dave', m);
    assert.ok(items.filter((x) => x.kind === 'auto').every((x) => x.state === 'passed'), JSON.stringify(items.filter((x) => x.state !== 'passed' && x.kind === 'auto')));
    // Two distinct approvers.
    assert.deepEqual(r.approvals[0].votes.map((v) => v.by), ['alice', 'bob']);
    // The report: every step with a duration, the approvers, the set and point reached, the RTO.
    const md = r.report.markdown;
    for (const [n, st] of r.steps.entries()) {
      if (st.name === 'Write the DR report') continue;
      const row = md.split('\n').find((l) => l.startsWith(`| ${n + 1} | `));
      assert.ok(row && row.includes(st.name.replace(/\|/g, '\\|')) && /\| (\d+ ms|[\d.]+ s|\d+ min \d+ s) \|/.test(row), `row for ${st.name}: ${row}`);
    }
    assert.match(md, /\| Approval \(approvals.fullSiteRecovery\) \|.*\| approved by alice, bob \|/);
    assert.match(md, /Backup set: \d{8}-\d{6}F \(full/);
    assert.match(md, /Repository: repo1 \(local\)/);
    assert.match(md, /Newest archived WAL segment in the repository: \w{24} — replayed/);
    assert.match(md, /\| RTO target \(rto.fullSite\) \| 2h \|/);
    assert.ok(r.rto.measuredMs! > 0 && r.rto.exceeded === false);
    const file = join(h.root, 'new-state', 'audit', 'dr-reports', `${id}.md`);
    assert.equal(r.report.file, file);
    assert.match(readFileSync(file, 'utf8'), /— RECOVERED/);
    const svg = readFileSync(file.replace(/\.md$/, '.svg'), 'utf8');
    assert.equal((svg.match(/height="14" rx="2"/g) ?? []).length, r.steps.length - 1, 'one bar per step (the report step comes after the chart)');
    console.log(`full-site recovery: measured ${formatDuration(r.rto.measuredMs!)} (database available after ${formatDuration(r.rto.databaseAvailableMs!)}); paused ${formatDuration(Date.parse(r.pauses[0].decidedAt!) - Date.parse(r.pauses[0].since))}; start→promoted ${formatDuration(r.reached!.recoveryMs)}`);
  });

  test('the new host is lost too and repo1 is gone: rebuilt from repo2 (offsite), with the rows written on the new host', async () => {
    await query(newTarget, "INSERT INTO orders (tag) SELECT 'on-new-host' FROM generate_series(1, 30)");
    await switchWalAndWaitArchived(newTarget);
    const expected = await tags(newTarget);
    await stopServer(newTarget);
    rmSync(newTarget.dataDir, { recursive: true, force: true });
    renameSync(old.repoPath, `${old.repoPath}.gone`);
    try {
      const id = `dr-repo2-${Date.now()}`;
      const out = await drive(await start({ cluster: 'main', targetHost: 'new', repo: 2, reason: 'NAS with repo1 is gone too', requestedBy: 'oncall' }, id), {
        approvers: ['bob', 'carol'],
        signer: 'erin',
      });
      assert.ok(out.result, out.failure?.message);
      const r = out.result!;
      assert.equal(r.outcome, 'recovered');
      assert.equal(r.repo, 2);
      assert.deepEqual(expected, ['after-backup:50', 'before-backup:100', 'on-new-host:30']);
      assert.deepEqual(await tags(newTarget), expected);
      assert.match(r.target, /\(repo2\)$/);
      assert.match(r.report.markdown, /Repository: repo2 \(offsite\)/);
      assert.match(r.report.markdown, /The recovery used repo2 \(offsite\): check or rebuild repo1/);
      // repo1 is gone, so archive-push (to every repo) fails: reported as a follow-up, not a pause.
      assert.match(r.report.markdown, /WAL archiving of the restored cluster does not work yet/);
      assert.equal(r.checklists.flatMap((c) => c.items).find((i) => i.id === 'cipher-passphrase')?.note, 'repo2 is not encrypted (no repo2-cipher-type): no passphrase needed');
    } finally {
      renameSync(`${old.repoPath}.gone`, old.repoPath);
    }
  });

  test('a target data directory that is not empty is refused (pgdr never deletes data); abort leaves it as it was', async () => {
    // The cluster restored from repo2 runs in the new host's data directory now: a second run must not touch it.
    const before = await tags(newTarget);
    const entries = readdirSync(newTarget.dataDir).sort();
    const out = await drive(await start({ cluster: 'main', targetHost: 'new', repo: 2, reason: 'mistake', requestedBy: 'oncall' }, `dr-refuse-${Date.now()}`), {
      approvers: ['alice', 'carol'],
      signer: 'dave',
      onPause: async (p) => {
        assert.equal(p.step, `Check that ${newTarget.dataDir} is empty or absent`);
        assert.match(p.error, /refusing: .* is not empty \(\d+ entries, .*\); pgdr never deletes data/);
        return { action: 'abort', reason: 'wrong host' };
      },
    });
    assert.equal(out.failure?.type, 'FullSiteRecoveryAborted');
    assert.ok(!out.failure!.details!.steps.some((s) => s.name.startsWith('Restore')), 'no restore step ran');
    assert.deepEqual(await tags(newTarget), before);
    assert.deepEqual(readdirSync(newTarget.dataDir).sort(), entries);
  });

  test('a stale copy of the cluster in the target directory (a former standby) is kept aside and seeds a delta restore', async () => {
    // The new host's cluster stops: what is left in its data directory is a stale copy of "main".
    await switchWalAndWaitArchived(newTarget).catch(() => undefined);
    await stopServer(newTarget);
    writeFileSync(join(newTarget.dataDir, 'pgdr-test-stale'), 'the stale copy\n');
    const id = `dr-stale-${Date.now()}`;
    const out = await drive(await start({ cluster: 'main', targetHost: 'new', repo: 2, reason: 'rebuild over the old standby', requestedBy: 'oncall' }, id), {
      approvers: ['alice', 'carol'],
      signer: 'dave',
      onPause: async (p) => {
        throw new Error(`unexpected pause at ${p.step}: ${p.error}`);
      },
    });
    assert.ok(out.result, out.failure?.message);
    const kept = readdirSync(newDir).filter((n) => n.startsWith('data.stale-'));
    assert.equal(kept.length, 1, `the stale copy is kept aside: ${readdirSync(newDir).join(', ')}`);
    assert.ok(existsSync(join(newDir, kept[0], 'pgdr-test-stale')), 'it is the stale copy itself, untouched');
    assert.match(readFileSync(join(newDir, kept[0], '.pgdr-owner.json'), 'utf8'), /stale copy, kept aside/);
    assert.ok(!existsSync(join(newTarget.dataDir, 'pgdr-test-stale')), 'the restored directory is not the stale copy');
    assert.match(out.result!.report.markdown, /stale copy .* kept at .*data\.stale-.*delta restore onto a copy of it/s);
    assert.ok((await tags(newTarget)).length > 0, 'the restored cluster answers with its rows');
  });
});
