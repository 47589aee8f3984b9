/**
 * Host activities of full-site recovery (workflows/full-site-recovery.ts). They run on the TARGET host's
 * task queue, so every path, port, pgBackRest config and secret comes from the cluster entry in THAT host's
 * pgdr.yaml: the same cluster name and stanza, described as it will live on the new host.
 *
 * Here: the plan (the cluster as this host describes it), the target location (claimed for this run), the
 * restore and start on the target, the drill's scratch copy and the DNS hook. The checks of the new host are in
 * new-host-checks.ts, the report writer in dr-reports.ts.
 * Safety: the target data directory must be empty or absent — pgdr never deletes user data. The only
 * directory it empties is one it claimed itself for this run (a marker beside it, written by the check
 * that found it empty), so a restore interrupted by a crash can be redone.
 * Drill mode works in a scratch folder (with a marker) and never touches the configured data directory.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { CheckOutcome } from '../common/types';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { pgConfLines } from '../common/conf-value';
import { pickFreePort } from '../common/net';
import { makeOwnedDir } from '../common/os-user';
import { runTag, type RunIdentity } from '../common/run-identity';
import { currentRun, requireOwned, writeMarker } from './owned-dirs';
import { restoredBy, restoreViaStaging, supportsReflinks, type RestoreMode } from './staged-restore';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, lastLines } from './pgbackrest';
import { repoInfo, repoOf as repoOfConfig, safeSecretEnv } from './new-host-checks';
import { controlProblems, expectedArchiveCommand, postmasterAlive } from './postgres';
import { run } from './process';
import { prepareScratch, removeScratch, scratchLayout, scratchRoot, type ScratchLayout } from './scratch';
import { restoreInto, type RestoreOutcome, type RestoreRequest } from './restore-command';
import { restoredTarget, startAndAwaitPromotion, type RecoveryReport, writeInstanceOverrides } from './recovery';
import { freeBytes, nearestExisting } from './disk';

/** The cluster as the target host's pgdr.yaml describes it (no secrets). */
export interface FullSitePlan {
  cluster: string;
  /** host named in this worker's config for the cluster */
  configuredHost: string;
  workerHost: string;
  stanza: string;
  dataDir: string;
  port: number;
  socketDir: string;
  pgbackrestConfig: string;
  pgBinDir: string;
  repos: { index: number; name?: string; passphrase: string }[];
  repo: { index: number; name?: string };
  rto: string;
  applications: { id: string; title: string; optional: boolean }[];
  expectTables: boolean;
  migrationsTable?: string;
  dnsSwitchHook: string | null;
  signOffTimeout: string;
  pauseTimeout: string;
  backupTimeout: string;
  /** worker.heartbeatTimeout of the target host's worker. */
  heartbeatTimeout: string;
  /** restore.newTimelineArchiveWait (absent in runs recorded before it existed: 60s). */
  newTimelineArchiveWait?: string;
  scratch?: ScratchLayout;
}

/** Where the recovered cluster runs and how its recovery went. */
export type TargetRecovery = RecoveryReport & { dataDir: string };

const CLAIM_PREFIX = '.pgdr-full-site-';

/** Append settings to postgresql.auto.conf (the last occurrence of a setting wins). */
function appendAutoConf(dataDir: string, settings: Record<string, string>): void {
  const lines = ['', '# --- pgdr: full-site recovery, settings of this host ---', ...pgConfLines(settings), ''];
  appendFileSync(join(dataDir, 'postgresql.auto.conf'), lines.join('\n'));
}

/** The marker beside a data directory saying "pgdr claimed this (empty) directory for run X". */
export function claimFile(dataDir: string): string {
  return join(dirname(dataDir), `${CLAIM_PREFIX}${basename(dataDir)}`);
}

/** The full-site scratch root: fullSite.scratchDir, else the drill's scratch root. */
export function fullSiteScratch(c: ClusterConfig, name: string): { cluster: ClusterConfig; layout: ScratchLayout } {
  const root = c.fullSite.scratchDir ?? scratchRoot(c);
  const cc: ClusterConfig = { ...c, drill: { ...c.drill, scratchDir: root } };
  return { cluster: cc, layout: scratchLayout(cc, name) };
}

const mb = (n: number) => `${Math.round(n / 2 ** 20)} MB`;


/** The system identifier of the PostgreSQL data directory `dir` (pg_controldata), or null. */
async function systemIdOf(c: ClusterConfig, dir: string): Promise<string | null> {
  if (!existsSync(join(dir, 'PG_VERSION'))) return null;
  const r = await run(join(c.pgBinDir, 'pg_controldata'), ['-D', dir], { user: c.osUser, env: { LC_ALL: 'C' } });
  return /Database system identifier:\s+(\d+)/.exec(r.stdout)?.[1] ?? null;
}

