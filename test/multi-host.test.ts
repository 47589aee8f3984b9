/**
 * The production shape, end to end on one machine: a Temporal server with PostgreSQL persistence and mTLS,
 * database hosts that are Linux network namespaces (test/helpers/netns.ts) — each with its own PostgreSQL 15
 * cluster, folders, pgdr.yaml and `pgdr worker` process running inside the namespace — a host-local posix
 * repository (repo1) per cluster, and one S3-compatible offsite repository (repo2: SeaweedFS over TLS,
 * test/helpers/s3-server.ts) every host reaches over its veth. Temporal and S3 bind only to the service
 * address; the hosts have no other route.
 *
 * In order, sharing one setup: scheduled backups of two hosts land in both repositories; a drill; host db1 is
 * lost and `orders` is rebuilt on db3 from S3; Temporal is SIGKILLed twice during an in-place restore (waiting
 * for approval, and restoring); a host's worker is SIGKILLed while pgBackRest restores.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { query, type PgTarget } from '../activities/postgres';
import { run, type RunResult } from '../activities/process';
import type { ApprovalStateAnswer } from '../common/approvals';
import { iniLines } from '../common/conf-value';
import { loadConfig } from '../common/config';
import { portInUse } from '../common/net';
import { PROJECT_ROOT } from '../common/paths';
import type { ChecklistSnapshot } from '../workflows/checklist';
import type { FullSiteRecoveryResult, FullSiteState } from '../workflows/full-site-recovery';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import { makeOwnedDir, osUserIds } from '../common/os-user';
import { configYaml, initLocalCluster, localCluster, PG_BIN_DIR, type LocalCluster } from '../worker/local-cluster';
import { freePort, processesMatching, switchWalAndWaitArchived, waitFor } from './helpers/harness';
import { CRASH_TEST_WORKER, StopPoints } from './helpers/invariants';
import { alive, createNetnsLab, type NetnsHost, type NetnsLab } from './helpers/netns';
import { signOffWhenAsked, voteWhenAsked } from './helpers/people';
import { S3_ENDPOINT_NAME, startS3Server, type S3Server } from './helpers/s3-server';
import { startTemporalServer, type TemporalServer } from './helpers/temporal-server';

const PGDR = join(PROJECT_ROOT, 'bin', 'pgdr');
const HOOK = join(PROJECT_ROOT, 'test', 'helpers', 'pgbackrest-hook.sh');
const QUEUE = 'pgdr-multihost';
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
const S3_REPO_PATH = '/repo';

// The pid in the name lets a later run find what a killed run left running (killLeftoversOfDeadRuns).
const root = mkdtempSync(`/tmp/pgdr-test-multihost-${process.pid}-`);
chmodSync(root, 0o755);
let lab: NetnsLab;
let s3: S3Server;
let temporal: TemporalServer;
let client: Client;
let points: StopPoints;
const workers = new Map<string, ChildProcess>();
/** Every cluster, by name, as the test reaches it (unix socket: works across namespaces). */
const clusters = new Map<string, LocalCluster>();

// ------------------------------------------------------------------------------------------------------
// Hosts, clusters, configs.

/** pgBackRest config: repo1 local posix (unless `repo1: false`), repo2 the S3 store. */
function writePgbackrestConf(c: LocalCluster, o: { repo1: boolean }): void {
  const text = [
    '[global]',
    ...iniLines({
      'repo1-path': o.repo1 ? c.repoPath : undefined,
      'repo1-retention-full': o.repo1 ? 9999999 : undefined,
      ...s3.pgbackrestOptions(2, S3_REPO_PATH),
      'repo2-retention-full': 9999999,
      'log-path': join(c.dir, 'log'),
      'lock-path': join(c.dir, 'lock'),
      'spool-path': join(c.dir, 'spool'),
      'start-fast': 'y',
      'compress-type': 'lz4',
      'log-level-file': 'info',
    }),
    '',
    `[${c.stanza}]`,
    ...iniLines({ 'pg1-path': c.dataDir, 'pg1-port': c.port, 'pg1-socket-path': c.socketDir }),
    '',
  ].join('\n');
  writeFileSync(c.pgbackrestConfig, text, { mode: 0o640 }); // holds the S3 secret: postgres only
  const { uid, gid } = osUserIds('postgres');
  chownSync(c.pgbackrestConfig, uid, gid);
}

