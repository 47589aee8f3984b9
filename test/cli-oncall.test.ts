/**
 * The on-call paths, driven the way a person drives them — `pgdr dev` (what `npm start` runs)
 * piped into `tee` on a pseudo-terminal and stopped with Ctrl-C, the `pgdr` CLI in another "terminal"
 * (child processes; a pseudo-terminal where a prompt matters). One embedded default serves every test.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../activities/process';
import { formatPending } from '../client/approvals-cli';
import { PROJECT_ROOT } from '../common/paths';
import type { ApprovalView } from '../common/approvals';
import { localCluster } from '../worker/local-cluster';
import { freePort, sql, waitFor } from './helpers/harness';

const root = mkdtempSync(join(tmpdir(), 'pgdr-oncall-'));
chmodSync(root, 0o755); // the postgres OS user goes through it
const stateDir = join(root, 'state');
const ports = { temporal: 0, ui: 0, pg: 0, metrics: 0 };
const env = () => ({
  PGDR_STATE_DIR: stateDir,
  PGDR_TEMPORAL_PORT: String(ports.temporal),
  PGDR_UI_PORT: String(ports.ui),
  PGDR_DEMO_PG_PORT: String(ports.pg),
  PGDR_METRICS_PORT: String(ports.metrics),
  PGDR_LOG_LEVEL: 'warn',
});
const demo = () => localCluster({ dir: join(stateDir, 'demo'), name: 'demo', port: ports.pg });
const TOKEN = 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA';
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** A program on a pseudo-terminal (util-linux `script`): what it prints, and a way to type into it. */
const terminals: Terminal[] = [];
class Terminal {
  out = '';
  readonly p: ChildProcess;
  readonly exited: Promise<number | null>;
  constructor(commandLine: string) {
    this.p = spawn('script', ['-q', '-e', '-E', 'never', '-c', commandLine, '/dev/null'], { cwd: PROJECT_ROOT, env: { ...process.env, ...env() }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.p.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.p.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((r) => this.p.once('exit', (code) => r(code)));
    terminals.push(this);
  }
  type(text: string) {
    this.p.stdin!.write(text);
  }
  async waitFor(re: RegExp, ms = 120_000): Promise<void> {
    await waitFor(`${re} on the terminal (got: …${this.out.slice(-600)})`, async () => re.test(this.out), ms, 100);
  }
}

/** The CLI as a person types it in another terminal (no terminal: stdin/stdout are pipes). */
async function pgdr(args: string[]) {
  return run(process.execPath, [join(PROJECT_ROOT, 'bin', 'pgdr'), ...args], { cwd: root, env: env() });
}
async function pgdrJson<T = Record<string, unknown>>(args: string[]) {
  const r = await pgdr(['--json', ...args]);
  let json: T | undefined;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    /* asserted by the caller */
  }
  return { ...r, json };
}

/** Processes whose command line names this test's state folder (the stack and its leftovers). */
/** Processes named by this test's folder; with `started`, also every process this test started (PGDR_STATE_DIR in its environment). */
function ourProcesses(started = false): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const ours = argv.includes(stateDir) || (started && readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`PGDR_STATE_DIR=${stateDir}`));
      if (ours && pid !== String(process.pid)) found.push(`${pid} ${argv}`);
    } catch {
      /* gone */
    }
  }
  return found;
}
const portOpen = async (port: number) => (await run('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`])).exitCode === 0;

let stack: Terminal;
let inPlace: { t: Terminal; id: string } | undefined;
before(async () => {
  ports.temporal = await freePort();
  ports.ui = await freePort();
  ports.pg = await freePort();
  ports.metrics = await freePort();
  // What the issue did: the start command piped into tee, on a terminal.
  stack = new Terminal(`node ${quote(join(PROJECT_ROOT, 'bin', 'pgdr'))} dev 2>&1 | tee ${quote(join(root, 'start.log'))}`);
  await stack.waitFor(/Ctrl-C stops everything/, 240_000);
});

after(async () => {
  // Whatever a failed test left: stop only what names this test's folder.
  const running = terminals.filter((t) => t.p.exitCode === null);
  for (const t of running) t.type('\x03');
  await Promise.race([Promise.all(running.map((t) => t.exited)), new Promise((r) => setTimeout(r, 60_000).unref())]);
  for (const line of ourProcesses(true)) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(root, { recursive: true, force: true });
});

describe('on-call paths', () => {
  test('the start banner tells the truth: the CLI finds the demo config under PGDR_STATE_DIR, no "No workflows registered" warning', async () => {
    assert.match(stack.out, new RegExp(`Config\\s+${stateDir}/demo/pgdr.yaml\\s+\\(the pgdr CLI finds it with PGDR_STATE_DIR=`));
    assert.doesNotMatch(stack.out, /No workflows registered/);
    const r = await pgdrJson<{ file: string; ok: boolean }>(['config', 'check']);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.equal(r.json?.file, join(stateDir, 'demo', 'pgdr.yaml'));
  });

  test('--json: errors are JSON with a kind and an exit code by kind; the backup result carries its workflow id; a backup needs its type', async () => {
    const unknown = await pgdrJson<{ error: { kind: string; message: string; exitCode: number } }>(['backup', '--cluster', 'nope', '--type', 'full']);
    assert.equal(unknown.exitCode, 3);
    assert.equal(unknown.json?.error.kind, 'usage');
    assert.match(unknown.json!.error.message, /unknown cluster "nope"/);
    assert.equal(unknown.stderr.trim(), '', 'nothing but the JSON');
    const badOption = await pgdrJson<{ error: { kind: string } }>(['backup', '--cluster', 'demo', '--tpye', 'full']);
    assert.equal(badOption.exitCode, 3);
    assert.equal(badOption.json?.error.kind, 'usage');
    const noType = await pgdr(['backup', '--cluster', 'demo']);
    assert.equal(noType.exitCode, 3);
    assert.match(noType.stderr, /choose the backup type: --type full, diff or incr/);

    const b = await pgdrJson<{ workflowId: string; set: { label: string; startedAt: string } }>(['backup', '--cluster', 'demo', '--type', 'full']);
    assert.equal(b.exitCode, 0, b.stdout + b.stderr);
    assert.match(b.json!.workflowId, /^backup-demo-/);
    assert.match(b.json!.set.startedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/, 'ISO 8601 in JSON');
  });

  test('one human time format; info shows the timeline of each set; health shows ages against named thresholds', async () => {
    const info = await pgdr(['info', '--cluster', 'demo']);
    assert.equal(info.exitCode, 0, info.stderr);
    assert.match(info.stdout, /recoverable window: \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC → \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
    assert.doesNotMatch(info.stdout, /\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00)\b/, 'no other spelling of a time');
    assert.match(info.stdout, /TIMELINE/);
    assert.match(info.stdout, /\d{8}-\d{6}F\s+full\s+repo1\s+\S+ \S+ UTC\s+1\s/);
    const health = await pgdr(['health', '--cluster', 'demo']);
    assert.match(health.stdout, /freshness: (ok|FAILING) \(checked .* UTC\)/);
    assert.match(health.stdout, /repo1 newest full: \d{8}-\d{6}F, .* old \(limit health\.maxAgeFull 25h\)/);
    assert.match(health.stdout, /last archived WAL: [0-9A-F]{24}, .* ago \(limit health\.maxArchiveAge 1h\)/);
  });

  test('expire --dry-run --retention-full 1: what would go and what would stay are disjoint, and the retention pgBackRest read is shown', async () => {
    const r = await pgdr(['expire', '--cluster', 'demo', '--dry-run', '--retention-full', '1']);
    assert.equal(r.exitCode, 0, r.stderr);
    const list = (label: string) => (r.stdout.match(new RegExp(`^${label}: (.*)$`, 'm'))?.[1] ?? '').split(', ').filter((x) => /^\d/.test(x));
    const gone = list('Would expire');
    const stay = list('Would remain');
    assert.ok(gone.length >= 1, r.stdout);
    assert.ok(stay.length >= 1, r.stdout);
    assert.deepEqual(gone.filter((x) => stay.includes(x)), [], r.stdout);
    assert.match(r.stdout, /Retention: full=1 \(one-off override\)/);
    const plain = await pgdr(['expire', '--cluster', 'demo', '--dry-run']);
    assert.match(plain.stdout, /Retention: pgbackrest\.conf — pgBackRest ran with repo1-retention-full=9999999/, plain.stdout);
  });

  test("metrics: pgdr's own namespace only, `promtool check metrics` clean, backup duration and the last runbook results", async () => {
    const text = await waitFor(
      'the last backup runbook result in the metrics',
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
        return /pgdr_runbook_last_success\{kind="backup"\} 1/.test(t) && t;
      },
      40_000,
      1000,
    );
    assert.doesNotMatch(text, /^pgbackrest_/m);
    assert.match(text, /^pgdr_backup_last_duration_seconds\{stanza="demo",repo="repo1",type="full"\} \d/m);
    assert.match(text, /^pgdr_wal_archive_failures\{/m);
    const lint = await run('promtool', ['check', 'metrics'], { input: text });
    assert.equal(lint.exitCode, 0, lint.stdout + lint.stderr);
    assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '');
  });

  test('restore to seconds ago: refused with what to do, or the WAL gap is closed with --switch-wal; the copy is started, stopped and guarded by clusters start|stop|drop', async () => {
    await sql(demo(), "INSERT INTO customers (name) VALUES ('just before the DELETE')", [], 'app');
    const target = new Date(Date.now() + 1000).toISOString();
    await new Promise((r) => setTimeout(r, 1500));
    const refused = await pgdrJson<{ error: { kind: string; message: string; hint: string } }>(['restore', '--cluster', 'demo', '--new-cluster', 'copy', '--time', target, '--no-switch-wal']);
    assert.equal(refused.exitCode, 3, refused.stdout + refused.stderr);
    assert.match(refused.json!.error.message, /after the last archived WAL.*Nothing was started/);
    assert.match(refused.json!.error.hint, /--switch-wal.*SELECT pg_switch_wal\(\)` on the primary of demo.*archive_timeout/);

    // A WAL switch without a commit (what `pgbackrest check` does; health checks and backups too) puts the
    // archiver's time after the target: the window then says "archived", but recovery to that time stops
    // only at a commit after it. --switch-wal still makes one.
    const check = await run('pgbackrest', [`--config=${demo().pgbackrestConfig}`, `--stanza=${demo().stanza}`, 'check'], { user: demo().osUser });
    assert.equal(check.exitCode, 0, check.stderr);
    const ok = await pgdrJson<{ workflowId: string; name: string; dataDir: string }>(['restore', '--cluster', 'demo', '--new-cluster', 'copy', '--time', target, '--switch-wal']);
    assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
    assert.match(ok.stderr, /a commit after the target time is archived/);
    assert.match(ok.json!.workflowId, /^restore-new-demo-/);
    type Row = { name: string; running: boolean; port: number };
    const state = async () => (await pgdrJson<Row[]>(['clusters', 'list'])).json!.find((c) => c.name === 'copy');
    assert.equal((await state())?.running, true);

    const noYes = await pgdr(['clusters', 'drop', 'copy']);
    assert.equal(noYes.exitCode, 3);
    assert.match(noYes.stderr, /copy is RUNNING .*Pass --yes/);
    assert.equal((await state())?.running, true, 'not dropped');

    const stop = await pgdr(['clusters', 'stop', 'copy']);
    assert.equal(stop.exitCode, 0, stop.stderr);
    assert.match(stop.stdout, /copy on host demo stopped/);
    assert.equal((await state())?.running, false);
    const start = await pgdr(['clusters', 'start', 'copy']);
    assert.equal(start.exitCode, 0, start.stderr);
    assert.equal((await state())?.running, true, 'started again; Ctrl-C below must stop it');
  });

  test('dr full-site --host <the host that still runs the cluster> is refused at request time', async () => {
    const r = await pgdrJson<{ error: { kind: string; message: string } }>(['dr', 'full-site', '--cluster', 'demo', '--host', 'demo', '--reason', 'test']);
    assert.equal(r.exitCode, 3, r.stdout + r.stderr);
    assert.match(r.json!.error.message, /host demo still runs cluster demo.*Nothing was started/);
  });

  test('approvals list: one kind in the header, no null details', () => {
    const v = {
      workflowId: 'dr-full-site-x',
      approvalId: 'approval-1',
      kind: 'restoreInPlace',
      workflowType: 'restoreInPlace',
      action: 'restore',
      details: { cluster: 'demo', repo: null, target: 'latest' },
      requestedBy: 'root',
      reason: 'r',
      required: 1,
      votes: [],
      mayStillVote: ['alice'],
      deadline: '2026-11-21T22:35:42.989Z',
    } as unknown as ApprovalView;
    const text = formatPending(v);
    assert.match(text, /^dr-full-site-x {2}approval-1 {2}\(restoreInPlace\)$/m);
    assert.doesNotMatch(text, /repo: null/);
    assert.match(text, /deadline: {5}2026-11-21 22:35:42 UTC/);
  });

  test('in place at a terminal: the prompt shows the token, an empty reason is asked again, a sign-off question is withdrawn when someone else signs', async () => {
    const wrong = await pgdrJson<{ error: { message: string } }>(['restore', '--cluster', 'demo', '--in-place', '--latest', '--confirm', 'yes', '--reason', 'x']);
    assert.equal(wrong.exitCode, 3);
    assert.match(wrong.json!.error.message, new RegExp(`does not match restore\\.confirmationToken of cluster demo: pass --confirm ${TOKEN}\\. Nothing was started`));

    const t = new Terminal(`PGDR_IDENTITY=root node ${quote(join(PROJECT_ROOT, 'bin', 'pgdr'))} restore --cluster demo --in-place --latest`);
    await t.waitFor(new RegExp(`Type ${TOKEN} to continue`));
    t.type(`${TOKEN}\r`);
    await t.waitFor(/Reason for this restore:/);
    t.type('\r');
    await t.waitFor(/a reason is required/);
    t.type('testing the prompts\r');
    await t.waitFor(/Who signs "Target cluster and mode \(IN PLACE\) confirmed[^"]*" \(not root; one of alice, bob\)\?/);
    const id = t.out.match(/workflow (restore-in-place-demo-\S+)/)![1];
    const signed = await pgdr(['check', id, 'target-confirmed', '--as', 'bob', '--note', 'from the other terminal']);
    assert.equal(signed.exitCode, 0, signed.stderr);
    await t.waitFor(/"Target cluster and mode \(IN PLACE\) confirmed[^"]*" was signed by bob at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC \(from the other terminal\); question withdrawn/, 15_000);
    // Leave it there: the next test stops the server under it. Nothing destructive has run (checklist stage).
    inPlace = { t, id };
  });

  test('Ctrl-C through a pipe stops everything (restored copy included), the waiting CLI says the server went away, and a start after a killed run reports and stops what was left', async () => {
    const waiting = inPlace?.t;
    stack.type('\x03');
    // (Unref'd: a pending timer would keep this file's process alive for two minutes after its last test.)
    const code = await Promise.race([stack.exited, new Promise((r) => setTimeout(() => r('timeout'), 120_000).unref())]);
    assert.notEqual(code, 'timeout');
    assert.deepEqual(ourProcesses(), [], 'nothing of the stack is left running');
    for (const p of [ports.temporal, ports.ui, ports.pg]) assert.equal(await portOpen(p), false, `port ${p} is free`);
    assert.equal(existsSync(join(stateDir, 'demo', 'data', 'postmaster.pid')), false, 'demo PostgreSQL stopped');
    const log = readFileSync(join(stateDir, 'dev.log'), 'utf8');
    assert.match(log, /pgdr: stopped; nothing left running\.\n$/, 'the last line, also when tee is gone');
    if (waiting) {
      await waiting.waitFor(/lost the Temporal server at 127\.0\.0\.1:\d+ while waiting for restore-in-place-demo-/, 30_000);
      await waiting.exited;
    }

    // A run that is killed (SIGKILL: no cleanup) leaves Temporal and PostgreSQL behind; the next start says so.
    const killed = new Terminal(`exec node ${quote(join(PROJECT_ROOT, 'bin', 'pgdr'))} dev`);
    await killed.waitFor(/Ctrl-C stops everything/);
    const devPid = Number(readFileSync(join(stateDir, 'dev.pid'), 'utf8'));
    process.kill(devPid, 'SIGKILL');
    await killed.exited;
    // What a SIGKILL leaves depends on timing (the Temporal server may go down with the terminal, which
    // takes it a moment): the promise is that the next start reports — and stops or reuses — whatever was
    // left. What is left is read once it stopped changing.
    let left = ourProcesses();
    for (let same = 0, i = 0; same < 3 && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const now = ourProcesses();
      same = now.join('\n') === left.join('\n') ? same + 1 : 0;
      left = now;
    }
    assert.ok(left.length > 0, `something of the killed run is left behind: ${killed.out.slice(-1500)}`);
    const next = new Terminal(`exec node ${quote(join(PROJECT_ROOT, 'bin', 'pgdr'))} dev`);
    await next.waitFor(/Ctrl-C stops everything/);
    if (left.some((l) => l.includes('start-dev'))) assert.match(next.out, /an earlier run left its Temporal dev server running \(pid \d+\); stopping it/);
    if (left.some((l) => l.includes('postgres -D'))) assert.match(next.out, /the demo PostgreSQL was left running by an earlier run; reusing it/);
    next.type('\x03');
    await next.exited;
    assert.match(next.out, /pgdr: stopped; nothing left running\./);
    assert.deepEqual(ourProcesses(), []);
  });
});
