/**
 * A production-shaped Temporal server for tests: the real server binary (v1.29.1, built into .tools/ by
 * scripts/ensure-deps.sh --test) with PostgreSQL 15 persistence and mTLS required on the frontend and between
 * its services — what pgdr's users run, unlike `temporal server start-dev`.
 *
 *   const ts = await startTemporalServer({ dir });   // dir: a fresh folder the test owns
 *   ts.address, ts.tls.{caFile, clientCertFile, clientKeyFile, serverName}   → pgdr.yaml temporal.tls
 *   await ts.kill('SIGKILL'); await ts.restart();     // same ports, database and certificates
 *   await ts.stop();                                  // server and PostgreSQL stopped, files removed
 *
 * Layout in `dir`: pg/ (data, socket, log), certs/ (CA, server and client certificates made with openssl),
 * config/ (the server's YAML and dynamic config), temporal.log. Every port is picked free; every listener is
 * bound to `bindIp` (never 0.0.0.0).
 */
import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { execa, type ResultPromise } from 'execa';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { startServer, stopServer, type PgTarget } from '../../activities/postgres';
import { asUser, run, stopProcessGroup } from '../../activities/process';
import { pickFreePort, portInUse } from '../../common/net';
import { makeOwnedDir } from '../../common/os-user';
import { PROJECT_ROOT } from '../../common/paths';
import { temporalConnectionOptions } from '../../common/temporal-connection';
import { applySearchAttributes } from '../../client/search-attributes';

export const TEMPORAL_SERVER_VERSION = '1.29.1';
/** Where scripts/ensure-deps.sh --test builds the server and its sql schema tool ($PGDR_TEMPORAL_SERVER_DIR overrides). */
export const TEMPORAL_SERVER_DIR = process.env.PGDR_TEMPORAL_SERVER_DIR ?? join(PROJECT_ROOT, '.tools', `temporal-server-v${TEMPORAL_SERVER_VERSION}`);
/** The DNS name in the server certificate (the client's `serverName`); it resolves nowhere on purpose. */
export const SERVER_NAME = 'temporal.pgdr.test';

const PG_BIN_DIR = process.env.PGDR_PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

export interface TemporalServerOptions {
  /** A folder the test owns (e.g. inside its mkdtemp root); created when missing. */
  dir: string;
  /** Address every server listener binds to (default 127.0.0.1; never 0.0.0.0). */
  bindIp?: string;
  /** Frontend gRPC port (default: a free one). */
  port?: number;
  namespace?: string;
}

export interface TemporalServerTls {
  caFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  serverName: string;
}

export interface TemporalServer {
  /** host:port of the frontend (mTLS; connect with `tls`). */
  address: string;
  frontendPort: number;
  namespace: string;
  /** The client side of mTLS, ready for pgdr.yaml `temporal.tls`. */
  tls: TemporalServerTls;
  /** Folder of ca.pem/ca.key, server.pem/.key, client.pem/.key. */
  certs: string;
  logFile: string;
  /** Milliseconds each part of the first start took (postgres, schema, certs, server, namespace, total). */
  timings: Record<string, number>;
  /** Pid of the running server process (its process group too), undefined while it is down. */
  pid(): number | undefined;
  /** A client connected over mTLS (closed by stop()). */
  client(): Promise<Client>;
  /** Start the server again (after kill or stop of the server only): same ports, database and certificates. */
  restart(): Promise<void>;
  /** Signal the server process group (SIGKILL: a crash) and wait until it is gone. PostgreSQL keeps running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stop the server and PostgreSQL and remove what this helper created in `dir` (unless PGDR_KEEP_TEST_DIRS). */
  stop(): Promise<void>;
}

/** openssl with an argument array; throws with its output when it fails. */
async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
}

