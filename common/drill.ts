/**
 * Types of the verification drill (workflows/verify-drill.ts, activities/drill.ts). Pure: workflows import it.
 */
import type { BackupSet, RecoverableWindow } from './types';

export type DrillTargetType = 'time' | 'name' | 'lsn' | 'xid' | 'immediate';

export interface DrillTarget {
  type: DrillTargetType;
  /** Required for name, lsn and xid; for time optional: without it the drill restores to its own RPO marker. */
  value?: string;
}

export interface DrillValidationQuery {
  name: string;
  database?: string;
  sql: string;
  expect: string;
}

export interface DrillInput {
  cluster: string;
  /** A backup set label, or 'latest' (default). */
  set?: string;
  /** Default: immediate (end of the chosen set's backup). */
  target?: DrillTarget;
  repo?: number;
  /** Extra validation queries on top of the cluster's configured ones. */
  validations?: DrillValidationQuery[];
}

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
