/**
 * pgdr against a production-shaped Temporal server (test/helpers/temporal-server.ts): the real server
 * binary with PostgreSQL persistence and mTLS required on the frontend and between its services. The CLI and
 * a worker process connect with `temporal.tls` from pgdr.yaml (relative paths); `pgdr config check` names
 * exactly what fails; a runbook waiting for approval survives the server being SIGKILLed and restarted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { run } from '../activities/process';
import type { ApprovalStateAnswer, DemoApprovalResult } from '../common/approvals';
import { ConfigError, validateConfig } from '../common/config';
import { PROJECT_ROOT } from '../common/paths';
import { PGDR_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { probeTemporal, TemporalConnectionProblem } from '../common/temporal-connection';
import { configYaml } from '../worker/local-cluster';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness, pgbackrestJson, startWorkerProcess, stopWorkerProcess, waitFor } from './helpers/harness';
import { makeCertificates, SERVER_NAME, startTemporalServer, type TemporalServer } from './helpers/temporal-server';

const h = new Harness('prod-temporal');
let ts: TemporalServer;
let main: LocalCluster;
let worker: ChildProcess | undefined;
let configFile: string;
let otherCa: Awaited<ReturnType<typeof makeCertificates>>;
const started: WorkflowHandle[] = [];
const taskQueue = 'pgdr-prod-temporal';

/** pgdr.yaml with `temporal` overridden by `temporal` (tls paths relative to the file, as users write them). */
function writeConfig(name: string, temporal: Record<string, unknown> = {}): string {
  const file = join(h.root, name);
  const rel = (p: string) => relative(h.root, p);
  const tls = { caFile: rel(ts.tls.caFile), clientCertFile: rel(ts.tls.clientCertFile), clientKeyFile: rel(ts.tls.clientKeyFile), serverName: ts.tls.serverName };
  writeFileSync(
    file,
    configYaml({
      clusters: [main.configEntry],
      temporalAddress: ts.address,
      taskQueue,
      extra: {
        temporal: { address: ts.address, namespace: ts.namespace, taskQueue, uiUrl: 'http://127.0.0.1:8233', tls, ...temporal },
        worker: { metricsPort: 0 },
        approvals: { demo: { approvers: ['alice', 'bob'], expiresIn: '10m' } },
      },
    }),
  );
  return file;
}

const pgdr = (args: string[], config = configFile) => run(process.execPath, [join(PROJECT_ROOT, 'bin', 'pgdr'), '--config', config, ...args], { cwd: PROJECT_ROOT, env: { PGDR_IDENTITY: 'root-test' } });

before(async () => {
  const t0 = Date.now();
  const [server, cluster, ca] = await Promise.all([
    startTemporalServer({ dir: join(h.root, 'temporal') }),
    h.addCluster({ name: 'main' }),
    makeCertificates(join(h.root, 'other-ca')),
  ]);
  ts = server;
  main = cluster;
  otherCa = ca;
  process.stderr.write(`Temporal server (PostgreSQL + mTLS) ready in ${ts.timings.total} ms (${JSON.stringify(ts.timings)}); setup ${Date.now() - t0} ms\n`);
  configFile = writeConfig('pgdr.yaml');
  worker = await startWorkerProcess(configFile, { PGDR_WORKFLOW_BUNDLE: await h.workflowBundleFile() });
});

after(async () => {
  for (const w of started) await w.terminate('test cleanup').catch(() => undefined);
  if (worker) await stopWorkerProcess(worker);
  await ts?.stop();
  await h.teardown();
});

