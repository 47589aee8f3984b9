/**
 * pgdr configuration: one YAML file describing the Temporal connection, the workers and the clusters.
 *
 * Validated with zod at worker start and by `pgdr config check`. Errors name the file, the field and what
 * is expected. Secrets are never in this file: only the names of environment variables or secret files.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';

/** Durations as Temporal understands them: '90s', '15m', '25h', '7d'. */
export const durationSchema = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, "a duration like '90s', '15m', '25h' or '7d'");

const identifier = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,39}$/, 'lowercase letters, digits, "-" or "_", starting with a letter, at most 40 characters');

/** A path; a relative one is resolved against the folder of the config file (validateConfig). */
const filePath = z.string().min(1, 'a path');

const repoSchema = z
  .object({
    /** pgBackRest repo number (repoN-* options in the pgBackRest config). */
    index: z.number().int().min(1).max(256),
    /** A human name, e.g. "local" or "offsite". */
    name: z.string().optional(),
    /** Name of the environment variable holding this repo's cipher passphrase (never the passphrase itself). */
    cipherPassEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    /** Path of a file holding this repo's cipher passphrase. */
    cipherPassFile: z.string().optional(),
  })
  .strict();

/** A schedule: a cron expression (minute hour day month weekday, UTC) or an interval; `false` turns it off. */
const scheduleSchema = z.union([
  z.literal(false),
  z
    .object({
      cron: z.string().optional(),
      every: durationSchema.optional(),
      jitter: durationSchema.optional(),
      /** How late a missed run (server or worker down) may still start; default per kind (see client/schedules.ts). */
      catchupWindow: durationSchema.optional(),
    })
    .strict()
    .refine((s) => Boolean(s.cron) !== Boolean(s.every), { message: 'exactly one of "cron" or "every"' }),
]);
export type ScheduleSpecConfig = z.infer<typeof scheduleSchema>;

const validationQuerySchema = z
  .object({
    name: z.string().min(1),
    database: z.string().optional(),
    /** One statement, run on the restored copy in a READ ONLY transaction as the non-superuser role pgdr_drill_validator (pg_read_all_data). */
    sql: z.string().min(1),
    /** Expected value of the first column of the first row, compared as text. */
    expect: z.string(),
  })
  .strict();

const checklistItemSchema = z
  .object({
    id: z.string().regex(/^[a-z][a-z0-9-]{0,47}$/, 'a short id like "app-health"'),
    title: z.string().min(1),
    optional: z.boolean().default(false),
    /** An automated check: a command (argument array) that must exit 0, or an HTTP URL that must answer 2xx. */
    command: z.array(z.string()).min(1).optional(),
    url: z.string().url().optional(),
  })
  .strict();

const checklistOverridesSchema = z
  .object({
    add: z.array(checklistItemSchema).default([]),
    remove: z.array(z.string()).default([]),
  })
  .strict();

