/**
 * PostgreSQL the way Debian hosts run it: clusters made by `pg_createcluster` (configuration in
 * /etc/postgresql/15/<name>, data directory elsewhere), started and stopped with `pg_ctlcluster`
 * (control: { method: pg_ctlcluster }). Through the real runbooks: an in-place PITR restore, a drill, a
 * restore into a new cluster and a full-site recovery onto a second Debian cluster — each leaving the /etc
 * configuration byte for byte as it was, the cluster online in `pg_lsclusters`, and `pg_ctlcluster stop` /
 * `start` working afterwards. Plus the `commands` method (hooks that call pg_ctl and leave a trace).
 * Every Debian cluster this file creates is dropped at the end (pg_dropcluster), also when a test fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { controlProblems, query, serverState, startServer, stopServer, type PgTarget } from '../activities/postgres';
import { run } from '../activities/process';
import type { ApprovalStateAnswer } from '../common/approvals';
import { ConfigError, loadConfig, validateConfig, type ClusterConfig } from '../common/config';
import { pgConfLines } from '../common/conf-value';
import type { DrillResult } from '../common/drill';
import { makeOwnedDir, osUserIds } from '../common/os-user';
import type { ChecklistSnapshot } from '../workflows/checklist';
import type { FullSiteRecoveryResult } from '../workflows/full-site-recovery';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { RestoreToNewClusterResult } from '../workflows/restore-to-new-cluster';
import { configYaml, localCluster, pgbackrestConf, type LocalCluster } from '../worker/local-cluster';
import { freePort, Harness, processesMatching, sql, switchWalAndWaitArchived } from './helpers/harness';
import { signPostRestore, signPreRestore, voteWhenAsked } from './helpers/people';

const VERSION = '15';
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
const h = new Harness('debian');
/** Debian cluster names are global on the machine: unique per test run. */
const DEB_MAIN = `pgdr_${process.pid}_main`;
const DEB_NEW = `pgdr_${process.pid}_new`;
const created: string[] = [];
let main: LocalCluster;
let target: LocalCluster;
let scratchRoot: string;
const marks: Record<string, string> = {};

/** The messages of a failure and all its causes. */
const failureText = (e: unknown): string => {
  const parts: string[] = [];
  for (let x = e as { message?: string; cause?: unknown } | undefined; x; x = x.cause as typeof x) parts.push(String(x.message));
  return parts.join(' | ');
};
const confDir = (deb: string) => join('/etc/postgresql', VERSION, deb);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tags = async (t: PgTarget) => (await query<{ tag: string; n: string }>(t, 'SELECT tag, count(*) AS n FROM orders GROUP BY tag ORDER BY tag', [], 'app')).map((r) => `${r.tag}:${r.n}`);

/** sha256 of every file under the cluster's /etc folder. */
function etcHashes(deb: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(confDir(deb).length + 1)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(confDir(deb));
  return out;
}

/** pg_lsclusters' line for one cluster: [port, status, data directory]. */
async function lsclusters(deb: string): Promise<{ port: number; status: string; dataDir: string }> {
  const r = await run('pg_lsclusters', ['-h', VERSION, deb]);
  assert.equal(r.exitCode, 0, r.stderr);
  const [, , port, status, , dataDir] = r.stdout.trim().split(/\s+/);
  return { port: Number(port), status, dataDir };
}

async function pgCtlCluster(deb: string, action: 'start' | 'stop'): Promise<void> {
  const r = await run('pg_ctlcluster', [VERSION, deb, action]);
  assert.equal(r.exitCode, 0, `pg_ctlcluster ${VERSION} ${deb} ${action}: ${r.stderr || r.stdout}`);
}

/** After a runbook: /etc as it was, online on its port in pg_lsclusters, and Debian's own stop/start still work. */
async function assertManagedTheDebianWay(deb: string, c: LocalCluster, etcBefore: Record<string, string>): Promise<void> {
  assert.deepEqual(etcHashes(deb), etcBefore, `${confDir(deb)} unchanged`);
  assert.deepEqual(await lsclusters(deb), { port: c.port, status: 'online', dataDir: c.dataDir });
  assert.ok(!existsSync(join(c.dataDir, 'postgresql.conf')), 'the data directory holds no postgresql.conf: the one in /etc is used');
  await pgCtlCluster(deb, 'stop');
  assert.equal((await lsclusters(deb)).status, 'down');
  await pgCtlCluster(deb, 'start');
  assert.equal((await lsclusters(deb)).status, 'online');
}

