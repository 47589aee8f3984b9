/**
 * A PostgreSQL wrapper: the postmaster's lifecycle (start, stop, state) by the cluster's `control` method —
 * pg_ctl as the cluster's OS user, Debian's pg_ctlcluster, or the operator's own commands — and pg for SQL
 * over the unix socket. Used by activities; never by workflows directly.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Client, type QueryResultRow } from 'pg';
import { debianVersionOf, type ControlConfig } from '../common/config';
import { osUserIds } from '../common/os-user';
import type { ArchiveSettingProblem, ArchiveSettingsReport } from '../common/types';
import { lastLines } from './pgbackrest';
import { run } from './process';

/** What it takes to reach one PostgreSQL server on this host. ClusterConfig satisfies it. */
export interface PgTarget {
  dataDir: string;
  port: number;
  socketDir: string;
  osUser: string;
  pgBinDir: string;
  dbUser: string;
  database: string;
  /** The cluster's name (ClusterConfig has it; the `commands` method passes it as PGDR_CLUSTER). */
  name?: string;
  /** How its postmaster is started and stopped; absent: pg_ctl (restored copies always are). */
  control?: ControlConfig;
}

export function connectionOptions(t: PgTarget, database?: string) {
  return { host: t.socketDir, port: t.port, user: t.dbUser, database: database ?? t.database, connectionTimeoutMillis: 5000 };
}

