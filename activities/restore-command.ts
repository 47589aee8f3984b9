/**
 * `pgbackrest restore` into a directory: the options for a request (set, target, repo, process-max,
 * db-include, delta) and the run itself, idempotent on retry (a stray restore into the same directory is
 * killed, and the directory is emptied first unless --delta). Every command runs as the cluster's OS user.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { rewritePgConfSetting } from '../common/conf-value';
import { makeOwnedDir } from '../common/os-user';
import { parseTargetTime, pgTime } from '../common/restore-target';
import { FAILURE, failureFor, lastLines, pgbackrest } from './pgbackrest';
import { serverState, writeMissingConfig } from './postgres';
import { run } from './process';
import { restoredTarget } from './recovery';
import { killStrayRestores } from './stray-pgbackrest';

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
