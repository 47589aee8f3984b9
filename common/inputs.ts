/**
 * Workflow inputs: every workflow takes one JSON object (so it can be started from the Temporal UI).
 * Validated here, with messages that say what is valid. Pure: imported by workflows and by the CLI.
 */
import { z } from 'zod';
import { parseTargetTime, restoreTargetSchema } from './restore-target';
import { ANNOTATION_KEY_RE, SNAPSHOT_NAME_RE } from './types';
import { RUN_TAG_RE } from './run-identity';

const clusterName = z.string({ required_error: 'cluster is required' }).min(1, 'cluster is required');

export const setupStanzaInputSchema = z
  .object({
    cluster: clusterName,
    /** Set archive_mode/wal_level/archive_command with ALTER SYSTEM when they are wrong (restart may still be needed). */
    fixArchiveSettings: z.boolean().optional(),
  })
  .strict();

export const backupInputSchema = z
  .object({
    cluster: clusterName,
    type: z.enum(['full', 'diff', 'incr'], { errorMap: () => ({ message: 'type must be one of full, diff, incr' }) }).optional(),
    /** Extra annotations stored with the backup set (keys starting with "pgdr-" are reserved). */
    annotations: z
      .record(
        z.string().regex(ANNOTATION_KEY_RE, 'annotation keys: letters, digits, ".", "_", "-" (at most 64)').refine((k) => !k.startsWith('pgdr-'), {
          message: 'annotation keys starting with "pgdr-" are reserved for pgdr',
        }),
        z
          .string()
          .max(256, 'annotation values: at most 256 characters')
          .regex(/^[^\n\r\0]*$/, 'annotation values: a single line'),
      )
      .optional(),
    /** A named snapshot: an annotated full backup plus a restore point with the same name. */
    snapshot: z
      .string()
      .regex(SNAPSHOT_NAME_RE, 'snapshot names: 1-63 characters, letters, digits, ".", "_", "-", starting with a letter or digit (e.g. pre-migration-v2.3)')
      .optional(),
    /** Repo to back up to (default: pgBackRest's own default, repo1). */
    repo: z.number().int().min(1).max(256).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.snapshot && v.type && v.type !== 'full') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'a named snapshot is always a full backup; leave type out or set it to full' });
    }
  });

export const clusterOnlyInputSchema = z.object({ cluster: clusterName, repo: z.number().int().min(1).optional() }).strict();