/** Run SQL and return the rows. Opens and closes its own connection. */
export async function query<R extends QueryResultRow = QueryResultRow>(t: PgTarget, sql: string, params: unknown[] = [], database?: string): Promise<R[]> {
  const client = new Client(connectionOptions(t, database));
  await client.connect();
  try {
    const res = await client.query<R>(sql, params);
    return res.rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** pg_ctl on the target's data directory, as its OS user; `env` reaches the postmaster (e.g. repo passphrases). */
export async function pgCtl(t: PgTarget, args: string[], env?: Record<string, string>) {
  return run(join(t.pgBinDir, 'pg_ctl'), ['-D', t.dataDir, ...args], { user: t.osUser, env });
}

// ---------------------------------------------------------------------------------------------------------
// The postmaster's lifecycle: start, stop, state — the one place that knows how a cluster is run
// (`control` in pgdr.yaml). A target without `control` (a restored copy, a scratch drill copy) is run with
// pg_ctl on its own data directory.

export type ServerState = 'running' | 'stopped' | 'no-data-directory';
export type ShutdownMode = 'fast' | 'immediate';

const controlOf = (t: PgTarget): ControlConfig => t.control ?? { method: 'pg_ctl' };

/** The Debian cluster of a pg_ctlcluster target: version and name (the version defaults from pgBinDir). */
export function debianCluster(t: PgTarget): { version: string; name: string; confDir: string } | null {
  const ctl = controlOf(t);
  if (ctl.method !== 'pg_ctlcluster') return null;
  const version = ctl.version ?? debianVersionOf(t.pgBinDir);
  if (!version) throw ApplicationFailure.nonRetryable(`control.version is needed: pgBinDir ${t.pgBinDir} names no version`, 'BadInput');
  return { version, name: ctl.name, confDir: join(DEBIAN_CONF_ROOT, version, ctl.name) };
}

/** Where Debian keeps cluster configurations (postgresql-common honours PG_CLUSTER_CONF_ROOT too). */
export const DEBIAN_CONF_ROOT = process.env.PG_CLUSTER_CONF_ROOT ?? '/etc/postgresql';

export interface DebianClusterInfo {
  version: string;
  name: string;
  port: number;
  status: string;
  owner: string;
  dataDir: string;
  /** The server log pg_ctlcluster writes to (null: syslog, the logging collector, or unknown). */
  logFile: string | null;
}

/** `pg_lsclusters` for one Debian cluster (null when it does not know it). */
export async function lsCluster(version: string, name: string): Promise<DebianClusterInfo | null> {
  const r = await run('pg_lsclusters', ['-h', version, name]).catch(() => null); // not installed: no Debian cluster here
  if (!r) return null;
  const line = r.stdout.split('\n').find((l) => l.trim());
  if (r.exitCode !== 0 || !line) return null;
  const [v, n, port, status, owner, dataDir, ...log] = line.trim().split(/\s+/);
  const logFile = log.join(' ');
  return { version: v, name: n, port: Number(port), status, owner, dataDir, logFile: logFile.startsWith('/') ? logFile : null };
}

/** The environment a command of the `commands` method gets. */
function commandEnv(t: PgTarget, logFile: string | undefined, env?: Record<string, string>): Record<string, string> {
  return { ...env, PGDR_CLUSTER: t.name ?? '', PGDR_DATA_DIR: t.dataDir, PGDR_PORT: String(t.port), ...(logFile ? { PGDR_LOG_FILE: logFile } : {}) };
}

/** The pid in a data directory's postmaster.pid (null when there is none). */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** A process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number | null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A postmaster runs in this data directory (its postmaster.pid names a live process), whatever started it. */
export function postmasterAlive(dataDir: string): boolean {
  return processAlive(postmasterPid(dataDir));
}

export async function serverState(t: PgTarget): Promise<ServerState> {
  if (!existsSync(join(t.dataDir, 'PG_VERSION'))) return 'no-data-directory';
  const ctl = controlOf(t);
  if (ctl.method === 'commands' && ctl.status) {
    const [file, ...args] = ctl.status;
    return (await run(file, args, { env: commandEnv(t, undefined) })).exitCode === 0 ? 'running' : 'stopped';
  }
  // pg_ctl status reads postmaster.pid in the data directory: right for pg_ctlcluster's clusters too.
  const res = await pgCtl(t, ['status']);
  return res.exitCode === 0 ? 'running' : 'stopped';
}

/** The server log a start of `t` writes to: `logFile` for pg_ctl and commands; Debian's own for pg_ctlcluster. */
export async function serverLogFile(t: PgTarget, logFile: string): Promise<string> {
  const deb = debianCluster(t);
  if (!deb) return logFile;
  return (await lsCluster(deb.version, deb.name))?.logFile ?? join(deb.confDir, '(server log not in a file: syslog or logging_collector)');
}

/**
 * What stops pgdr from running `t` the way its `control` says — checked before anything destructive starts
 * (and again at every start). pg_ctlcluster: the Debian cluster exists, its data directory and port are the
 * ones in pgdr.yaml, and the repo passphrases reach its postmaster: pg_ctlcluster starts PostgreSQL with an
 * environment made only of /etc/postgresql/<v>/<name>/environment, so the passphrase pgdr reads
 * (cipherPassEnv / cipherPassFile) must be there too, or in the pgBackRest config (repoN-cipher-pass).
 * pgdr does not write into /etc.
 */
export async function controlProblems(t: PgTarget, secrets: Record<string, string> = {}, pgbackrestConfig?: string): Promise<string[]> {
  const ctl = controlOf(t);
  if (ctl.method === 'pg_ctl') return [];
  if (ctl.method === 'commands') {
    return [ctl.start, ctl.stop, ...(ctl.status ? [ctl.status] : [])]
      .map((argv) => argv[0])
      .filter((f) => f.startsWith('/') && !existsSync(f))
      .map((f) => `control: ${f} does not exist on this host`);
  }
  const deb = debianCluster(t)!;
  const problems: string[] = [];
  const info = await lsCluster(deb.version, deb.name);
  if (!existsSync(join(deb.confDir, 'postgresql.conf')) || !info) {
    return [`control: Debian cluster ${deb.version}/${deb.name} does not exist on this host (no ${deb.confDir}/postgresql.conf; pg_lsclusters shows the clusters there)`];
  }
  if (info.dataDir.replace(/\/+$/, '') !== t.dataDir.replace(/\/+$/, '')) {
    problems.push(`control: Debian cluster ${deb.version}/${deb.name} has its data directory in ${info.dataDir} (data_directory in ${deb.confDir}/postgresql.conf) but pgdr.yaml says dataDir ${t.dataDir}: make them agree`);
  }
  if (info.port !== t.port) problems.push(`control: Debian cluster ${deb.version}/${deb.name} runs on port ${info.port} (${deb.confDir}/postgresql.conf) but pgdr.yaml says port ${t.port}: make them agree`);
  const missing = Object.keys(secrets).filter((k) => !postmasterHasSecret(deb.confDir, k, pgbackrestConfig));
  if (missing.length) {
    problems.push(
      `control: pg_ctlcluster starts PostgreSQL with only the variables of ${join(deb.confDir, 'environment')}, and ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not there (nor repoN-cipher-pass in ${pgbackrestConfig ?? 'the pgBackRest config'}): ` +
        `archive_command and restore_command would fail without the repo passphrase. Add "${missing[0]} = '…'" to that file (owner ${t.osUser}, mode 0600), or put repoN-cipher-pass into the pgBackRest config readable only by ${t.osUser}; pgdr does not write into /etc`,
    );
  }
  return problems;
}

/** The postmaster of a Debian cluster gets `name` (PGBACKREST_REPO<n>_CIPHER_PASS) from its environment file or pgBackRest's config. */
function postmasterHasSecret(confDir: string, name: string, pgbackrestConfig?: string): boolean {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  if (new RegExp(`^\\s*${name}\\s*=\\s*\\S`, 'm').test(read(join(confDir, 'environment')))) return true;
  const option = name.replace(/^PGBACKREST_/, '').toLowerCase().replace(/_/g, '-'); // repo1-cipher-pass
  return Boolean(pgbackrestConfig) && new RegExp(`^\\s*${option}\\s*=\\s*\\S`, 'm').test(read(pgbackrestConfig!));
}

export interface StartOutcome {
  exitCode: number;
  output: string;
  /** The server log this start writes to. */
  logFile: string;
}

/**
 * Start the postmaster the way its `control` says, without waiting for more than the method itself waits
 * (pg_ctl -w; pg_ctlcluster until it accepts connections). `env` (repo passphrases) reaches the postmaster
 * with pg_ctl and commands; pg_ctlcluster refuses unless its environment file provides them (controlProblems).
 * Never throws for a failed start: callers decide (startServer, startAndAwaitPromotion).
 */
export async function startPostmaster(t: PgTarget, o: { logFile: string; timeoutSeconds?: number; env?: Record<string, string>; pgbackrestConfig?: string }): Promise<StartOutcome> {
  const timeout = String(o.timeoutSeconds ?? 120);
  const ctl = controlOf(t);
  if (ctl.method === 'pg_ctlcluster') {
    const problems = await controlProblems(t, o.env, o.pgbackrestConfig);
    if (problems.length) throw ApplicationFailure.nonRetryable(`cannot start ${t.dataDir} with pg_ctlcluster: ${problems.join('; ')}`, 'BadInput');
    const deb = debianCluster(t)!;
    const logFile = await serverLogFile(t, o.logFile);
    // As root: pg_ctlcluster drops to the cluster owner itself (and goes through systemd when systemd runs it).
    const r = await run('pg_ctlcluster', [deb.version, deb.name, 'start']);
    return { exitCode: r.exitCode, output: r.stderr || r.stdout, logFile };
  }
  if (ctl.method === 'commands') {
    const [file, ...args] = ctl.start;
    const r = await run(file, args, { env: commandEnv(t, o.logFile, o.env) });
    return { exitCode: r.exitCode, output: r.stderr || r.stdout, logFile: o.logFile };
  }
  const r = await pgCtl(t, ['-l', o.logFile, '-w', '-t', timeout, 'start'], o.env);
  return { exitCode: r.exitCode, output: r.stderr || r.stdout, logFile: o.logFile };
}

/** Start the server and wait until it accepts connections. */
export async function startServer(t: PgTarget, logFile: string, timeoutSeconds = 120, env?: Record<string, string>, pgbackrestConfig?: string): Promise<void> {
  const res = await startPostmaster(t, { logFile, timeoutSeconds, env, pgbackrestConfig });
  if (res.exitCode !== 0) {
    throw ApplicationFailure.retryable(
      `PostgreSQL in ${t.dataDir} did not start: ${lastLines(res.output, 3)}\n--- server log ---\n${logTail(res.logFile, 20)}`,
      'ServerStartFailed',
    );
  }
}

/** Stop the server (fast shutdown by default; immediate for a copy being thrown away); a stopped server is fine. */
export async function stopServer(t: PgTarget, timeoutSeconds = 120, mode: ShutdownMode = 'fast'): Promise<'stopped' | 'was-not-running'> {
  if ((await serverState(t)) !== 'running') return 'was-not-running';
  const ctl = controlOf(t);
  let res;
  if (ctl.method === 'pg_ctlcluster') {
    const deb = debianCluster(t)!;
    // Extra pg_ctl options would make pg_ctlcluster bypass systemd: the stop timeout goes through the environment.
    res = await run('pg_ctlcluster', ['--mode', mode, deb.version, deb.name, 'stop'], { env: { PGCTLTIMEOUT: String(timeoutSeconds) } });
  } else if (ctl.method === 'commands') {
    const [file, ...args] = ctl.stop;
    res = await run(file, args, { env: { ...commandEnv(t, undefined), PGDR_SHUTDOWN_MODE: mode } });
  } else {
    res = await pgCtl(t, ['-m', mode, '-w', '-t', String(timeoutSeconds), 'stop']);
  }
  if (res.exitCode !== 0 && (await serverState(t)) === 'running') {
    throw ApplicationFailure.retryable(`PostgreSQL in ${t.dataDir} did not stop: ${lastLines(res.stderr || res.stdout, 3)}`, 'ServerStopFailed');
  }
  return 'stopped';
}

// ---------------------------------------------------------------------------------------------------------
// Where a cluster's configuration lives. A pg_ctl cluster keeps postgresql.conf and pg_hba.conf in its data
// directory, so its backups carry them; a Debian cluster keeps them in /etc/postgresql/<v>/<name>, so a
// restore of its backup has none. A restored copy (drill, new cluster) is started with pg_ctl on its own
// data directory: it gets a postgresql.conf written from the source cluster's (without the settings that
// name production's paths) and a pg_hba.conf — never a registration in /etc/postgresql.

/** The configuration files of a cluster, by its control method (null where pgdr cannot know them). */
export async function configFiles(t: PgTarget): Promise<{ conf: string; hba: string; ident: string } | null> {
  const ctl = controlOf(t);
  if (ctl.method === 'pg_ctl') return { conf: join(t.dataDir, 'postgresql.conf'), hba: join(t.dataDir, 'pg_hba.conf'), ident: join(t.dataDir, 'pg_ident.conf') };
  if (ctl.method === 'pg_ctlcluster') {
    const { confDir } = debianCluster(t)!;
    const conf = join(confDir, 'postgresql.conf');
    const lines = existsSync(conf) ? confSettings(conf) : [];
    const setting = (name: string) => lines.filter((l) => l.name === name).pop()?.value;
    return { conf, hba: setting('hba_file') ?? join(confDir, 'pg_hba.conf'), ident: setting('ident_file') ?? join(confDir, 'pg_ident.conf') };
  }
  // Your own commands: ask the running server where its files are.
  try {
    const [r] = await query<{ conf: string; hba: string; ident: string }>(t, "SELECT current_setting('config_file') AS conf, current_setting('hba_file') AS hba, current_setting('ident_file') AS ident");
    return r;
  } catch {
    return null;
  }
}

interface ConfLine {
  text: string;
  name?: string;
  value?: string;
  file: string;
}

/** The lines of a PostgreSQL configuration file with include / include_if_exists / include_dir inlined. */
export function confSettings(file: string, depth = 0): ConfLine[] {
  if (depth > 10 || !existsSync(file)) return [];
  const out: ConfLine[] = [];
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)('(?:[^'\\]|''|\\.)*'|[^\s#]+)/.exec(text);
    if (!m) {
      out.push({ text, file });
      continue;
    }
    const name = m[1].toLowerCase();
    const value = m[2].startsWith("'") ? m[2].slice(1, -1).replace(/''/g, "'") : m[2];
    const rel = (v: string) => (v.startsWith('/') ? v : join(dirname(file), v));
    if (name === 'include' || name === 'include_if_exists') {
      out.push({ text: `# ${text.trim()}  (inlined by pgdr)`, file }, ...confSettings(rel(value), depth + 1));
    } else if (name === 'include_dir') {
      const dir = rel(value);
      const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.conf') && !f.startsWith('.')).sort() : [];
      out.push({ text: `# ${text.trim()}  (inlined by pgdr)`, file }, ...files.flatMap((f) => confSettings(join(dir, f), depth + 1)));
    } else out.push({ text, name, value, file });
  }
  return out;
}