/**
 * A stale copy of this very cluster in the target data directory (e.g. a former standby): a PostgreSQL
 * data directory whose system identifier is the stanza's, with no server running in it. It is moved aside
 * (never deleted) and seeds a delta restore.
 */
async function staleCopy(c: ClusterConfig, repo: number): Promise<{ systemId: string } | { not: string }> {
  const id = await systemIdOf(c, c.dataDir);
  if (!id) return { not: 'not a PostgreSQL data directory' };
  const info = await repoInfo(c, repo);
  if ('error' in info) return { not: `cannot compare it with the stanza: ${info.error}` };
  const stanzaId = String(info.raw.db?.[info.raw.db.length - 1]?.['system-id'] ?? '');
  if (stanzaId !== id) return { not: `a different cluster (system identifier ${id}, the stanza's is ${stanzaId || 'unknown'})` };
  if (postmasterAlive(c.dataDir)) return { not: 'a copy of this cluster, but a server runs in it' };
  return { systemId: id };
}

/** How a stale copy of the cluster is used: delta onto a reflink clone, onto a plain copy, or not at all. */
async function staleCopyMode(c: ClusterConfig): Promise<RestoreMode> {
  if (c.restore.reflink !== 'off' && (await supportsReflinks(dirname(c.dataDir))).ok) return 'reflink-delta';
  return c.restore.copyDelta ? 'copy-delta' : 'full';
}

const staleAside = (c: ClusterConfig, run: RunIdentity) => `${c.dataDir}.stale-${runTag(run)}`;