export type InputCheck<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validate and return one readable message listing every problem. */
export function checkInput<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown, what: string): InputCheck<T> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, message: `${what}: the input must be one JSON object, e.g. {"cluster": "main"}` };
  }
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  const problems = r.error.issues.map((i) => {
    const where = i.path.join('.');
    if (i.code === 'unrecognized_keys') return `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    return where ? `${where}: ${i.message}` : i.message;
  });
  return { ok: false, message: `${what}: invalid input: ${problems.join('; ')}` };
}

export type ValidBackupInput = Required<Pick<BackupInput, 'cluster' | 'type'>> & BackupInput;

export function normaliseBackupInput(v: BackupInput): ValidBackupInput {
  return { ...v, type: v.snapshot ? 'full' : (v.type ?? 'incr'), annotations: v.annotations ?? {} };
}

export const drillInputSchema = z
  .object({
    cluster: clusterName,
    /** A backup set label, or 'latest' (default). */
    set: z.string().regex(/^(latest|\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?)$/, 'set: a backup set label like 20260115-020000F (or _…D / _…I), or "latest"').optional(),
    /** Default: immediate (end of the chosen set's backup). */
    target: z
      .object({
        type: z.enum(['time', 'name', 'lsn', 'xid', 'immediate'], { errorMap: () => ({ message: 'target.type must be one of time, name, lsn, xid, immediate' }) }),
        /** Required for name, lsn and xid; for time optional: without it the drill restores to its own RPO marker. */
        value: z.string().min(1).max(200).regex(/^[^\n\r\0]*$/, 'target.value: a single line').optional(),
      })
      .strict()
      .superRefine((t, ctx) => {
        if (['name', 'lsn', 'xid'].includes(t.type) && !t.value) ctx.addIssue({ code: 'custom', path: ['value'], message: `a ${t.type} target needs a value` });
        if (t.type === 'time' && t.value) {
          const p = parseTargetTime(t.value);
          if (!p.ok) ctx.addIssue({ code: 'custom', path: ['value'], message: p.message });
        }
        if (t.type === 'lsn' && t.value && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(t.value)) ctx.addIssue({ code: 'custom', path: ['value'], message: 'an LSN like 0/3000060' });
        if (t.type === 'xid' && t.value && !/^\d+$/.test(t.value)) ctx.addIssue({ code: 'custom', path: ['value'], message: 'a transaction id (digits)' });
      })
      .optional(),
    repo: z.number().int().min(1).max(256).optional(),
    // Validation queries run SQL on the restored copy: they come from the config file only (drill.validations).
    validations: z
      .never({ errorMap: () => ({ message: 'validation queries are not accepted in the workflow input; configure them in the config file (clusters[].drill.validations)' }) })
      .optional(),
  })
  .strict();

/** Names of restored clusters: they become folder names. */
const restoredName = z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/, 'lowercase letters, digits, "-" or "_", starting with a letter (at most 40)');

export const restoreToNewClusterInputSchema = z
  .object({
    cluster: clusterName,
    target: restoreTargetSchema,
    name: restoredName,
    port: z.number().int().min(1024).max(65535).optional(),
    dataDir: z.string().regex(/^\/[^\0\n]*$/, 'dataDir: an absolute path').optional(),
    databases: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, 'databases: database names')).min(1).optional(),
    requestedBy: z.string().optional(),
    reason: z.string().optional(),
  })
  .strict();

export const dropRestoredClusterInputSchema = z.object({ name: restoredName }).strict();

export const restoreInPlaceInputSchema = z
  .object({
    cluster: clusterName,
    target: restoreTargetSchema,
    /** Must equal the cluster's confirmation token (restore.confirmationToken). */
    confirmation: z.string({ required_error: 'confirmation is required: the confirmation token from the config' }),
    reason: z.string({ required_error: 'reason is required' }).trim().min(1, 'reason is required: why this restore is needed'),
    requestedBy: z.string({ required_error: 'requestedBy is required' }).trim().min(1, 'requestedBy is required: who asks for this restore'),
  })
  .strict();

export const cleanupInputSchema = z
  .object({
    cluster: clusterName,
    run: z.string().regex(RUN_TAG_RE, 'run: the run tag of the in-place restore (its result\'s "run", e.g. restore-main-1-r0a1b2c3d4e5f)'),
    reason: z.string().trim().min(1, 'reason is required'),
    requestedBy: z.string().trim().min(1, 'requestedBy is required'),
  })
  .strict();

export const fullSiteRecoveryInputSchema = z
  .object({
    cluster: clusterName,
    /** The host to rebuild on: its worker serves pgdr-host-<targetHost> with its own pgdr.yaml. */
    targetHost: z
      .string({ required_error: 'targetHost is required: the host the cluster is rebuilt on (its worker serves pgdr-host-<targetHost>)' })
      .regex(/^[a-z][a-z0-9_-]{0,39}$/, 'targetHost: a host name as in the config (lowercase letters, digits, "-" or "_")'),
    /** Repository to restore from (default: the first configured on the target host). */
    repo: z.number().int().min(1).max(256).optional(),
    /** Default: latest (everything the archive holds). */
    target: restoreTargetSchema.optional(),
    reason: z.string({ required_error: 'reason is required' }).trim().min(1, 'reason is required: why the site is rebuilt (or "quarterly DR drill")'),
    requestedBy: z.string({ required_error: 'requestedBy is required' }).trim().min(1, 'requestedBy is required: who runs this recovery'),
    /** Rehearse into a scratch folder on the target host; production untouched. */
    drill: z.boolean().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.repo !== undefined && v.target?.repo !== undefined && v.repo !== v.target.repo) {
      ctx.addIssue({ code: 'custom', path: ['target', 'repo'], message: `target.repo (${v.target.repo}) differs from repo (${v.repo}); give one` });
    }
  });

// The runbooks' input types, derived from the schemas above (one source: the schema).
export type SetupStanzaInput = z.input<typeof setupStanzaInputSchema>;
export type BackupInput = z.input<typeof backupInputSchema>;
export type DrillInput = z.input<typeof drillInputSchema>;
export type DrillTarget = NonNullable<DrillInput['target']>;
export type RestoreToNewClusterInput = z.input<typeof restoreToNewClusterInputSchema>;
export type DropRestoredClusterInput = z.input<typeof dropRestoredClusterInputSchema>;
export type RestoreInPlaceInput = z.input<typeof restoreInPlaceInputSchema>;
export type CleanupInput = z.input<typeof cleanupInputSchema>;
export type FullSiteRecoveryInput = z.input<typeof fullSiteRecoveryInputSchema>;