/** Settings that name the source cluster's own files or identity: never carried into another data directory. */
const SOURCE_ONLY = new Set(['data_directory', 'hba_file', 'ident_file', 'external_pid_file', 'config_file']);
/** And for a throw-away copy (unix socket only, its own port): nothing of production's network identity. */
const COPY_ONLY_DROPPED = /^(port|unix_socket_directories|listen_addresses|cluster_name|ssl(_.*)?)$/;

/**
 * Give a restored data directory the configuration files it lacks (a backup of a cluster whose configuration
 * lives outside its data directory): postgresql.conf from `source`'s (includes inlined, production's paths —
 * and for a copy its network identity and SSL — left out; postgresql.auto.conf keeps the restore's settings)
 * and `source`'s pg_hba.conf / pg_ident.conf. Without a readable source, PostgreSQL's defaults and a
 * pg_hba.conf allowing the unix socket only (`trust` for a copy, whose socket directory only its OS user
 * reaches; `peer` otherwise). Files owned by the OS user. Returns the files written (none when it had them).
 */
export async function writeMissingConfig(source: PgTarget, dataDir: string, o: { copy: boolean }): Promise<string[]> {
  const written: string[] = [];
  const files = await configFiles(source);
  const sourceText = files && existsSync(files.conf) ? files.conf : null;
  const write = (name: string, text: string) => {
    const f = join(dataDir, name);
    writeFileSync(f, text, { mode: 0o600 });
    const { uid, gid } = osUserIds(source.osUser);
    if (process.getuid?.() === 0) chownSync(f, uid, gid);
    written.push(f);
  };
  if (!existsSync(join(dataDir, 'postgresql.conf'))) {
    const kept = sourceText
      ? confSettings(sourceText)
          .filter((l) => !l.name || !(SOURCE_ONLY.has(l.name) || (o.copy && COPY_ONLY_DROPPED.test(l.name))))
          .map((l) => l.text)
      : [];
    const head = [
      `# Written by pgdr: the backup held no postgresql.conf (the cluster's configuration lives outside its data directory).`,
      sourceText ? `# From ${sourceText}, includes inlined, without ${[...SOURCE_ONLY].join(', ')}${o.copy ? ', port, sockets, listen_addresses, cluster_name and ssl' : ''}.` : '# PostgreSQL defaults: the source configuration was not readable here.',
      '# postgresql.auto.conf (restored, plus pgdr\'s settings for this copy) overrides what is below.',
      '',
    ];
    write('postgresql.conf', [...head, ...kept, ''].join('\n'));
  }
  if (!existsSync(join(dataDir, 'pg_hba.conf'))) {
    const hba = files && existsSync(files.hba) ? `# Written by pgdr: a copy of ${files.hba}\n${readFileSync(files.hba, 'utf8')}` : `# Written by pgdr: unix socket only\nlocal all all ${o.copy ? 'trust' : 'peer'}\n`;
    write('pg_hba.conf', hba);
  }
  if (!existsSync(join(dataDir, 'pg_ident.conf'))) write('pg_ident.conf', files && existsSync(files.ident) ? readFileSync(files.ident, 'utf8') : '');
  return written;
}

