/**
 * Host activities for stanza setup and backups. They run on the task queue of the host that owns the
 * cluster (`pgdr-host-<host>`), as the cluster's OS user.
 */
import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { ANNOTATION, type ArchiveSettingsReport, type BackupSet, type BackupType, type RestorePointRecord, type StanzaInfo } from '../common/types';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, PGBR_ERROR, failureFor, pgbackrest, stanzaInfo } from './pgbackrest';
import { archiveSettings, archiverStats, query, serverState, walFileFor } from './postgres';
import { killStrayPgBackRest } from './stray-pgbackrest';
import { stopPoint } from './stop-points';
import { quoteLiteral } from '../common/sql';

export interface TakeBackupInput {
  cluster: string;
  type: BackupType;
  annotations: Record<string, string>;
  repo?: number;
}

export function backupActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);

  return {
    /** Compare archive_mode, wal_level and archive_command with what pgBackRest needs. */
    async checkArchiveSettings(input: { cluster: string }): Promise<ArchiveSettingsReport> {
      const c = cluster(input.cluster);
      return archiveSettings(c, c.stanza, c.pgbackrestConfig);
    },

    /** ALTER SYSTEM the archive settings (only when the user asked for it) and reload. */
    async applyArchiveSettings(input: { cluster: string }): Promise<{ changed: string[]; restartNeeded: boolean }> {
      const c = cluster(input.cluster);
      const report = await archiveSettings(c, c.stanza, c.pgbackrestConfig);
      const changed: string[] = [];
      for (const p of report.problems) {
        await query(c, `ALTER SYSTEM SET ${p.setting} = ${quoteLiteral(p.expected)}`);
        changed.push(p.setting);
      }
      if (changed.length) await query(c, 'SELECT pg_reload_conf()');
      return { changed, restartNeeded: report.problems.some((p) => p.needsRestart) };
    },

    /** `pgbackrest stanza-create` (idempotent in pgBackRest: an existing, matching stanza is fine). */
    async createStanza(input: { cluster: string }): Promise<{ output: string }> {
      const c = cluster(input.cluster);
      const res = await pgbackrest(c, 'stanza-create', { logLevel: 'info' });
      return { output: res.stdout.trim() };
    },

    /** `pgbackrest check`: archiving works end to end and the repos are reachable. */
    async checkStanza(input: { cluster: string; archiveTimeoutSeconds?: number }): Promise<{ output: string }> {
      const c = cluster(input.cluster);
      const options = input.archiveTimeoutSeconds ? [`--archive-timeout=${input.archiveTimeoutSeconds}`] : [];
      const res = await pgbackrest(c, 'check', { logLevel: 'info', options });
      return { output: res.stdout.trim() };
    },

    /**
     * `pgbackrest backup`. Heartbeats with the percentage pgBackRest reports; a cancelled activity kills
     * pgBackRest's whole process group. Returns the new set's label.
     *
     * Never twice for one workflow run: every set is annotated `pgdr-run=<run>` (the caller's value, else the
     * Temporal run id). Each attempt first kills a pgBackRest backup of this run still going (an earlier
     * attempt's, left by a dead worker: it runs in its own process group), then reuses a set this run already
     * finished. A snapshot name already on another set is refused before pgBackRest runs.
     */
    async takeBackup(input: TakeBackupInput): Promise<{ label: string; durationMs: number; reused: boolean }> {
      const c = cluster(input.cluster);
      const { workflowExecution, activityId } = Context.current().info;
      const run = input.annotations[ANNOTATION.runId] ?? workflowExecution?.runId ?? activityId;
      const annotations: Record<string, string> = { ...input.annotations, [ANNOTATION.runId]: run };
      const options = [`--type=${input.type}`, `--process-max=${c.backup.processMax}`];
      if (input.repo) options.push(`--repo=${input.repo}`);
      for (const [k, v] of Object.entries(annotations)) options.push(`--annotation=${k}=${v}`);
      await killStrayPgBackRest('backup', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, `--annotation=${ANNOTATION.runId}=${run}`]);

      /** The set this run already made, or undefined; throws when the snapshot name is taken by another set. */
      const madeByThisRun = async () => {
        const sets = (await stanzaInfo(c, { repo: input.repo })).sets;
        const mine = sets.find((s) => s.annotations[ANNOTATION.runId] === run);
        if (mine) return mine;
        const snapshot = annotations[ANNOTATION.snapshot];
        const clash = snapshot && sets.find((s) => s.annotations[ANNOTATION.snapshot] === snapshot);
        if (clash) throw ApplicationFailure.nonRetryable(`snapshot "${snapshot}" already exists: backup set ${clash.label} (${clash.stoppedAt}); pick another name`, FAILURE.badInput);
        return undefined;
      };

      // Never two backups on one stanza: when another backup or expire holds the stanza lock, wait here
      // (heartbeating, so the UI shows why) and start as soon as it is free.
      let percent = 0;
      let waitingSince: number | undefined;
      let res;
      for (;;) {
        const done = await madeByThisRun();
        if (done) return { label: done.label, durationMs: 0, reused: true };
        res = await pgbackrest(c, 'backup', {
          options,
          logLevel: 'detail',
          allowFailure: true,
          onProgress: (p) => (percent = p),
          heartbeatDetails: () => ({ percent }),
        });
        if (res.exitCode !== PGBR_ERROR.lockAcquire) break;
        waitingSince ??= Date.now();
        Context.current().heartbeat({ waiting: `another backup or expire is running on stanza ${c.stanza}`, sinceMs: Date.now() - waitingSince });
        await sleep(3000);
      }
      if (res.exitCode !== 0) throw failureFor('backup', c.stanza, res);
      const label = /new backup label = (\S+)/.exec(res.stdout)?.[1];
      if (!label) {
        throw ApplicationFailure.nonRetryable(`pgbackrest backup finished but printed no backup label:\n${res.stdout.slice(-500)}`, FAILURE.failed);
      }
      await stopPoint('backup-taken');
      return { label, durationMs: res.durationMs, reused: false };
    },

    /** The stanza as `pgbackrest info` sees it, with the recoverable window. */
    async readStanzaInfo(input: { cluster: string; repo?: number }): Promise<StanzaInfo> {
      const c = cluster(input.cluster);
      let lastArchivedAt: string | null = null;
      if ((await serverState(c)) === 'running') {
        lastArchivedAt = await archiverStats(c).then((s) => s.lastArchivedAt, () => null);
      }
      return stanzaInfo(c, { repo: input.repo, lastArchivedAt });
    },

    /** One backup set by label (non-retryable failure when it does not exist). */
    async readBackupSet(input: { cluster: string; label: string; repo?: number }): Promise<BackupSet> {
      const c = cluster(input.cluster);
      const info = await stanzaInfo(c, { repo: input.repo });
      const set = info.sets.find((s) => s.label === input.label);
      if (!set) {
        throw ApplicationFailure.nonRetryable(
          `backup set ${input.label} not found in stanza "${c.stanza}" (sets: ${info.sets.map((s) => s.label).join(', ') || 'none'})`,
          FAILURE.badInput,
        );
      }
      return set;
    },

    /** `SELECT pg_create_restore_point(name)`, then switch WAL so the restore point gets archived. */
    async createRestorePoint(input: { cluster: string; name: string }): Promise<RestorePointRecord> {
      const c = cluster(input.cluster);
      const [rp] = await query<{ lsn: string; at: Date }>(c, 'SELECT pg_create_restore_point($1)::text AS lsn, clock_timestamp() AS at', [input.name]);
      const walFile = await walFileFor(c, rp.lsn);
      await query(c, 'SELECT pg_switch_wal()');
      return { name: input.name, lsn: rp.lsn, createdAt: rp.at.toISOString(), walFile, archived: false };
    },

    /**
     * Close the current WAL segment (pg_switch_wal) and return its name, so that it can be awaited in the
     * archive. After a promotion this puts the new timeline's first segment into the repository: until
     * then, a restore that follows the newest timeline would replay the OLD timeline past the branch point.
     */
    async switchWal(input: { cluster: string }): Promise<{ walFile: string }> {
      const c = cluster(input.cluster);
      const [r] = await query<{ f: string }>(c, 'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS f');
      await query(c, 'SELECT pg_switch_wal()');
      return { walFile: r.f };
    },

    /** Wait until the archiver has archived `walFile` (or a later segment). Heartbeats while waiting. */
    async waitForWalArchived(input: { cluster: string; walFile: string; timeoutSeconds?: number }): Promise<{ lastArchivedWal: string }> {
      const c = cluster(input.cluster);
      await stopPoint('waitForWalArchived');
      const deadline = Date.now() + (input.timeoutSeconds ?? 120) * 1000;
      for (;;) {
        const s = await archiverStats(c);
        // WAL names on one timeline sort by position: TTTTTTTTXXXXXXXXYYYYYYYY.
        if (s.lastArchivedWal && s.lastArchivedWal.slice(0, 24) >= input.walFile) return { lastArchivedWal: s.lastArchivedWal };
        if (Date.now() > deadline) {
          const why = s.lastFailedWal ? `; last failure: ${s.lastFailedWal} at ${s.lastFailedAt}` : '';
          throw ApplicationFailure.retryable(`WAL ${input.walFile} not archived yet (last archived: ${s.lastArchivedWal ?? 'none'}${why})`, 'WalNotArchived');
        }
        Context.current().heartbeat({ waitingFor: input.walFile, lastArchived: s.lastArchivedWal });
        await sleep(500);
      }
    },

    /** `pgbackrest annotate`: add or change annotations of an existing set (an empty value removes a key). */
    async annotateBackupSet(input: { cluster: string; label: string; annotations: Record<string, string>; repo?: number }): Promise<void> {
      const c = cluster(input.cluster);
      const options = [`--set=${input.label}`];
      if (input.repo) options.push(`--repo=${input.repo}`);
      for (const [k, v] of Object.entries(input.annotations)) options.push(`--annotation=${k}=${v}`);
      await pgbackrest(c, 'annotate', { options });
    },
  };
}
