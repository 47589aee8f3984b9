/**
 * Verification drills against a real Temporal dev server, PostgreSQL 15 and pgBackRest: a healthy drill,
 * the RPO proof, damage found by verify, a WAL segment lost before the target, a target outside the
 * window, and a worker SIGKILLed in the middle of the restore.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure, type WorkflowHandle } from '@temporalio/client';
import { Client } from 'pg';
import { parseVerifyOutput } from '../activities/drill';
import { connectionOptions } from '../activities/postgres';
import { loadConfig, type ClusterConfig } from '../common/config';
import type { DrillResult } from '../common/drill';
import { configYaml, type LocalCluster } from '../worker/local-cluster';
import { scratchNameFor } from '../workflows/verify-drill';
import { Harness, pgbackrestJson, processesMatching, sql, startWorkerProcess, stopWorkerProcess, waitFor } from './helpers/harness';
import { CRASH_TEST_WORKER } from './helpers/invariants';

const h = new Harness('drill');
let main: LocalCluster;
let scratchRoot: string;
const ROWS = 1_500_000;

function repoFiles(c: LocalCluster): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!/^backup\.info(\.copy)?$/.test(e.name) && !e.name.endsWith('.pgbackrest.tmp')) out.push(`${relative(c.repoPath, p)} ${statSync(p).size}`);
    }
  };
  walk(c.repoPath);
  return out.sort();
}

const latestSet = async () => {
  const info = (await pgbackrestJson(main, ['info'])) as { backup: { label: string; annotation?: Record<string, string> }[] }[];
  return info[0].backup[info[0].backup.length - 1];
};

async function productionState() {
  const counts = await sql<{ o: string; a: string; m: string }>(main, 'SELECT (SELECT count(*) FROM orders) o, (SELECT count(*) FROM accounts) a, (SELECT count(*) FROM _prisma_migrations) m');
  const settings = await sql<{ s: string }>(main, "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) s FROM pg_settings");
  return { counts: counts[0], settings: settings[0].s, autoConf: readFileSync(join(main.dataDir, 'postgresql.auto.conf'), 'utf8') };
}

/** The drill settings the in-process worker reads (changed for one test, then put back). */
const drillConfig = (): ClusterConfig['drill'] => h.config.clusters.find((c) => c.name === 'main')!.drill;

/** The DrillResult a failed drill carries in its failure details. */
async function failedResult(handle: WorkflowHandle): Promise<{ type?: string; result: DrillResult }> {
  const err = (await handle.result().catch((e: unknown) => e)) as { cause?: ApplicationFailure };
  return { type: err.cause?.type ?? undefined, result: err.cause?.details?.[0] as DrillResult };
}

async function noScratchLeft(): Promise<void> {
  const left = existsSync(scratchRoot) ? readdirSync(scratchRoot).filter((n) => n.startsWith('pgdr-drill-')) : [];
  assert.deepEqual(left, [], 'no scratch folder remains');
  assert.deepEqual(await processesMatching('postgres', '-D', scratchRoot), [], 'no scratch postmaster remains');
  const pgbackrest = await processesMatching('pgbackrest', scratchRoot);
  const what = pgbackrest.map((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return `${pid} (gone)`; } });
  assert.deepEqual(what, [], 'no pgbackrest process on the scratch folder remains');
}

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  scratchRoot = join(h.root, 'scratch');
  h.writeConfig({}, {
    main: {
      drill: {
        scratchDir: scratchRoot,
        tables: ['orders', 'accounts'],
        amcheck: true,
        migrationsTable: '_prisma_migrations',
        validations: [{ name: 'accounts balance', sql: 'SELECT sum(balance)::text FROM accounts', expect: '5050' }],
      },
    },
  });
  await h.startWorker();
  await sql(
    main,
    `CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
     INSERT INTO accounts SELECT g, g FROM generate_series(1, 100) g;
     CREATE TABLE _prisma_migrations (id text PRIMARY KEY, migration_name text NOT NULL, started_at timestamptz NOT NULL DEFAULT now());
     INSERT INTO _prisma_migrations (id, migration_name) VALUES ('0001', '0001_init'), ('0002', '0002_orders');
     CREATE TABLE orders (id bigint PRIMARY KEY, note text NOT NULL);
     INSERT INTO orders SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, ${ROWS}) g;`,
  );
  // Set hint bits and freeze now: otherwise autovacuum and first reads (wal_log_hints with checksums) keep
  // production writing WAL during the tests, and the repo changes for reasons that are not the drill's.
  await sql(main, 'VACUUM (FREEZE, ANALYZE)');
  await h.execute('setupStanza', { cluster: 'main' });
  await h.execute('backup', { cluster: 'main', type: 'full' });
});
after(() => h.teardown());

