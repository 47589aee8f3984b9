/**
 * Notifications, health checks, expire and metrics against a real Temporal dev server, a real
 * PostgreSQL 15 cluster, real pgBackRest and a local fake of the Slack Web API.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeTextfile } from '../activities/metrics';
import { run } from '../activities/process';
import { PROJECT_ROOT } from '../common/paths';
import type { ArchiveHealthResult, ExpireResult, FreshnessResult } from '../common/health-inputs';
import type { BackupResult } from '../common/types';
import type { LocalCluster } from '../worker/local-cluster';
import { freePort, Harness, pgbackrestJson, sql, waitFor } from './helpers/harness';
import { SlackFake } from './helpers/slack-fake';

const h = new Harness('health');
const slack = new SlackFake();
let main: LocalCluster;
let metricsPort: number;
let textfile: string;
const TOKEN_ENV = 'PGDR_TEST_SLACK_TOKEN';

type RawSet = { label: string; type: string; timestamp: { start: number; stop: number } };
const repoSets = async () => ((await pgbackrestJson(main, ['info'])) as { backup: RawSet[] }[])[0].backup;
const posts = () => slack.callsOf('chat.postMessage');
const textOf = (c: { fields: Record<string, unknown> }) => String(c.fields.text);
const postsMatching = (re: RegExp) => posts().filter((c) => re.test(textOf(c)));

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}
function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = m[2].split(',').sort();
    if (want.every((w) => got.includes(w)) && got.length === want.length) return Number(m[3]);
  }
  return undefined;
}

before(async () => {
  await h.startTemporal();
  await slack.start();
  process.env[TOKEN_ENV] = 'xoxb-test-token';
  main = await h.addCluster({ name: 'main' });
  metricsPort = await freePort();
  textfile = join(h.root, 'metrics', 'pgdr.prom');
  h.writeConfig(
    {
      worker: { metricsPort, metricsTextfile: textfile },
      slack: { channel: 'C-ALERTS', tokenEnv: TOKEN_ENV, apiUrl: slack.url },
      stateDir: join(h.root, 'state'),
    },
    { main: { health: { maxAgeFull: '12s', maxAgeIncr: '12s', maxArchiveAge: '1h' } } },
  );
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
  await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
});
after(async () => {
  await h.teardown();
  await slack.stop();
});

describe('notifications', () => {
  test('a runbook posts start, a thread reply per step and success, naming cluster, runbook and a UI link', async () => {
    slack.calls.length = 0;
    const seq = (slack as unknown as { seq: number }).seq; // the fake's next ts: the start message's
    const r = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'incr' }, 'notify-ok-1');
    const p = posts();
    const start = p[0];
    assert.match(textOf(start), /Started: Backup: incr backup of cluster main/);
    assert.match(textOf(start), /cluster \*main\* · runbook \*backup\*/);
    assert.match(textOf(start), /\/namespaces\/default\/workflows\/notify-ok-1\|open in Temporal UI>/);
    assert.equal(start.fields.channel, 'C-ALERTS');
    assert.equal(start.token, 'xoxb-test-token');
    assert.ok(Array.isArray(start.fields.blocks) && (start.fields.blocks as unknown[]).length >= 2, 'blocks sent with text');
    assert.equal(start.fields.thread_ts, undefined);
    const replies = p.slice(1);
    const startTs = `1700000000.${String(seq).padStart(6, '0')}`;
    assert.ok(replies.every((c) => c.fields.thread_ts === startTs), 'every other message is a reply in the run thread');
    assert.ok(replies.some((c) => textOf(c).includes(`Take the incr backup of stanza main`)));
    const success = replies.find((c) => /Succeeded: Backup: incr backup of cluster main/.test(textOf(c)));
    assert.ok(success, 'success message');
    // The cluster is looked up (validated) before the first message: only the steps after it have replies.
    assert.equal(p.length, 1 + 2 + 1, 'start, 2 steps, success');
    assert.equal(r.set.type, 'incr');
  });

  test('Slack answering 500 and 429: the runbook succeeds and every notification is retried until delivered', async () => {
    slack.calls.length = 0;
    slack.failNext({ status: 500 }, 2);
    slack.failNext({ status: 429, retryAfterSeconds: 1 });
    const t0 = Date.now();
    const r = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'incr' });
    assert.equal(r.set.type, 'incr');
    const p = posts();
    // 4 notifications delivered (start, 2 steps after the validating look-up, success) + 3 failed attempts retried.
    assert.equal(p.length, 4 + 3, `calls: ${p.map((c) => textOf(c).split('\n')[0]).join(' | ')}`);
    const distinct = new Set(p.map((c) => `${c.fields.thread_ts ?? ''}|${textOf(c)}`));
    assert.equal(distinct.size, 4, 'three of the calls were retries of the same message');
    assert.ok(Date.now() - t0 < 30_000);
    const sets = await repoSets();
    assert.ok(sets.some((s) => s.label === r.set.label));
  });

  test('Slack down for good: the runbook still succeeds, the notifier gave up after its retries', async () => {
    slack.calls.length = 0;
    slack.failNext({ status: 500 }, 100);
    const r = await h.execute<BackupResult>('backup', { cluster: 'main', type: 'incr' });
    assert.equal(r.set.type, 'incr');
    // Start and success messages, each tried 1 + 4 times; no thread replies without a thread.
    assert.equal(posts().length, 2 * 5);
    (slack as unknown as { failures: unknown[] }).failures.length = 0;
  });
});