/** A CA, a server certificate (DNS SAN `SERVER_NAME`, server+client auth: it is also the internode client) and a client certificate. EC P-256, PKCS#8 keys. */
export async function makeCertificates(dir: string): Promise<{ ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = (name: string) => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  await Promise.all([key('ca'), key('server'), key('client')]);
  await openssl(
    ['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=pgdr test CA', '-days', '30', '-out', 'ca.pem',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  const sign = async (name: string, cn: string, ext: string[]) => {
    writeFileSync(join(dir, `${name}.ext`), [...ext, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ''].join('\n'));
    await openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(Date.now() + name.length), '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
  };
  await Promise.all([
    sign('server', SERVER_NAME, [`subjectAltName=DNS:${SERVER_NAME}`, 'extendedKeyUsage=serverAuth,clientAuth']),
    sign('client', 'pgdr-client', ['subjectAltName=DNS:pgdr-client', 'extendedKeyUsage=clientAuth']),
  ]);
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key') };
}

/** `count` distinct free ports. */
async function freePorts(count: number, taken: number[] = []): Promise<number[]> {
  const ports = new Set<number>(taken);
  while (ports.size < count + taken.length) ports.add(await pickFreePort());
  return [...ports].slice(taken.length);
}

/** Someone could bind host:port right now. */
function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * Free ports below 32768 for the membership (ringpop) listeners: the SQL schema stores them as SMALLINT, so an
 * ephemeral port (32768–60999, what pickFreePort gets) makes the server exit at start. Random in 20000–32767.
 */
async function freeMembershipPorts(count: number, bindIp: string, avoid: number[]): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 500) throw new Error('no free port below 32768 for the Temporal membership listeners');
    const p = 20_000 + Math.floor(Math.random() * 12_768);
    if (ports.includes(p) || avoid.includes(p)) continue;
    if ((await canBind(p, '127.0.0.1')) && (bindIp === '127.0.0.1' || (await canBind(p, bindIp)))) ports.push(p);
  }
  return ports;
}

async function timed<T>(timings: Record<string, number>, name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = Date.now() - t0;
  }
}