describe('verify output parsing', () => {
  test('names the set and file of an invalid checksum, and WAL gaps', () => {
    const out = [
      "2026-11-21 19:31:57.707 P01   INFO: invalid checksum '20261121-193148F/pg_data/base/5/2655.gz'",
      '2026-11-21 19:31:57.841 P00   INFO: stanza: vx',
      '                                    status: error',
      '                                      backup: 20261121-193148F, status: invalid, total files checked: 964, total valid files: 963',
      '                                        checksum invalid: 1',
    ].join('\n');
    const r = parseVerifyOutput(out);
    assert.equal(r.ok, false);
    assert.deepEqual(r.invalidSets, ['20261121-193148F']);
    assert.match(r.problems[0], /backup set 20261121-193148F: invalid \(checksum invalid: 1\) — pg_data\/base\/5\/2655\.gz \(invalid checksum\)/);
    const gap = parseVerifyOutput(
      'P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000002\nP00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000004, wal stop: 000000010000000000000004',
    );
    assert.equal(gap.ok, false);
    assert.match(gap.problems[0], /WAL missing in 15-1 after 000000010000000000000002/);
    assert.equal(parseVerifyOutput('P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000004').ok, true);
  });
});

describe('verification drill', () => {
  test('a healthy repo: the drill passes, counts equal, nothing left behind, production unchanged', async () => {
    const beforeState = await productionState();
    const beforeRepo = repoFiles(main);
    const set = await latestSet();
    const r = await h.execute<DrillResult>('verifyDrill', { cluster: 'main' });
    assert.equal(r.passed, true);
    assert.equal(r.set?.label, set.label);
    assert.deepEqual(
      r.validation!.rowCounts.map((c) => [c.table, c.restored, c.production]),
      [
        ['orders', ROWS, ROWS],
        ['accounts', 100, 100],
      ],
    );
    const names = r.validation!.checks.map((c) => `${c.name}:${c.ok}`);
    for (const n of ['SELECT 1:true', 'Tables present:true', 'pg_amcheck:true', 'Query "accounts balance":true', 'Migrations in _prisma_migrations:true']) assert.ok(names.includes(n), `${n} in ${names}`);
    assert.ok(r.reached?.consistentAt, 'recovery reached a consistent state');
    assert.ok(r.timings.restoreMs > 0 && r.timings.recoveryMs > 0 && r.timings.totalMs >= r.timings.restoreMs + r.timings.recoveryMs);
    console.log(`healthy drill: restore ${r.timings.restoreMs} ms, recovery ${r.timings.recoveryMs} ms, validation ${r.timings.validationMs} ms, wall ${r.timings.wallMs} ms; start→promoted inside the activity ${r.reached?.startToPromotedMs} ms`);
    await noScratchLeft();
    // The set carries the annotation; nothing else changed on production or in the repo.
    assert.equal((await latestSet()).annotation?.['pgdr-verified'], r.annotated);
    assert.ok(r.annotated);
    assert.deepEqual(await productionState(), beforeState);
    assert.deepEqual(repoFiles(main), beforeRepo);
  });

  test('the RPO proof restores exactly the markers up to its target', async () => {
    const r = await h.execute<DrillResult>('verifyDrill', { cluster: 'main', target: { type: 'time' } });
    assert.equal(r.passed, true);
    const check = r.validation!.checks.find((c) => c.name.startsWith('RPO markers'));
    assert.ok(check?.ok, check?.detail);
    // Production holds a marker written after the target: the copy must not have had it.
    const prod = await sql<{ id: string; at: Date }>(main, 'SELECT id, at FROM pgdr.drill_marker ORDER BY id');
    const upTo = prod.filter((m) => m.at.toISOString() <= r.rpo!.target);
    assert.ok(prod.length > upTo.length, 'a marker after the target exists on production');
    assert.match(check!.detail, new RegExp(`^${upTo.length} markers restored, ${upTo.length} expected`));
    assert.match(check!.detail, /absent$/);
    assert.ok(r.validation!.rowCounts.every((c) => c.exact && c.restored === c.production));
    assert.ok(r.rpo!.gapMs !== null && r.rpo!.gapMs >= 0 && r.rpo!.gapMs < 5000, `RPO gap ${r.rpo!.gapMs} ms`);
    assert.match(r.reached!.stoppedAt ?? '', /recovery stopping before commit/);
    await noScratchLeft();
  });

  test('the RPO proof under write load on a drill table: counts and target from one snapshot match exactly', async () => {
    // A writer inserts into orders (a drill table) without pause for the whole drill.
    const writer = new Client(connectionOptions(main));
    await writer.connect();
    let stop = false;
    let written = 0;
    const loop = (async () => {
      while (!stop) await writer.query("INSERT INTO orders VALUES ($1, 'load')", [ROWS + ++written]);
    })();
    try {
      await waitFor('the writer to insert', async () => written > 50);
      const r = await h.execute<DrillResult>('verifyDrill', { cluster: 'main', target: { type: 'time' } });
      const orders = r.validation!.rowCounts.find((c) => c.table === 'orders')!;
      assert.equal(r.passed, true, JSON.stringify(r.validation?.checks.filter((c) => !c.ok)));
      assert.ok(orders.exact && orders.restored === orders.production, `orders: ${orders.restored} restored, ${orders.production} counted`);
      assert.ok(orders.production > ROWS, 'rows of the writer are in the counts');
      // Cut to milliseconds, the target could stop recovery before commits of its last millisecond.
      assert.match(r.rpo!.target, /\.\d{6}Z$/, `the target ${r.rpo!.target} keeps PostgreSQL's microseconds`);
      assert.ok(written > orders.production - ROWS, 'the writer went on after the target');
      await noScratchLeft();
    } finally {
      stop = true;
      await loop;
      await writer.end();
      await sql(main, `DELETE FROM orders WHERE id > ${ROWS}`);
    }
  });

  test('validation queries run read-only as a non-superuser; a failed validation keeps timings and the RPO gap', async () => {
    const pwned = `/tmp/pgdr-drill-pwned-${process.pid}-${Date.now()}`;
    const saved = [...drillConfig().validations];
    drillConfig().validations.push(
      { name: 'shell', sql: `COPY (SELECT 1) TO PROGRAM 'touch ${pwned}'`, expect: '1' },
      { name: 'write', sql: 'CREATE TABLE pgdr_drill_write (id int)', expect: '1' },
      { name: 'not superuser', sql: 'SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user', expect: 'false' },
    );
    try {
      const f = await h.expectFailure('verifyDrill', { cluster: 'main', target: { type: 'time' } });
      assert.ok(!existsSync(pwned), 'COPY … TO PROGRAM did not run');
      assert.match(f.message, /^drill failed at "Validate the restored copy": validation of the restored copy failed/);
      const { type, result } = await failedResult(f.handle);
      assert.equal(type, 'DrillValidationFailed');
      const checks = Object.fromEntries(result.validation!.checks.map((c) => [c.name, c]));
      assert.match(checks['Query "shell"'].detail, /must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program/);
      assert.equal(checks['Query "shell"'].ok, false);
      assert.match(checks['Query "write"'].detail, /cannot execute CREATE TABLE in a read-only transaction/);
      assert.equal(checks['Query "not superuser"'].ok, true, checks['Query "not superuser"'].detail);
      assert.equal(checks['Query "accounts balance"'].ok, true, checks['Query "accounts balance"'].detail);
      // The measured timings and RPO gap are kept, as for every other failure.
      assert.ok(result.timings.restoreMs > 0 && result.timings.recoveryMs > 0 && result.timings.validationMs > 0, JSON.stringify(result.timings));
      assert.ok(result.rpo && result.rpo.gapMs !== null && result.rpo.gapMs >= 0, JSON.stringify(result.rpo));
      assert.equal(result.failure?.step, 'Validate the restored copy');
      await noScratchLeft();
    } finally {
      drillConfig().validations.splice(0, Infinity, ...saved);
      rmSync(pwned, { force: true });
    }
  });

  test('preflight counts the WAL recovery restores in the scratch space it needs', async () => {
    const margin = drillConfig().diskMargin;
    drillConfig().diskMargin = 1e9;
    try {
      const f = await h.expectFailure('verifyDrill', { cluster: 'main', target: { type: 'time' } });
      const m = /preflight: not enough free space in .*: backup set \S+ needs \d+ bytes \(restore size \d+ \+ \d+ % \+ WAL to restore and replay (\d+) bytes: (\d+) segment\(s\) [0-9A-F]{24} → [0-9A-F]{24}\), \d+ free/.exec(f.message);
      assert.ok(m, f.message);
      assert.ok(Number(m[2]) >= 1 && Number(m[1]) === Number(m[2]) * 16 * 1024 * 1024, f.message);
      assert.ok(!(await h.scheduledActivities(f.handle)).includes('restoreToScratch'));
    } finally {
      drillConfig().diskMargin = margin;
    }
  });

  test('a disk that fills up during the restore is reported as a full disk, not as a bad backup', async (t) => {
    const mnt = join(h.root, 'small-scratch');
    mkdirSync(mnt, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3g', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      t.skip('cannot mount a tmpfs here');
      return;
    }
    const hooks = join(h.root, 'hooks');
    mkdirSync(hooks, { recursive: true });
    const savedDir = drillConfig().scratchDir;
    process.env.PGDR_HOOK_DIR = hooks;
    process.env.PGBACKREST_JOB_RETRY = '0'; // pgBackRest would retry the failed file twice (the second after 15 s)
    writeFileSync(join(hooks, 'drillPreflight:after.hold'), '');
    drillConfig().scratchDir = mnt;
    try {
      const handle = await h.start('verifyDrill', { cluster: 'main' });
      await waitFor('the preflight to pass', async () => existsSync(join(hooks, 'drillPreflight:after.reached')), 60_000, 50);
      // After the preflight measured the space, something else fills the disk (leave 2 MB).
      const fs = statfsSync(mnt);
      execFileSync('fallocate', ['-l', String(Number(fs.bavail) * Number(fs.bsize) - 2 * 1024 * 1024), join(mnt, 'filler')]);
      rmSync(join(hooks, 'drillPreflight:after.hold'));
      const err = (await handle.result().catch((e: unknown) => e)) as Error;
      let root: { message: string; cause?: unknown } = err;
      while (root.cause) root = root.cause as typeof root;
      assert.match(root.message, new RegExp(`^drill failed at "Restore the backup set into a scratch folder.*": disk full at ${mnt} \\(\\d+ MB free, needed \\d+ MB\\): pgbackrest restore failed .*(unable to write|No space left on device)`));
      assert.doesNotMatch(root.message, /checksum|corrupt|invalid/i);
      const { type } = await failedResult(handle);
      assert.equal(type, 'DiskFull');
    } finally {
      drillConfig().scratchDir = savedDir;
      rmSync(join(hooks, 'drillPreflight:after.hold'), { force: true });
      delete process.env.PGDR_HOOK_DIR;
      delete process.env.PGBACKREST_JOB_RETRY;
      execFileSync('umount', [mnt]);
    }
  });

  test('a target outside the recoverable window fails at preflight and restores nothing', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const f = await h.expectFailure('verifyDrill', { cluster: 'main', target: { type: 'time', value: future } });
    assert.match(f.message, /preflight: target time .* is in the future; the recoverable window is/);
    const acts = await h.scheduledActivities(f.handle);
    assert.ok(acts.includes('drillPreflight'));
    assert.ok(!acts.includes('restoreToScratch'), `no restore was scheduled: ${acts}`);
    await noScratchLeft();
  });

  test('a WAL segment needed for the target is missing: fails at recovery with the PostgreSQL reason', async () => {
    await sql(main, "INSERT INTO accounts VALUES (1000, 0); SELECT pg_create_restore_point('before-loss')");
    const [{ f }] = await sql<{ f: string }>(main, 'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) f');
    await sql(main, 'SELECT pg_switch_wal()');
    await waitFor('WAL archived', async () => ((await sql<{ w: string }>(main, 'SELECT last_archived_wal w FROM pg_stat_archiver'))[0].w ?? '') >= f);
    const dir = join(main.repoPath, 'archive', 'main', '15-1', f.slice(0, 16));
    const seg = readdirSync(dir).find((n) => n.startsWith(f))!;
    renameSync(join(dir, seg), join(h.root, seg));
    try {
      // A restore point pgdr did not create: the drill names the set, so it is accepted.
      const f2 = await h.expectFailure('verifyDrill', { cluster: 'main', set: (await latestSet()).label, target: { type: 'name', value: 'before-loss' } });
      assert.match(f2.message, /Start the scratch copy and wait until recovery ends/);
      assert.match(f2.message, /recovery ended before configured recovery target was reached/);
      assert.match(f2.message, /PostgreSQL log/);
      await noScratchLeft();
    } finally {
      renameSync(join(h.root, seg), join(dir, seg));
      await sql(main, 'DELETE FROM accounts WHERE id = 1000');
    }
  });

  test('a corrupted backup file fails the drill at verify, naming the set and the file', async () => {
    const set = await latestSet();
    const base = join(main.repoPath, 'backup', 'main', set.label, 'pg_data', 'base');
    const file = readdirSync(base)
      .flatMap((db) => readdirSync(join(base, db)).map((n) => join(base, db, n)))
      .find((p) => statSync(p).size > 4096)!;
    const saved = join(h.root, 'saved.gz');
    copyFileSync(file, saved);
    const buf = readFileSync(file);
    buf.write('XXXXXXXX', 100);
    writeFileSync(file, buf);
    try {
      const f = await h.expectFailure('verifyDrill', { cluster: 'main' });
      assert.match(f.message, /Verify the repository/);
      assert.match(f.message, /pgbackrest verify found damage/);
      assert.ok(f.message.includes(`backup set ${set.label}`), f.message);
      assert.ok(f.message.includes(relative(join(main.repoPath, 'backup', 'main', set.label), file)), f.message);
      await noScratchLeft();
    } finally {
      copyFileSync(saved, file);
    }
  });

  test('bad input is refused before anything runs', async () => {
    for (const [input, re] of [
      [{ cluster: 'main', target: { type: 'lsn' } }, /a lsn target needs a value/],
      [{ cluster: 'main', set: 'drop table' }, /set: a backup set label/],
      [{ cluster: 'main', target: { type: 'week' } }, /target.type must be one of/],
      [{ cluster: 'main', validations: [{ name: 'x', sql: 'SELECT 1', expect: '1' }] }, /validations: validation queries are not accepted in the workflow input; configure them in the config file/],
    ] as [unknown, RegExp][]) {
      const f = await h.expectFailure('verifyDrill', input);
      assert.match(f.message, re);
      assert.deepEqual(await h.scheduledActivities(f.handle), []);
    }
  });
});

