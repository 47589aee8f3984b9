/**
 * Host activities of full-site recovery (workflows/full-site-recovery.ts). They run on the TARGET host's
 * task queue, so every path, port, pgBackRest config and secret comes from the cluster entry in THAT host's
 * pgdr.yaml: the same cluster name and stanza, described as it will live on the new host.
 *
 * Checks return `{ ok, note }` (the workflow pauses on `ok: false`); they never print a cipher passphrase.
 * Safety: the target data directory must be empty or absent — pgdr never deletes user data. The only
 * directory it empties is one it claimed itself for this run (a marker beside it, written by the check
 * that found it empty), so a restore interrupted by a crash can be redone.
 * Drill mode works in a scratch folder (with a marker) and never touches the configured data directory.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { CheckOutcome } from '../common/types';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
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
import { FAILURE, failureFor, lastLines, parseInfoJson, PGBACKREST_BIN, pgbackrest, secretEnv } from './pgbackrest';
import { controlProblems, expectedArchiveCommand, type PgTarget } from './postgres';
import { run } from './process';
import {
  prepareScratch,
  removeScratch,
  restoreInto,
  restoredTarget,
  scratchLayout,
  startAndAwaitPromotion,
  type RecoveryReport,
  scratchRoot,
  writeInstanceOverrides,
  type RestoreOutcome,
  type RestoreRequest,
  type ScratchLayout,
} from './restore';

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

/** Sections and keys of an INI file (pgBackRest's format). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let cur = new Map<string, string>();
  out.set('', cur);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      cur = out.get(sec[1]) ?? new Map();
      out.set(sec[1], cur);
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0) cur.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}

/** Replace every secret value in a text (pgBackRest output can echo odd things). */
function redact(text: string, secrets: string[]): string {
  let t = text;
  for (const s of secrets) if (s.length >= 4) t = t.split(s).join('***');
  return t;
}

function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

function freeBytes(path: string): number {
  const s = statfsSync(nearestExisting(path));
  return Number(s.bavail) * Number(s.bsize);
}

const mb = (n: number) => `${Math.round(n / 2 ** 20)} MB`;


function postmasterAlive(dataDir: string): boolean {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!(pid > 0)) return false;
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Start a restored cluster with the repo passphrases in its environment and wait until it is promoted. */
export async function startWithSecrets(c: ClusterConfig, t: PgTarget, logFile: string, timeoutSeconds: number): Promise<TargetRecovery> {
  return { dataDir: t.dataDir, ...(await startAndAwaitPromotion(c, t, logFile, { timeoutSeconds })) };
}

/** Read `pgbackrest info --repo=N --output=json` without throwing on its status. */
async function repoInfo(c: ClusterConfig, repo: number) {
  const secrets = Object.values(safeSecretEnv(c).env);
  const res = await pgbackrest(c, 'info', { options: ['--output=json', `--repo=${repo}`], allowFailure: true });
  if (res.exitCode !== 0) {
    const f = failureFor('info', c.stanza, res);
    return { error: redact(f.message, secrets) } as const;
  }
  const raw = parseInfoJson(res.stdout).find((s) => s.name === c.stanza) as
    | (ReturnType<typeof parseInfoJson>[number] & { db?: { id: number; version: string; 'repo-key'?: number; 'system-id'?: string }[] })
    | undefined;
  if (!raw) return { error: `pgbackrest info returned nothing for stanza "${c.stanza}"` } as const;
  return { raw, message: redact(raw.status.message.trim(), secrets) } as const;
}

