/**
 * Local PostgreSQL 15 clusters with a pgBackRest stanza, in folders pgdr creates: the embedded demo
 * cluster and the clusters of the test suite. Everything runs as the `postgres` OS user.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { iniLines, pgConfLines } from '../common/conf-value';
import { query, startServer, stopServer, type PgTarget } from '../activities/postgres';
import { run } from '../activities/process';
import { makeOwnedDir, osUserIds } from '../common/os-user';

export const PG_BIN_DIR = process.env.PGDR_PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

export interface LocalClusterSpec {
  /** Folder holding data/, socket/, repo/, log/ and pgbackrest.conf. */
  dir: string;
  name: string;
  stanza?: string;
  host?: string;
  port: number;
  osUser?: string;
  /** A second posix repository (repo2), e.g. "offsite". */
  repo2?: boolean;
  /** Encrypt repo1 with this passphrase (given to pgBackRest through the environment only). */
  cipherPassEnv?: string;
}

export interface LocalCluster extends PgTarget {
  name: string;
  stanza: string;
  host: string;
  dir: string;
  pgbackrestConfig: string;
  repoPath: string;
  repo2Path?: string;
  logFile: string;
  /** The cluster entry for pgdr.yaml. */
  configEntry: Record<string, unknown>;
}

export function localCluster(spec: LocalClusterSpec): LocalCluster {
  const osUser = spec.osUser ?? 'postgres';
  const stanza = spec.stanza ?? spec.name;
  const host = spec.host ?? spec.name;
  const c: LocalCluster = {
    name: spec.name,
    stanza,
    host,
    dir: spec.dir,
    dataDir: join(spec.dir, 'data'),
    socketDir: join(spec.dir, 'socket'),
    port: spec.port,
    osUser,
    pgBinDir: PG_BIN_DIR,
    dbUser: 'postgres',
    database: 'postgres',
    pgbackrestConfig: join(spec.dir, 'pgbackrest.conf'),
    repoPath: join(spec.dir, 'repo'),
    repo2Path: spec.repo2 ? join(spec.dir, 'repo2') : undefined,
    logFile: join(spec.dir, 'log', 'postgresql.log'),
    configEntry: {},
  };
  c.configEntry = {
    name: c.name,
    host: c.host,
    stanza: c.stanza,
    pgbackrestConfig: c.pgbackrestConfig,
    dataDir: c.dataDir,
    port: c.port,
    socketDir: c.socketDir,
    osUser,
    pgBinDir: PG_BIN_DIR,
    serverLog: c.logFile,
    repos: [
      { index: 1, name: 'local', ...(spec.cipherPassEnv ? { cipherPassEnv: spec.cipherPassEnv } : {}) },
      ...(spec.repo2 ? [{ index: 2, name: 'offsite' }] : []),
    ],
  };
  return c;
}

/** The pgBackRest configuration of a local cluster. */
export function pgbackrestConf(c: LocalCluster, opts: { cipher?: boolean } = {}): string {
  const lines = [
    '[global]',
    ...iniLines({
      'repo1-path': c.repoPath,
      'repo1-cipher-type': opts.cipher ? 'aes-256-cbc' : undefined,
      'repo2-path': c.repo2Path,
      'log-path': join(c.dir, 'log'),
      'lock-path': join(c.dir, 'lock'),
      'spool-path': join(c.dir, 'spool'),
      'start-fast': 'y',
      // lz4: a WAL segment in ~25 ms of CPU instead of ~350 ms with gz (pgBackRest's default); the demo and
      // the tests push hundreds of segments.
      'compress-type': 'lz4',
      'log-level-file': 'info',
      // Keep everything unless a retention is configured explicitly; silences the retention warning.
      'repo1-retention-full': 9999999,
      'repo2-retention-full': c.repo2Path ? 9999999 : undefined,
    }),
    '',
    `[${c.stanza}]`,
    ...iniLines({ 'pg1-path': c.dataDir, 'pg1-port': c.port, 'pg1-socket-path': c.socketDir }),
    '',
  ];
  return lines.join('\n');
}