/**
 * A Debian cluster in a folder of this test (data, socket, pgBackRest config, repo), its WAL archived by
 * pgBackRest through a file in its conf.d, local connections trusted (pgdr connects as postgres over the socket).
 */
async function createDebianCluster(name: string, deb: string, host: string, o: { repoOf?: LocalCluster } = {}): Promise<LocalCluster> {
  const c = localCluster({ dir: join(h.root, name), name: 'main', host, port: await freePort() });
  if (o.repoOf) c.repoPath = o.repoOf.repoPath;
  makeOwnedDir(c.dir, 'postgres', 0o755);
  for (const d of ['socket', 'repo', 'log', 'lock', 'spool']) makeOwnedDir(join(c.dir, d), 'postgres', 0o750);
  const { uid, gid } = osUserIds('postgres');
  writeFileSync(c.pgbackrestConfig, pgbackrestConf(c), { mode: 0o640 });
  chownSync(c.pgbackrestConfig, uid, gid);
  created.push(deb);
  const r = await run('pg_createcluster', [VERSION, deb, '-d', c.dataDir, '-p', String(c.port), '-s', c.socketDir, '--start-conf=manual', '--', '--auth-local=trust', '--auth-host=scram-sha-256', '--data-checksums']);
  assert.equal(r.exitCode, 0, r.stderr || r.stdout);
  const conf = join(confDir(deb), 'conf.d', 'pgdr-archiving.conf');
  writeFileSync(
    conf,
    `${pgConfLines({
      listen_addresses: '',
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: `pgbackrest --config=${c.pgbackrestConfig} --stanza=${c.stanza} archive-push %p`,
      log_line_prefix: '%m [%p] ',
    }).join('\n')}\n`,
  );
  chownSync(conf, uid, gid);
  c.configEntry = { ...c.configEntry, control: { method: 'pg_ctlcluster', name: deb } };
  delete c.configEntry.serverLog;
  return c;
}