export function fullSiteActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  const repoOf = (c: ClusterConfig, index: number) => repoOfConfig(config, c, index);

  return {
    /**
     * Shared workflow queue: the cluster is known, the repo (if given) configured, and the runbook's timeouts
     * and RTO target — before anything asks for the target host (which may not exist yet).
     */
    async fullSiteDefaults(input: { cluster: string; repo?: number }): Promise<{ host: string; repos: number[]; rto: string; signOffTimeout: string; pauseTimeout: string }> {
      const c = cluster(input.cluster);
      if (input.repo !== undefined) repoOf(c, input.repo);
      return { host: c.host, repos: c.repos.map((r) => r.index), rto: c.rto.fullSite, signOffTimeout: c.fullSite.signOffTimeout, pauseTimeout: c.fullSite.pauseTimeout };
    },

    /** The cluster as this (target) host's config describes it; the chosen repo must be configured here. */
    async fullSitePlan(input: { cluster: string; repo?: number; drill: boolean; scratch: string }): Promise<FullSitePlan> {
      const c = cluster(input.cluster);
      const repo = repoOf(c, input.repo ?? c.repos[0].index);
      return {
        cluster: c.name,
        configuredHost: c.host,
        workerHost: hostname(),
        stanza: c.stanza,
        dataDir: c.dataDir,
        port: c.port,
        socketDir: c.socketDir,
        pgbackrestConfig: c.pgbackrestConfig,
        pgBinDir: c.pgBinDir,
        repos: c.repos.map((r) => ({
          index: r.index,
          name: r.name,
          passphrase: r.cipherPassEnv ? `environment variable ${r.cipherPassEnv}` : r.cipherPassFile ? `file ${r.cipherPassFile}` : 'pgBackRest configuration (or none)',
        })),
        repo: { index: repo.index, name: repo.name },
        rto: c.rto.fullSite,
        applications: c.applications.map((a) => ({ id: a.id, title: a.title, optional: a.optional })),
        expectTables: Object.keys(c.restore.expectTables).length > 0,
        migrationsTable: c.drill.migrationsTable,
        dnsSwitchHook: c.fullSite.dnsSwitchCommand ? c.fullSite.dnsSwitchCommand.join(' ') : null,
        signOffTimeout: c.fullSite.signOffTimeout,
        pauseTimeout: c.fullSite.pauseTimeout,
        backupTimeout: c.backup.timeout,
        heartbeatTimeout: config.worker.heartbeatTimeout,
        newTimelineArchiveWait: c.restore.newTimelineArchiveWait,
        scratch: input.drill ? fullSiteScratch(c, input.scratch).layout : undefined,
      };
    },

    /**
     * Where the cluster goes is free: the data directory is absent or empty (pgdr never deletes data), no
     * server uses the port, and there is room for the backup. On success the directory is claimed for this
     * run (a marker beside it) so that a retried restore may empty what it wrote itself. Drill: the
     * scratch folder of this run must not exist (or be pgdr's own, from an earlier attempt).
     */
    async checkTargetLocation(input: { cluster: string; run: string; drill: boolean; scratch: string; needBytes: number; repo?: number }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const need = Math.ceil(input.needBytes * 1.1);
      if (input.drill) {
        const { layout } = fullSiteScratch(c, input.scratch);
        if (existsSync(layout.dir) && !existsSync(join(layout.dir, '.pgdr-scratch'))) {
          return { ok: false, note: `${layout.dir} exists and is not a pgdr scratch folder: refusing to use it` };
        }
        const free = freeBytes(layout.root);
        if (free < need) return { ok: false, note: `${mb(free)} free at ${nearestExisting(layout.root)}, the restore needs ${mb(need)}` };
        return { ok: true, note: `drill: scratch folder ${layout.dir} (production's ${c.dataDir} is not touched); ${mb(free)} free, need ${mb(need)}` };
      }
      const claim = claimFile(c.dataDir);
      const ours = existsSync(claim) && readFileSync(claim, 'utf8').trim() === input.run;
      let stale = '';
      if (existsSync(c.dataDir)) {
        const entries = readdirSync(c.dataDir);
        if (entries.length && !ours) {
          const copy = input.repo ? await staleCopy(c, input.repo) : { not: 'no repo to compare with' };
          if ('not' in copy) {
            return {
              ok: false,
              note: `refusing: ${c.dataDir} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}; ${copy.not}); pgdr never deletes data — move it away (or point dataDir elsewhere in this host's pgdr.yaml), then retry`,
            };
          }
          const mode = await staleCopyMode(c);
          stale = `a stale copy of this cluster (system identifier ${copy.systemId}) is there: it is moved aside to ${staleAside(c, currentRun())}, never deleted, ${mode === 'full' ? 'and the backup restored in full (no reflinks; restore.copyDelta is off)' : `and seeds a ${mode === 'reflink-delta' ? 'delta restore onto a reflink clone of it' : 'delta restore onto a copy of it'}`}; `;
        }
      }
      if (postmasterAlive(c.dataDir)) return { ok: false, note: `a PostgreSQL server runs in ${c.dataDir}` };
      const control = await controlProblems(c, safeSecretEnv(c).env ?? {}, c.pgbackrestConfig);
      if (control.length) return { ok: false, note: control.join('; ') };
      const sock = join(c.socketDir, `.s.PGSQL.${c.port}`);
      if (existsSync(sock) && !ours) return { ok: false, note: `a server already listens on port ${c.port} (${sock}): stop it or change the port` };
      const free = freeBytes(c.dataDir);
      if (free < need) return { ok: false, note: `${mb(free)} free at ${nearestExisting(c.dataDir)}, the restore needs ${mb(need)}` };
      mkdirSync(dirname(claim), { recursive: true });
      writeFileSync(claim, `${input.run}\n`);
      return { ok: true, note: `${stale || `${c.dataDir} is ${existsSync(c.dataDir) ? 'empty' : 'absent'}; `}port ${c.port} free; ${mb(free)} free, need ${mb(need)}` };
    },

    /**
     * `pgbackrest restore` on the target host: into the cluster's data directory (claimed for this run;
     * WAL archiving stays on: this is production again, with this host's port, socket and archive_command
     * written into postgresql.auto.conf), or into the drill's scratch folder (archive_mode=off).
     */
    async restoreOnTarget(input: { cluster: string; run: string; drill: boolean; scratch: string; request: Omit<RestoreRequest, 'cluster' | 'dataDir' | 'archiveModeOff' | 'delta'> }): Promise<RestoreOutcome & { mode?: RestoreMode; fallback?: string; keptStaleAt?: string }> {
      const c = cluster(input.cluster);
      if (input.drill) {
        const { cluster: cc, layout } = fullSiteScratch(c, input.scratch);
        prepareScratch(cc, layout);
        return restoreInto(cc, { ...input.request, cluster: c.name, dataDir: layout.dataDir, archiveModeOff: true, delta: false });
      }
      const claim = claimFile(c.dataDir);
      const ours = existsSync(claim) && readFileSync(claim, 'utf8').trim() === input.run;
      if (!ours) throw ApplicationFailure.nonRetryable(`refusing to restore into ${c.dataDir}: it was not found free and claimed by this run (${claim})`, FAILURE.badInput);
      if (existsSync(c.dataDir) && readdirSync(c.dataDir).length && postmasterAlive(c.dataDir)) {
        throw ApplicationFailure.nonRetryable(`PostgreSQL runs in ${c.dataDir}; not restoring over it`, FAILURE.badInput);
      }
      // A stale copy of the cluster (checked when claimed) is moved aside, marked as this run's, and seeds a delta.
      const me = currentRun();
      const aside = staleAside(c, me);
      let seed: { from: string; mode: RestoreMode } | undefined;
      if (existsSync(aside)) requireOwned(aside, me, 'use');
      else if (!restoredBy(c.dataDir, me) && existsSync(join(c.dataDir, 'PG_VERSION')) && input.request.repo && 'systemId' in (await staleCopy(c, input.request.repo))) {
        writeMarker(c.dataDir, { what: 'stale copy, kept aside', cluster: c.name, from: c.dataDir }, me);
        renameSync(c.dataDir, aside);
      }
      if (existsSync(aside)) seed = { from: aside, mode: await staleCopyMode(c) };
      const out = await restoreViaStaging(c, me, { ...input.request, cluster: c.name, dataDir: c.dataDir, archiveModeOff: false, delta: false }, seed);
      // This host's port, socket directory and archive_command (listen_addresses stays as restored:
      // applications connect over TCP).
      // A Debian cluster (control: pg_ctlcluster) takes port and socket from its /etc configuration (checked to agree).
      const place: Record<string, string> = c.control.method === 'pg_ctlcluster' ? {} : { port: String(c.port), unix_socket_directories: c.socketDir };
      appendAutoConf(c.dataDir, { ...place, archive_command: expectedArchiveCommand(c.stanza, c.pgbackrestConfig) });
      return { ...out, keptStaleAt: existsSync(aside) ? aside : undefined };
    },

    /** Start the restored cluster (or scratch copy) and wait until recovery has ended and it is promoted. */
    async startOnTarget(input: { cluster: string; drill: boolean; scratch: string; timeoutSeconds?: number }): Promise<TargetRecovery> {
      const c = cluster(input.cluster);
      const timeout = input.timeoutSeconds ?? 3600;
      if (input.drill) {
        const { layout } = fullSiteScratch(c, input.scratch);
        if (!existsSync(join(layout.dataDir, 'PG_VERSION'))) throw ApplicationFailure.nonRetryable(`${layout.dataDir} holds no restored copy`, FAILURE.badInput);
        let port: number;
        const pidFile = join(layout.dataDir, 'postmaster.pid');
        if (postmasterAlive(layout.dataDir) && existsSync(pidFile)) {
          port = Number(readFileSync(pidFile, 'utf8').split('\n')[3]);
        } else {
          port = await pickFreePort();
          makeOwnedDir(layout.socketDir, c.osUser, 0o700);
          writeInstanceOverrides(layout.dataDir, { port, socketDir: layout.socketDir });
        }
        return { dataDir: layout.dataDir, ...(await startAndAwaitPromotion(c, restoredTarget(c, layout.dataDir, port, layout.socketDir), layout.logFile, { timeoutSeconds: timeout })) };
      }
      if (!existsSync(c.socketDir)) makeOwnedDir(c.socketDir, c.osUser, 0o2775);
      const out: TargetRecovery = { dataDir: c.dataDir, ...(await startAndAwaitPromotion(c, c, c.serverLog!, { timeoutSeconds: timeout })) };
      rmSync(claimFile(c.dataDir), { force: true });
      return out;
    },

    /** Stop and delete the drill's scratch copy (idempotent; only a folder with pgdr's scratch marker). */
    async removeFullSiteScratch(input: { cluster: string; scratch: string }): Promise<{ dir: string; existed: boolean }> {
      const c = cluster(input.cluster);
      const { cluster: cc, layout } = fullSiteScratch(c, input.scratch);
      const r = await removeScratch(cc, layout);
      return { dir: layout.dir, existed: r.existed };
    },

    /** The DNS / traffic switch hook (fullSite.dnsSwitchCommand), run on the target host. */
    async runDnsSwitchHook(input: { cluster: string; targetHost: string; workflowId: string }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const cmd = c.fullSite.dnsSwitchCommand;
      if (!cmd) return { ok: true, note: 'no hook configured' };
      const r = await run(cmd[0], cmd.slice(1), {
        env: { PGDR_CLUSTER: c.name, PGDR_TARGET_HOST: input.targetHost, PGDR_PORT: String(c.port), PGDR_DATA_DIR: c.dataDir, PGDR_WORKFLOW_ID: input.workflowId },
      });
      return r.exitCode === 0
        ? { ok: true, note: `\`${cmd.join(' ')}\` exited 0${r.stdout.trim() ? `: ${lastLines(r.stdout, 2)}` : ''}` }
        : { ok: false, note: `\`${cmd.join(' ')}\` exited ${r.exitCode}: ${lastLines(r.stderr || r.stdout, 3)}` };
    },

  };
}