export const clusterSchema = z
  .object({
    name: identifier,
    /** The host whose worker owns this cluster: activities run on task queue `pgdr-host-<host>`. */
    host: identifier,
    stanza: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a pgBackRest stanza name'),
    /** Path of the pgBackRest configuration file for this stanza. */
    pgbackrestConfig: filePath,
    dataDir: filePath,
    port: z.number().int().min(1).max(65535),
    socketDir: filePath,
    /** The OS user that owns the data directory and runs PostgreSQL and pgBackRest. */
    osUser: z.string().default('postgres'),
    /** Database and role pgdr connects as (over the unix socket). */
    database: z.string().default('postgres'),
    dbUser: z.string().default('postgres'),
    pgBinDir: z.string().default('/usr/lib/postgresql/15/bin'),
    /** Server log file pgdr passes to `pg_ctl -l` when it starts this cluster (default <stateDir>/log/<name>-postgresql.log). */
    serverLog: z.string().optional(),
    /**
     * How pgdr starts, stops and checks this cluster's postmaster (host-local: each host's pgdr.yaml says how
     * its PostgreSQL is run). `pg_ctl` (default): `pg_ctl -D dataDir` as osUser, configuration in the data
     * directory. `pg_ctlcluster`: a Debian cluster (`pg_createcluster`; configuration in
     * /etc/postgresql/<version>/<name>), started and stopped with `pg_ctlcluster` (as root; it goes through
     * systemd when systemd runs the cluster). `commands`: your own argument arrays, run as the worker's user
     * with PGDR_CLUSTER, PGDR_DATA_DIR, PGDR_PORT, PGDR_LOG_FILE and the repo passphrases in the environment;
     * `status` exits 0 when the server runs (default: `pg_ctl status`).
     */
    control: z
      .discriminatedUnion(
        'method',
        [
          z.object({ method: z.literal('pg_ctl') }).strict(),
          z
            .object({
              method: z.literal('pg_ctlcluster'),
              /** The major version of the Debian cluster (default: from pgBinDir, /usr/lib/postgresql/<version>/bin). */
              version: z.string().regex(/^\d+$/, 'a PostgreSQL major version like "15"').optional(),
              /** The Debian cluster's name, as `pg_lsclusters` shows it (e.g. "main"). */
              name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a Debian cluster name as pg_lsclusters shows it, like "main"'),
            })
            .strict(),
          z
            .object({
              method: z.literal('commands'),
              start: z.array(z.string().min(1)).min(1, 'an argument array, e.g. ["systemctl", "start", "postgresql@15-main"]'),
              stop: z.array(z.string().min(1)).min(1, 'an argument array, e.g. ["systemctl", "stop", "postgresql@15-main"]'),
              status: z.array(z.string().min(1)).min(1, 'an argument array that exits 0 when the server runs').optional(),
            })
            .strict(),
        ],
        { errorMap: (issue, ctx) => (issue.code === 'invalid_union_discriminator' ? { message: `"method" must be "pg_ctl", "pg_ctlcluster" (with "name") or "commands" (with "start" and "stop")` } : { message: ctx.defaultError }) },
      )
      .default({ method: 'pg_ctl' }),
    repos: z.array(repoSchema).min(1).default([{ index: 1 }]),
    backup: z
      .object({
        processMax: z.number().int().min(1).max(64).default(2),
        /** Longest a single backup may run before it is considered hung. */
        timeout: durationSchema.default('6h'),
      })
      .strict()
      .default({}),
    retention: z
      .object({
        full: z.number().int().min(1).optional(),
        diff: z.number().int().min(1).optional(),
      })
      .strict()
      .default({}),
    schedules: z
      .object({
        full: scheduleSchema.default({ cron: '0 2 * * *', jitter: '10m' }),
        diff: scheduleSchema.default({ cron: '0 */6 * * *', jitter: '5m' }),
        incr: scheduleSchema.default({ cron: '30 * * * *', jitter: '5m' }),
        expire: scheduleSchema.default({ cron: '30 3 * * *' }),
        drill: scheduleSchema.default({ cron: '0 4 * * *', jitter: '15m' }),
        freshness: scheduleSchema.default({ every: '15m' }),
        archiveHealth: scheduleSchema.default({ every: '5m' }),
        /** The quarterly full-site DR drill (fullSiteRecovery with drill: true onto fullSite.drillHost); off unless set. */
        fullSiteDrill: scheduleSchema.default(false),
      })
      .strict()
      .default({}),
    health: z
      .object({
        maxAgeFull: durationSchema.default('25h'),
        maxAgeDiff: durationSchema.optional(),
        maxAgeIncr: durationSchema.default('2h'),
        /** Alert when the last archived WAL is older than this while the cluster runs. */
        maxArchiveAge: durationSchema.default('1h'),
      })
      .strict()
      .default({}),
    drill: z
      .object({
        /** Where throw-away drill clusters are restored; must be writable by the OS user. */
        scratchDir: z.string().optional(),
        /** Tables whose row counts are compared with production. */
        tables: z.array(z.string()).default([]),
        /** Allowed relative difference of row counts when not restoring to a drill marker (0.05 = 5 %). */
        rowCountTolerance: z.number().min(0).max(1).default(0.05),
        amcheck: z.boolean().default(false),
        validations: z.array(validationQuerySchema).default([]),
        /** e.g. "_prisma_migrations": its newest rows must be present in the restored copy. */
        migrationsTable: z.string().optional(),
        /** Extra free space required beyond the restore size, as a fraction (0.1 = 10 %). */
        diskMargin: z.number().min(0).default(0.1),
        /** RTO target for the drill's measured restore (restore + recovery + validation); default rto.fullSite, rto.pitr for PITR targets. */
        rto: durationSchema.optional(),
      })
      .strict()
      .default({}),
    restore: z
      .object({
        confirmationToken: z.string().min(8).default('I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA'),
        /** Take an incr backup and a restore point before an in-place restore when the cluster is running. */
        safetyBackup: z.boolean().default(true),
        /** Where restoreToNewCluster puts new data directories by default. */
        newClusterDir: z.string().optional(),
        preChecklist: checklistOverridesSchema.default({}),
        postChecklist: checklistOverridesSchema.default({}),
        /** Expected minimum row counts per table for the post-restore check. */
        expectTables: z.record(z.string(), z.number().int().min(0)).default({}),
        /**
         * In-place restores on a filesystem that clones files (XFS reflink=1, btrfs): restore --delta onto a
         * reflink clone of the original (minutes instead of hours). 'off': always a full restore.
         */
        reflink: z.enum(['auto', 'off']).default('auto'),
        /** Without reflinks: a plain copy of the original + restore --delta, when there is room for the copy. */
        copyDelta: z.boolean().default(false),
        /**
         * How the delta restore onto the clone finds the files to rewrite: 'checksum' reads and hashes every file
         * (safe whatever happened to the files); 'timestamp' compares size and modification time with the backup
         * (pgBackRest --delta --force): much faster, and sound for a clone that kept the original's timestamps.
         */
        deltaBy: z.enum(['checksum', 'timestamp']).default('checksum'),
        /** How long an in-place restore waits for the pre-restore / post-restore sign-offs. */
        preChecklistTimeout: durationSchema.default('24h'),
        postChecklistTimeout: durationSchema.default('2h'),
        /** How long a restore that passed its point of no return waits for a person's retry / keep / roll back. */
        pauseTimeout: durationSchema.default('24h'),
        /**
         * After a promotion, how long the runbook waits for the new timeline's first WAL segment to reach the
         * repository before it reports archiving as broken (a warning; the restore is kept).
         */
        newTimelineArchiveWait: durationSchema.default('60s'),
      })
      .strict()
      .default({}),
    /** Recovery time objectives, defaults from the DR plan's RTO table. */
    rto: z
      .object({
        pitr: durationSchema.default('30m'),
        fullSite: durationSchema.default('2h'),
      })
      .strict()
      .default({}),
    /** Application services to restart / health-check after a full-site recovery. */
    applications: z.array(checklistItemSchema).default([]),
    /** Full-site recovery (workflows/full-site-recovery.ts), as seen by the worker of the host that runs it. */
    fullSite: z
      .object({
        /** Where drill mode restores its throw-away copy on the target host (default drill.scratchDir, else pgdr-scratch beside dataDir). */
        scratchDir: z.string().optional(),
        /**
         * Optional hook for the DNS / traffic switch, run on the target host before a person confirms the switch:
         * an argument array; gets PGDR_CLUSTER, PGDR_TARGET_HOST, PGDR_PORT, PGDR_DATA_DIR, PGDR_WORKFLOW_ID.
         */
        dnsSwitchCommand: z.array(z.string()).min(1).optional(),
        /** How long the runbook waits for people to sign off manual items before it pauses. */
        signOffTimeout: durationSchema.default('24h'),
        /** The host a scheduled full-site drill rebuilds onto (default: the cluster's own host, in its scratch area). */
        drillHost: identifier.optional(),
        /** How long a paused runbook waits for `retry` / `abort` before it stops by itself (with a report). */
        pauseTimeout: durationSchema.default('24h'),
      })
      .strict()
      .default({}),
  })
  .strict();

