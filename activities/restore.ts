/**
 * Generic restore mechanics, shared by the verification drill and the restore runbooks:
 * - `restoreInto`: `pgbackrest restore` of a stanza's backup into a given directory (set, target, repo,
 *   process-max, db-include, delta), idempotent on retry (the directory is emptied first, or --delta);
 * - `writeInstanceOverrides`: port / socket / listen_addresses='' / archive_mode=off for a restored copy,
 *   written into its postgresql.auto.conf (no `pg_ctl -o` shell strings);
 * - `startAndAwaitRecovery`: start it and wait until recovery has ended and it is promoted; a postmaster
 *   that vanishes is a failure even when `pg_ctl` returned 0, and the failure carries PostgreSQL's reason
 *   and the log tail; reports the point recovery reached;
 * - `stopAndRemove`: stop a restored copy (and any stray pgBackRest restore still writing into it) and
 *   delete its directory.
 * Every external command goes through process.ts `run()` as the cluster's OS user.
 */
import { ApplicationFailure, CancelledFailure, Context, sleep } from '@temporalio/activity';
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { pgConfLines, rewritePgConfSetting } from '../common/conf-value';
import { parseTargetTime, pgTime } from '../common/restore-target';
import { pickFreePort } from '../common/net';
import { makeOwnedDir } from '../common/os-user';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, failureFor, lastLines, pgbackrest, secretEnv } from './pgbackrest';
import { logTail, query, serverLogFile, serverState, startPostmaster, stopServer, writeMissingConfig, type PgTarget } from './postgres';
import { run } from './process';
import { currentRun, readMarker, requireOwned, writeMarker } from './owned-dirs';
import { restoreViaStaging } from './staged-restore';

export type RecoveryTargetType = 'time' | 'name' | 'lsn' | 'xid' | 'immediate';

export interface RecoveryTarget {
  type: RecoveryTargetType;
  /** Required for time (ISO 8601 or PostgreSQL timestamp), name, lsn and xid; ignored for immediate. */
  value?: string;
}

export interface RestoreRequest {
  cluster: string;
  /** Where to restore (pg1-path). Created when missing, owned by the cluster's OS user. */
  dataDir: string;
  /** Backup set label; default: pgBackRest's choice (latest, or by time for a time target). */
  set?: string;
  repo?: number;
  /** Default: none (recover to the end of the archived WAL). */
  target?: RecoveryTarget;
  /** What PostgreSQL does at the target (default promote). */
  targetAction?: 'promote' | 'pause' | 'shutdown';
  /** Whether the target itself is included (PostgreSQL recovery_target_inclusive, default true). */
  targetExclusive?: boolean;
  processMax?: number;
  /** Restore only these databases (others remain in pg_database but cannot be used; drop them afterwards). */
  dbInclude?: string[];
  /** --delta: reuse matching files of a non-empty directory. When false, the directory is emptied first. */
  delta?: boolean;
  /** How --delta finds the files to rewrite: checksums (default) or size and timestamp (pgBackRest --force). */
  deltaBy?: 'checksum' | 'timestamp';
  /** recovery_target_timeline: 'current', 'latest' or a number (default: pgBackRest's). */
  timeline?: string;
  /** Write archive_mode=off into the restored copy (default true: a copy must never push WAL into the repo). */
  archiveModeOff?: boolean;
}

export interface RestoreOutcome {
  dataDir: string;
  /** The set pgBackRest restored (from its log), when it says so. */
  set: string | null;
  durationMs: number;
}

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

/** The process group of `pid` (field 5 of /proc/<pid>/stat, after the command name in parentheses). */
function processGroupOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/**
 * PIDs and process groups of pgBackRest processes running `command` (exactly that argument) whose argument
 * lists hold every one of `args` — e.g. left by a killed worker. Read from /proc: exact argv, no splitting.
 */
export function strayPgBackRest(command: string, args: string[]): { pid: number; pgid: number }[] {
  const own = processGroupOf('self');
  const found: { pid: number; pgid: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.includes('pgbackrest')) || !argv.includes(command) || !args.every((a) => argv.includes(a))) continue;
      const pgid = processGroupOf(Number(entry));
      if (pgid !== own) found.push({ pid: Number(entry), pgid });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Kill stray pgBackRest `command` processes (see strayPgBackRest) with their process groups; wait until gone. */