describe('worker crash', () => {
  let child: ChildProcess | undefined;
  after(() => child?.kill('SIGKILL'));

  test('SIGKILL of the worker mid-restore: after a restart the drill ends cleanly and no scratch copy remains', async () => {
    // Same cluster, its own task queues, served only by a child process we can kill.
    const file = join(h.root, 'pgdr-kill.yaml');
    writeFileSync(
      file,
      configYaml({
        clusters: [{ ...main.configEntry, host: 'killhost', backup: { processMax: 1 }, drill: { scratchDir: scratchRoot, tables: ['orders'] } }],
        temporalAddress: h.env.connection.options.address,
        taskQueue: 'pgdr-drill-kill',
        extra: { worker: CRASH_TEST_WORKER },
      }),
    );
    loadConfig(file);
    child = await startWorkerProcess(file);
    const id = `drill-kill-${Date.now()}`;
    const handle = await h.client.workflow.start('verifyDrill', { taskQueue: 'pgdr-drill-kill', workflowId: id, args: [{ cluster: 'main' }] });
    const dataDir = join(scratchRoot, scratchNameFor(id), 'data');
    await waitFor('pgbackrest restore to run', async () => (await processesMatching('pgbackrest', `--pg1-path=${dataDir}`, 'restore')).length > 0, 60_000, 30);
    await stopWorkerProcess(child, 'SIGKILL');
    // The orphaned restore keeps writing until a worker takes over.
    child = await startWorkerProcess(file);
    let passed: boolean;
    try {
      passed = ((await handle.result()) as DrillResult).passed;
    } catch {
      passed = false;
    }
    assert.equal(passed, true, 'the drill completes after the restart');
    const hist = (await handle.fetchHistory()).events ?? [];
    const scheduled = new Map<string, string>();
    for (const e of hist) if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType!.name!);
    const restoreAttempts = hist
      .filter((e) => e.activityTaskStartedEventAttributes && scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)) === 'restoreToScratch')
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    assert.ok(restoreAttempts.some((a) => (a ?? 1) >= 2), `the restore was retried after the crash (attempts ${restoreAttempts})`);
    assert.ok(!existsSync(dataDir));
    await noScratchLeft();
    await stopWorkerProcess(child);
    child = undefined;
  });
});