const approvalPolicySchema = z
  .object({
    /** Who may approve: CLI identities and/or Slack user ids (U…). */
    approvers: z.array(z.string().min(1)).default([]),
    required: z.number().int().min(1).max(10).default(1),
    expiresIn: durationSchema.default('30m'),
    remindEvery: durationSchema.default('10m'),
  })
  .strict();

export const configSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().default('127.0.0.1:7233'),
        namespace: z.string().default('default'),
        /** Task queue for workflows; host activities use `pgdr-host-<host>`. */
        taskQueue: z.string().default('pgdr'),
        /** Base URL of the Temporal Web UI, used for links in notifications. */
        uiUrl: z.string().default('http://127.0.0.1:8233'),
        /** Environment variable holding an API key (Temporal Cloud). */
        apiKeyEnv: z.string().optional(),
        /**
         * false: plain; true: TLS trusting the system's CAs (Temporal Cloud); or a private CA and/or mTLS:
         * { caFile?, clientCertFile?, clientKeyFile?, serverName? } (paths relative to this file).
         */
        tls: z
          .union(
            [
              z.boolean(),
              z
                .object({
                  /** PEM CA bundle the server's certificate must chain to (default: the system's trusted CAs). */
                  caFile: z.string().min(1, 'a path').optional(),
                  /** PEM client certificate for mTLS (with clientKeyFile). */
                  clientCertFile: z.string().min(1, 'a path').optional(),
                  /** PEM private key of the client certificate (PKCS#8). */
                  clientKeyFile: z.string().min(1, 'a path').optional(),
                  /** The name the server's certificate must carry, when it differs from the address's host. */
                  serverName: z.string().min(1, 'a host name').optional(),
                })
                .strict()
                .refine((t) => Boolean(t.clientCertFile) === Boolean(t.clientKeyFile), {
                  message: 'clientCertFile and clientKeyFile go together: give both (mTLS) or neither',
                }),
            ],
            { errorMap: () => ({ message: 'expected true, false, or { caFile?, clientCertFile?, clientKeyFile?, serverName? }' }) },
          )
          .default(false),
      })
      .strict()
      .default({}),
    /** Folder for the audit log, DR reports and metrics textfile, relative to this file. */
    stateDir: z.string().default('.'),
    worker: z
      .object({
        maxCachedWorkflows: z.number().int().min(0).default(200),
        maxConcurrentActivities: z.number().int().min(1).default(20),
        /** Port of the Prometheus endpoint served by the worker; 0 turns it off. */
        metricsPort: z.number().int().min(0).max(65535).default(9187),
        /** node_exporter textfile collector path, written atomically. */
        metricsTextfile: z.string().optional(),
        applySchedules: z.boolean().default(false),
        /** Every activity heartbeats (worker/liveness.ts): a dead worker is noticed after this long. */
        heartbeatTimeout: durationSchema.default('20s'),
        /** How long a workflow task waits for a dead worker's sticky queue before any worker takes it. */
        stickyQueueTimeout: durationSchema.default('10s'),
      })
      .strict()
      .default({}),
    slack: z
      .object({
        channel: z.string().min(1),
        tokenEnv: z.string().default('SLACK_BOT_TOKEN'),
        signingSecretEnv: z.string().default('SLACK_SIGNING_SECRET'),
        /** Override of the Web API base URL (a local fake in tests). */
        apiUrl: z.string().optional(),
        /** Port of `pgdr slack-server` for interactivity requests. */
        interactivityPort: z.number().int().min(0).max(65535).default(3000),
      })
      .strict()
      .optional(),
    approvals: z
      .object({
        restoreInPlace: approvalPolicySchema.default({}),
        fullSiteRecovery: approvalPolicySchema.default({ required: 2 }),
        cleanup: approvalPolicySchema.default({}),
        /** `pgdr demo approval`: two made-up CLI identities so that a new user can try the gate at once. */
        demo: approvalPolicySchema.default({ approvers: ['alice', 'bob'] }),
        /**
         * Slack user id → person (their CLI identity), e.g. { U024BE7LH: alice }: one person is one voter
         * whichever channel they use, and the audit trail names them.
         */
        people: z.record(z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'a Slack user id like U024BE7LH'), z.string().min(1)).default({}),
        /**
         * The host whose worker appends the approval audit log (<its stateDir>/audit/approvals.jsonl), whichever
         * worker runs the gate: one log for the whole installation. Any host with a worker (`pgdr worker --host`),
         * e.g. one that survives the loss of a database host; default: the host of the first cluster. When no
         * worker serves it for 2 minutes, a gate appends on the shared queue's worker instead (with a warning).
         */
        auditHost: identifier.optional(),
      })
      .strict()
      .default({}),
    clusters: z.array(clusterSchema).min(1, 'at least one cluster'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.clusters.forEach((c, i) => {
      if (seen.has(c.name)) {
        ctx.addIssue({ code: 'custom', path: ['clusters', i, 'name'], message: `duplicate cluster name "${c.name}"` });
      }
      seen.add(c.name);
      if (c.control.method === 'pg_ctlcluster' && !c.control.version && !debianVersionOf(c.pgBinDir)) {
        ctx.addIssue({ code: 'custom', path: ['clusters', i, 'control', 'version'], message: `needed: pgBinDir ${c.pgBinDir} does not name a version (/usr/lib/postgresql/<version>/bin)` });
      }
      const repoIdx = new Set<number>();
      c.repos.forEach((r, j) => {
        if (repoIdx.has(r.index)) {
          ctx.addIssue({ code: 'custom', path: ['clusters', i, 'repos', j, 'index'], message: `duplicate repo ${r.index}` });
        }
        repoIdx.add(r.index);
      });
    });
  });