export async function killStrayPgBackRest(command: string, args: string[]): Promise<number> {
  const stray = strayPgBackRest(command, args);
  for (const s of stray) {
    for (const target of [-s.pgid, s.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (let i = 0; i < 50 && stray.length && strayPgBackRest(command, args).length; i++) await sleep(100);
  return stray.length;
}

/** PIDs and process groups of pgBackRest processes restoring into `dataDir` (e.g. left by a killed worker). */
export async function strayRestores(dataDir: string): Promise<{ pid: number; pgid: number }[]> {
  return strayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
}

/** Kill stray restores into `dataDir` and wait until they are gone. */
export function killStrayRestores(dataDir: string): Promise<number> {
  return killStrayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
}

/** Empty a directory (keeping it), as the OS user. */
async function emptyDir(c: ClusterConfig, dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const r = await run('find', [dir, '-mindepth', '1', '-delete'], { user: c.osUser });
  if (r.exitCode !== 0) throw ApplicationFailure.retryable(`cannot empty ${dir}: ${lastLines(r.stderr, 3)}`, 'ScratchCleanupFailed');
}

/** pgBackRest restore options for a request (without the command itself). */
export function restoreOptions(c: ClusterConfig, r: RestoreRequest): string[] {
  const o = [`--pg1-path=${r.dataDir}`, `--process-max=${r.processMax ?? c.backup.processMax}`];
  if (r.archiveModeOff !== false) o.push('--archive-mode=off');
  if (r.set) o.push(`--set=${r.set}`);
  if (r.repo) o.push(`--repo=${r.repo}`);
  if (r.delta) o.push('--delta', ...(r.deltaBy === 'timestamp' ? ['--force'] : []));
  if (r.timeline) o.push(`--target-timeline=${r.timeline}`);
  for (const db of r.dbInclude ?? []) o.push(`--db-include=${db}`);
  const t = r.target;
  if (t) {
    o.push(`--type=${t.type === 'immediate' ? 'immediate' : t.type}`);
    if (t.type !== 'immediate') {
      if (!t.value) throw ApplicationFailure.nonRetryable(`a ${t.type} target needs a value`, FAILURE.badInput);
      if (/[\r\n\0]/.test(t.value)) throw ApplicationFailure.nonRetryable(`a ${t.type} target must be a single line: ${JSON.stringify(t.value)}`, FAILURE.badInput);
      let value = t.value;
      if (t.type === 'time') {
        const p = parseTargetTime(t.value);
        if (!p.ok) throw ApplicationFailure.nonRetryable(p.message, FAILURE.badInput);
        value = pgTime(p.iso);
      }
      o.push(`--target=${value}`);
      if (r.targetExclusive) o.push('--target-exclusive');
    }
    o.push(`--target-action=${r.targetAction ?? 'promote'}`);
  }
  return o;
}

/**
 * `pgbackrest restore` into `dataDir`. Safe to retry: a stray restore into the same directory (from a
 * killed worker) is killed first, and the directory is emptied unless `delta` is asked for.
 * Refuses a directory with a running postmaster.
 */
export async function restoreInto(c: ClusterConfig, r: RestoreRequest): Promise<RestoreOutcome> {
  const started = Date.now();
  const opts = restoreOptions(c, r);
  await killStrayRestores(r.dataDir);
  if ((await serverState(restoredTarget(c, r.dataDir, 0, '/nonexistent'))) === 'running') {
    throw ApplicationFailure.nonRetryable(`PostgreSQL is running in ${r.dataDir}; stop it before restoring into it`, FAILURE.badInput);
  }
  if (!r.delta) await emptyDir(c, r.dataDir);
  makeOwnedDir(r.dataDir, c.osUser, 0o700);
  let percent = 0;
  const res = await pgbackrest(c, 'restore', {
    options: opts,
    logLevel: 'detail',
    allowFailure: true,
    onProgress: (p) => (percent = p),
    heartbeatDetails: () => ({ restoring: r.dataDir, percent }),
  });
  if (res.exitCode !== 0) throw failureFor('restore', c.stanza, res);
  if (r.target?.type === 'name') {
    // pgBackRest writes recovery_target_name = '<name>' unescaped: a quote in the name would stop the copy from starting.
    const autoConf = join(r.dataDir, 'postgresql.auto.conf');
    writeFileSync(autoConf, rewritePgConfSetting(readFileSync(autoConf, 'utf8'), 'recovery_target_name', r.target.value!));
  }
  // A backup of a cluster whose configuration lives outside its data directory (Debian) has no postgresql.conf:
  // a copy, or a cluster started with pg_ctl, gets one (a pg_ctlcluster cluster reads its own in /etc).
  const copy = r.archiveModeOff !== false;
  if (copy || (c.control?.method ?? 'pg_ctl') === 'pg_ctl') await writeMissingConfig(c, r.dataDir, { copy });
  const set = /restore backup set (\S+)/.exec(res.stdout)?.[1] ?? null;
  return { dataDir: r.dataDir, set: set?.replace(/,$/, '') ?? null, durationMs: Date.now() - started };
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

function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number | null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
  if (alive(postmasterPid(s.dataDir))) await stopServer(t, 60, 'immediate');
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
  if (!alive(postmasterPid(t.dataDir))) {
    const ctl = await startPostmaster(t, { logFile, timeoutSeconds: Math.min(timeoutSeconds, 600), env: secretEnv(c), pgbackrestConfig: c.pgbackrestConfig });
    ctlExit = ctl.exitCode;
  }
  for (;;) {
    if (!alive(postmasterPid(t.dataDir))) {
      // Give the postmaster a moment to write postmaster.pid right after pg_ctl returns.
      await sleep(200);
      if (!alive(postmasterPid(t.dataDir)) && (ctlExit === 0 || Date.now() - started > 2000)) {
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
  if (alive(pid)) {
    await stopServer(restoredTarget(c, dataDir, 0, '/nonexistent'), 60, 'immediate');
    if (alive(pid)) {
      try {
        process.kill(pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    }
    postmasterStopped = true;
  }
  return { postmasterStopped, straysKilled };
}

function guardNotProduction(c: ClusterConfig, dir: string) {
  const d = dir.replace(/\/+$/, '');
  if (d === c.dataDir.replace(/\/+$/, '') || c.dataDir.startsWith(`${d}/`) || d === '' || d === '/') {
    throw ApplicationFailure.nonRetryable(`refusing to stop or delete ${dir}: it is (or holds) the data directory of cluster ${c.name}`, FAILURE.badInput);
  }
}

/** Delete a directory tree as the OS user (and as a last resort as ourselves). */
export async function removeTree(c: ClusterConfig, dir: string): Promise<boolean> {
  guardNotProduction(c, dir);
  if (!existsSync(dir)) return false;
  const r = await run('rm', ['-rf', '--', dir], { user: c.osUser });
  if (existsSync(dir)) {
    const r2 = await run('rm', ['-rf', '--', dir]);
    if (existsSync(dir)) throw ApplicationFailure.retryable(`cannot delete ${dir}: ${lastLines(r.stderr || r2.stderr, 3)}`, 'ScratchCleanupFailed');
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Scratch copies: a folder per run, named by the caller (derived from the workflow id, so that a retried or
// restarted cleanup finds it): <root>/<name>/{data, s (socket), postgresql.log, .pgdr-scratch}.

export const SCRATCH_MARKER = '.pgdr-scratch';

export interface ScratchLayout {
  root: string;
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
}

/** Default scratch root: drill.scratchDir, else `pgdr-scratch` beside the cluster's data directory. */
export function scratchRoot(c: ClusterConfig): string {
  return c.drill.scratchDir ?? join(dirname(c.dataDir), 'pgdr-scratch');
}

export function scratchLayout(c: ClusterConfig, name: string): ScratchLayout {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$/.test(name)) throw ApplicationFailure.nonRetryable(`bad scratch name "${name}"`, FAILURE.badInput);
  const root = scratchRoot(c);
  const dir = join(root, name);
  // Unix socket paths are limited to 107 bytes: fall back to a short folder in /tmp.
  let socketDir = join(dir, 's');
  if (`${socketDir}/.s.PGSQL.65535.lock`.length > 100) socketDir = join('/tmp', `${name.slice(-40)}.s`);
  return { root, dir, dataDir: join(dir, 'data'), socketDir, logFile: join(dir, 'postgresql.log') };
}

/** Create the scratch folder (owned by the OS user) with its marker files; refuses another run's folder. */
export function prepareScratch(c: ClusterConfig, l: ScratchLayout): void {
  makeOwnedDir(l.root, c.osUser, 0o755);
  if (existsSync(l.dir) && readMarker(l.dir)) requireOwned(l.dir, currentRun(), 'reuse the scratch folder');
  makeOwnedDir(l.dir, c.osUser, 0o750);
  writeFileSync(join(l.dir, SCRATCH_MARKER), `pgdr scratch copy of cluster ${c.name}\n`);
  if (!readMarker(l.dir)) writeMarker(l.dir, { what: 'restore in progress', cluster: c.name });
}

/** Stop and delete a scratch copy; fine when it does not exist (idempotent). */
export async function removeScratch(c: ClusterConfig, l: ScratchLayout): Promise<{ existed: boolean; postmasterStopped: boolean; straysKilled: number }> {
  const stopped = await stopRestoredCopy(c, l.dataDir);
  if (existsSync(l.dir) && !existsSync(join(l.dir, SCRATCH_MARKER)) && existsSync(l.dataDir)) {
    throw ApplicationFailure.nonRetryable(`refusing to delete ${l.dir}: it has no ${SCRATCH_MARKER} marker, so pgdr did not create it`, FAILURE.badInput);
  }
  if (existsSync(l.dir) && readMarker(l.dir)) requireOwned(l.dir, currentRun(), 'delete the scratch folder');
  const existed = await removeTree(c, l.dir);
  if (!l.socketDir.startsWith(`${l.dir}/`) && basename(l.socketDir).endsWith('.s')) await removeTree(c, l.socketDir);
  return { existed, ...stopped };
}

// ---------------------------------------------------------------------------------------------------------
// Activities (host task queue).

export interface ScratchRestoreInput extends Omit<RestoreRequest, 'dataDir'> {
  /** Scratch folder name (see scratchLayout). */
  scratch: string;
}

export function restoreActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  return {
    /** Restore a backup into a fresh scratch folder (emptied first on a retry). */
    async restoreToScratch(input: ScratchRestoreInput): Promise<RestoreOutcome & { layout: ScratchLayout }> {
      const c = cluster(input.cluster);
      const layout = scratchLayout(c, input.scratch);
      prepareScratch(c, layout);
      const { scratch: _scratch, ...req } = input;
      const out = await restoreInto(c, { ...req, dataDir: layout.dataDir, delta: false });
      return { ...out, layout };
    },

    /** Start a scratch copy on a free port and wait until recovery has ended and it is promoted. */
    async startScratchCopy(input: { cluster: string; scratch: string; timeoutSeconds?: number }): Promise<RecoveryReport> {
      const c = cluster(input.cluster);
      const l = scratchLayout(c, input.scratch);
      return startAndAwaitRecovery(c, { cluster: c.name, dataDir: l.dataDir, socketDir: l.socketDir, logFile: l.logFile, timeoutSeconds: input.timeoutSeconds });
    },

    /** Stop a scratch copy and delete its folder: idempotent, so it can run again after a crash. */
    async removeScratchCopy(input: { cluster: string; scratch: string }): Promise<{ dir: string; existed: boolean; postmasterStopped: boolean; straysKilled: number }> {
      const c = cluster(input.cluster);
      const l = scratchLayout(c, input.scratch);
      return { dir: l.dir, ...(await removeScratch(c, l)) };
    },

    /** Restore into a new cluster's data directory, through this run's staging folder (staged-restore.ts). */
    async restoreBackup(input: RestoreRequest): Promise<RestoreOutcome> {
      return restoreViaStaging(cluster(input.cluster), currentRun(), input);
    },

    /** Start any restored directory and wait for the end of recovery. */
    async startRestoredCluster(input: StartRequest): Promise<RecoveryReport> {
      return startAndAwaitRecovery(cluster(input.cluster), input);
    },
  };
}
