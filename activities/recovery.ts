/**
 * A restored data directory becoming a running server: the settings a copy needs to run beside production
 * (its own port and socket, no listening, archive_mode off, written into postgresql.auto.conf — no `pg_ctl -o`
 * strings), its start, and the wait until recovery has ended and it is promoted. A postmaster that vanishes is
 * a failure even when the start returned 0; the failure carries PostgreSQL's reason and the log tail, and the
 * report says where recovery stopped.
 */
import { ApplicationFailure, CancelledFailure, Context, sleep } from '@temporalio/activity';
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { pgConfLines } from '../common/conf-value';
import { pickFreePort } from '../common/net';
import { makeOwnedDir } from '../common/os-user';
import { FAILURE, secretEnv } from './pgbackrest';
import { logTail, postmasterAlive, postmasterPid, processAlive, query, serverLogFile, startPostmaster, stopServer, type PgTarget } from './postgres';
import { killStrayPgBackRest, killStrayRestores } from './stray-pgbackrest';

export interface InstanceOverrides {
  port: number;
  socketDir: string;
  /** Default '' (unix socket only). */
  listenAddresses?: string;
  /** Default true. */
  archiveModeOff?: boolean;
  /** Further settings (name → value, quoted as a string literal). */
  extra?: Record<string, string>;
}

export interface StartRequest {
  cluster: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  /** Default: a free port picked on this host. */
  port?: number;
  /** Longest the whole recovery may take (default 3600 s). */
  timeoutSeconds?: number;
  /** 'promoted' (default): wait until pg_is_in_recovery() is false; 'accepting': until it accepts connections. */
  waitFor?: 'promoted' | 'accepting';
}

/** Where recovery ended, from the PostgreSQL log and the server's functions. */
export interface RecoveryReport {
  port: number;
  socketDir: string;
  logFile: string;
  /** Milliseconds from `pg_ctl start` until promoted (or accepting). */
  recoveryMs: number;
  /** "recovery stopping before commit of transaction 745, time 2026-… " when a target stopped it. */
  stoppedAt: string | null;
  /** LSN of "consistent recovery state reached at …". */
  consistentAt: string | null;
  lastReplayLsn: string | null;
  /** Commit time of the last replayed transaction (pg_last_xact_replay_timestamp), ISO 8601. */
  lastReplayTime: string | null;
  /** Timeline after promotion. */
  timeline: number | null;
}

/** A PgTarget for a restored copy of a cluster (same OS user, binaries and role). */
export function restoredTarget(c: ClusterConfig, dataDir: string, port: number, socketDir: string, database?: string): PgTarget {
  return { dataDir, port, socketDir, osUser: c.osUser, pgBinDir: c.pgBinDir, dbUser: c.dbUser, database: database ?? c.database };
}

/** The activity was cancelled (false outside an activity). */
function cancelled(): boolean {
  try {
    return Context.current().cancellationSignal.aborted;
  } catch {
    return false;
  }
}

function heartbeat(details: unknown) {
  try {
    Context.current().heartbeat(details);
  } catch {
    /* not in an activity */
  }
}

/** Append the settings a restored copy needs to run beside production into its postgresql.auto.conf. */
export function writeInstanceOverrides(dataDir: string, o: InstanceOverrides): void {
  const settings: Record<string, string> = {
    port: String(o.port),
    unix_socket_directories: o.socketDir,
    listen_addresses: o.listenAddresses ?? '',
    ...(o.archiveModeOff !== false ? { archive_mode: 'off' } : {}),
    ...o.extra,
  };
  const lines = ['', '# --- pgdr: settings for a restored copy ---', ...pgConfLines(settings), ''];
  appendFileSync(join(dataDir, 'postgresql.auto.conf'), lines.join('\n'));
}

