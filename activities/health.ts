/**
 * Host activities of the health checks, retention and metrics. They run on the task queue of the
 * host that owns the cluster.
 *
 * Incident state (no alert storms): each check of each cluster keeps a small JSON file on the worker host,
 * `<stateDir>/health/<cluster>.<check>.json`, written atomically by `recordHealthState`. The workflow reads
 * the transition it returns (opened / ongoing / resolved / ok) and notifies only on `opened` (one alert per
 * incident) and `resolved` (one recovery message, in the alert's Slack thread). The file also carries the
 * previous observation (e.g. pg_stat_archiver.failed_count) so that the next run sees growth. A file on the
 * host, rather than the previous workflow's result, keeps working across schedule changes, manual runs
 * and history retention, and is what the on-call engineer can read or delete to reset an incident.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireCluster, type ActivityDeps } from './context';
import { refreshClusterMetrics, setHealthStatus, writeTextfile } from './metrics';
import { lastLines, parseError, pgbackrest } from './pgbackrest';
import { archiverStats, query, serverState, type ArchiverStats } from './postgres';

export type HealthCheckName = 'freshness' | 'archive';
export type HealthTransition = 'ok' | 'opened' | 'ongoing' | 'resolved';

export interface HealthStateFile {
  cluster: string;
  check: HealthCheckName;
  ok: boolean;
  /** When the current state (ok or failing) began, ISO 8601. */
  since: string;
  checkedAt: string;
  workflowId?: string;
  problems: string[];
  /** Slack ts of the alert that opened the current incident (the recovery message replies in its thread). */
  alertTs?: string;
  /** What the check saw last time, e.g. pg_stat_archiver figures. */
  observation?: Record<string, unknown>;
}

export interface RecordHealthInput {
  cluster: string;
  check: HealthCheckName;
  ok: boolean;
  problems: string[];
  workflowId?: string;
  observation?: Record<string, unknown>;
}

export interface RecordHealthResult {
  transition: HealthTransition;
  previous: HealthStateFile | null;
  current: HealthStateFile;
}

export interface ArchiverStatus {
  running: boolean;
  stats: ArchiverStats | null;
  /** The database server's clock, ISO 8601 (ages are computed against it). */
  serverNow: string | null;
  archiveCommand: string | null;
}

export interface ArchiveCheckResult {
  ok: boolean;
  output: string;
  /** pgBackRest's own message, e.g. "[082] WAL segment … was not archived before the 5000ms timeout". */
  error?: string;
  code?: number;
  durationMs: number;
}

export interface ExpireInput {
  cluster: string;
  retentionFull?: number;
  retentionDiff?: number;
  /** Expire exactly this set (pgBackRest `--set`); the workflow refuses the latest/only full. */
  set?: string;
  repo?: number;
  dryRun?: boolean;
}

export interface ExpireOutput {
  output: string;
  /** Labels pgBackRest reported as expired (or, in a dry run, as what would be expired). */
  expired: string[];
  /** WAL ranges removed, as pgBackRest printed them. */
  archiveRemoved: string[];
}

const LABEL_RE = /\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?/g;

/** Labels and WAL ranges from `pgbackrest expire` output at info level (with or without [DRY-RUN]). */
export function parseExpireOutput(text: string): { expired: string[]; archiveRemoved: string[] } {
  const expired: string[] = [];
  const archiveRemoved: string[] = [];
  for (const line of text.split('\n')) {
    if (/expire (?:full|diff|incr|adhoc)?\s*backup/i.test(line) || /expire .*backup set/i.test(line)) {
      for (const m of line.matchAll(LABEL_RE)) if (!expired.includes(m[0])) expired.push(m[0]);
    } else if (/remove archive/i.test(line)) {
      archiveRemoved.push(line.replace(/^.*?remove archive,?\s*/i, '').trim());
    }
  }
  return { expired, archiveRemoved };
}