describe('backup freshness', () => {
  test('stale backups alert once per incident, and a new backup sends one recovery message', async () => {
    await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
    const fresh = await h.execute<FreshnessResult>('backupFreshness', { cluster: 'main' });
    assert.equal(fresh.ok, true, fresh.problems.join('; '));
    slack.calls.length = 0;
    // Thresholds are 12 s: wait until the newest backup is older.
    const newestStop = Math.max(...(await repoSets()).map((s) => s.timestamp.stop));
    await new Promise((r) => setTimeout(r, Math.max(0, (newestStop + 13) * 1000 - Date.now())));

    const stale = await h.execute<FreshnessResult>('backupFreshness', { cluster: 'main' });
    assert.equal(stale.ok, false);
    assert.equal(stale.transition, 'opened');
    assert.equal(stale.notified, 'alert');
    assert.ok(stale.problems.some((p) => /repo1: newest full backup \d{8}-\d{6}F is \d+(\.\d)? s old \(limit 12s\)/.test(p)), stale.problems.join('; '));
    assert.ok(stale.problems.some((p) => /repo1: newest backup of any type .* \(limit 12s\)/.test(p)));
    const again = await h.execute<FreshnessResult>('backupFreshness', { cluster: 'main' });
    assert.equal(again.ok, false);
    assert.equal(again.transition, 'ongoing');
    assert.equal(again.notified, undefined);

    const openState = JSON.parse(readFileSync(join(h.root, 'state', 'health', 'main.freshness.json'), 'utf8')) as { ok: boolean; alertTs?: string };
    assert.equal(openState.ok, false);
    assert.match(openState.alertTs ?? '', /^1700000000\.\d{6}$/, 'the alert ts is kept for the recovery thread');
    const alerts = postsMatching(/Backup freshness failing on cluster main/);
    assert.equal(alerts.length, 1, 'exactly one alert for two failing checks');
    assert.match(textOf(alerts[0]), /newest full backup \d{8}-\d{6}F is \d+(\.\d)? s old/);
    assert.match(textOf(alerts[0]), /open in Temporal UI/);

    await h.execute<BackupResult>('backup', { cluster: 'main', type: 'full' });
    const back = await h.execute<FreshnessResult>('backupFreshness', { cluster: 'main' });
    assert.equal(back.ok, true, back.problems.join('; '));
    assert.equal(back.transition, 'resolved');
    const recoveries = postsMatching(/Backup freshness back to normal on cluster main/);
    assert.equal(recoveries.length, 1);
    assert.equal(recoveries[0].fields.thread_ts, openState.alertTs, 'recovery replies in the alert thread');
    assert.equal(recoveries[0].fields.reply_broadcast, 'true');
    assert.equal(postsMatching(/Backup freshness failing/).length, 1, 'still one alert');
    // The health state on the host says the incident is closed.
    const state = JSON.parse(readFileSync(join(h.root, 'state', 'health', 'main.freshness.json'), 'utf8')) as { ok: boolean };
    assert.equal(state.ok, true);
  });
});

