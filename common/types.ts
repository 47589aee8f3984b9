/**
 * Types shared by workflows, activities and clients. Pure types and tiny pure helpers only:
 * workflows import this file, so it must stay deterministic and free of Node modules.
 */

export type BackupType = 'full' | 'diff' | 'incr';
export const BACKUP_TYPES: readonly BackupType[] = ['full', 'diff', 'incr'];

/** Task queue of the worker that owns a database host's files and processes. */
export function hostTaskQueue(host: string): string {
  return `pgdr-host-${host}`;
}

/** What a workflow needs to know about a cluster (no secrets). */
export interface ClusterSummary {
  name: string;
  host: string;
  taskQueue: string;
  stanza: string;
  port: number;
  dataDir: string;
  repos: number[];
  processMax: number;
  backupTimeout: string;
  /** worker.heartbeatTimeout: how soon a dead worker is noticed in any step. */
  heartbeatTimeout: string;
}

/** One backup set as pgBackRest's `info --output=json` reports it, normalised. */
export interface BackupSet {
  label: string;
  type: BackupType;
  /** Label of the set this one depends on (diff/incr). */
  prior: string | null;
  repo: number;
  annotations: Record<string, string>;
  /** ISO 8601 UTC. */
  startedAt: string;
  stoppedAt: string;
  lsnStart: string | null;
  lsnStop: string | null;
  walStart: string | null;
  walStop: string | null;
  /** Bytes: database size, the part of it in this set, the repo size and the repo part of this set. */
  size: number;
  delta: number;
  repoSize: number;
  repoDelta: number;
  /** pgBackRest found an error (e.g. a page checksum) while taking it. */
  error: boolean;
}

/** The span of time a point-in-time recovery can reach. */
export interface RecoverableWindow {
  /** Stop time of the earliest backup set. */
  from: string;
  /** Time of the last archived WAL (pg_stat_archiver), or the latest backup's stop when unknown. */
  to: string;
  toSource: 'archiver' | 'latest-backup';
  walMin: string | null;
  walMax: string | null;
}

/** One line of a timeline history file: timeline `parent` was left at LSN `switchLsn` for the next one. */
export interface TimelineSwitch {
  parent: number;
  switchLsn: string;
}

export interface StanzaInfo {
  stanza: string;
  /** pgBackRest status: 0 ok, 1 missing stanza path, 2 no valid backups, … 99 other. */
  status: { code: number; message: string };
  backupInProgress: boolean;
  cipher: string;
  sets: BackupSet[];
  archive: { id: string; min: string | null; max: string | null }[];
  window: RecoverableWindow | null;
  /** The newest timeline in the archive and its history (how it branched off its ancestors). */
  timeline?: { current: number; history: TimelineSwitch[] };
}

export interface SetupStanzaResult {
  cluster: string;
  stanza: string;
  settings: ArchiveSettingsReport;
  created: boolean;
  checkOutput: string;
}

export interface ArchiveSettingProblem {
  setting: 'archive_mode' | 'wal_level' | 'archive_command';
  expected: string;
  actual: string;
  /** True when changing it needs a restart of PostgreSQL. */
  needsRestart: boolean;
}

export interface ArchiveSettingsReport {
  ok: boolean;
  problems: ArchiveSettingProblem[];
  current: { archive_mode: string; wal_level: string; archive_command: string };
}

export interface RestorePointRecord {
  name: string;
  lsn: string;
  /** ISO 8601 UTC, from the server's clock. */
  createdAt: string;
  walFile: string;
  archived: boolean;
}

export interface BackupResult {
  cluster: string;
  stanza: string;
  set: BackupSet;
  snapshot?: RestorePointRecord;
  durationMs: number;
}

/** Annotation keys pgdr writes itself. */
export const ANNOTATION = {
  snapshot: 'pgdr-snapshot',
  restorePointLsn: 'pgdr-restore-point-lsn',
  restorePointTime: 'pgdr-restore-point-time',
  verified: 'pgdr-verified',
  runId: 'pgdr-run',
} as const;

/** Safe names for snapshots / restore points: PostgreSQL restore point names are limited to 63 bytes. */
export const SNAPSHOT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const ANNOTATION_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** An LSN like "0/3000050" as a number, for comparisons. */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** The timeline of a WAL segment name (its first 8 hex digits). */
export function timelineOf(walFile: string | null): number | null {
  return walFile && /^[0-9A-F]{8}/.test(walFile) ? parseInt(walFile.slice(0, 8), 16) : null;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration as the config writes it ('500ms', '90s', '15m', '25h', '7d') in milliseconds; throws on anything else. */
export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`"${d}" is not a duration like '90s', '15m', '25h' or '7d'`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** The outcome of one automated check (pre/post-restore, host checks, application checks): passed or not, and what it saw. */
export interface CheckOutcome {
  ok: boolean;
  note: string;
}