/** The major version in a Debian pgBinDir (/usr/lib/postgresql/15/bin → "15"). */
export function debianVersionOf(pgBinDir: string): string | undefined {
  return /\/postgresql\/(\d+)\/bin\/?$/.exec(pgBinDir)?.[1];
}

export type PgdrConfig = z.infer<typeof configSchema>;
export type ClusterConfig = z.infer<typeof clusterSchema>;
export type RepoConfig = z.infer<typeof repoSchema>;
/** How a cluster's postmaster is started and stopped (activities/postgres.ts). */
export type ControlConfig = ClusterConfig['control'];
export type ChecklistItemConfig = z.infer<typeof checklistItemSchema>;
export type ApprovalPolicy = z.infer<typeof approvalPolicySchema>;
export type ValidationQuery = z.infer<typeof validationQuerySchema>;

export interface LoadedConfig extends PgdrConfig {
  /** Absolute path of the file this configuration was read from. */
  file: string;
  /** Absolute state folder (audit log, reports). */
  stateDirAbs: string;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid configuration\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function formatPath(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function valueAt(root: unknown, path: (string | number)[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

/** Validate an already parsed object; `file` names the source in error messages. */
export function validateConfig(raw: unknown, file: string): LoadedConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const where = formatPath(issue.path as (string | number)[]) || '(top level)';
      let msg = issue.message;
      if (issue.code === 'invalid_type') {
        msg = `expected ${issue.expected}, got ${describeValue(valueAt(raw, issue.path as (string | number)[]))}`;
      } else if (issue.code === 'unrecognized_keys') {
        msg = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      }
      return `${where}: ${msg}`;
    });
    throw new ConfigError(file, problems);
  }
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const cfg = parsed.data;
  for (const c of cfg.clusters) {
    c.pgbackrestConfig = abs(c.pgbackrestConfig);
    c.dataDir = abs(c.dataDir);
    c.socketDir = abs(c.socketDir);
    if (c.drill.scratchDir) c.drill.scratchDir = abs(c.drill.scratchDir);
    if (c.restore.newClusterDir) c.restore.newClusterDir = abs(c.restore.newClusterDir);
    if (c.fullSite.scratchDir) c.fullSite.scratchDir = abs(c.fullSite.scratchDir);
    c.serverLog = c.serverLog ? abs(c.serverLog) : resolve(abs(cfg.stateDir), 'log', `${c.name}-postgresql.log`);
    if (c.control.method === 'pg_ctlcluster' && !c.control.version) c.control.version = debianVersionOf(c.pgBinDir);
    for (const r of c.repos) if (r.cipherPassFile) r.cipherPassFile = abs(r.cipherPassFile);
  }
  if (cfg.worker.metricsTextfile) cfg.worker.metricsTextfile = abs(cfg.worker.metricsTextfile);
  cfg.approvals.auditHost ??= cfg.clusters[0].host;
  const tls = cfg.temporal.tls;
  if (typeof tls === 'object') for (const k of ['caFile', 'clientCertFile', 'clientKeyFile'] as const) if (tls[k]) tls[k] = abs(tls[k]);
  return { ...cfg, file: resolve(file), stateDirAbs: abs(cfg.stateDir) };
}