describe('metrics', () => {
  test('the endpoint shows the timestamps and counts of the backups just taken, the textfile the same', async () => {
    await new Promise((r) => setTimeout(r, 5_100)); // past the scrape refresh interval
    const text = await scrape();
    const sets = await repoSets();
    const newest = (type: string) => Math.max(...sets.filter((s) => s.type === type).map((s) => s.timestamp.stop));
    const l = { stanza: 'main', repo: 'repo1' };
    assert.equal(metricValue(text, 'pgdr_backup_last_timestamp_seconds', { ...l, type: 'full' }), newest('full'));
    assert.equal(metricValue(text, 'pgdr_backup_last_timestamp_seconds', { ...l, type: 'incr' }), newest('incr'));
    assert.equal(metricValue(text, 'pgdr_backup_last_timestamp_seconds', { ...l, type: 'diff' }), undefined, 'no diff taken: no sample');
    assert.equal(metricValue(text, 'pgdr_backup_newest_timestamp_seconds', l), Math.max(...sets.map((s) => s.timestamp.stop)));
    assert.equal(metricValue(text, 'pgdr_backup_sets', { ...l, type: 'full' }), sets.filter((s) => s.type === 'full').length);
    assert.equal(metricValue(text, 'pgdr_backup_sets', { ...l, type: 'incr' }), sets.filter((s) => s.type === 'incr').length);
    const newestFull = sets.filter((s) => s.type === 'full').sort((a, b) => a.timestamp.stop - b.timestamp.stop).pop()!;
    assert.equal(metricValue(text, 'pgdr_backup_last_duration_seconds', { ...l, type: 'full' }), newestFull.timestamp.stop - newestFull.timestamp.start);
    assert.ok((metricValue(text, 'pgdr_backup_repo_size_bytes', l) ?? 0) > 1_000_000);
    assert.ok((metricValue(text, 'pgdr_backup_last_size_bytes', { ...l, type: 'full' }) ?? 0) > 10_000_000);
    const [arch] = await sql<{ t: number; f: string }>(main, 'SELECT extract(epoch from last_archived_time)::float8 AS t, failed_count::text AS f FROM pg_stat_archiver');
    assert.ok(Math.abs((metricValue(text, 'pgdr_wal_last_archived_timestamp_seconds', { cluster: 'main', stanza: 'main' }) ?? 0) - arch.t) < 0.01);
    assert.equal(metricValue(text, 'pgdr_wal_archive_failures', { cluster: 'main', stanza: 'main' }), Number(arch.f));
    assert.equal(metricValue(text, 'pgdr_health_check_status', { cluster: 'main', check: 'freshness' }), 1);
    // Nothing in pgbackrest_exporter's namespace, and Prometheus' own linter has nothing to say.
    assert.doesNotMatch(text, /^pgbackrest_/m);
    const lint = await run('promtool', ['check', 'metrics'], { input: text });
    assert.equal(lint.exitCode, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);
    assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'no lint findings');

    const file = readFileSync(textfile, 'utf8');
    assert.equal(metricValue(file, 'pgdr_backup_last_timestamp_seconds', { ...l, type: 'full' }), newest('full'));
    assert.match(file, /# HELP pgdr_backup_last_timestamp_seconds/);
  });

  test('the textfile is replaced atomically: a new inode per write, never a partial file, no temp files left', async () => {
    const inodes = new Set<number>();
    let reads = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const text = readFileSync(textfile, 'utf8');
        assert.ok(text.endsWith('\n') && text.includes('pgdr_health_check_status'), 'a complete file');
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 30; i++) {
      await writeTextfile(textfile);
      inodes.add(statSync(textfile).ino);
    }
    stop = true;
    await reader;
    assert.ok(reads > 0);
    assert.ok(inodes.size >= 2, 'rename gives the file a new inode; an in-place write would keep one');
    assert.deepEqual(
      readdirSync(dirname(textfile)).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });
});