/** The lines of a PostgreSQL log that explain why recovery or startup failed. */
export function recoveryFailureReason(log: string): string | null {
  const lines = log.split('\n');
  const fatal = lines.filter((l) => /\b(FATAL|PANIC):/.test(l)).map((l) => l.replace(/^.*?\b(FATAL|PANIC):\s*/, '$1: '));
  const explain = lines.filter((l) => /(could not (find|open|read|restore)|recovery ended before|requested recovery stop point|invalid (record|checkpoint))/i.test(l) && !/\b(FATAL|PANIC):/.test(l)).map((l) => l.replace(/^.*?\b(LOG|WARNING|ERROR|DETAIL|HINT):\s*/, ''));
  const all = [...new Set([...fatal, ...explain.slice(-3)])];
  return all.length ? all.join('; ') : null;
}

/** Where recovery stopped, from the log. */
export function parseRecoveryLog(log: string): Pick<RecoveryReport, 'stoppedAt' | 'consistentAt'> {
  const stop = [...log.matchAll(/(recovery stopping [^\n]*)/g)].pop()?.[1]?.trim() ?? null;
  const consistent = [...log.matchAll(/consistent recovery state reached at ([0-9A-F]+\/[0-9A-F]+)/g)].pop()?.[1] ?? null;
  return { stoppedAt: stop, consistentAt: consistent };
}

/**
 * Start a restored copy on its own port and socket directory (overrides written into postgresql.auto.conf)
 * and wait until recovery has ended and it is promoted. A postmaster already running in `dataDir` (a
 * retried activity) is stopped first.
 */
export async function startAndAwaitRecovery(c: ClusterConfig, s: StartRequest): Promise<RecoveryReport> {
  const port = s.port ?? (await pickFreePort());
  const t = restoredTarget(c, s.dataDir, port, s.socketDir);
  if (!existsSync(join(s.dataDir, 'PG_VERSION'))) {
    throw ApplicationFailure.nonRetryable(`${s.dataDir} holds no restored cluster (no PG_VERSION)`, FAILURE.badInput);
  }
  if (postmasterAlive(s.dataDir)) await stopServer(t, 60, 'immediate');
  makeOwnedDir(s.socketDir, c.osUser, 0o700);
  writeInstanceOverrides(s.dataDir, { port, socketDir: s.socketDir });
  return startAndAwaitPromotion(c, t, s.logFile, { timeoutSeconds: s.timeoutSeconds, waitFor: s.waitFor, what: 'the restored copy' });
}

/**
 * Start the server of `t` (unless it runs) and wait until recovery has ended and it is promoted. The repo
 * passphrases go into the postmaster's environment: its restore_command and archive_command run pgBackRest.
 * pg_ctl -w returns when connections are accepted (hot standby counts) and returns 0 even when recovery
 * fails later, so the postmaster is watched: one that goes away is a failure carrying PostgreSQL's reason
 * and the log tail. Used by the drill, the restore runbooks and full-site recovery.
 */