export function logTail(file: string, lines: number): string {
  try {
    return lastLines(readFileSync(file, 'utf8'), lines);
  } catch {
    return '(no server log)';
  }
}

/** The archive settings pgBackRest needs for this stanza, compared with the running server's. */
export async function archiveSettings(t: PgTarget, stanza: string, pgbackrestConfig: string): Promise<ArchiveSettingsReport> {
  const rows = await query<{ name: string; setting: string }>(
    t,
    "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'wal_level', 'archive_command')",
  );
  const current = Object.fromEntries(rows.map((r) => [r.name, r.setting])) as ArchiveSettingsReport['current'];
  const problems: ArchiveSettingProblem[] = [];
  if (!['on', 'always'].includes(current.archive_mode)) {
    problems.push({ setting: 'archive_mode', expected: 'on', actual: current.archive_mode, needsRestart: true });
  }
  if (!['replica', 'logical'].includes(current.wal_level)) {
    problems.push({ setting: 'wal_level', expected: 'replica', actual: current.wal_level, needsRestart: true });
  }
  const cmd = current.archive_command ?? '';
  if (!/pgbackrest/.test(cmd) || !cmd.includes('archive-push') || !new RegExp(`--stanza=${escapeRe(stanza)}(\\s|$)`).test(cmd)) {
    problems.push({ setting: 'archive_command', expected: expectedArchiveCommand(stanza, pgbackrestConfig), actual: cmd || '(empty)', needsRestart: false });
  }
  return { ok: problems.length === 0, problems, current };
}

export function expectedArchiveCommand(stanza: string, pgbackrestConfig: string): string {
  return `pgbackrest --config=${pgbackrestConfig} --stanza=${stanza} archive-push %p`;
}

function escapeRe(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The WAL file name holding an LSN, on the server's current timeline. */
export async function walFileFor(t: PgTarget, lsn: string): Promise<string> {
  const [row] = await query<{ f: string }>(t, 'SELECT pg_walfile_name($1::pg_lsn) AS f', [lsn]);
  return row.f;
}

export interface ArchiverStats {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedAt: string | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
}

export async function archiverStats(t: PgTarget): Promise<ArchiverStats> {
  const [r] = await query<{
    archived_count: string;
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
  }>(t, 'SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver');
  return {
    archivedCount: Number(r.archived_count),
    lastArchivedWal: r.last_archived_wal,
    lastArchivedAt: r.last_archived_time?.toISOString() ?? null,
    failedCount: Number(r.failed_count),
    lastFailedWal: r.last_failed_wal,
    lastFailedAt: r.last_failed_time?.toISOString() ?? null,
  };
}