/** Read, parse and validate a config file. Throws ConfigError with every problem found. */
export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  const doc = parseDocument(text);
  if (doc.errors.length) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `YAML syntax${e.linePos ? ` at line ${e.linePos[0].line}` : ''}: ${e.message.split('\n')[0]}`),
    );
  }
  return validateConfig(doc.toJS(), file);
}

/** The config file to use: --config, then $PGDR_CONFIG, then ./pgdr.yaml, then the embedded demo's. */
/** The config file: --config, $PGDR_CONFIG, ./pgdr.yaml, or the embedded demo's in the state folder (`stateDir`: $PGDR_STATE_DIR or <projectRoot>/.pgdr). */
export function defaultConfigPath(projectRoot: string, explicit?: string, stateDir = resolve(projectRoot, '.pgdr')): string {
  if (explicit) return resolve(explicit);
  if (process.env.PGDR_CONFIG) return resolve(process.env.PGDR_CONFIG);
  const local = resolve('pgdr.yaml');
  try {
    readFileSync(local);
    return local;
  } catch {
    return resolve(stateDir, 'demo', 'pgdr.yaml');
  }
}

export function findCluster(cfg: PgdrConfig, name: string): ClusterConfig | undefined {
  return cfg.clusters.find((c) => c.name === name);
}
