/**
 * A PostgreSQL wrapper: pg_ctl for the server process (as the cluster's OS user), pg for SQL over the
 * unix socket. Used by activities; never by workflows directly.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type QueryResultRow } from 'pg';
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

export type ServerState = 'running' | 'stopped' | 'no-data-directory';

export async function serverState(t: PgTarget): Promise<ServerState> {
  if (!existsSync(join(t.dataDir, 'PG_VERSION'))) return 'no-data-directory';
  const res = await pgCtl(t, ['status']);
  return res.exitCode === 0 ? 'running' : 'stopped';
}

/** Start the server and wait until it accepts connections. */
export async function startServer(t: PgTarget, logFile: string, timeoutSeconds = 120, env?: Record<string, string>): Promise<void> {
  const res = await pgCtl(t, ['-l', logFile, '-w', '-t', String(timeoutSeconds), 'start'], env);
  if (res.exitCode !== 0) {
    throw ApplicationFailure.retryable(
      `PostgreSQL in ${t.dataDir} did not start: ${lastLines(res.stderr || res.stdout, 3)}\n--- server log ---\n${logTail(logFile, 20)}`,
      'ServerStartFailed',
    );
  }
}

/** Stop the server with a fast shutdown; a stopped server is fine. */
export async function stopServer(t: PgTarget, timeoutSeconds = 120): Promise<'stopped' | 'was-not-running'> {
  if ((await serverState(t)) !== 'running') return 'was-not-running';
  const res = await pgCtl(t, ['-m', 'fast', '-w', '-t', String(timeoutSeconds), 'stop']);
  if (res.exitCode !== 0 && (await serverState(t)) === 'running') {
    throw ApplicationFailure.retryable(`PostgreSQL in ${t.dataDir} did not stop: ${lastLines(res.stderr || res.stdout, 3)}`, 'ServerStopFailed');
  }
  return 'stopped';
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