/** The part of a cluster's entry every host's pgdr.yaml must agree on. */
function sharedEntry(name: string, host: string): Record<string, unknown> {
  return {
    name,
    host,
    stanza: name,
    repos: [
      { index: 1, name: 'local' },
      { index: 2, name: 'offsite' },
    ],
    backup: { processMax: 1 },
    schedules: { full: { cron: '0 2 * * *' }, diff: false, incr: false, expire: false, drill: false, freshness: false, archiveHealth: false },
    restore: {
      safetyBackup: false,
      preChecklist: { remove: ['stakeholders-notified'] },
      postChecklist: { remove: ['app-health', 'monitoring'] },
      pauseTimeout: '30m',
    },
  };
}

/** The host-local part: where the cluster lives on the host whose file this is. */
function localEntry(c: LocalCluster): Record<string, unknown> {
  return {
    pgbackrestConfig: c.pgbackrestConfig,
    dataDir: c.dataDir,
    port: c.port,
    socketDir: c.socketDir,
    osUser: 'postgres',
    pgBinDir: PG_BIN_DIR,
    serverLog: c.logFile,
    drill: { scratchDir: join(c.dir, 'scratch') },
    restore: { newClusterDir: join(c.dir, 'restored') },
    fullSite: { scratchDir: join(c.dir, 'scratch') },
  };
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k] as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** A host's pgdr.yaml: every cluster with the same shared part, host-local fields as seen from `local`. */
function writeHostConfig(host: string, local: Record<string, LocalCluster>): string {
  const file = join(root, host, 'pgdr.yaml');
  const entries = [
    { name: 'orders', host: 'db1' },
    { name: 'billing', host: 'db2' },
  ].map((e) => merge(sharedEntry(e.name, e.host), localEntry(local[e.name])));
  writeFileSync(
    file,
    configYaml({
      clusters: entries,
      temporalAddress: temporal.address,
      stateDir: join(root, host, 'state'),
      extra: {
        temporal: { address: temporal.address, namespace: 'default', taskQueue: QUEUE, uiUrl: 'http://127.0.0.1:8233', tls: temporal.tls },
        worker: CRASH_TEST_WORKER,
        approvals: {
          // The approval audit log goes to one host's worker (default: the first cluster's host, db1); db1 is
          // lost in scenario 3, so a surviving host keeps it (else each gate waits 2 min before falling back).
          auditHost: 'db2',
          fullSiteRecovery: { approvers: ['alice', 'bob', 'carol', 'dave'], required: 2, expiresIn: '30m' },
          restoreInPlace: { approvers: ['alice', 'bob', 'carol'], required: 1, expiresIn: '30m' },
        },
      },
    }),
  );
  loadConfig(file);
  return file;
}

/** A cluster's folders on a host (owned by postgres), its initdb'ed data directory unless `empty`. */
async function clusterOnHost(host: string, name: string, o: { empty?: boolean; repo1?: boolean } = {}): Promise<LocalCluster> {
  const c = localCluster({ dir: join(root, host, name), name, host, port: await freePort() });
  if (o.empty) {
    makeOwnedDir(c.dir, 'postgres', 0o755);
    for (const d of ['socket', 'log', 'lock', 'spool', 'scratch', 'restored']) makeOwnedDir(join(c.dir, d), 'postgres', d === 'scratch' || d === 'restored' ? 0o755 : 0o750);
  } else {
    await initLocalCluster(c);
    for (const d of ['scratch', 'restored']) makeOwnedDir(join(c.dir, d), 'postgres', 0o755);
  }
  writePgbackrestConf(c, { repo1: o.repo1 ?? true });
  return c;
}

/** Start a cluster's postmaster INSIDE the host's namespace (its archive_command reaches S3 from there). */
async function startClusterIn(h: NetnsHost, c: LocalCluster): Promise<void> {
  const r = await h.exec(join(PG_BIN_DIR, 'pg_ctl'), ['-D', c.dataDir, '-l', c.logFile, '-w', '-t', '60', 'start'], { user: 'postgres' });
  assert.equal(r.exitCode, 0, `pg_ctl start in ${h.ns}: ${r.stderr}${r.stdout}`);
}