describe('a production-shaped Temporal server (PostgreSQL persistence, mTLS)', () => {
  test('every listener of the server is bound to the one address asked for, never 0.0.0.0', async () => {
    const pid = ts.pid();
    assert.ok(pid);
    const ss = await run('ss', ['-ltnpH']);
    const mine = ss.stdout.split('\n').filter((l) => l.includes(`pid=${pid},`));
    const local = mine.map((l) => l.trim().split(/\s+/)[3]);
    assert.ok(local.length >= 5, `the server listens (frontend, history, matching, membership): ${local.join(' ')}`);
    assert.ok(local.includes(ts.address), `the frontend ${ts.address} is among ${local.join(' ')}`);
    for (const a of local) assert.match(a, /^127\.0\.0\.1:\d+$/);
  });

  test('`pgdr config check` connects over mTLS and reports the server version and the namespace', async () => {
    const r = await pgdr(['config', 'check']);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok — 1 cluster\(s\)/);
    assert.match(r.stdout, new RegExp(`Temporal ${ts.address.replace(/\./g, '\\.')}: ok — server 1\\.29\\.1 over mTLS \\(server name ${SERVER_NAME.replace(/\./g, '\\.')}\\); namespace default registered, retention 1 day`));
    const j = await pgdr(['--json', 'config', 'check']);
    assert.equal(j.exitCode, 0, j.stdout + j.stderr);
    const report = JSON.parse(j.stdout) as { ok: boolean; temporal: { serverVersion: string; security: string; namespace: string; namespaceState: string } };
    assert.deepEqual({ ...report.temporal, address: undefined, serverName: undefined, retentionDays: undefined }, {
      address: undefined,
      serverName: undefined,
      retentionDays: undefined,
      security: 'mTLS',
      serverVersion: '1.29.1',
      namespace: 'default',
      namespaceState: 'registered',
    });
  });

  test('`pgdr config check` names what fails: unknown CA, no or untrusted client certificate, server name, DNS, refused, namespace, a missing file', async () => {
    const cases: { name: string; temporal: Record<string, unknown>; exit: number; message: RegExp; hint: RegExp }[] = [
      { name: 'wrong-ca', temporal: { tls: { caFile: otherCa.ca, clientCertFile: ts.tls.clientCertFile, clientKeyFile: ts.tls.clientKeyFile, serverName: SERVER_NAME } }, exit: 4, message: /TLS: unknown CA — the server's certificate .* is not signed by a CA we trust/, hint: /temporal\.tls\.caFile .*other-ca\/ca\.pem/ },
      { name: 'no-client-cert', temporal: { tls: { caFile: ts.tls.caFile, serverName: SERVER_NAME } }, exit: 4, message: /TLS: .* requires a client certificate \(mTLS\) and we sent none/, hint: /clientCertFile and clientKeyFile/ },
      { name: 'untrusted-client-cert', temporal: { tls: { caFile: ts.tls.caFile, clientCertFile: otherCa.clientCert, clientKeyFile: otherCa.clientKey, serverName: SERVER_NAME } }, exit: 4, message: /TLS: .* refused our client certificate \(alert unknown ca\)/, hint: /signed by a CA the server trusts/ },
      { name: 'server-name', temporal: { tls: { caFile: ts.tls.caFile, clientCertFile: ts.tls.clientCertFile, clientKeyFile: ts.tls.clientKeyFile } }, exit: 4, message: /TLS: server name mismatch — the certificate .* is for DNS:temporal\.pgdr\.test, not IP 127\.0\.0\.1/, hint: /temporal\.tls\.serverName/ },
      { name: 'dns', temporal: { address: `no-such-host.pgdr.invalid:${ts.frontendPort}` }, exit: 4, message: /DNS: cannot resolve host "no-such-host\.pgdr\.invalid"/, hint: /getent hosts/ },
      { name: 'refused', temporal: { address: `127.0.0.1:${ts.frontendPort === 1 ? 2 : 1}` }, exit: 4, message: /connection refused by 127\.0\.0\.1:\d/, hint: /listening on that address/ },
      { name: 'namespace', temporal: { namespace: 'no-such-namespace' }, exit: 3, message: /namespace "no-such-namespace" does not exist/, hint: /temporal operator namespace create/ },
      { name: 'missing-file', temporal: { tls: { caFile: 'nowhere/ca.pem', serverName: SERVER_NAME } }, exit: 3, message: /temporal\.tls\.caFile: cannot read .*nowhere\/ca\.pem \(no such file\)/, hint: /fix the path/ },
    ];
    const results = await Promise.all(cases.map((c) => pgdr(['--json', 'config', 'check'], writeConfig(`${c.name}.yaml`, c.temporal))));
    cases.forEach((c, i) => {
      const r = results[i];
      assert.equal(r.exitCode, c.exit, `${c.name}: ${r.stdout}${r.stderr}`);
      const e = (JSON.parse(r.stdout) as { error: { message: string; hint: string } }).error;
      assert.match(e.message, c.message, c.name);
      assert.doesNotMatch(e.message, /\n/, `${c.name}: one line`);
      assert.match(e.hint, c.hint, c.name);
    });
    // The same diagnosis reaches every command, not only `config check`, and the worker.
    const [info, w] = await Promise.all([
      pgdr(['info', '--cluster', 'main'], join(h.root, 'no-client-cert.yaml')),
      run(process.execPath, [join(__dirname, 'helpers', 'worker-process.js'), join(h.root, 'wrong-ca.yaml')]),
    ]);
    assert.equal(info.exitCode, 4, info.stderr);
    assert.match(info.stderr, /cannot reach Temporal at .*: TLS: .* requires a client certificate \(mTLS\)/);
    assert.notEqual(w.exitCode, 0, 'a worker with the wrong CA does not start');
    assert.match(w.stderr, /cannot connect to Temporal at .*: TLS: unknown CA/);
  });

  test('a backup runs end to end through the CLI and a worker process, both connected with mTLS', async () => {
    const setup = await pgdr(['stanza', 'setup', '--cluster', 'main']);
    assert.equal(setup.exitCode, 0, setup.stdout + setup.stderr);
    const r = await pgdr(['--json', 'backup', '--cluster', 'main', '--type', 'full']);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout) as { set: { label: string; type: string }; workflowId: string };
    assert.equal(result.set.type, 'full');
    const info = (await pgbackrestJson(main, ['info'])) as { backup: { label: string; type: string }[] }[];
    assert.deepEqual(
      info[0].backup.map((b) => [b.label, b.type]),
      [[result.set.label, 'full']],
      'pgbackrest info shows exactly the set the runbook reported',
    );
    // The run is in the server's PostgreSQL-backed history, with pgdr's search attributes.
    const client = await ts.client();
    const desc = await client.workflow.getHandle(result.workflowId).describe();
    assert.equal(desc.status.name, 'COMPLETED');
    assert.equal(desc.typedSearchAttributes.get(PGDR_SEARCH_ATTRIBUTES.cluster), 'main');
  });

  test('the server is SIGKILLed and restarted while a runbook waits for approval; the approval then lets it finish', async () => {
    const client = await ts.client();
    const handle = await client.workflow.start('demoApproval', { taskQueue, workflowId: `demo-approval-prod-${Date.now()}`, args: [{ requestedBy: 'carol', reason: 'server restart test' }] });
    started.push(handle);
    await waitFor('the approval gate', async () => (await handle.query<ApprovalStateAnswer>('approvalState').catch(() => undefined))?.pending);

    const before = ts.pid();
    await ts.kill('SIGKILL');
    await assert.rejects(probeTemporal({ address: ts.address, tls: ts.tls }), (e: unknown) => e instanceof TemporalConnectionProblem && e.kind === 'refused', 'the server is gone');
    const t0 = Date.now();
    await ts.restart();
    process.stderr.write(`Temporal server restarted after SIGKILL in ${Date.now() - t0} ms\n`);
    assert.notEqual(ts.pid(), before);

    // The CLI (a new mTLS connection) approves; the worker process, which lived through the outage, finishes the run.
    const vote = await pgdr(['approve', handle.workflowId, '--as', 'alice', '--comment', 'after the restart']);
    assert.equal(vote.exitCode, 0, vote.stdout + vote.stderr);
    assert.match(vote.stdout, /is approved \(by alice\)/);
    const result = (await handle.result()) as DemoApprovalResult;
    assert.equal(result.ranAt.length, 1, 'the approved action ran once');
    assert.equal(worker?.exitCode, null, 'the worker process kept running through the server outage');
  });
});