describe('expire', () => {
  test('refuses to expire the latest full backup, before pgBackRest runs', async () => {
    const fulls = (await repoSets()).filter((s) => s.type === 'full');
    const latest = fulls[fulls.length - 1].label;
    const f = await h.expectFailure('expire', { cluster: 'main', set: latest });
    assert.match(f.message, new RegExp(`refusing to expire ${latest}: it is the latest full backup of stanza "main" in repo1`));
    assert.equal(f.type, 'ExpireRefused');
    assert.ok(!(await h.scheduledActivities(f.handle)).includes('expireBackups'));
    assert.ok((await repoSets()).some((s) => s.label === latest));
  });

  test('a dry run with a one-off retention shows what would go and removes nothing; the real run removes it', async () => {
    const before = await repoSets();
    const fulls = before.filter((s) => s.type === 'full');
    assert.ok(fulls.length >= 2);
    const latest = fulls[fulls.length - 1].label;
    const olderChain = before.filter((s) => !s.label.startsWith(latest.slice(0, 16))).map((s) => s.label);

    const dry = await h.execute<ExpireResult>('expire', { cluster: 'main', retentionFull: 1, dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.match(dry.retention, /full=1 \(one-off override\)/);
    assert.deepEqual([...dry.expired].sort(), [...olderChain].sort(), dry.output);
    assert.deepEqual((await repoSets()).map((s) => s.label), before.map((s) => s.label), 'nothing removed');

    const real = await h.execute<ExpireResult>('expire', { cluster: 'main', retentionFull: 1 });
    assert.deepEqual([...real.expired].sort(), [...olderChain].sort());
    const after = (await repoSets()).map((s) => s.label);
    assert.ok(after.includes(latest));
    assert.ok(olderChain.every((l) => !after.includes(l)));

    const only = await h.expectFailure('expire', { cluster: 'main', set: latest });
    assert.match(only.message, /it is the only full backup of stanza "main" in repo1/);
  });
});

describe('WAL archive health', () => {
  test('a broken archive_command alerts once, naming the failing WAL and the pgBackRest error; fixing it recovers', async () => {
    const ok = await h.execute<ArchiveHealthResult>('archiveHealth', { cluster: 'main', archiveTimeoutSeconds: 5 });
    assert.equal(ok.ok, true, ok.problems.join('; '));
    slack.calls.length = 0;

    await sql(main, "ALTER SYSTEM SET archive_command = '/bin/false'");
    await sql(main, 'SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 300));
    await sql(main, 'CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t SELECT generate_series(1, 1000)');
    const [sw] = await sql<{ wal: string }>(main, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
    await waitFor('the archiver to fail on the switched segment', async () => {
      const [a] = await sql<{ w: string | null }>(main, 'SELECT last_failed_wal AS w FROM pg_stat_archiver');
      return a.w === sw.wal;
    });

    const bad = await h.execute<ArchiveHealthResult>('archiveHealth', { cluster: 'main', archiveTimeoutSeconds: 3 });
    assert.equal(bad.ok, false);
    assert.equal(bad.failingWal, sw.wal);
    assert.equal(bad.checkPassed, false);
    // pgBackRest's exact words: it refuses an archive_command that is not its own.
    assert.equal(bad.checkError, "[068] archive_command '/bin/false' must contain pgbackrest");
    assert.equal(bad.notified, 'alert');
    const alerts = postsMatching(/WAL archiving failing on cluster main/);
    assert.equal(alerts.length, 1);
    assert.ok(textOf(alerts[0]).includes(sw.wal), textOf(alerts[0]));
    assert.ok(textOf(alerts[0]).includes("error: [068] archive_command '/bin/false' must contain pgbackrest"), textOf(alerts[0]));
    const blocksText = JSON.stringify(alerts[0].fields.blocks);
    assert.ok(blocksText.includes('Failing WAL') && blocksText.includes(sw.wal));

    const again = await h.execute<ArchiveHealthResult>('archiveHealth', { cluster: 'main', archiveTimeoutSeconds: 3 });
    assert.equal(again.ok, false);
    assert.equal(again.transition, 'ongoing');
    assert.ok((again.newFailures ?? 0) >= 1, 'failed_count grew since the previous check');
    assert.equal(postsMatching(/WAL archiving failing/).length, 1, 'no second alert');
    const openState = JSON.parse(readFileSync(join(h.root, 'state', 'health', 'main.archive.json'), 'utf8')) as { alertTs?: string };
    await new Promise((r) => setTimeout(r, 5_100));
    assert.equal(metricValue(await scrape(), 'pgdr_health_check_status', { cluster: 'main', check: 'archive' }), 0);

    await sql(main, 'ALTER SYSTEM RESET archive_command');
    await sql(main, 'SELECT pg_reload_conf()');
    await waitFor(
      'archiving to catch up',
      async () => {
        const [a] = await sql<{ w: string | null }>(main, 'SELECT last_archived_wal AS w FROM pg_stat_archiver');
        return (a.w ?? '') >= sw.wal;
      },
      90_000,
      500,
    );
    const fixed = await h.execute<ArchiveHealthResult>('archiveHealth', { cluster: 'main', archiveTimeoutSeconds: 10 });
    assert.equal(fixed.ok, true, fixed.problems.join('; '));
    assert.equal(fixed.transition, 'resolved');
    const rec = postsMatching(/WAL archiving back to normal on cluster main/);
    assert.equal(rec.length, 1);
    assert.equal(rec[0].fields.thread_ts, openState.alertTs);
    assert.equal(rec[0].fields.reply_broadcast, 'true');
  });
});

describe('alert rules', () => {
  test('config/alerts.yml passes `promtool check rules` and its unit tests (`promtool test rules`)', async () => {
    const check = await run('promtool', ['check', 'rules', 'config/alerts.yml'], { cwd: PROJECT_ROOT });
    assert.equal(check.exitCode, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 14 rules found/);
    const unit = await run('promtool', ['test', 'rules', 'config/alerts.test.yml'], { cwd: PROJECT_ROOT });
    assert.equal(unit.exitCode, 0, unit.stdout + unit.stderr);
    assert.match(unit.stdout, /SUCCESS/);
    // Every metric the rules use is one pgdr exports.
    const rules = readFileSync(join(PROJECT_ROOT, 'config', 'alerts.yml'), 'utf8');
    const exported = (await scrape()) + readFileSync(join(PROJECT_ROOT, 'activities', 'metrics.ts'), 'utf8');
    const ruleText = rules.replace(/^\s*#.*$/gm, '');
    assert.doesNotMatch(ruleText, /\bpgbackrest_[a-z_]+/, "pgbackrest_exporter's namespace is not read");
    for (const m of new Set(ruleText.match(/\bpgdr_[a-z_]+/g) ?? [])) assert.ok(exported.includes(`'${m}'`) || exported.includes(`# TYPE ${m} `), `metric ${m} is exported`);
  });
});