/** The persistence cluster: initdb (trust on loopback and socket), tuned for a throw-away test database. */
async function startPersistence(dir: string, port: number): Promise<PgTarget & { logFile: string }> {
  const pg = { dataDir: join(dir, 'data'), socketDir: join(dir, 'socket'), port, osUser: 'postgres', pgBinDir: PG_BIN_DIR, dbUser: 'postgres', database: 'postgres', logFile: join(dir, 'postgresql.log') };
  makeOwnedDir(dir, 'postgres', 0o755);
  makeOwnedDir(pg.socketDir, 'postgres', 0o755);
  const init = await run(join(PG_BIN_DIR, 'initdb'), ['-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '-D', pg.dataDir], { user: 'postgres' });
  if (init.exitCode !== 0) throw new Error(`initdb for the Temporal persistence failed: ${init.stderr || init.stdout}`);
  const conf = join(pg.dataDir, 'postgresql.conf');
  const settings = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${pg.socketDir}'`,
    max_connections: '200',
    shared_buffers: '64MB',
    // A test database that lives as long as the test: durability is not the point, speed is.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
  };
  writeFileSync(conf, readFileSync(conf, 'utf8') + '\n# --- pgdr test: Temporal persistence ---\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  makeOwnedDir(dirname(pg.logFile), 'postgres', 0o755);
  await startServer(pg, pg.logFile, 60);
  return pg;
}

/** create-database, setup-schema -v 0.0 and update-schema (embedded versioned schema) for one database. */
async function setupSchema(pgPort: number, database: string, schemaName: string): Promise<void> {
  const sqlTool = join(TEMPORAL_SERVER_DIR, 'sql');
  const common = ['--plugin', 'postgres12', '--endpoint', '127.0.0.1', '--port', String(pgPort), '--user', 'postgres', '--password', '', '--database', database];
  for (const args of [
    [...common, 'create-database'],
    [...common, 'setup-schema', '-v', '0.0'],
    [...common, 'update-schema', '--schema-name', schemaName],
  ]) {
    const r = await run(sqlTool, args);
    if (r.exitCode !== 0) throw new Error(`temporal sql tool ${args.slice(common.length).join(' ')} (${database}) failed: ${(r.stderr || r.stdout).slice(-2000)}`);
  }
}

interface Layout {
  bindIp: string;
  frontend: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
  pgPort: number;
}

function serverConfig(l: Layout, certs: Awaited<ReturnType<typeof makeCertificates>>, dynamicConfigFile: string): string {
  const sqlStore = (databaseName: string, maxConns: number) => ({
    sql: { pluginName: 'postgres12', databaseName, connectAddr: `127.0.0.1:${l.pgPort}`, connectProtocol: 'tcp', user: 'postgres', password: '', maxConns, maxIdleConns: maxConns, maxConnLifetime: '1h' },
  });
  const rpc = (grpcPort: number, membershipPort: number) => ({ rpc: { grpcPort, membershipPort, bindOnIP: l.bindIp } });
  const serverSide = { certFile: certs.serverCert, keyFile: certs.serverKey, requireClientAuth: true, clientCaFiles: [certs.ca] };
  const clientSide = { serverName: SERVER_NAME, rootCaFiles: [certs.ca] };
  const doc = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'pg-default',
      visibilityStore: 'pg-visibility',
      numHistoryShards: 4,
      datastores: { 'pg-default': sqlStore('temporal', 20), 'pg-visibility': sqlStore('temporal_visibility', 4) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: l.bindIp },
      tls: {
        // mTLS everywhere: between the services (their client certificate is the server's) and on the frontend.
        internode: { server: serverSide, client: clientSide },
        frontend: { server: serverSide, client: clientSide },
        // The system worker (schedules, namespace deletion…) calls the frontend with the client certificate.
        systemWorker: { certFile: certs.clientCert, keyFile: certs.clientKey, client: clientSide },
      },
    },
    services: {
      frontend: rpc(l.frontend, l.frontendMembership),
      history: rpc(l.history, l.historyMembership),
      matching: rpc(l.matching, l.matchingMembership),
      worker: rpc(l.worker, l.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `${l.bindIp}:${l.frontend}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  return stringify(doc);
}

/** Dynamic config: what the dev server sets so that new namespaces and search attributes are usable at once. */
const DYNAMIC_CONFIG = {
  'system.forceSearchAttributesCacheRefreshOnRead': [{ value: true, constraints: {} }],
  'frontend.enableUpdateWorkflowExecution': [{ value: true, constraints: {} }],
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted': [{ value: true, constraints: {} }],
};

export async function startTemporalServer(opts: TemporalServerOptions): Promise<TemporalServer> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const bindIp = opts.bindIp ?? '127.0.0.1';
  if (bindIp === '0.0.0.0' || bindIp === '::') throw new Error('startTemporalServer: bind to one address, never all of them');
  const namespace = opts.namespace ?? 'default';
  const bin = join(TEMPORAL_SERVER_DIR, 'server');
  if (!existsSync(bin) || !existsSync(join(TEMPORAL_SERVER_DIR, 'sql'))) {
    throw new Error(`the Temporal server ${TEMPORAL_SERVER_VERSION} is not built in ${TEMPORAL_SERVER_DIR}: run scripts/ensure-deps.sh --test`);
  }
  mkdirSync(opts.dir, { recursive: true });
  chmodSync(opts.dir, 0o755); // the postgres user must reach pg/
  const created = ['pg', 'certs', 'config', 'temporal.log'].map((p) => join(opts.dir, p));
  const [pgPort, history, matching, worker, ...more] = await freePorts(opts.port ? 4 : 5, opts.port ? [opts.port] : []);
  const frontend = opts.port ?? more[0];
  const [frontendMembership, historyMembership, matchingMembership, workerMembership] = await freeMembershipPorts(4, bindIp, [pgPort, history, matching, worker, frontend]);
  const layout: Layout = { bindIp, frontend, frontendMembership, history, historyMembership, matching, matchingMembership, worker, workerMembership, pgPort };

  // PostgreSQL + schemas, and the certificates meanwhile (openssl is quick; initdb and the schemas are not).
  const certsDir = join(opts.dir, 'certs');
  const [pg, certs] = await Promise.all([
    timed(timings, 'postgres', () => startPersistence(join(opts.dir, 'pg'), pgPort)).then((pg) =>
      timed(timings, 'schema', async () => {
        await Promise.all([setupSchema(pgPort, 'temporal', 'postgresql/v12/temporal'), setupSchema(pgPort, 'temporal_visibility', 'postgresql/v12/visibility')]);
        return pg;
      }),
    ),
    timed(timings, 'certs', () => makeCertificates(certsDir)),
  ]);
  const tls: TemporalServerTls = { caFile: certs.ca, clientCertFile: certs.clientCert, clientKeyFile: certs.clientKey, serverName: SERVER_NAME };
  const address = `${bindIp}:${frontend}`;
  const connectionOptions = () => temporalConnectionOptions({ address, tls, apiKeyEnv: undefined });

  const configDir = join(opts.dir, 'config');
  mkdirSync(configDir, { recursive: true });
  const dynamicConfigFile = join(configDir, 'dynamic.yaml');
  writeFileSync(dynamicConfigFile, stringify(DYNAMIC_CONFIG));
  writeFileSync(join(configDir, 'pgdr-test.yaml'), serverConfig(layout, certs, dynamicConfigFile));
  const logFile = join(opts.dir, 'temporal.log');

  let child: ResultPromise | undefined;
  let exited = true;
  const launch = async () => {
    for (const p of [frontend, history, matching, worker, frontendMembership, historyMembership, matchingMembership, workerMembership]) {
      if (await portInUse(p, bindIp)) throw new Error(`port ${bindIp}:${p} is taken; the Temporal server cannot start on it`);
    }
    exited = false;
    const c = execa(bin, ['--root', opts.dir, '--config', 'config', '--env', 'pgdr-test', '--allow-no-auth', 'start'], {
      detached: true,
      stdin: 'ignore',
      stdout: { file: logFile, append: true },
      stderr: { file: logFile, append: true },
      reject: false,
    });
    child = c;
    void c.then(() => {
      if (child === c) exited = true;
    });
    // Ready = answers getSystemInfo over mTLS (the frontend is up and has joined its peers).
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (exited) throw new Error(`the Temporal server exited at start; see ${logFile}:\n${tail(logFile, 15)}`);
      try {
        const conn = await Connection.connect({ ...connectionOptions(), connectTimeout: '1s' });
        try {
          await conn.withDeadline(Date.now() + 2000, () => conn.workflowService.getSystemInfo({}));
          return;
        } finally {
          await conn.close();
        }
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the Temporal server did not answer on ${address} within 90 s (${(err as Error).message}); see ${logFile}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!child || exited) return;
    await stopProcessGroup(child, 15_000, signal);
    exited = true;
  };

  // A test process that dies without stop() must not leave the server and its PostgreSQL running.
  const onExit = () => {
    const pid = child && !exited ? child.pid : undefined;
    try {
      if (pid) process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    const [cmd, argv] = asUser(pg.osUser, join(PG_BIN_DIR, 'pg_ctl'), ['-D', pg.dataDir, '-m', 'immediate', 'stop']);
    spawnSync(cmd, argv, { stdio: 'ignore' });
  };
  process.once('exit', onExit);

  let clientConn: Connection | undefined;
  const client = async () => {
    clientConn ??= await Connection.connect({ ...connectionOptions(), connectTimeout: '5s' });
    return new Client({ connection: clientConn, namespace });
  };

  try {
    await timed(timings, 'server', launch);
    await timed(timings, 'namespace', async () => {
      const c = await client();
      await registerNamespace(c, namespace);
      await applySearchAttributes(c, namespace);
    });
  } catch (err) {
    process.removeListener('exit', onExit);
    await kill('SIGKILL');
    await stopServer(pg).catch(() => undefined);
    throw err;
  }
  timings.total = Date.now() - t0;

  return {
    address,
    frontendPort: frontend,
    namespace,
    tls,
    certs: certsDir,
    logFile,
    timings,
    client,
    pid: () => (exited ? undefined : child?.pid),
    kill,
    restart: async () => {
      await kill('SIGTERM');
      await launch();
    },
    stop: async () => {
      process.removeListener('exit', onExit);
      await clientConn?.close().catch(() => undefined);
      clientConn = undefined;
      await kill('SIGTERM');
      await stopServer(pg).catch(() => undefined);
      if (!process.env.PGDR_KEEP_TEST_DIRS) for (const p of created) rmSync(p, { recursive: true, force: true });
    },
  };
}

/** Register the namespace (1 day retention); one that exists already is fine. Waits until it is usable. */
async function registerNamespace(client: Client, namespace: string): Promise<void> {
  const svc = client.workflowService;
  try {
    await svc.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  } catch (err) {
    if (!/already exists/i.test((err as Error).message)) throw err;
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await svc.describeNamespace({ namespace });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