describe('temporal.tls in pgdr.yaml', () => {
  const base = { clusters: [{ name: 'main', host: 'db1', stanza: 'main', pgbackrestConfig: 'p.conf', dataDir: 'data', port: 5432, socketDir: 'socket' }] };
  const problems = (tls: unknown) => {
    try {
      validateConfig({ ...base, temporal: { tls } }, '/etc/pgdr/pgdr.yaml');
      return [];
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
  };

  test('false, true or files (relative to the config file); a certificate needs its key; clear messages', () => {
    assert.equal(validateConfig(base, '/etc/pgdr/pgdr.yaml').temporal.tls, false);
    assert.equal(validateConfig({ ...base, temporal: { tls: true } }, '/etc/pgdr/pgdr.yaml').temporal.tls, true);
    assert.deepEqual(validateConfig({ ...base, temporal: { tls: { caFile: 'tls/ca.pem', clientCertFile: '/abs/c.pem', clientKeyFile: 'c.key', serverName: 'temporal.example' } } }, '/etc/pgdr/pgdr.yaml').temporal.tls, {
      caFile: '/etc/pgdr/tls/ca.pem',
      clientCertFile: '/abs/c.pem',
      clientKeyFile: '/etc/pgdr/c.key',
      serverName: 'temporal.example',
    });
    assert.deepEqual(problems({ clientCertFile: 'c.pem' }), ['temporal.tls: clientCertFile and clientKeyFile go together: give both (mTLS) or neither']);
    assert.deepEqual(problems({ cafile: 'ca.pem' }), ['temporal.tls: unknown field(s) "cafile"']);
    assert.deepEqual(problems('yes'), ['temporal.tls: expected true, false, or { caFile?, clientCertFile?, clientKeyFile?, serverName? }']);
  });
});