export function healthActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  const stateFile = (c: string, check: string) => join(config.stateDirAbs, 'health', `${c}.${check}.json`);

  const readState = (c: string, check: string): HealthStateFile | null => {
    try {
      return JSON.parse(readFileSync(stateFile(c, check), 'utf8')) as HealthStateFile;
    } catch {
      return null;
    }
  };
  const writeState = (s: HealthStateFile) => {
    const file = stateFile(s.cluster, s.check);
    mkdirSync(join(config.stateDirAbs, 'health'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s, null, 2));
    renameSync(tmp, file);
  };

  return {
    /** pg_stat_archiver and archive_command of a running cluster; `running: false` when it is down. */
    async readArchiverStatus(input: { cluster: string }): Promise<ArchiverStatus> {
      const c = cluster(input.cluster);
      if ((await serverState(c)) !== 'running') return { running: false, stats: null, serverNow: null, archiveCommand: null };
      const stats = await archiverStats(c);
      const [row] = await query<{ now: Date; cmd: string }>(c, "SELECT clock_timestamp() AS now, current_setting('archive_command') AS cmd");
      return { running: true, stats, serverNow: row.now.toISOString(), archiveCommand: row.cmd };
    },

    /**
     * `pgbackrest check` with a short archive timeout. Never throws for a failed check: the result carries
     * pgBackRest's exact error so the workflow can alert with it.
     */
    async runArchiveCheck(input: { cluster: string; archiveTimeoutSeconds: number }): Promise<ArchiveCheckResult> {
      const c = cluster(input.cluster);
      const res = await pgbackrest(c, 'check', { options: [`--archive-timeout=${input.archiveTimeoutSeconds}`], logLevel: 'warn', allowFailure: true });
      if (res.exitCode === 0) return { ok: true, output: res.stdout.trim(), durationMs: res.durationMs };
      const err = parseError(res.stderr) ?? parseError(res.stdout);
      const error = err
        ? `[${String(err.code).padStart(3, '0')}] ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}`
        : lastLines(res.stderr || res.stdout, 5) || `exit code ${res.exitCode}`;
      return { ok: false, output: lastLines(`${res.stdout}\n${res.stderr}`, 20), error, code: err?.code ?? res.exitCode, durationMs: res.durationMs };
    },

    /** Store this check's result and say how it changed since the last run (see the file comment). */
    async recordHealthState(input: RecordHealthInput): Promise<RecordHealthResult> {
      cluster(input.cluster);
      const previous = readState(input.cluster, input.check);
      const now = new Date().toISOString();
      const wasOk = previous ? previous.ok : true;
      const transition: HealthTransition = input.ok ? (wasOk ? 'ok' : 'resolved') : wasOk ? 'opened' : 'ongoing';
      const current: HealthStateFile = {
        cluster: input.cluster,
        check: input.check,
        ok: input.ok,
        since: previous && previous.ok === input.ok ? previous.since : now,
        checkedAt: now,
        workflowId: input.workflowId,
        problems: input.problems,
        alertTs: transition === 'ongoing' ? previous?.alertTs : undefined,
        observation: input.observation,
      };
      writeState(current);
      setHealthStatus(input.cluster, input.check, input.ok);
      await writeTextfile(config.worker.metricsTextfile);
      return { transition, previous, current };
    },

    /** The previous result of a check (null before the first run). */
    async readHealthState(input: { cluster: string; check: HealthCheckName }): Promise<HealthStateFile | null> {
      cluster(input.cluster);
      return readState(input.cluster, input.check);
    },

    /** Remember the Slack ts of the alert that opened an incident. */
    async noteHealthAlert(input: { cluster: string; check: HealthCheckName; alertTs: string }): Promise<void> {
      const s = readState(input.cluster, input.check);
      if (s && !s.ok) writeState({ ...s, alertTs: input.alertTs });
    },

    /** Refresh the backup and archiver metrics of a cluster from pgbackrest info and pg_stat_archiver. */
    async refreshMetrics(input: { cluster: string }): Promise<{ ok: boolean; error?: string }> {
      const r = await refreshClusterMetrics(cluster(input.cluster));
      await writeTextfile(config.worker.metricsTextfile);
      return r;
    },

    /** `pgbackrest expire`, with optional retention override, `--set` and `--dry-run`. */
    async expireBackups(input: ExpireInput): Promise<ExpireOutput> {
      const c = cluster(input.cluster);
      const repos = input.repo ? [input.repo] : c.repos.map((r) => r.index);
      const options: string[] = [];
      if (input.repo) options.push(`--repo=${input.repo}`);
      for (const r of repos) {
        if (input.retentionFull !== undefined) options.push(`--repo${r}-retention-full=${input.retentionFull}`);
        if (input.retentionDiff !== undefined) options.push(`--repo${r}-retention-diff=${input.retentionDiff}`);
      }
      if (input.set) options.push(`--set=${input.set}`);
      if (input.dryRun) options.push('--dry-run');
      const res = await pgbackrest(c, 'expire', { options, logLevel: 'info' });
      const text = `${res.stdout}\n${res.stderr}`;
      return { output: lastLines(text, 40), ...parseExpireOutput(text) };
    },
  };
}

/** Health thresholds and retention of a cluster, as the workflows need them (reads the config only). */
export interface ClusterPolicy {
  cluster: string;
  stanza: string;
  repos: number[];
  health: { maxAgeFull: string; maxAgeDiff?: string; maxAgeIncr: string; maxArchiveAge: string };
  retention: { full?: number; diff?: number };
  slackConfigured: boolean;
}

export function policyActivities({ config }: ActivityDeps) {
  return {
    async clusterPolicy(input: { cluster: string }): Promise<ClusterPolicy> {
      const c = requireCluster(config, input.cluster);
      return {
        cluster: c.name,
        stanza: c.stanza,
        repos: c.repos.map((r) => r.index),
        health: { ...c.health },
        retention: { ...c.retention },
        slackConfigured: Boolean(config.slack && process.env[config.slack.tokenEnv]),
      };
    },
  };
}
