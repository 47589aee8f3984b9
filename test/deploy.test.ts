/**
 * The production shape (docker-compose.yml, docker/, deploy/systemd/), tested on this machine, where no
 * container engine runs:
 * - docker-compose.yml loaded by compose-go as `docker compose config` does (.tools/compose-config: schema,
 *   interpolation, consistency), and the review's properties read from the resolved project;
 * - docker/install.sh: the system step below a temp root with apt-get simulating (every package resolves on
 *   Debian 12; create_main_cluster checked the way the server package's postinst checks it), the app step for
 *   real (npm ci --omit=dev) — the worker of the entrypoint tests runs from that runtime-only install;
 * - docker/entrypoint.sh against a Debian cluster it creates (pg_createcluster, unique name, temp folders;
 *   pg_dropcluster at the end): first start creates, second start reuses, the worker serves and runs a
 *   runbook, TERM and INT reach it, PostgreSQL is shut down cleanly after it, bad layouts are refused;
 * - docker/temporal-setup.sh: `schema` with the real temporal-sql-tool 1.29.1 against that cluster (twice),
 *   `namespace` against a Temporal dev server (twice);
 * - deploy/systemd: systemd-analyze verify and security --offline.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { run } from '../activities/process';
import { loadConfig, type LoadedConfig } from '../common/config';
import { PROJECT_ROOT } from '../common/paths';
import { freePort, Harness, waitFor } from './helpers/harness';

const ROOT = PROJECT_ROOT;
const ENTRYPOINT = join(ROOT, 'docker', 'entrypoint.sh');
const INSTALL = join(ROOT, 'docker', 'install.sh');
const TEMPORAL_SETUP = join(ROOT, 'docker', 'temporal-setup.sh');
const COMPOSE_CONFIG = join(ROOT, '.tools', 'compose-config');
const TEMPORAL_SQL_TOOL = join(ROOT, '.tools', 'temporal-server-v1.29.1', 'sql');

const work = (() => {
  const d = join('/tmp', `pgdr-test-deploy-${randomBytes(4).toString('hex')}`);
  mkdirSync(d, { mode: 0o755 });
  chmodSync(d, 0o755); // the postgres user must reach the cluster's folders
  return d;
})();
const clusterName = `pgdrdeploy${randomBytes(3).toString('hex')}`;
const h = new Harness('deploy');

const ok = (r: { exitCode?: number; stdout: string; stderr: string }, what: string) =>
  assert.equal(r.exitCode, 0, `${what} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
const postgresOwned = (dir: string) => run('install', ['-d', '-m', '0750', '-o', 'postgres', '-g', 'postgres', dir]);

after(async () => {
  await stopEntrypoint(current, 'SIGTERM').catch(() => undefined);
  await run('pg_dropcluster', ['--stop', '15', clusterName]); // the cluster's data and the files it knows in /etc
  rmSync(`/etc/postgresql/15/${clusterName}`, { recursive: true, force: true }); // and conf.d/pgdr.conf, which it leaves
  await h.teardown();
  if (!process.env.PGDR_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------
describe('docker-compose.yml', () => {
  // The resolved project (normalized: every port, volume and secret in long syntax, with profiles enabled).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let project: any;
  let cfg: LoadedConfig;
  const compose = (file: string, env: Record<string, string>, profiles: string[] = []) =>
    run(COMPOSE_CONFIG, [...profiles.flatMap((p) => ['--profile', p]), file], { cwd: dirname(file), env });

  before(() => {
    assert.ok(existsSync(COMPOSE_CONFIG), `${COMPOSE_CONFIG} is missing: run scripts/ensure-deps.sh --test`);
    cfg = loadConfig(join(ROOT, 'docker', 'pgdr.yaml'));
  });

  test('is a valid Compose project: compose-go (the loader of docker compose) accepts it; broken variants are refused', async () => {
    const r = await compose(join(ROOT, 'docker-compose.yml'), { TEMPORAL_DB_PASSWORD: 'test-only' }, ['slack']);
    ok(r, 'compose-config docker-compose.yml');
    project = JSON.parse(r.stdout);
    // The validator can fail: a secret the file uses but does not declare, a key the spec does not know,
    // and the database password left out are refused.
    const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
    const variants: [string, string, RegExp][] = [
      ['undeclared secret', text.replace(/^ {2}pgdr_repo1_cipher_pass:\n {4}file: .*\n/m, ''), /pgdr_repo1_cipher_pass/],
      ['unknown key', text.replace('    stop_grace_period: 90s', '    stop_grace_periode: 90s'), /stop_grace_periode/],
    ];
    for (const [what, body, expect] of variants) {
      assert.notEqual(body, text, `variant "${what}" changed nothing`);
      const file = join(work, 'compose-variant.yml');
      writeFileSync(file, body);
      const bad = await compose(file, { TEMPORAL_DB_PASSWORD: 'test-only' }, ['slack']);
      assert.notEqual(bad.exitCode, 0, `${what}: accepted`);
      assert.match(bad.stderr, expect, what);
    }
    const noPassword = await compose(join(ROOT, 'docker-compose.yml'), { TEMPORAL_DB_PASSWORD: '' });
    assert.notEqual(noPassword.exitCode, 0);
    assert.match(noPassword.stderr, /TEMPORAL_DB_PASSWORD/);
  });

  test('publishes nothing beyond the loopback; pins every image; Temporal without auto-setup and without tctl', () => {
    const services: Record<string, any> = project.services; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        assert.equal(p.host_ip, '127.0.0.1', `${name} publishes port ${p.published} on ${p.host_ip ?? 'every interface'}`);
      }
      if (!s.build) assert.match(s.image, /^[\w./-]+:\d[\w.-]*$/, `${name}: image ${s.image} is not pinned to a version`);
      assert.doesNotMatch(s.image, /auto-setup/, `${name} uses the deprecated auto-setup image`);
      assert.doesNotMatch(JSON.stringify(s.healthcheck?.test ?? []), /tctl/, `${name}'s healthcheck uses tctl`);
    }
    assert.equal(services.temporal.image, 'temporalio/server:1.29.1');
    assert.match(services['temporal-schema'].image, /^temporalio\/admin-tools:1\.29\.1\b/);
    assert.deepEqual(services['temporal-schema'].command, ['schema']);
    assert.equal(services.temporal.depends_on['temporal-schema'].condition, 'service_completed_successfully');
    assert.equal(services['temporal-schema'].depends_on['temporal-db'].condition, 'service_healthy');
    assert.equal(services.db1.depends_on['temporal-namespace'].condition, 'service_completed_successfully');
    assert.match(services['temporal-ui'].image, /^temporalio\/ui:\d/);
  });

  test('db1: passphrase as a secret file, data directory below its volume, stateDir on a volume, signals handled', () => {
    const db1 = project.services.db1;
    const [cluster] = cfg.clusters;
    const volumes: { type: string; source: string; target: string }[] = db1.volumes;
    const named = volumes.filter((v) => v.type === 'volume');
    const below = (path: string, dir: string) => path.startsWith(`${dir.replace(/\/$/, '')}/`);
    // The data directory lies strictly below a named volume (never its mount point: the in-place restore renames it).
    const dataVolume = named.find((v) => below(cluster.dataDir, v.target));
    assert.ok(dataVolume, `dataDir ${cluster.dataDir} is on no volume`);
    assert.ok(!volumes.some((v) => v.target === cluster.dataDir), 'the data directory is itself a mount point');
    // …at the place the entrypoint creates it by default: <volume>/<version>/<cluster> (PGDR_PG_* not overridden).
    assert.equal(dataVolume.target, '/var/lib/postgresql');
    assert.equal(cluster.dataDir, '/var/lib/postgresql/15/main');
    assert.deepEqual(cluster.control, { method: 'pg_ctlcluster', name: 'main', version: '15' });
    assert.ok(named.some((v) => v.target === '/etc/postgresql'), 'the Debian cluster configuration is not on a volume');
    assert.ok(named.some((v) => cfg.stateDirAbs === v.target || below(cfg.stateDirAbs, v.target)), `stateDir ${cfg.stateDirAbs} is on no volume`);
    assert.ok(cluster.drill.scratchDir && named.some((v) => below(cluster.drill.scratchDir!, v.target)), 'the drill scratch folder is not on a volume');
    // The passphrase: a compose secret, read by pgdr (cipherPassFile) and by the entrypoint for the postmaster.
    const secretTargets = (db1.secrets as { source: string; target: string }[]).map((s) => s.target);
    const repo1 = cluster.repos.find((r) => r.index === 1)!;
    assert.ok(repo1.cipherPassFile && secretTargets.includes(repo1.cipherPassFile), `cipherPassFile ${repo1.cipherPassFile} is not a secret of db1`);
    assert.equal(repo1.cipherPassEnv, undefined);
    assert.equal(db1.environment.PGDR_REPO1_CIPHER_PASS_FILE, repo1.cipherPassFile);
    for (const [name, s] of Object.entries(project.services as Record<string, { environment?: Record<string, string> }>)) {
      for (const key of Object.keys(s.environment ?? {})) {
        assert.doesNotMatch(key, /CIPHER_PASS$|TOKEN$|SIGNING_SECRET$/, `${name} gets the secret ${key} as an environment variable`);
      }
    }
    assert.ok(project.secrets.pgdr_repo1_cipher_pass.file, 'the secret is not read from a file');
    assert.ok((db1.tmpfs as string[]).includes('/run/pgdr'), "the postmaster's environment file is not on a tmpfs");
    // pgBackRest's stanza points at the same data directory and socket.
    const mounted = (target: string) => volumes.find((v) => v.target === target)!.source;
    const pgbackrest = readFileSync(mounted('/etc/pgbackrest/pgbackrest.conf'), 'utf8');
    assert.match(pgbackrest, new RegExp(`^\\[${cluster.stanza}\\]$`, 'm'));
    assert.match(pgbackrest, new RegExp(`^pg1-path=${cluster.dataDir}$`, 'm'));
    assert.match(pgbackrest, new RegExp(`^pg1-socket-path=${cluster.socketDir}$`, 'm'));
    assert.match(pgbackrest, /^repo1-path=\/var\/lib\/pgbackrest$/m);
    assert.ok(named.some((v) => v.target === '/var/lib/pgbackrest'), 'repo1 is not on a volume');
    assert.equal(mounted('/etc/pgdr/pgdr.yaml'), cfg.file);
    assert.deepEqual(db1.command, ['worker', '--host', cluster.host]);
    assert.ok(db1.stop_grace_period, 'no stop_grace_period: the worker gets 10 s to finish its activities');
  });

  test('slack-server: its own service (profile "slack"), secrets as files, published on the loopback', () => {
    const s = project.services['slack-server'];
    assert.ok(s, 'no slack-server service');
    assert.equal(s.command[0], 'slack-server');
    assert.deepEqual(s.profiles, ['slack']);
    assert.equal(s.environment.SLACK_SIGNING_SECRET_FILE, '/run/secrets/slack_signing_secret');
    assert.ok((s.secrets as { source: string }[]).some((x) => x.source === 'slack_signing_secret'));
    assert.deepEqual(
      (s.ports as { host_ip: string; target: number }[]).map((p) => [p.host_ip, p.target]),
      [['127.0.0.1', 3000]],
    );
  });

  test('the image: two stages, runtime without dev dependencies, tini as PID 1, the install steps from docker/install.sh', () => {
    const dockerfile = readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    assert.equal(stages.length, 2);
    const [build, runtime] = stages;
    assert.match(build, /AS build/);
    assert.match(build, /RUN npm run build/);
    assert.match(runtime, /RUN \/usr\/local\/lib\/pgdr\/install\.sh system\n/);
    assert.match(runtime, /RUN \/usr\/local\/lib\/pgdr\/install\.sh app \/opt\/pgdr\n/);
    assert.doesNotMatch(runtime, /npm (ci|install)|tsc/, 'the runtime stage installs or compiles by itself');
    assert.match(runtime, /COPY --from=build \/opt\/pgdr\/dist dist/);
    assert.match(runtime, /ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/usr\/local\/bin\/pgdr-entrypoint"\]/);
    // Every COPY source exists and is in the build context that Dockerfile.dockerignore lets through.
    const allowed = readFileSync(join(ROOT, 'docker', 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const sources = m[1].trim().split(/\s+/).slice(0, -1);
      for (const src of sources) {
        assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: missing`);
        assert.ok(allowed.includes(src.replace(/\/$/, '')), `COPY ${src}: not in the build context (Dockerfile.dockerignore)`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
const installRoot = join(work, 'root');
const prefix = join(work, 'opt-pgdr');
const runtimePgdr = join(installRoot, 'usr', 'local', 'bin', 'pgdr');

describe('docker/install.sh', () => {
  test('system: every package resolves on Debian 12 (apt-get -s), no default cluster, folders owned right', async () => {
    const conf = join(installRoot, 'etc', 'postgresql-common', 'createcluster.conf');
    mkdirSync(dirname(conf), { recursive: true });
    cpSync('/etc/postgresql-common/createcluster.conf', conf); // the file Debian 12's postgresql-common ships
    ok(await run('bash', [INSTALL, 'system', '--root', installRoot, '--simulate']), 'install.sh system --simulate');
    // The exact test postgresql-15's postinst makes before it would create 15/main.
    const create = await run('pg_conftool', [conf, 'show', '-bs', 'create_main_cluster']);
    assert.equal(create.stdout.trim(), 'off');
    const postgresUid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    for (const [dir, uid, mode] of [
      ['var/lib/pgbackrest', postgresUid, 0o750],
      ['var/log/pgbackrest', postgresUid, 0o750],
      ['var/lib/pgdr', 0, 0o750],
    ] as const) {
      const st = statSync(join(installRoot, dir));
      assert.equal(st.uid, uid, `${dir} owner`);
      assert.equal(st.mode & 0o777, mode, `${dir} mode`);
    }
  });

  test('app: runtime dependencies only (npm ci --omit=dev), and pgdr runs from them', { timeout: 240_000 }, async () => {
    mkdirSync(prefix, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(ROOT, f), join(prefix, f));
    ok(await run('bash', [INSTALL, 'app', '--root', installRoot, prefix], { env: { npm_config_prefer_offline: 'true' } }), 'install.sh app');
    // Nothing the lock file marks dev-only (needed by devDependencies alone) is there; every dependency is.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev).map(([path]) => path);
    assert.ok(devOnly.includes('node_modules/typescript') && devOnly.includes('node_modules/@temporalio/testing'));
    for (const path of devOnly) assert.ok(!existsSync(join(prefix, path)), `dev-only ${path} installed`);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies)) assert.ok(existsSync(join(prefix, 'node_modules', dep)), `dependency ${dep} missing`);
    // What the build stage hands over: dist/ and bin/.
    cpSync(join(ROOT, 'dist'), join(prefix, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'bin'), join(prefix, 'bin'), { recursive: true });
    assert.equal(readlinkSync(runtimePgdr), join(prefix, 'bin', 'pgdr'));
    // The whole CLI loads (it imports the worker, activities and clients); the worker itself runs from this
    // install in the entrypoint tests below.
    const help = await run(runtimePgdr, ['--help']);
    ok(help, 'pgdr --help (runtime-only install)');
    assert.match(help.stdout, /worker/);
    assert.match(help.stdout, /slack-server/);
  });
});

// ---------------------------------------------------------------------------------------------------------
interface Running {
  p: ChildProcess;
  output: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
let current: Running | undefined;

function startEntrypoint(env: Record<string, string>, args: string[] = []): Running {
  const p = spawn('bash', [ENTRYPOINT, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const collect = (chunk: Buffer) => output.push(...chunk.toString().split('\n').filter(Boolean));
  p.stdout!.on('data', collect);
  p.stderr!.on('data', collect);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  return { p, output, exit };
}

async function stopEntrypoint(r: Running | undefined, signal: NodeJS.Signals) {
  if (!r || r.p.exitCode !== null || r.p.signalCode !== null) return r?.exit;
  r.p.kill(signal);
  return r.exit;
}

const waitForLine = (r: Running, re: RegExp, what: string, timeoutMs = 120_000) =>
  waitFor(
    what,
    async () => {
      if (r.p.exitCode !== null) throw new Error(`the entrypoint exited (${r.p.exitCode}) before ${what}:\n${r.output.join('\n')}`);
      return r.output.find((l) => re.test(l));
    },
    timeoutMs,
    100,
  );

describe('docker/entrypoint.sh on a Debian cluster', () => {
  const volume = join(work, 'volume');
  const dataDir = join(volume, '15', clusterName);
  const socketDir = join(work, 'socket');
  const secretFile = join(work, 'secrets', 'pgdr_repo1_cipher_pass');
  // Characters postgresql-common's environment file must quote: ' \ = # and a space.
  const passphrase = `pa'ss\\wo=rd #${randomBytes(8).toString('hex')}`;
  let port = 0;
  let env: Record<string, string> = {};
  let systemId = '';

  const lsclusters = async () => (await run('pg_lsclusters', ['-h'])).stdout.split('\n').find((l) => l.split(/\s+/)[1] === clusterName);
  const controlData = async () => (await run('/usr/lib/postgresql/15/bin/pg_controldata', ['-D', dataDir], { env: { LC_ALL: 'C' } })).stdout;
  const psql = (sql: string, db = 'postgres') => run('psql', ['-X', '-A', '-t', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', db, '-c', sql], { user: 'postgres' });

  before(async () => {
    assert.ok(existsSync(runtimePgdr), 'the install.sh app test must run first (it provides the runtime-only pgdr)');
    await h.startTemporal();
    port = await freePort();
    mkdirSync(volume, { mode: 0o755 });
    mkdirSync(dirname(secretFile), { recursive: true });
    writeFileSync(secretFile, `${passphrase}\n`, { mode: 0o600 });
    for (const d of ['repo', 'pgbackrest-log', 'pgbackrest-lock', 'pgbackrest-spool', 'pglog']) await postgresOwned(join(work, d));
    const pgbackrestConfig = join(work, 'pgbackrest.conf');
    writeFileSync(
      pgbackrestConfig,
      [
        '[global]',
        `repo1-path=${join(work, 'repo')}`,
        'repo1-cipher-type=aes-256-cbc',
        `log-path=${join(work, 'pgbackrest-log')}`,
        `lock-path=${join(work, 'pgbackrest-lock')}`,
        `spool-path=${join(work, 'pgbackrest-spool')}`,
        'log-level-console=warn',
        'start-fast=y',
        '',
        '[deploy]',
        `pg1-path=${dataDir}`,
        `pg1-port=${port}`,
        `pg1-socket-path=${socketDir}`,
        '',
      ].join('\n'),
    );
    const configFile = join(work, 'pgdr.yaml');
    writeFileSync(
      configFile,
      stringify({
        temporal: { address: h.env.connection.options.address, namespace: 'default', taskQueue: 'pgdr-deploy' },
        stateDir: join(work, 'state'),
        worker: { metricsPort: 0 },
        clusters: [
          {
            name: 'deploy',
            host: 'deploy',
            stanza: 'deploy',
            pgbackrestConfig,
            dataDir,
            port,
            socketDir,
            control: { method: 'pg_ctlcluster', name: clusterName },
            repos: [{ index: 1, cipherPassFile: secretFile }],
          },
        ],
      }),
    );
    env = {
      PGDR_PG_CLUSTER: clusterName,
      PGDR_PG_PORT: String(port),
      PGDR_PG_SOCKET_DIR: socketDir,
      PGDR_PG_VOLUME: volume,
      PGDR_PG_LOG: join(work, 'pglog', 'postgresql.log'),
      PGDR_STANZA: 'deploy',
      PGDR_PGBACKREST_CONFIG: pgbackrestConfig,
      PGDR_RUNTIME_DIR: join(work, 'run'),
      PGDR_REPO1_CIPHER_PASS_FILE: secretFile,
      PGDR_BIN: runtimePgdr,
      PGDR_CONFIG: configFile,
      PGDR_LOG_LEVEL: 'warn',
    };
  });

  test('refuses a data directory that is its volume, outside it, or a mount point — before creating anything', async (t) => {
    const other = `${clusterName}x`;
    const mnt = join(work, 'mnt-volume', '15', other);
    mkdirSync(mnt, { recursive: true });
    const mounted = (await run('mount', ['-t', 'tmpfs', 'tmpfs', mnt])).exitCode === 0;
    try {
      const cases: [string, string, RegExp][] = [
        ['the volume itself', volume, /must lie below the volume/],
        ['outside the volume', join(work, 'elsewhere', other), /must lie below the volume/],
        ...(mounted ? [['a mount point', mnt, /is a mount point/] as [string, string, RegExp]] : []),
      ];
      for (const [what, data, expect] of cases) {
        const vol = what === 'a mount point' ? join(work, 'mnt-volume') : volume;
        const r = startEntrypoint({ ...env, PGDR_PG_CLUSTER: other, PGDR_PG_VOLUME: vol, PGDR_PG_DATA: data });
        const { code } = await r.exit;
        assert.equal(code, 1, `${what}: exit ${code}\n${r.output.join('\n')}`);
        assert.ok(r.output.some((l) => expect.test(l)), `${what}: ${r.output.join('\n')}`);
      }
      assert.ok(!existsSync(`/etc/postgresql/15/${other}`), 'a cluster was created');
      assert.ok(!existsSync(join(work, 'elsewhere')), 'a data directory was created');
    } finally {
      if (mounted) await run('umount', [mnt]);
    }
    if (!mounted) t.diagnostic('the mount point case did not run: mount(8) is refused here');
  });

  test('first start: creates the cluster below the volume, starts it and the worker, which runs a runbook', { timeout: 180_000 }, async () => {
    assert.equal(await lsclusters(), undefined, 'the cluster exists before the first start');
    current = startEntrypoint(env);
    await waitForLine(current, /first start: creating cluster/, 'the first start');
    await waitForLine(current, /pgdr worker serving .*pgdr-host-deploy/, 'the worker');
    assert.match((await lsclusters()) ?? '', new RegExp(`^15\\s+${clusterName}\\s+${port}\\s+online\\s+postgres\\s+${dataDir}\\s`));
    assert.notEqual((await run('mountpoint', ['-q', dataDir])).exitCode, 0, 'the data directory is a mount point');
    assert.equal(dirname(dataDir), join(volume, '15'));
    assert.match(await controlData(), /Data page checksum version:\s+1/);
    systemId = /Database system identifier:\s+(\d+)/.exec(await controlData())![1];
    // The postmaster's environment file: a link into the runtime folder, readable by postgres only.
    const envLink = `/etc/postgresql/15/${clusterName}/environment`;
    assert.ok(lstatSync(envLink).isSymbolicLink());
    const envFile = readlinkSync(envLink);
    assert.equal(dirname(envFile), env.PGDR_RUNTIME_DIR);
    assert.equal(statSync(envFile).mode & 0o777, 0o640);
    // The worker (from the runtime-only install) runs setupStanza: stanza-create and check over its activities.
    // `pgbackrest check` waits until the postmaster's archive_command has pushed a WAL segment into the
    // encrypted repository, which needs the passphrase in the postmaster's environment.
    const result = await h.client.workflow.execute('setupStanza', {
      args: [{ cluster: 'deploy' }],
      taskQueue: 'pgdr-deploy',
      workflowId: `deploy-setup-${randomBytes(3).toString('hex')}`,
    });
    assert.equal((result as { stanza: string }).stanza, 'deploy');
    const archived = await psql('SELECT archived_count > 0 AND failed_count = 0 FROM pg_stat_archiver');
    assert.equal(archived.stdout.trim(), 't', 'archive_command did not push WAL with the passphrase');
    ok(await psql('CREATE TABLE kept_across_restarts (id int); INSERT INTO kept_across_restarts VALUES (42)'), 'create table');
  });

  test('SIGTERM reaches the worker, which stops gracefully; then PostgreSQL is shut down cleanly', { timeout: 120_000 }, async () => {
    const r = current!;
    const workerPid = Number((await run('pgrep', ['-P', String(r.p.pid)])).stdout.trim().split('\n')[0]);
    assert.ok(workerPid > 0, 'no worker process under the entrypoint');
    const { code } = (await stopEntrypoint(r, 'SIGTERM'))!;
    assert.equal(code, 0, r.output.join('\n'));
    // Exit 0 of pgdr: it handled the signal (a Node process killed by SIGTERM would report 143).
    assert.ok(r.output.some((l) => /pgdr worker exited with status 0/.test(l)), r.output.join('\n'));
    assert.ok((await run('kill', ['-0', String(workerPid)])).exitCode !== 0, 'the worker still runs');
    assert.match((await lsclusters()) ?? '', /\sdown\s/);
    assert.match(await controlData(), /Database cluster state:\s+shut down\n/);
    current = undefined;
  });

  test('second start: reuses the cluster (same system identifier, data kept)', { timeout: 180_000 }, async () => {
    current = startEntrypoint(env);
    await waitForLine(current, /reusing cluster/, 'the second start');
    await waitForLine(current, /pgdr worker serving/, 'the worker');
    assert.ok(!current.output.some((l) => /creating cluster/.test(l)));
    assert.equal(/Database system identifier:\s+(\d+)/.exec(await controlData())![1], systemId);
    assert.equal((await psql('SELECT id FROM kept_across_restarts')).stdout.trim(), '42');
  });

  test('temporal-setup.sh schema: the real temporal-sql-tool 1.29.1 sets up both databases, twice without harm', { timeout: 120_000 }, async (t) => {
    const schemaDir = join((await run('go', ['env', 'GOMODCACHE'])).stdout.trim(), 'go.temporal.io', 'server@v1.29.1', 'schema', 'postgresql', 'v12');
    if (!existsSync(TEMPORAL_SQL_TOOL) || !existsSync(schemaDir)) {
      t.skip(`needs ${TEMPORAL_SQL_TOOL} and ${schemaDir} (scripts/ensure-deps.sh --test builds them)`);
      return;
    }
    ok(await psql("CREATE ROLE temporal LOGIN CREATEDB PASSWORD 'temporal-test'"), 'create role temporal');
    const bin = join(work, 'admin-tools-bin');
    mkdirSync(bin, { recursive: true });
    if (!existsSync(join(bin, 'temporal-sql-tool'))) symlinkSync(TEMPORAL_SQL_TOOL, join(bin, 'temporal-sql-tool'));
    const setupEnv = { PATH: `${bin}:${process.env.PATH}`, POSTGRES_SEEDS: '127.0.0.1', DB_PORT: String(port), POSTGRES_USER: 'temporal', SQL_PASSWORD: 'temporal-test', TEMPORAL_SCHEMA_DIR: schemaDir };
    for (const round of ['first', 'second']) {
      ok(await run('sh', [TEMPORAL_SETUP, 'schema'], { env: setupEnv }), `temporal-setup.sh schema (${round} run)`);
    }
    const versions: Record<string, string> = { temporal: 'temporal', temporal_visibility: 'visibility' };
    for (const [db, sub] of Object.entries(versions)) {
      const have = (await psql('SELECT curr_version FROM schema_version', db)).stdout.trim();
      // The newest versioned folder (v1.xx) is the version the server expects.
      const newest = (await run('ls', [join(schemaDir, sub, 'versioned')])).stdout
        .split('\n')
        .filter(Boolean)
        .map((v) => v.replace(/^v/, ''))
        .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
        .pop();
      assert.equal(have, newest, `${db} schema version`);
    }
  });

  test('SIGINT reaches the worker too; PostgreSQL is shut down cleanly', { timeout: 120_000 }, async () => {
    const r = current!;
    const { code } = (await stopEntrypoint(r, 'SIGINT'))!;
    assert.equal(code, 0, r.output.join('\n'));
    assert.match(await controlData(), /Database cluster state:\s+shut down\n/);
    current = undefined;
  });

  test('refuses to create a cluster beside an existing configuration whose data is gone', async () => {
    const r = startEntrypoint({ ...env, PGDR_PG_DATA: join(volume, '15', 'lost') });
    const { code } = await r.exit;
    assert.equal(code, 1, r.output.join('\n'));
    assert.ok(r.output.some((l) => /holds no cluster: the data volume is missing or empty/.test(l)), r.output.join('\n'));
    assert.ok(!existsSync(join(volume, '15', 'lost')));
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('docker/temporal-setup.sh namespace', () => {
  test('creates the namespace once the frontend answers, and leaves it alone the second time', async () => {
    if (!h.env) await h.startTemporal();
    const namespace = `pgdr-deploy-${randomBytes(3).toString('hex')}`;
    const setupEnv = { PATH: `${join(ROOT, '.venv', 'bin')}:${process.env.PATH}`, TEMPORAL_ADDRESS: h.env.connection.options.address, TEMPORAL_NAMESPACE: namespace };
    const first = await run('sh', [TEMPORAL_SETUP, 'namespace'], { env: setupEnv });
    ok(first, 'temporal-setup.sh namespace');
    assert.match(first.stdout, /created/);
    const second = await run('sh', [TEMPORAL_SETUP, 'namespace'], { env: setupEnv });
    ok(second, 'temporal-setup.sh namespace (again)');
    assert.match(second.stdout, /exists/);
    const described = await h.client.workflowService.describeNamespace({ namespace });
    assert.equal(described.namespaceInfo?.name, namespace);
    assert.equal(Number(described.config?.workflowExecutionRetentionTtl?.seconds), 30 * 24 * 3600);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('deploy/systemd', () => {
  const units = ['pgdr-worker.service', 'pgdr-slack-server.service'];
  const haveAnalyze = () => run('sh', ['-c', 'command -v systemd-analyze']).then((r) => r.exitCode === 0);

  test('the units pass systemd-analyze verify (no unknown keys, commands exist) and keep their hardening', async (t) => {
    if (!(await haveAnalyze())) {
      t.skip('systemd-analyze is not installed (Debian package systemd)');
      return;
    }
    // verify checks that ExecStart is executable: point the copies at this checkout's pgdr.
    const dir = join(work, 'systemd');
    mkdirSync(dir, { recursive: true });
    const copies = units.map((u) => {
      const file = join(dir, u);
      writeFileSync(file, readFileSync(join(ROOT, 'deploy', 'systemd', u), 'utf8').replaceAll('/usr/local/bin/pgdr', join(ROOT, 'bin', 'pgdr')));
      return file;
    });
    const verify = await run('systemd-analyze', ['verify', ...copies]);
    ok(verify, 'systemd-analyze verify');
    assert.equal(verify.stderr.trim(), '', 'systemd-analyze verify warned');
    // The check can fail: a misspelt key is reported.
    writeFileSync(join(dir, 'typo.service'), readFileSync(copies[0], 'utf8').replace('KillMode=mixed', 'KilMode=mixed'));
    assert.match((await run('systemd-analyze', ['verify', join(dir, 'typo.service')])).stderr, /Unknown key 'KilMode'/);
    // Exposure scores (systemd-analyze security, offline): the worker must keep root (runuser, pg_ctlcluster).
    const limits: Record<string, number> = { 'pgdr-worker.service': 5.5, 'pgdr-slack-server.service': 2.0 };
    for (const file of copies) {
      const sec = await run('systemd-analyze', ['security', '--offline=yes', file]);
      const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(sec.stdout)?.[1]);
      const name = file.split('/').pop()!;
      assert.ok(score <= limits[name], `${name}: exposure ${score} > ${limits[name]}\n${sec.stdout}`);
    }
  });

  test('the worker unit: SIGTERM to the worker, restart on failure, secrets from credentials and an environment file', () => {
    const unit = readFileSync(join(ROOT, 'deploy', 'systemd', 'pgdr-worker.service'), 'utf8');
    const set = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);
    assert.deepEqual(set('User'), ['root']);
    assert.deepEqual(set('KillMode'), ['mixed']);
    assert.deepEqual(set('Restart'), ['on-failure']);
    assert.ok(set('After')[0].split(/\s+/).includes('network-online.target'));
    assert.ok(set('Wants')[0].split(/\s+/).includes('network-online.target'));
    assert.match(set('LoadCredential')[0], /^repo1-cipher-pass:/);
    assert.deepEqual(set('EnvironmentFile'), ['/etc/pgdr/worker.env']);
    assert.match(set('ExecStart')[0], / worker --host \$\{PGDR_HOST\}$/);
    // What would break pgdr: the JIT of Node, the shared pgBackRest lock folder in /tmp, setuid for runuser.
    assert.deepEqual(set('MemoryDenyWriteExecute'), []);
    assert.deepEqual(set('PrivateTmp'), []);
    for (const cap of ['CAP_SETUID', 'CAP_SETGID', 'CAP_KILL', 'CAP_DAC_OVERRIDE']) assert.ok(set('CapabilityBoundingSet')[0].split(/\s+/).includes(cap), cap);
    const slack = readFileSync(join(ROOT, 'deploy', 'systemd', 'pgdr-slack-server.service'), 'utf8');
    assert.match(slack, /^DynamicUser=yes$/m);
    assert.match(slack, /^EnvironmentFile=\/etc\/pgdr\/slack\.env$/m);
    assert.match(slack, /^ExecStart=\/usr\/local\/bin\/pgdr --config \/etc\/pgdr\/pgdr\.yaml slack-server --host 127\.0\.0\.1 /m);
  });
});