/** secretEnv without throwing: an unreadable passphrase file is reported as a problem. */
function safeSecretEnv(c: ClusterConfig): { env: Record<string, string>; problem?: string } {
  try {
    return { env: secretEnv(c) };
  } catch (e) {
    return { env: {}, problem: (e as Error).message };
  }
}

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
  const repoOf = (c: ClusterConfig, index: number) => {
    const r = c.repos.find((x) => x.index === index);
    if (!r) {
      throw ApplicationFailure.nonRetryable(
        `cluster "${c.name}" has no repo${index} in ${config.file} on host ${hostname()} (configured: ${c.repos.map((x) => `repo${x.index}`).join(', ')})`,
        FAILURE.badInput,
      );
    }
    return r;
  };

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
        scratch: input.drill ? fullSiteScratch(c, input.scratch).layout : undefined,
      };
    },

    /** `pg_ctl --version` and `pgbackrest version` on this host. */
    async checkHostPackages(input: { cluster: string }): Promise<CheckOutcome & { pgMajor?: number }> {
      const c = cluster(input.cluster);
      const pgCtlBin = join(c.pgBinDir, 'pg_ctl');
      if (!existsSync(pgCtlBin)) return { ok: false, note: `${pgCtlBin} does not exist: install PostgreSQL (pgBinDir ${c.pgBinDir} in this host's pgdr.yaml)` };
      const pg = await run(pgCtlBin, ['--version']);
      const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(pg.stdout);
      if (pg.exitCode !== 0 || !m) return { ok: false, note: `\`${pgCtlBin} --version\` failed: ${lastLines(pg.stderr || pg.stdout, 2) || `exit ${pg.exitCode}`}` };
      let br;
      try {
        br = await run(PGBACKREST_BIN, ['version']);
      } catch (e) {
        return { ok: false, note: `pgbackrest is not installed or not on PATH: ${(e as Error).message}` };
      }
      if (br.exitCode !== 0 || !/pgBackRest \d/.test(br.stdout)) {
        return { ok: false, note: `\`pgbackrest version\` failed (exit ${br.exitCode}): ${lastLines(br.stderr || br.stdout, 2) || 'not installed?'}` };
      }
      return { ok: true, note: `${pg.stdout.trim()}; ${br.stdout.trim()}`, pgMajor: Number(m[1]) };
    },

    /** The pgBackRest configuration file is there, readable by the OS user, and has the stanza and the repo. */
    async checkPgBackRestConfig(input: { cluster: string; repo: number }): Promise<CheckOutcome & { encrypted?: boolean }> {
      const c = cluster(input.cluster);
      const file = c.pgbackrestConfig;
      if (!existsSync(file)) return { ok: false, note: `${file} does not exist on this host: restore the pgBackRest configuration (pgbackrestConfig in this host's pgdr.yaml)` };
      const readable = await run('test', ['-r', file], { user: c.osUser });
      if (readable.exitCode !== 0) return { ok: false, note: `${file} is not readable by the OS user ${c.osUser}` };
      const ini = parseIni(readFileSync(file, 'utf8'));
      const stanza = ini.get(c.stanza);
      if (!stanza) return { ok: false, note: `${file} has no [${c.stanza}] section (sections: ${[...ini.keys()].filter(Boolean).join(', ') || 'none'})` };
      const pgPath = stanza.get('pg1-path');
      if (!pgPath) return { ok: false, note: `[${c.stanza}] in ${file} has no pg1-path` };
      if (pgPath.replace(/\/+$/, '') !== c.dataDir.replace(/\/+$/, '')) {
        return { ok: false, note: `[${c.stanza}] pg1-path is ${pgPath} but this host's pgdr.yaml says dataDir ${c.dataDir}: make them agree` };
      }
      const opt = (k: string) => stanza.get(k) ?? ini.get('global')?.get(k);
      const n = input.repo;
      if (!opt(`repo${n}-path`) && !opt(`repo${n}-type`)) return { ok: false, note: `${file} configures no repo${n} (no repo${n}-path / repo${n}-type)` };
      const cipher = opt(`repo${n}-cipher-type`);
      const encrypted = Boolean(cipher && cipher !== 'none');
      return { ok: true, note: `${file}: stanza [${c.stanza}], pg1-path ${pgPath}, repo${n} ${opt(`repo${n}-type`) ?? 'posix'} ${opt(`repo${n}-path`) ?? ''}${encrypted ? `, encrypted (${cipher})` : ''}`.trim(), encrypted };
    },

    /**
     * The cipher passphrase is available: `info` on the chosen repo answers with status 0 (ok). A wrong
     * passphrase shows as status 99. The passphrase is never printed.
     */
    async checkCipherPassphrase(input: { cluster: string; repo: number; encrypted: boolean }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const r = repoOf(c, input.repo);
      const source = r.cipherPassEnv ? `environment variable ${r.cipherPassEnv}` : r.cipherPassFile ? `file ${r.cipherPassFile}` : 'the pgBackRest configuration';
      if (!input.encrypted) return { ok: true, note: `repo${input.repo} is not encrypted (no repo${input.repo}-cipher-type): no passphrase needed` };
      const secrets = safeSecretEnv(c);
      if (secrets.problem) return { ok: false, note: secrets.problem };
      if (r.cipherPassEnv && !process.env[r.cipherPassEnv] && !r.cipherPassFile) {
        return { ok: false, note: `the passphrase of repo${input.repo} should be in ${source}, which is not set in the worker's environment` };
      }
      const info = await repoInfo(c, input.repo);
      if ('error' in info) return { ok: false, note: `pgbackrest info on repo${input.repo} failed: ${info.error}` };
      const code = info.raw.status.code;
      if (code === 99) {
        return { ok: false, note: `pgBackRest cannot decrypt repo${input.repo} with the passphrase from ${source} (info status 99: wrong or missing cipher passphrase)` };
      }
      if (code !== 0) return { ok: false, note: `info on repo${input.repo} answered status ${code} (${info.message}), not ok: the passphrase cannot be confirmed` };
      return { ok: true, note: `info on repo${input.repo} answered status 0 (ok) with the passphrase from ${source} (not shown)` };
    },

    /** The chosen repo is reachable and holds backup sets of the stanza. */
    async checkRepoReachable(input: { cluster: string; repo: number }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const info = await repoInfo(c, input.repo);
      if ('error' in info) return { ok: false, note: `repo${input.repo} is not reachable: ${info.error}` };
      const code = info.raw.status.code;
      if (code === 1 || code === 3) return { ok: false, note: `repo${input.repo} has no stanza "${c.stanza}" (status ${code}: ${info.message}): is it the right repository, mounted where the config says?` };
      if (code === 2) return { ok: false, note: `repo${input.repo} holds no valid backup of stanza "${c.stanza}" (status 2)` };
      if (code !== 0) return { ok: false, note: `repo${input.repo} answered status ${code}: ${info.message}` };
      const sets = (info.raw.backup ?? []).filter((b) => !b.error);
      const max = (info.raw.archive ?? []).map((a) => a.max).filter(Boolean).sort().pop();
      return { ok: true, note: `repo${input.repo}: ${sets.length} backup set(s), newest ${sets[sets.length - 1]?.label ?? '—'}; WAL archived up to ${max ?? '—'}` };
    },

    /** The PostgreSQL major version installed here matches the stanza's. */
    async checkMajorVersion(input: { cluster: string; repo: number; pgMajor: number }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const info = await repoInfo(c, input.repo);
      if ('error' in info) return { ok: false, note: info.error ?? 'pgbackrest info failed' };
      const dbs = info.raw.db ?? [];
      const current = dbs[dbs.length - 1];
      if (!current) return { ok: false, note: `pgbackrest info shows no database for stanza "${c.stanza}"` };
      const major = Number(String(current.version).split('.')[0]);
      return major === input.pgMajor
        ? { ok: true, note: `PostgreSQL ${input.pgMajor} here; the stanza's database is PostgreSQL ${current.version}` }
        : { ok: false, note: `PostgreSQL ${input.pgMajor} is installed here but the stanza's backups are PostgreSQL ${current.version}: install postgresql-${current.version}` };
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
        return startWithSecrets(c, restoredTarget(c, layout.dataDir, port, layout.socketDir), layout.logFile, timeout);
      }
      if (!existsSync(c.socketDir)) makeOwnedDir(c.socketDir, c.osUser, 0o2775);
      const out = await startWithSecrets(c, c, c.serverLog!, timeout);
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

    /** Write the DR report (Markdown + SVG timeline) to <stateDir>/audit/dr-reports/ on this host, atomically. */
    async writeDrReport(input: { workflowId: string; markdown: string; svg: string }): Promise<{ file: string; svgFile: string; host: string }> {
      const dir = join(config.stateDirAbs, 'audit', 'dr-reports');
      mkdirSync(dir, { recursive: true });
      const base = input.workflowId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 150);
      const write = (name: string, text: string) => {
        const path = join(dir, name);
        writeFileSync(`${path}.tmp`, text);
        renameSync(`${path}.tmp`, path);
        return path;
      };
      const svgFile = write(`${base}.svg`, input.svg);
      const file = write(`${base}.md`, input.markdown);
      return { file, svgFile, host: hostname() };
    },
  };
}