export async function startAndAwaitPromotion(
  c: ClusterConfig,
  t: PgTarget,
  logFile: string,
  opts: { timeoutSeconds?: number; waitFor?: 'promoted' | 'accepting'; what?: string } = {},
): Promise<RecoveryReport> {
  const timeoutSeconds = opts.timeoutSeconds ?? 3600;
  const what = opts.what ?? 'PostgreSQL';
  if (!existsSync(join(t.dataDir, 'PG_VERSION'))) throw ApplicationFailure.nonRetryable(`${t.dataDir} holds no cluster (no PG_VERSION)`, FAILURE.badInput);
  // pg_ctlcluster writes to the Debian cluster's own log (and its folder is not pgdr's to create or chown).
  const ownLog = logFile;
  logFile = await serverLogFile(t, logFile);
  if (logFile === ownLog) makeOwnedDir(dirname(logFile), c.osUser, 0o750);
  const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
  const logSinceStart = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(logStart) : '');
  const failed = (why: string): ApplicationFailure => {
    const reason = recoveryFailureReason(logSinceStart());
    return ApplicationFailure.nonRetryable(
      `${what} in ${t.dataDir} ${why}${reason ? `: ${reason}` : ''}\n--- PostgreSQL log (last lines) ---\n${logTail(logFile, 25)}`,
      'RecoveryFailed',
      { reason, dataDir: t.dataDir },
    );
  };
  const started = Date.now();
  let ctlExit = 0;
  if (!postmasterAlive(t.dataDir)) {
    const ctl = await startPostmaster(t, { logFile, timeoutSeconds: Math.min(timeoutSeconds, 600), env: secretEnv(c), pgbackrestConfig: c.pgbackrestConfig });
    ctlExit = ctl.exitCode;
  }
  for (;;) {
    if (!postmasterAlive(t.dataDir)) {
      // Give the postmaster a moment to write postmaster.pid right after pg_ctl returns.
      await sleep(200);
      if (!postmasterAlive(t.dataDir) && (ctlExit === 0 || Date.now() - started > 2000)) {
        throw failed(ctlExit === 0 ? 'stopped during recovery (pg_ctl start had returned 0)' : `did not start (pg_ctl exit ${ctlExit})`);
      }
    } else {
      try {
        const [r] = await query<{ rec: boolean; lsn: string | null; at: Date | null; tli: number }>(
          t,
          'SELECT pg_is_in_recovery() AS rec, pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at, (SELECT timeline_id FROM pg_control_checkpoint()) AS tli',
        );
        if (!r.rec || opts.waitFor === 'accepting') {
          const log = logSinceStart();
          const sel = [...log.matchAll(/selected new timeline ID: (\d+)/g)].pop();
          return {
            port: t.port,
            socketDir: t.socketDir,
            logFile,
            recoveryMs: Date.now() - started,
            ...parseRecoveryLog(log),
            lastReplayLsn: r.lsn,
            lastReplayTime: r.at ? r.at.toISOString() : null,
            timeline: sel ? Number(sel[1]) : (r.tli ?? null),
          };
        }
      } catch {
        /* not accepting connections yet */
      }
    }
    if (Date.now() - started > timeoutSeconds * 1000) {
      await stopServer(t, 60, 'immediate');
      throw failed(`was still in recovery after ${timeoutSeconds} s`);
    }
    heartbeat({ recovering: t.dataDir, port: t.port, elapsedMs: Date.now() - started });
    if (cancelled()) throw new CancelledFailure(`cancelled while waiting for ${what} in ${t.dataDir} to be promoted`);
    await sleep(150);
  }
}

/**
 * Stop a restored copy (immediate shutdown: it is thrown away) and kill any stray restore into it.
 * Returns what it found. Never touches a directory that is a configured cluster's data directory.
 */
export async function stopRestoredCopy(c: ClusterConfig, dataDir: string): Promise<{ postmasterStopped: boolean; straysKilled: number }> {
  guardNotProduction(c, dataDir);
  const straysKilled = await killStrayRestores(dataDir);
  const pid = postmasterPid(dataDir);
  let postmasterStopped = false;
  if (processAlive(pid)) {
    await stopServer(restoredTarget(c, dataDir, 0, '/nonexistent'), 60, 'immediate');
    if (processAlive(pid)) {
      try {
        process.kill(pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 50 && processAlive(pid); i++) await sleep(100);
    }
    postmasterStopped = true;
  }
  // A WAL fetch the copy's recovery started (restore_command) outlives an immediate shutdown for a moment.
  const fetches = await killStrayPgBackRest('archive-get', [`--pg1-path=${dataDir}`]);
  return { postmasterStopped, straysKilled: straysKilled + fetches };
}

/** Refuses a directory that is (or holds) a configured cluster's data directory: pgdr stops and deletes only copies. */
export function guardNotProduction(c: ClusterConfig, dir: string) {
  const d = dir.replace(/\/+$/, '');
  if (d === c.dataDir.replace(/\/+$/, '') || c.dataDir.startsWith(`${d}/`) || d === '' || d === '/') {
    throw ApplicationFailure.nonRetryable(`refusing to stop or delete ${dir}: it is (or holds) the data directory of cluster ${c.name}`, FAILURE.badInput);
  }
}