/** `pgdr worker --host <host>` inside the host's namespace; resolves once it serves its queues. */
async function startWorker(h: NetnsHost, configFile: string): Promise<ChildProcess> {
  const log = createWriteStream(join(root, h.name, 'worker.log'), { flags: 'a' });
  const env = { ...process.env, PGDR_LOG_LEVEL: 'warn', PGDR_HOOK_DIR: points.dir, PGDR_PGBACKREST_BIN: HOOK };
  const p = h.spawn(process.execPath, [PGDR, '--config', configFile, 'worker', '--host', h.name], { stdio: ['ignore', 'pipe', 'pipe'], env });
  p.stdout!.pipe(log, { end: false });
  p.stderr!.pipe(log, { end: false });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    p.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('pgdr worker serving')) resolve();
    });
    p.once('exit', (code) => reject(new Error(`pgdr worker in ${h.ns} exited ${code}:\n${seen.slice(-2000)}`)));
  });
  workers.set(h.name, p);
  return p;
}

async function killWorker(host: string): Promise<void> {
  const p = workers.get(host);
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
  workers.delete(host);
}

/** The real CLI, inside a host's namespace (the on-call engineer on that host) with that host's config. */
async function pgdr(host: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const h = lab.hosts.get(host)!;
  return h.exec(process.execPath, [PGDR, '--config', join(root, host, 'pgdr.yaml'), ...args], { env: { PGDR_LOG_LEVEL: 'warn', ...env } });
}

/** pgbackrest info of one repository, as the cluster's OS user inside its host's namespace. */
async function repoInfo(host: string, c: LocalCluster, repo: number): Promise<{ label: string; type: string }[]> {
  const r = await lab.hosts.get(host)!.exec('pgbackrest', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, `--repo=${repo}`, '--output=json', 'info'], { user: 'postgres' });
  assert.equal(r.exitCode, 0, r.stderr);
  const [st] = JSON.parse(r.stdout) as { backup: { label: string; type: string }[] }[];
  return st.backup.map((b) => ({ label: b.label, type: b.type }));
}

const tags = async (c: PgTarget) => (await query<{ tag: string; n: string }>(c, 'SELECT tag, count(*) AS n FROM items GROUP BY tag ORDER BY tag')).map((r) => `${r.tag}:${r.n}`);

let sectionStart = Date.now();
/** Time since the scenario started, for the log: where the time goes. */
const mark = (what: string) => console.log(`[multi-host]   +${((Date.now() - sectionStart) / 1000).toFixed(1)} s ${what}`);

async function timed(name: string, fn: () => Promise<void>): Promise<void> {
  sectionStart = Date.now();
  try {
    await fn();
  } finally {
    console.log(`[multi-host] ${name}: ${((Date.now() - sectionStart) / 1000).toFixed(1)} s`);
  }
}

/** Kill the Temporal server (SIGKILL: a crash), check it is gone, start it again on the same ports and database. */
async function crashTemporal(): Promise<void> {
  await temporal.kill('SIGKILL');
  assert.equal(await portInUse(temporal.frontendPort, lab.serviceIp), false, 'the frontend is really down');
  await temporal.restart();
}

/**
 * A run killed from outside (no `after`) leaves its servers in the root namespace (S3, Temporal and its
 * PostgreSQL): kill the processes working in a /tmp/pgdr-test-multihost-<pid>- folder whose pid is gone.
 * (What ran inside its namespaces goes with them: test/helpers/netns.ts removeStale.)
 */