/** Approve with two people and sign every manual item as dave, until the full-site recovery ends. */
async function driveFullSite(handle: WorkflowHandle): Promise<FullSiteRecoveryResult> {
  let settled = false;
  const done = handle.result().finally(() => (settled = true));
  const voted = new Set<string>();
  while (!settled) {
    const pend = (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending;
    for (const who of ['alice', 'bob'].filter((x) => pend?.mayStillVote.includes(x) && !voted.has(`${pend.approvalId}:${x}`)).slice(0, 1)) {
      voted.add(`${pend!.approvalId}:${who}`);
      await handle.executeUpdate('approve', { args: [{ approvalId: pend!.approvalId, by: who, via: 'cli' }] }).catch(() => undefined);
    }
    const lists = await handle.query<ChecklistSnapshot[]>('checklist').catch(() => [] as ChecklistSnapshot[]);
    for (const item of lists.flatMap((l) => l.items).filter((i) => i.kind === 'manual' && i.state === 'pending')) {
      await handle.executeUpdate('checkItem', { args: [{ item: item.id, by: 'dave', note: 'test' }] }).catch(() => undefined);
    }
    const st = await handle.query<{ paused?: { step: string; error: string } }>('fullSiteState').catch(() => undefined);
    if (st?.paused) {
      await handle.terminate('test: unexpected pause').catch(() => undefined);
      throw new Error(`unexpected pause at ${st.paused.step}: ${st.paused.error}`);
    }
    await pause(150);
  }
  return (await done) as FullSiteRecoveryResult;
}

before(async () => {
  await dropLeftovers();
  await h.startTemporal();
  main = await createDebianCluster('main', DEB_MAIN, 'db1');
  await pgCtlCluster(DEB_MAIN, 'start');
  h.clusters.push(main);
  scratchRoot = join(h.root, 'scratch');
  const people = ['alice', 'bob', 'carol', 'dave'];
  h.writeConfig(
    { approvals: { restoreInPlace: { approvers: people, required: 1 }, fullSiteRecovery: { approvers: people, required: 2 } } },
    { main: { drill: { scratchDir: scratchRoot, tables: ['orders'] }, restore: { expectTables: { orders: 1 }, newClusterDir: join(h.root, 'restored') } } },
  );
  assert.deepEqual(h.config.clusters[0].control, { method: 'pg_ctlcluster', name: DEB_MAIN, version: VERSION }, 'the version comes from pgBinDir');
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
  await sql(main, 'CREATE DATABASE app');
  await query(main, 'CREATE TABLE orders (id serial PRIMARY KEY, tag text NOT NULL)', [], 'app');
  await h.execute('backup', { cluster: 'main', type: 'full' });
  await query(main, "INSERT INTO orders (tag) SELECT 'kept' FROM generate_series(1, 100)", [], 'app');
  await pause(1100);
  marks.beforeMistake = (await sql<{ t: Date }>(main, 'SELECT clock_timestamp() AS t'))[0].t.toISOString();
  await pause(1100);
  await query(main, "INSERT INTO orders (tag) SELECT 'mistake' FROM generate_series(1, 7)", [], 'app');
  await switchWalAndWaitArchived(main);
});

/** pg_dropcluster, then what it leaves: the test's own conf.d file (so the folder in /etc) and the log. */
async function dropDebianCluster(deb: string): Promise<void> {
  if (existsSync(join(confDir(deb), 'postgresql.conf'))) {
    const r = await run('pg_dropcluster', [VERSION, deb, '--stop']);
    if (r.exitCode !== 0) console.error(`pg_dropcluster ${deb}: ${r.stderr}`);
  }
  rmSync(confDir(deb), { recursive: true, force: true });
  rmSync(`/var/log/postgresql/postgresql-${VERSION}-${deb}.log`, { force: true });
}

/** Clusters an earlier run of this file left behind (it was killed): pgdr_<pid>_… whose pid is gone. */
async function dropLeftovers(): Promise<void> {
  for (const name of existsSync(join('/etc/postgresql', VERSION)) ? readdirSync(join('/etc/postgresql', VERSION)) : []) {
    const m = /^pgdr_(\d+)_(main|new)$/.exec(name);
    if (m && !existsSync(`/proc/${m[1]}`)) await dropDebianCluster(name);
  }
}

after(async () => {
  await h.stopWorkers().catch(() => undefined);
  for (const deb of created) {
    await dropDebianCluster(deb);
  }
  await h.teardown();
});

describe('a Debian cluster (control: pg_ctlcluster)', () => {
  test('refused clearly before anything runs: a passphrase the postmaster would not get, a data directory or port that disagrees', async () => {
    const c = h.config.clusters[0];
    const secret = { PGBACKREST_REPO1_CIPHER_PASS: 'not-printed' };
    const [msg] = await controlProblems(c, secret, c.pgbackrestConfig);
    assert.match(msg, new RegExp(`only the variables of /etc/postgresql/15/${DEB_MAIN}/environment, and PGBACKREST_REPO1_CIPHER_PASS is not there`));
    assert.ok(!msg.includes('not-printed'));
    const withPass = join(h.root, 'pgbackrest-with-pass.conf');
    writeFileSync(withPass, `${readFileSync(c.pgbackrestConfig, 'utf8')}\n[global]\nrepo1-cipher-pass=x\n`);
    assert.deepEqual(await controlProblems(c, secret, withPass), [], 'repo1-cipher-pass in the pgBackRest config reaches archive-push');
    const wrong = await controlProblems({ ...c, dataDir: '/srv/elsewhere', port: c.port + 1 }, {}, c.pgbackrestConfig);
    assert.match(wrong.join('\n'), /has its data directory in .* but pgdr.yaml says dataDir \/srv\/elsewhere/);
    assert.match(wrong.join('\n'), /runs on port \d+ .* but pgdr.yaml says port/);
    assert.match((await controlProblems({ ...c, control: { method: 'pg_ctlcluster', name: 'nope', version: '15' } }))[0], /Debian cluster 15\/nope does not exist on this host/);
  });

  test('in-place PITR restore: rows before the mistake, /etc untouched, online in pg_lsclusters, pg_ctlcluster still works', async () => {
    const etc = etcHashes(DEB_MAIN);
    assert.deepEqual(await tags(main), ['kept:100', 'mistake:7']);
    const handle = await h.start('restoreInPlace', { cluster: 'main', reason: 'rows written by mistake', requestedBy: 'carol', confirmation: TOKEN, target: { type: 'time', value: marks.beforeMistake } });
    await signPreRestore(handle);
    await voteWhenAsked(handle, 'approve', 'alice');
    await signPostRestore(handle);
    const r = (await handle.result()) as RestoreInPlaceResult;
    assert.deepEqual(await tags(main), ['kept:100'], 'restored to the time before the mistake');
    assert.match(r.recovery.stoppedAt ?? '', /recovery stopping before commit/);
    assert.match(readFileSync(`/var/log/postgresql/postgresql-${VERSION}-${DEB_MAIN}.log`, 'utf8'), /recovery stopping before commit/, 'the start went through pg_ctlcluster (its log)');
    assert.ok(existsSync(join(r.keptOriginalAt, 'PG_VERSION')), 'the original is kept aside');
    await assertManagedTheDebianWay(DEB_MAIN, main, etc);
    assert.deepEqual(await tags(main), ['kept:100']);
    // WAL archiving works on the new timeline (archive_command from /etc's conf.d).
    await switchWalAndWaitArchived(main);
  });

  test('drill: the scratch copy starts with pg_ctl and a configuration written from /etc; nothing registered in /etc/postgresql', async () => {
    const etc = etcHashes(DEB_MAIN);
    const clustersBefore = readdirSync(join('/etc/postgresql', VERSION)).sort();
    await h.execute('backup', { cluster: 'main', type: 'full' });
    const r = await h.execute<DrillResult>('verifyDrill', { cluster: 'main' });
    assert.equal(r.passed, true, JSON.stringify(r.failure));
    assert.deepEqual(r.validation?.rowCounts.map((x) => [x.table, x.database, x.restored, x.production]), [['orders', 'app', 100, 100]], 'the copy holds production\'s rows');
    // Other test files running now may register their own fixtures (pgdr_<their pid>_…, pgdrdeploy…): not the drill's.
    const fixtureOfAnotherFile = (n: string) => (/^pgdr_\d+_(main|new)$/.test(n) && !n.startsWith(`pgdr_${process.pid}_`)) || n.startsWith('pgdrdeploy');
    const added = readdirSync(join('/etc/postgresql', VERSION)).filter((n) => !clustersBefore.includes(n) && !fixtureOfAnotherFile(n));
    assert.deepEqual(added, [], 'no Debian cluster registered');
    assert.deepEqual(await processesMatching('postgres', '-D', scratchRoot), [], 'no scratch postmaster remains');
    await assertManagedTheDebianWay(DEB_MAIN, main, etc);
  });

  test('restore into a new cluster: a running copy on its own port with production\'s settings, /etc untouched', async () => {
    const etc = etcHashes(DEB_MAIN);
    const r = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', { cluster: 'main', name: 'copy', target: { type: 'latest' } }).catch((e) => {
      throw new Error(failureText(e));
    });
    const copy: PgTarget = { ...main, dataDir: r.dataDir, port: r.port, socketDir: r.socketDir, control: undefined };
    assert.deepEqual(await tags(copy), ['kept:100']);
    const conf = readFileSync(join(r.dataDir, 'postgresql.conf'), 'utf8');
    assert.match(conf, new RegExp(`From /etc/postgresql/15/${DEB_MAIN}/postgresql.conf`));
    assert.doesNotMatch(conf, /^\s*(data_directory|hba_file|ident_file|external_pid_file|port|unix_socket_directories)\s*=/m, 'none of production\'s paths or its port');
    assert.match(conf, /^wal_level = 'replica'$/m, 'conf.d inlined');
    const [s] = await query<{ cf: string; hba: string; am: string }>(copy, "SELECT current_setting('config_file') cf, current_setting('hba_file') hba, current_setting('archive_mode') am");
    assert.deepEqual(s, { cf: join(r.dataDir, 'postgresql.conf'), hba: join(r.dataDir, 'pg_hba.conf'), am: 'off' });
    await h.execute('dropRestoredCluster', { name: 'copy' });
    assert.deepEqual(etcHashes(DEB_MAIN), etc);
    assert.equal((await lsclusters(DEB_MAIN)).status, 'online');
  });

  test('full-site recovery onto a second Debian cluster: restored into its data directory, started with pg_ctlcluster', async () => {
    // The new host: a Debian cluster made by the operator, its data directory emptied for the rebuild.
    target = await createDebianCluster('new', DEB_NEW, 'db2', { repoOf: main });
    rmSync(target.dataDir, { recursive: true, force: true });
    makeOwnedDir(target.dataDir, 'postgres', 0o700);
    const etcNew = etcHashes(DEB_NEW);
    const file = join(h.root, 'db2.yaml');
    const approvals = h.config.approvals;
    // The same shared configuration as db1's (its home host, drill and restore settings, approvals); host-local fields differ.
    const shared = { host: 'db1', drill: { tables: ['orders'] }, restore: { expectTables: { orders: 1 } } };
    writeFileSync(file, configYaml({ clusters: [{ ...target.configEntry, ...shared }], temporalAddress: h.env.connection.options.address, taskQueue: h.config.temporal.taskQueue, stateDir: join(h.root, 'db2-state'), extra: { worker: { metricsPort: 0 }, approvals } }));
    await h.startWorker({ config: loadConfig(file), hosts: ['db2'], workflows: false });
    // The old host is lost.
    const expected = await tags(main);
    await switchWalAndWaitArchived(main);
    await pgCtlCluster(DEB_MAIN, 'stop');
    const r = await driveFullSite(await h.start('fullSiteRecovery', { cluster: 'main', targetHost: 'db2', reason: 'db1 is gone', requestedBy: 'carol' }));
    assert.equal(r.outcome, 'recovered');
    assert.deepEqual(await tags(target), expected);
    const [s] = await query<{ port: string; cf: string; rec: boolean }>(target, "SELECT current_setting('port') port, current_setting('config_file') cf, pg_is_in_recovery() rec");
    assert.deepEqual(s, { port: String(target.port), cf: join(confDir(DEB_NEW), 'postgresql.conf'), rec: false });
    await assertManagedTheDebianWay(DEB_NEW, target, etcNew);
    assert.deepEqual(await tags(target), expected);
  });
});

