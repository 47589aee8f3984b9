/**
 * Types of the verification drill (workflows/verify-drill.ts, activities/drill.ts). Pure: workflows import it.
 */
import type { DrillTarget } from './inputs';
import type { BackupSet, RecoverableWindow } from './types';

export interface VerifyReport {
  ok: boolean;
  problems: string[];
  badFiles: { set: string | null; file: string; problem: string }[];
  invalidSets: string[];
  walRanges: string[];
  durationMs: number;
}

export interface PreflightReport {
  set: BackupSet;
  window: RecoverableWindow;
  scratchRoot: string;
  scratchDir: string;
  freeBytes: number;
  neededBytes: number;
  /** The WAL recovery restores and replays (part of neededBytes). */
  walBytes: number;
}

export interface RpoMarker {
  beforeId: number;
  beforeAt: string;
  /** The time the copy is restored to (ISO 8601). */
  target: string;
  /** The target is the moment the drill took itself (row counts are then exact). */
  ownTarget: boolean;
  lastIdUpToTarget: number | null;
  afterId: number;
  afterAt: string;
  markersUpToTarget: number;
  walFile: string;
  /** Row counts of the drill tables on production at the target. */
  counts: Record<string, number>;
}

export interface ValidationCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ValidationReport {
  ok: boolean;
  checks: ValidationCheck[];
  rowCounts: { table: string; database: string; restored: number; production: number; exact: boolean }[];
  userTables: number;
}

export interface DrillTimings {
  /** pgbackrest restore into the scratch folder. */
  restoreMs: number;
  /** Start until recovery ended and the copy was promoted. */
  recoveryMs: number;
  validationMs: number;
  /** restore + recovery + validation: the measured RTO for this set. */
  totalMs: number;
  verifyMs: number;
  /** The whole drill, from start to the end of cleanup. */
  wallMs: number;
}

export interface DrillResult {
  cluster: string;
  stanza: string;
  passed: boolean;
  /** The set proven (restored and validated). */
  set: BackupSet | null;
  target: DrillTarget;
  /** Where recovery stopped. */
  reached: { startToPromotedMs: number; stoppedAt: string | null; consistentAt: string | null; lastReplayLsn: string | null; lastReplayTime: string | null; timeline: number | null } | null;
  /** RPO proof (time targets): target, newest restored transaction and the gap between them. */
  rpo: { target: string; lastRestoredCommit: string | null; gapMs: number | null; markers: number } | null;
  verify: VerifyReport | null;
  validation: ValidationReport | null;
  timings: DrillTimings;
  rtoTarget: string;
  rtoExceeded: boolean;
  annotated: string | null;
  scratchDir: string;
  /** The failure, when the drill failed (the workflow then fails too, after recording it). */
  failure: { step: string; message: string } | null;
  workflowId: string;
}

// ---------------------------------------------------------------------------------------------------------
// Scratch space: the restored set plus the WAL recovery restores and replays; disk-full failures.

export const WAL_SEGMENT_BYTES = 16 * 1024 * 1024;
const MB = 1024 * 1024;

/** Position of a WAL file (timeline ignored): log * segments per 4 GiB + segment. Null for a bad name. */
export function walSegmentNo(file: string | null, segmentBytes = WAL_SEGMENT_BYTES): number | null {
  const m = file ? /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})/i.exec(file) : null;
  return m ? parseInt(m[1], 16) * (0x100000000 / segmentBytes) + parseInt(m[2], 16) : null;
}

export interface ScratchNeed {
  neededBytes: number;
  restoreBytes: number;
  marginBytes: number;
  walBytes: number;
  walSegments: number;
}

/**
 * Free space a drill needs: the restore (set size + diskMargin) plus every WAL segment from the set's
 * archive start to where recovery ends (`walEnd`: the set's archive stop for an immediate target, else the
 * end of the archive), each restored at full segment size.
 */
export function scratchSpaceNeeded(setSize: number, walStart: string | null, walEnd: string | null, diskMargin: number, segmentBytes = WAL_SEGMENT_BYTES): ScratchNeed {
  const from = walSegmentNo(walStart, segmentBytes);
  const to = walSegmentNo(walEnd, segmentBytes);
  const walSegments = from !== null && to !== null ? Math.max(0, to - from + 1) : 0;
  const marginBytes = Math.ceil(setSize * diskMargin);
  const walBytes = walSegments * segmentBytes;
  return { neededBytes: setSize + marginBytes + walBytes, restoreBytes: setSize, marginBytes, walBytes, walSegments };
}

const DISK_FULL = /No space left on device|ENOSPC|Check free disk space/i;
const WRITE_FAILED = /could not (?:write|extend)\b|unable to write\b/i;
/** Output that may mean a full disk (diskFullMessage decides, with the free space). */
export const mayBeDiskFull = (text: string): boolean => DISK_FULL.test(text) || WRITE_FAILED.test(text);

/**
 * "disk full at <path> (N MB free, needed M)" when pgBackRest or PostgreSQL output says the disk filled up
 * (a bare "could not write" / pgBackRest's "unable to write '<file>'" counts only when the free space is
 * below what the drill needed); else null.
 */
export function diskFullMessage(text: string, at: { path: string; freeBytes: number; neededBytes: number }): string | null {
  const m = DISK_FULL.exec(text) ?? (at.freeBytes < at.neededBytes ? WRITE_FAILED.exec(text) : null);
  if (!m) return null;
  const line = text.slice(text.lastIndexOf('\n', m.index) + 1).split('\n')[0].trim().slice(0, 240);
  const needed = at.neededBytes > 0 ? `${Math.ceil(at.neededBytes / MB)} MB` : 'unknown';
  return `disk full at ${at.path} (${Math.floor(at.freeBytes / MB)} MB free, needed ${needed}): ${line}`;
}