function killLeftoversOfDeadRuns(): void {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const m = /\/tmp\/pgdr-test-multihost-(\d+)-/.exec(readFileSync(`/proc/${e}/cmdline`, 'utf8'));
      if (m && !alive(Number(m[1]))) process.kill(Number(e), 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

// ------------------------------------------------------------------------------------------------------

before(async () => {
  const t0 = Date.now();
  killLeftoversOfDeadRuns();
  lab = await createNetnsLab({ names: { [S3_ENDPOINT_NAME]: 'service' } });
  const hooks = join(root, 'hooks');
  mkdirSync(hooks);
  chmodSync(hooks, 0o777);
  points = new StopPoints(hooks);
  // Both at once; each is kept as soon as it runs, so that cleanup stops it even when the other fails.
  const started = await Promise.allSettled([
    startS3Server({ dir: join(root, 's3'), bindIp: lab.serviceIp }).then((v) => (s3 = v)),
    startTemporalServer({ dir: join(root, 'temporal'), bindIp: lab.serviceIp }).then((v) => (temporal = v)),
  ]);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  client = await temporal.client();
  const [db1, db2] = [await lab.addHost('db1'), await lab.addHost('db2')];
  for (const h of ['db1', 'db2']) makeOwnedDir(join(root, h), 'postgres', 0o755);
  const orders = await clusterOnHost('db1', 'orders');
  const billing = await clusterOnHost('db2', 'billing');
  clusters.set('orders', orders);
  clusters.set('billing', billing);
  await Promise.all([startClusterIn(db1, orders), startClusterIn(db2, billing)]);
  const files = { db1: writeHostConfig('db1', { orders, billing }), db2: writeHostConfig('db2', { orders, billing }) };
  await Promise.all([startWorker(db1, files.db1), startWorker(db2, files.db2)]);
  console.log(`[multi-host] setup (netns, S3, Temporal ${JSON.stringify(temporal.timings)}, 2 clusters, 2 workers): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

let cleanedUp: Promise<void> | undefined;
const cleanup = () => (cleanedUp ??= tearDown());
after(cleanup);
// Ctrl-C or a kill of the test run: the same teardown (namespaces, servers, postmasters), then exit.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`[multi-host] ${sig}: tearing down`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function tearDown(): Promise<void> {
  points?.release();
  for (const host of [...workers.keys()]) await killWorker(host).catch(() => undefined);
  for (const c of clusters.values()) {
    await run(join(PG_BIN_DIR, 'pg_ctl'), ['-D', c.dataDir, '-m', 'fast', '-w', '-t', '20', 'stop'], { user: 'postgres' }).catch(() => undefined);
  }
  await lab?.teardown().catch((e) => console.error(`netns teardown: ${(e as Error).message}`));
  await s3?.stop().catch(() => undefined);
  await temporal?.stop().catch(() => undefined);
  if (!process.env.PGDR_KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
}

describe('multi-host: database hosts in network namespaces, repo2 on S3, Temporal with mTLS', () => {
  test('the network: servers bind only to the service address, hosts have no way out', { timeout: 30_000 }, async () => {
    const ours = await processesMatching(root);
    const sockets = await lab.listening(ours);
    const serviceSockets = sockets.filter((s) => s.where === 'root');
    assert.ok(serviceSockets.some((s) => s.local === `${lab.serviceIp}:${s3.port}`), `S3 listens on the service address: ${JSON.stringify(serviceSockets)}`);
    assert.ok(serviceSockets.some((s) => s.local === temporal.address), `Temporal listens on the service address: ${JSON.stringify(serviceSockets)}`);
    for (const s of sockets) {
      const ok = s.where === 'root' ? s.local.startsWith(`${lab.serviceIp}:`) || s.local.startsWith('127.0.0.1:') : s.local.startsWith(`${lab.hosts.get(s.where)!.ip}:`) || s.local.startsWith('127.0.0.1:');
      assert.ok(ok, `${s.process} in ${s.where} listens on ${s.local}`);
    }
    for (const h of lab.hosts.values()) {
      const routes = (await h.exec('ip', ['-4', 'route'])).stdout.trim().split('\n').sort();
      const subnet = `${h.gateway.replace(/\d+$/, (x) => String(Number(x) - 1))}/30`;
      assert.deepEqual(routes.map((r) => r.split(' ')[0]).sort(), [lab.serviceIp, subnet].sort(), `${h.name} has its /30 and the service address, nothing else: ${routes.join('; ')}`);
      // The service address answers from inside the host (through the veth), the other hosts' do not exist.
      const reach = await h.exec(process.execPath, ['-e', `require('net').connect(${s3.port}, '${lab.serviceIp}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`]);
      assert.equal(reach.exitCode, 0, `${h.name} reaches S3 at ${lab.serviceIp}:${s3.port}`);
    }
  });

  test('1. scheduled backups of two hosts land in both repositories (repo1 local, repo2 on S3)', { timeout: 180_000 }, () =>
    timed('1. scheduled backups', async () => {
      const orders = clusters.get('orders')!;
      const billing = clusters.get('billing')!;
      for (const [host, c] of [['db1', orders], ['db2', billing]] as const) {
        const s = await pgdr(host, ['stanza', 'setup', '--cluster', c.name]);
        assert.equal(s.exitCode, 0, `stanza setup ${c.name}: ${s.stdout}${s.stderr}`);
        await query(c, "CREATE TABLE items (id serial PRIMARY KEY, tag text NOT NULL); INSERT INTO items (tag) SELECT 'before-backup' FROM generate_series(1, 100)");
      }
      mark('stanzas set up');
      const apply = await pgdr('db1', ['schedules', 'apply']);
      assert.equal(apply.exitCode, 0, apply.stdout + apply.stderr);
      const ids = ['pgdr:orders:full', 'pgdr:orders:full:repo2', 'pgdr:billing:full', 'pgdr:billing:full:repo2'];
      for (const id of ids) assert.match(apply.stdout, new RegExp(`\\+ ${id}$`, 'm'), apply.stdout);
      // Each host's on-call triggers its own cluster's schedules, from inside the host.
      const started = await Promise.all(
        ids.map(async (id) => {
          const r = await pgdr(id.includes('orders') ? 'db1' : 'db2', ['--json', 'schedules', 'trigger', id]);
          assert.equal(r.exitCode, 0, r.stdout + r.stderr);
          const wf = /started workflow (\S+);/.exec((JSON.parse(r.stdout) as { scheduleId: string }).scheduleId)?.[1];
          assert.ok(wf, r.stdout);
          return wf;
        }),
      );
      mark('schedules applied and triggered');
      const results = await Promise.all(started.map((wf) => client.workflow.getHandle(wf).result() as Promise<{ set: { label: string; type: string } }>));
      mark('the four scheduled backups finished');
      for (const [host, c] of [['db1', orders], ['db2', billing]] as const) {
        for (const repo of [1, 2]) {
          const sets = await repoInfo(host, c, repo);
          assert.equal(sets.length, 1, `${c.name} repo${repo}: ${JSON.stringify(sets)}`);
          assert.equal(sets[0].type, 'full');
          assert.ok(results.some((r) => r.set.label === sets[0].label), `${c.name} repo${repo} holds a set a scheduled run made`);
        }
        // Straight from the object store: the backup's manifest and the archived WAL are objects in the bucket.
        const labelRepo2 = (await repoInfo(host, c, 2))[0].label;
        const set = await s3.listObjects(`${S3_REPO_PATH}/backup/${c.stanza}/${labelRepo2}`);
        assert.ok(set.includes('backup.manifest') && set.includes('pg_data/'), `${c.name} set ${labelRepo2} in S3: ${set.join(', ')}`);
        const wal = await s3.listObjects(`${S3_REPO_PATH}/archive/${c.stanza}/15-1/0000000100000000`);
        assert.ok(wal.some((o) => /^[0-9A-F]{24}-[0-9a-f]{40}(\.gz|\.lz4|\.zst)?$/.test(o)), `archived WAL in S3: ${wal.join(', ')}`);
      }
    }));

  test('2. a verification drill on db2 (pgdr drill through the CLI, from S3), passing', { timeout: 180_000 }, () =>
    timed('2. drill', async () => {
      const r = await pgdr('db2', ['--json', 'drill', '--cluster', 'billing', '--repo', '2']);
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout) as { passed?: boolean; outcome?: string; set?: { label: string } };
      assert.ok(out.passed ?? out.outcome === 'passed', r.stdout.slice(0, 2000));
      // The throw-away copy is gone.
      assert.deepEqual(await processesMatching('postgres', '-D', join(clusters.get('billing')!.dir, 'scratch')), []);
    }));

  test('3. host db1 is lost: orders is rebuilt on db3 from repo2 (S3) with approvals and sign-offs', { timeout: 180_000 }, () =>
    timed('3. full-site recovery onto db3', async () => {
      const orders = clusters.get('orders')!;
      await query(orders, "INSERT INTO items (tag) SELECT 'after-backup' FROM generate_series(1, 50)");
      await switchWalAndWaitArchived(orders);
      const expected = await tags(orders);
      assert.deepEqual(expected, ['after-backup:50', 'before-backup:100']);

      // The loss: the worker dies, PostgreSQL stops, the host's network, folders and local repo1 are gone.
      await killWorker('db1');
      await run(join(PG_BIN_DIR, 'pg_ctl'), ['-D', orders.dataDir, '-m', 'immediate', '-w', 'stop'], { user: 'postgres' });
      await lab.removeHost('db1');
      rmSync(join(root, 'db1'), { recursive: true, force: true });
      clusters.delete('orders');

      // db3: an empty cluster folder, a pgBackRest config with repo2 (S3) only, its own pgdr.yaml and worker.
      const db3 = await lab.addHost('db3');
      makeOwnedDir(join(root, 'db3'), 'postgres', 0o755);
      const target = await clusterOnHost('db3', 'orders', { empty: true, repo1: false });
      assert.ok(!readFileSync(target.pgbackrestConfig, 'utf8').includes('repo1-'), 'db3 knows only repo2');
      const file = writeHostConfig('db3', { orders: target, billing: clusters.get('billing')! });
      await startWorker(db3, file);

      const id = `dr-orders-${Date.now()}`;
      const handle = await client.workflow.start('fullSiteRecovery', {
        taskQueue: QUEUE,
        workflowId: id,
        args: [{ cluster: 'orders', targetHost: 'db3', repo: 2, reason: 'host db1 is lost', requestedBy: 'oncall' }],
      });
      const out = await drive(handle, { approvers: ['alice', 'bob'], signer: 'dave' });
      assert.ok(out.result, out.failure);
      const r = out.result!;
      assert.equal(r.outcome, 'recovered');
      assert.equal(r.repo, 2);
      assert.deepEqual(r.approvals[0].votes.map((v) => v.by).sort(), ['alice', 'bob']);
      // Every row written before the loss — before the last backup and after it (archived WAL) — is on db3.
      assert.deepEqual(await tags(target), expected);
      clusters.set('orders', target);
      // The postmaster runs inside db3's namespace (started there by db3's worker), in db3's folder.
      const [pm] = await processesMatching('postgres', '-D', target.dataDir);
      assert.ok(pm, 'a postmaster for db3/orders');
      assert.ok((await db3.pids()).includes(pm), `postmaster ${pm} runs in ${db3.ns}`);
      const [{ rec }] = await query<{ rec: boolean }>(target, 'SELECT pg_is_in_recovery() AS rec');
      assert.equal(rec, false);
      console.log(`[multi-host] full-site recovery measured ${r.rto.measuredMs} ms, start→promoted ${r.reached?.recoveryMs} ms`);
    }));

  test('4. Temporal is SIGKILLed and restarted while an in-place restore waits for approval, and while it restores: it finishes', { timeout: 180_000 }, () =>
    timed('4. Temporal crashes during restoreInPlace', async () => {
      const billing = clusters.get('billing')!;
      await query(billing, "INSERT INTO items (tag) SELECT 'lost-then-restored' FROM generate_series(1, 5)");
      // Distinct seconds around the target time (the accident of test/helpers/in-place-suite.ts).
      await new Promise((r) => setTimeout(r, 1100));
      const [{ t }] = await query<{ t: Date }>(billing, 'SELECT clock_timestamp() AS t');
      await new Promise((r) => setTimeout(r, 1100));
      await query(billing, "DELETE FROM items WHERE tag = 'lost-then-restored'");
      await switchWalAndWaitArchived(billing);
      mark('the accident, archived');

      points.hold('pgbackrest-restore');
      const handle = await client.workflow.start('restoreInPlace', {
        taskQueue: QUEUE,
        workflowId: `ip-billing-${Date.now()}`,
        args: [{ cluster: 'billing', target: { type: 'time', value: t.toISOString() }, confirmation: TOKEN, reason: 'rows deleted by mistake', requestedBy: 'carol' }],
      });
      // The pre-restore sign-off, then the approval gate: while it waits for people, Temporal dies and comes back.
      await signOffWhenAsked(handle, 'target-confirmed', 'bob', { note: 'checked', timeoutMs: 60_000 });
      mark('target-confirmed signed');
      await waitFor('the approval request', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending, 60_000);
      mark('approval asked for');
      await crashTemporal();
      mark('Temporal killed and restarted');
      await voteWhenAsked(handle, 'approve', 'alice');
      mark('approved');
      // Restoring: pgBackRest is held at its start. Temporal dies and comes back again.
      await points.reached('pgbackrest-restore', 120_000);
      mark('pgBackRest restore reached');
      await crashTemporal();
      mark('Temporal killed and restarted');
      points.release('pgbackrest-restore');
      const r = (await handle.result()) as RestoreInPlaceResult;
      mark('restoreInPlace finished');
      assert.ok(r.run);
      assert.deepEqual(await tags(billing), ['before-backup:100', 'lost-then-restored:5']);
    }));

  test('5. the worker of db2 is SIGKILLed while pgBackRest restores and started again in its namespace: the restore finishes', { timeout: 180_000 }, () =>
    timed('5. worker crash during a restore', async () => {
      const db2 = lab.hosts.get('db2')!;
      const billing = clusters.get('billing')!;
      points.hold('pgbackrest-restore');
      const cli = pgdr('db2', ['--json', 'restore', '--cluster', 'billing', '--new-cluster', 'billingcopy', '--latest']);
      await points.reached('pgbackrest-restore', 120_000);
      await killWorker('db2');
      rmSync(join(points.dir, 'pgbackrest-restore.reached'), { force: true });
      await startWorker(db2, join(root, 'db2', 'pgdr.yaml'));
      // The retry (on the restarted worker) reaches pgBackRest again: let it run.
      await points.reached('pgbackrest-restore', 120_000);
      points.release('pgbackrest-restore');
      const r = await cli;
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout) as { workflowId: string; dataDir: string; port: number; socketDir: string };
      // The restore ran twice: the first attempt died with its worker, the retry on the restarted worker finished.
      const history = await client.workflow.getHandle(out.workflowId).fetchHistory();
      const retried = (history.events ?? []).filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
      assert.ok(retried.length > 0, 'an activity finished on a later attempt');
      // The first attempt's pgBackRest (held by the hook when its worker died) was killed, not left writing.
      assert.deepEqual(await processesMatching('pgbackrest', 'restore', out.dataDir), []);
      const copy: PgTarget = { dataDir: out.dataDir, port: out.port, socketDir: out.socketDir, osUser: 'postgres', pgBinDir: PG_BIN_DIR, dbUser: 'postgres', database: 'postgres' };
      assert.deepEqual(await tags(copy), await tags(billing));
      const [pm] = await processesMatching('postgres', '-D', out.dataDir);
      assert.ok(pm && (await db2.pids()).includes(pm), 'the copy runs inside db2');
      await run(join(PG_BIN_DIR, 'pg_ctl'), ['-D', out.dataDir, '-m', 'fast', '-w', 'stop'], { user: 'postgres' });
    }));
});