/**
 * initdb (with data checksums) and the settings WAL archiving needs; does nothing when the data
 * directory already exists. The pgBackRest config is written too.
 */
export async function initLocalCluster(c: LocalCluster, opts: { cipher?: boolean; archive?: boolean } = {}): Promise<boolean> {
  makeOwnedDir(c.dir, c.osUser, 0o755);
  for (const d of ['socket', 'repo', 'log', 'lock', 'spool', ...(c.repo2Path ? ['repo2'] : [])]) makeOwnedDir(join(c.dir, d), c.osUser);
  writeFileSync(c.pgbackrestConfig, pgbackrestConf(c, opts), { mode: 0o640 });
  const { uid, gid } = osUserIds(c.osUser);
  if (process.getuid?.() === 0) chownSync(c.pgbackrestConfig, uid, gid);
  if (existsSync(join(c.dataDir, 'PG_VERSION'))) return false;

  const init = await run(join(c.pgBinDir, 'initdb'), ['-A', 'trust', '-U', 'postgres', '--data-checksums', '-E', 'UTF8', '--locale=C', '-D', c.dataDir], {
    user: c.osUser,
  });
  if (init.exitCode !== 0) throw new Error(`initdb failed for ${c.dataDir}: ${init.stderr || init.stdout}`);
  const archiveCommand = `pgbackrest --config=${c.pgbackrestConfig} --stanza=${c.stanza} archive-push %p`;
  const settings = [
    '',
    '# --- pgdr local cluster ---',
    ...pgConfLines({
      port: String(c.port),
      unix_socket_directories: c.socketDir,
      listen_addresses: '',
      wal_level: 'replica',
      ...(opts.archive === false ? { archive_mode: 'off' } : { archive_mode: 'on', archive_command: archiveCommand }),
      max_wal_senders: '3',
      shared_buffers: '64MB',
      fsync: 'on',
      log_line_prefix: '%m [%p] ',
    }),
    '',
  ];
  const conf = join(c.dataDir, 'postgresql.conf');
  writeFileSync(conf, readFileSync(conf, 'utf8') + settings.join('\n'));
  return true;
}

export async function startLocalCluster(c: LocalCluster): Promise<void> {
  mkdirSync(dirname(c.logFile), { recursive: true });
  await startServer(c, c.logFile);
}

export async function stopLocalCluster(c: LocalCluster): Promise<void> {
  await stopServer(c);
}

/** A little demo data: customers and orders, and a migrations table like Prisma's. */
export async function loadDemoData(c: PgTarget, database = 'app'): Promise<void> {
  const exists = await query(c, 'SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (!exists.length) await query(c, `CREATE DATABASE ${database}`);
  await query(
    c,
    `CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE IF NOT EXISTS _prisma_migrations (id text PRIMARY KEY, migration_name text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz);
     INSERT INTO _prisma_migrations (id, migration_name, finished_at) VALUES ('0001', '0001_init', now()) ON CONFLICT DO NOTHING;
     INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 100) g WHERE NOT EXISTS (SELECT 1 FROM customers);
     INSERT INTO orders (customer_id, amount) SELECT 1 + (g % 100), (g % 500) + 0.99 FROM generate_series(1, 1000) g WHERE NOT EXISTS (SELECT 1 FROM orders);`,
    [],
    database,
  );
}

/** pgdr.yaml text for the given clusters. */
export function configYaml(opts: { clusters: Record<string, unknown>[]; temporalAddress: string; uiUrl?: string; taskQueue?: string; stateDir?: string; extra?: Record<string, unknown> }): string {
  const doc = {
    temporal: { address: opts.temporalAddress, namespace: 'default', taskQueue: opts.taskQueue ?? 'pgdr', uiUrl: opts.uiUrl ?? 'http://127.0.0.1:8233' },
    stateDir: opts.stateDir ?? '.',
    ...opts.extra,
    clusters: opts.clusters,
  };
  return `# Generated by pgdr. See config/pgdr.example.yaml for every field.\n${stringify(doc)}`;
}
