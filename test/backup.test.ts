/**
 * Foundation: stanza setup and the backup runbooks against a real Temporal dev server, a real
 * PostgreSQL 15 cluster and real pgBackRest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ConfigError, loadConfig } from '../common/config';
import { lsnToBigInt, type BackupResult, type SetupStanzaResult, type StanzaInfo } from '../common/types';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness, pgbackrestJson, processesMatching, sql, waitFor } from './helpers/harness';
import { SlackFake } from './helpers/slack-fake';
import { run } from '../activities/process';

const h = new Harness('backup');
const slack = new SlackFake();
const SLACK_TOKEN_ENV = 'PGDR_TEST_BACKUP_SLACK_TOKEN';
let main: LocalCluster;
let noArchive: LocalCluster;

before(async () => {
  await h.startTemporal();
  await slack.start();
  process.env[SLACK_TOKEN_ENV] = 'xoxb-test-token';
  main = await h.addCluster({ name: 'main' });
  noArchive = await h.addCluster({ name: 'noarchive' }, { archive: false });
  h.writeConfig({ slack: { channel: 'C-OPS', tokenEnv: SLACK_TOKEN_ENV, apiUrl: slack.url } });
  await h.startWorker();
  await sql(main, 'CREATE TABLE orders (id serial PRIMARY KEY, note text)');
});
after(async () => {
  await h.teardown();
  await slack.stop();
});

type RawSet = { label: string; type: string; annotation?: Record<string, string>; timestamp: { start: number; stop: number }; lsn: { start: string; stop: string } };
const repoSets = async (c: LocalCluster) => ((await pgbackrestJson(c, ['info'])) as { backup: RawSet[] }[])[0].backup;

describe('stanza setup', () => {
  test('creates the stanza and passes pgbackrest check', async () => {
    const r = await h.execute<SetupStanzaResult>('setupStanza', { cluster: 'main' });
    assert.equal(r.stanza, 'main');
    assert.equal(r.settings.ok, true);
    const info = (await pgbackrestJson(main, ['info'])) as { status: { code: number } }[];
    assert.equal(info[0].status.code, 2, 'stanza exists, no backups yet');
  });

  test('names the archive setting to change when archiving is off, and creates nothing', async () => {
    const f = await h.expectFailure('setupStanza', { cluster: 'noarchive' });
    assert.match(f.message, /archive_mode is 'off', must be 'on'/);
    assert.equal(f.nonRetryable, true);
    assert.deepEqual(
      (await h.scheduledActivities(f.handle)).filter((a) => a === 'createStanza'),
      [],
    );
    const info = (await pgbackrestJson(noArchive, ['info'])) as { status: { code: number } }[];
    assert.equal(info[0].status.code, 1, 'no stanza was created');
  });
});

describe('backups', () => {
  const labels: Record<string, string> = {};

  test('full, diff and incr backups land in the repository with the right types and annotations', async () => {
    const full = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full', annotations: { ticket: 'OPS-1' } });
    labels.full = full.set.label;
    await sql(main, "INSERT INTO orders (note) SELECT 'row ' || g FROM generate_series(1, 500) g");
    const diff = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'diff' });
    await sql(main, "INSERT INTO orders (note) SELECT 'more ' || g FROM generate_series(1, 500) g");
    const incr = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'incr' });

    assert.equal(full.set.type, 'full');
    assert.equal(diff.set.type, 'diff');
    assert.equal(diff.set.prior, full.set.label);
    assert.equal(incr.set.type, 'incr');
    assert.equal(incr.set.prior, diff.set.label);

    const sets = await repoSets(main);
    assert.deepEqual(
      sets.map((s) => [s.label, s.type]),
      [
        [full.set.label, 'full'],
        [diff.set.label, 'diff'],
        [incr.set.label, 'incr'],
      ],
    );
    assert.equal(sets[0].annotation?.ticket, 'OPS-1');
    assert.match(sets[0].annotation?.['pgdr-run'] ?? '', /^[0-9a-f-]{36}$/, 'every set names the workflow run that made it');

    // The workflow's result is what pgbackrest info says.
    const raw = sets[2];
    assert.equal(incr.set.startedAt, new Date(raw.timestamp.start * 1000).toISOString());
    assert.equal(incr.set.stoppedAt, new Date(raw.timestamp.stop * 1000).toISOString());
    assert.equal(incr.set.lsnStop, raw.lsn.stop);
  });

  test('backupStatus shows the sets and a recoverable window reaching the last archived WAL', async () => {
    await sql(main, 'SELECT pg_switch_wal()');
    await new Promise((r) => setTimeout(r, 1500));
    const info = await h.execute<StanzaInfo>('backupStatus', { cluster: 'main' });
    assert.equal(info.status.code, 0);
    assert.deepEqual(
      info.sets.map((s) => s.type),
      ['full', 'diff', 'incr'],
    );
    assert.ok(info.window, 'window present');
    assert.equal(info.window!.from, info.sets[0].stoppedAt);
    assert.equal(info.window!.toSource, 'archiver');
    assert.ok(info.window!.to > info.sets[2].stoppedAt);
  });

  test('a named snapshot is a full backup with a restore point of the same name, recorded with its LSN', async () => {
    const r = await h.execute<BackupResult>('backup', { cluster: 'main', snapshot: 'pre-migration-v2.3' });
    assert.equal(r.set.type, 'full');
    assert.ok(r.snapshot);
    assert.equal(r.snapshot!.name, 'pre-migration-v2.3');
    assert.match(r.snapshot!.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.ok(lsnToBigInt(r.snapshot!.lsn) > lsnToBigInt(r.set.lsnStop!), 'the restore point comes after the backup ends');
    const sets = await repoSets(main);
    const snap = sets.find((s) => s.label === r.set.label)!;
    assert.equal(snap.annotation?.['pgdr-snapshot'], 'pre-migration-v2.3');
    assert.equal(snap.annotation?.['pgdr-restore-point-lsn'], r.snapshot!.lsn);
    // The WAL segment holding the restore point reached the archive.
    const [arch] = await sql<{ last_archived_wal: string }>(main, 'SELECT last_archived_wal FROM pg_stat_archiver');
    assert.ok(arch.last_archived_wal >= r.snapshot!.walFile);
  });

  test('a snapshot name that is already used is refused before any backup', async () => {
    const f = await h.expectFailure('backup', { cluster: 'main', snapshot: 'pre-migration-v2.3' });
    assert.match(f.message, /snapshot "pre-migration-v2.3" already exists/);
    assert.ok(!(await h.scheduledActivities(f.handle)).includes('takeBackup'));
  });
});

describe('bad input is refused before pgBackRest runs', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown cluster', { cluster: 'nope', type: 'full' }, /unknown cluster "nope" \(configured: main, noarchive/],
    ['unknown type', { cluster: 'main', type: 'weekly' }, /type must be one of full, diff, incr/],
    ['bad snapshot name', { cluster: 'main', snapshot: 'drop table; --' }, /snapshot names: 1-63 characters/],
    ['too long snapshot name', { cluster: 'main', snapshot: 'x'.repeat(64) }, /snapshot names/],
    ['snapshot with diff type', { cluster: 'main', snapshot: 'ok-name', type: 'diff' }, /always a full backup/],
    ['reserved annotation', { cluster: 'main', annotations: { 'pgdr-verified': 'yes' } }, /reserved/],
    ['unknown field', { cluster: 'main', typo: 1 }, /unknown field\(s\) "typo"/],
    ['missing cluster', { type: 'full' }, /cluster is required/],
    ['unknown repo', { cluster: 'main', repo: 7 }, /has no repo7/],
  ];
  for (const [name, input, re] of cases) {
    test(name, async () => {
      const f = await h.expectFailure('backup', input);
      assert.match(f.message, re);
      assert.equal(f.nonRetryable, true);
      assert.ok(!(await h.scheduledActivities(f.handle)).includes('takeBackup'), 'no pgBackRest backup was scheduled');
    });
  }
});

describe('notifications come after validation', () => {
  test('an unknown or hostile cluster name is refused with BadInput and nothing reaches Slack', async () => {
    // Control: a runbook for a configured cluster does post to the fake (whether it succeeds or not).
    slack.calls.length = 0;
    await h.execute('expire', { cluster: 'main', dryRun: true }).catch(() => undefined);
    assert.ok(slack.callsOf('chat.postMessage').length > 0, 'a valid runbook posts to the Slack fake');

    const refused: [string, unknown, RegExp][] = [
      ['backup', { cluster: 'x<script>', type: 'full' }, /unknown cluster "x<script>"/],
      ['backup', { cluster: 'main', repo: 7 }, /has no repo7/],
      ['expire', { cluster: 'x<script>', dryRun: true }, /unknown cluster "x<script>"/],
    ];
    for (const [workflow, input, re] of refused) {
      slack.calls.length = 0;
      const f = await h.expectFailure(workflow, input);
      assert.match(f.message, re);
      assert.equal(f.type, 'BadInput');
      assert.deepEqual(slack.calls, [], `${workflow} ${JSON.stringify(input)}: no Slack message`);
      const acts = await h.scheduledActivities(f.handle);
      assert.ok(!acts.includes('notify'), `${workflow} ${JSON.stringify(input)}: no notify activity (${acts.join(', ')})`);
    }
  });
});

describe('configuration', () => {
  test('a missing or wrong field names the file, the field and what is expected', () => {
    const file = join(h.root, 'bad.yaml');
    writeFileSync(file, 'clusters:\n  - name: main\n    host: main\n    stanza: main\n    dataDir: /x\n    port: "5432"\n    socketDir: /tmp\n');
    assert.throws(
      () => loadConfig(file),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, new RegExp(`${file.replace(/[.]/g, '\\.')}: invalid configuration`));
        assert.match(e.message, /clusters\[0\]\.pgbackrestConfig: expected string, got nothing/);
        assert.match(e.message, /clusters\[0\]\.port: expected number, got string "5432"/);
        return true;
      },
    );
  });

  test('`pgdr config check` exits non-zero on a bad file and zero on a good one', async () => {
    const bad = join(h.root, 'bad2.yaml');
    writeFileSync(bad, 'clusters: []\n');
    const r1 = await run('node', ['bin/pgdr', '--config', bad, 'config', 'check']);
    assert.notEqual(r1.exitCode, 0);
    assert.match(r1.stderr, /clusters: at least one cluster/);
    const r2 = await run('node', ['bin/pgdr', '--config', h.configFile, 'config', 'check']);
    assert.equal(r2.exitCode, 0, r2.stderr);
    assert.match(r2.stdout, /ok — 2 cluster\(s\)/);
  });
});

describe('concurrency and cancellation', () => {
  test('two backups started at once on one stanza both end well, with no lock error', async () => {
    const [a, b] = await Promise.all([h.start('backup', { cluster: 'main', type: 'incr' }), h.start('backup', { cluster: 'main', type: 'incr' })]);
    const [ra, rb] = (await Promise.all([a.result(), b.result()])) as BackupResult[];
    assert.notEqual(ra.set.label, rb.set.label);
    const labels = (await repoSets(main)).map((s) => s.label);
    assert.ok(labels.includes(ra.set.label) && labels.includes(rb.set.label));
    for (const hnd of [a, b]) {
      const text = JSON.stringify((await hnd.fetchHistory()).events);
      assert.doesNotMatch(text, /unable to acquire lock/);
    }
  });

  test('cancelling a running backup kills the pgBackRest processes', async () => {
    // Enough data that a full backup with heavy compression (gz at level 9 for this backup; the test
    // clusters use lz4) takes well over the test's checks.
    await sql(main, "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 1500000) g");
    const conf = readFileSync(main.pgbackrestConfig, 'utf8');
    writeFileSync(main.pgbackrestConfig, conf.replace('compress-type=lz4', 'compress-type=gz\ncompress-level=9'));
    const handle = await h.start('backup', { cluster: 'main', type: 'full', annotations: { purpose: 'cancel-test' } });
    await waitFor('pgbackrest backup to start', async () => (await processesMatching('pgbackrest', `--config=${main.pgbackrestConfig}`, `--stanza=${main.stanza}`, ' backup')).length > 0, 30_000, 50);
    await handle.cancel();
    await assert.rejects(handle.result(), (e: unknown) => e instanceof WorkflowFailedError);
    // ' backup' (the command and its backup:local workers), not archive-push: this file's folder is named
    // pgdr-test-backup-*, so every pgBackRest process of the cluster has "backup" in its --config.
    const left = await waitFor(
      'pgbackrest processes to be gone',
      async () => ((await processesMatching('pgbackrest', `--config=${main.pgbackrestConfig}`, `--stanza=${main.stanza}`, ' backup')).length === 0 ? 'gone' : undefined),
      5_000,
      100,
    ).catch(() => 'still running');
    assert.equal(left, 'gone', 'no pgbackrest backup process survives the cancellation');
    const sets = await repoSets(main);
    assert.ok(!sets.some((s) => s.annotation?.purpose === 'cancel-test'), 'the cancelled backup did not complete');
    writeFileSync(main.pgbackrestConfig, conf);
  });
});