// ------------------------------------------------------------------------------------------------------

/** Approve with distinct identities, sign off every manual item as `signer`; a pause fails the test. */
async function drive(handle: WorkflowHandle, o: { approvers: string[]; signer: string }): Promise<{ result?: FullSiteRecoveryResult; failure?: string }> {
  let settled = false;
  const out: { result?: FullSiteRecoveryResult; failure?: string } = {};
  const done = handle
    .result()
    .then(
      (r) => (out.result = r as FullSiteRecoveryResult),
      (err) => (out.failure = err instanceof WorkflowFailedError ? `${err.message}: ${(err.cause as Error | undefined)?.message}` : String(err)),
    )
    .finally(() => (settled = true));
  const voted = new Set<string>();
  while (!settled) {
    const a = await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined);
    const who = a?.pending && o.approvers.find((x) => a.pending!.mayStillVote.includes(x) && !voted.has(`${a.pending!.approvalId}:${x}`));
    if (a?.pending && who) {
      voted.add(`${a.pending.approvalId}:${who}`);
      await handle.executeUpdate('approve', { args: [{ approvalId: a.pending.approvalId, by: who, via: 'cli' }] }).catch(() => undefined);
    }
    const lists = await handle.query<ChecklistSnapshot[]>('checklist').catch(() => [] as ChecklistSnapshot[]);
    for (const item of lists.flatMap((l) => l.items)) {
      if (item.kind === 'manual' && item.state === 'pending') await handle.executeUpdate('checkItem', { args: [{ item: item.id, by: o.signer, note: 'checked by the test' }] }).catch(() => undefined);
    }
    const st = await handle.query<FullSiteState>('fullSiteState').catch(() => undefined);
    if (st?.paused) {
      await handle.terminate('test: unexpected pause').catch(() => undefined);
      throw new Error(`unexpected pause at ${st.paused.step}: ${st.paused.error}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  await done;
  return out;
}
