/**
 * Inputs and results of the retention and health-check runbooks. Pure: imported by workflows,
 * activities and the CLI.
 */
import { z } from 'zod';
import type { BackupType } from './types';

/** Same rule as common/config.ts (not imported: that file uses Node modules, and workflows import this one). */
const durationSchema = z.string().regex(/^\d+(ms|s|m|h|d)$/, "a duration like '90s', '15m', '25h' or '7d'");
const clusterName = z.string({ required_error: 'cluster is required' }).min(1, 'cluster is required');
const label = z.string().regex(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/, 'a backup set label like 20240115-020015F or 20240115-020015F_20240115-030000I');

export const expireInputSchema = z
  .object({
    cluster: clusterName,
    /** One-off override of the number of full backups to keep (seed 000: `--repo1-retention-full=30 expire`). */
    retentionFull: z.number().int().min(1, 'retentionFull must be at least 1: pgdr never expires the last full backup').optional(),
    retentionDiff: z.number().int().min(1).optional(),
    /** Expire exactly this backup set (and what depends on it). */
    set: label.optional(),
    repo: z.number().int().min(1).max(256).optional(),
    /** Only show what would be expired. */
    dryRun: z.boolean().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.set && (v.retentionFull !== undefined || v.retentionDiff !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['set'], message: 'give either a set to expire or a retention, not both' });
    }
  });
export type ExpireInput = z.infer<typeof expireInputSchema>;

export interface ExpireResult {
  cluster: string;
  stanza: string;
  dryRun: boolean;
  /** Retention used: the override, the config's, or pgBackRest's own configuration ("pgbackrest.conf"). */
  retention: string;
  /** Sets removed (a dry run: the sets that would go). */
  expired: string[];
  /** Sets left after the run (a dry run: the sets that would stay). */
  remaining: string[];
  archiveRemoved: string[];
  output: string;
}

export const freshnessInputSchema = z
  .object({
    cluster: clusterName,
    /** One-off thresholds (default: the cluster's `health` config). */
    maxAgeFull: durationSchema.optional(),
    maxAgeDiff: durationSchema.optional(),
    maxAgeIncr: durationSchema.optional(),
  })
  .strict();
export type FreshnessInput = z.infer<typeof freshnessInputSchema>;

export const archiveHealthInputSchema = z
  .object({
    cluster: clusterName,
    /** `pgbackrest check --archive-timeout` (seconds, default 10). */
    archiveTimeoutSeconds: z.number().int().min(1).max(600).optional(),
    maxArchiveAge: durationSchema.optional(),
  })
  .strict();
export type ArchiveHealthInput = z.infer<typeof archiveHealthInputSchema>;

export interface NewestSet {
  label: string;
  type: BackupType;
  stoppedAt: string;
  ageSeconds: number;
}

export interface RepoFreshness {
  repo: number;
  /** Newest full; newest full-or-diff; newest of any type (an incr chain is only as fresh as its newest set). */
  full: NewestSet | null;
  diff: NewestSet | null;
  incr: NewestSet | null;
}

export type HealthTransition = 'ok' | 'opened' | 'ongoing' | 'resolved';

export interface HealthResult {
  cluster: string;
  check: 'freshness' | 'archive';
  ok: boolean;
  checkedAt: string;
  problems: string[];
  notes: string[];
  transition: HealthTransition;
  /** What was sent: 'alert', 'recovery' or nothing. */
  notified?: 'alert' | 'recovery';
}

export interface FreshnessResult extends HealthResult {
  check: 'freshness';
  thresholds: { maxAgeFull: string; maxAgeDiff?: string; maxAgeIncr: string };
  repos: RepoFreshness[];
}

export interface ArchiveHealthResult extends HealthResult {
  check: 'archive';
  running: boolean;
  checkPassed: boolean | null;
  checkError?: string;
  failedCount: number | null;
  newFailures: number | null;
  lastArchivedWal: string | null;
  lastArchivedAt: string | null;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
  /** The WAL segment archiving is stuck on, when it is failing. */
  failingWal: string | null;
}

export { durationMs } from './types';