describe('control: commands', () => {
  test('start, stop and status run the operator\'s hooks with the cluster, data directory, port and passphrases in their environment', async () => {
    const c = await h.addCluster({ name: 'hooks' }, { archive: false });
    const trace = join(h.root, 'hooks.trace');
    const hook = (what: string, pgctl: string) => ['sh', '-c', `echo "${what} $PGDR_CLUSTER $PGDR_PORT $PGDR_DATA_DIR \${PGBACKREST_REPO1_CIPHER_PASS:+pass} $PGDR_SHUTDOWN_MODE" >> ${trace}; exec runuser -u postgres -- ${c.pgBinDir}/pg_ctl -D "$PGDR_DATA_DIR" ${pgctl}`];
    const control = { method: 'commands', start: hook('start', '-l "$PGDR_LOG_FILE" -w start'), stop: hook('stop', '-m "$PGDR_SHUTDOWN_MODE" -w stop'), status: hook('status', 'status') };
    const cfg = validateConfig({ clusters: [{ ...c.configEntry, control }] }, 'hooks.yaml').clusters[0] as ClusterConfig;
    assert.equal(await serverState(cfg), 'running');
    assert.equal(await stopServer(cfg, 60, 'fast'), 'stopped');
    assert.equal(await serverState(cfg), 'stopped');
    await startServer(cfg, c.logFile, 60, { PGBACKREST_REPO1_CIPHER_PASS: 'secret' });
    assert.deepEqual(await query(cfg, 'SELECT 1 AS one'), [{ one: 1 }]);
    const lines = readFileSync(trace, 'utf8').trim().split('\n').map((l) => l.trimEnd());
    const at = `hooks ${c.port} ${c.dataDir}`;
    assert.deepEqual([...new Set(lines)], [`status ${at}`, `stop ${at}  fast`, `start ${at} pass`]);
    assert.ok(statSync(c.logFile).size > 0, 'PGDR_LOG_FILE was the server log');
  });

  test('config: clear messages for a wrong control', () => {
    const base = { name: 'x', host: 'h', stanza: 's', pgbackrestConfig: '/p', dataDir: '/d', port: 5432, socketDir: '/s' };
    const problems = (control: unknown, extra: object = {}) => {
      try {
        validateConfig({ clusters: [{ ...base, ...extra, control }] }, 'pgdr.yaml');
        return '';
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
    };
    assert.match(problems({ method: 'systemd' }), /clusters\[0\]\.control\.method: "method" must be "pg_ctl", "pg_ctlcluster" \(with "name"\) or "commands" \(with "start" and "stop"\)/);
    assert.match(problems({ method: 'pg_ctlcluster' }), /clusters\[0\]\.control\.name: expected string, got nothing/);
    assert.match(problems({ method: 'commands', start: ['x'] }), /clusters\[0\]\.control\.stop: expected array, got nothing/);
    assert.match(problems({ method: 'commands', start: 'pg_ctl start', stop: ['x'] }), /clusters\[0\]\.control\.start: expected array, got string "pg_ctl start"/);
    assert.match(problems({ method: 'pg_ctlcluster', name: 'main' }, { pgBinDir: '/opt/pg/bin' }), /clusters\[0\]\.control\.version: needed: pgBinDir \/opt\/pg\/bin does not name a version/);
    assert.equal(problems({ method: 'pg_ctlcluster', name: 'main', version: '15' }, { pgBinDir: '/opt/pg/bin' }), '');
    assert.deepEqual(validateConfig({ clusters: [base] }, 'pgdr.yaml').clusters[0].control, { method: 'pg_ctl' }, 'pg_ctl by default');
  });
});


