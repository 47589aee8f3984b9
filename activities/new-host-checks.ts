/**
 * Full-site recovery's checks of the NEW host, each an activity on that host's task queue, answered from
 * that host's pgdr.yaml: PostgreSQL and pgBackRest installed, the pgBackRest configuration has the stanza and
 * the repo, the cipher passphrase works (never printed), the repo is reachable and holds backups, the major
 * version matches. Each returns `{ ok, note }`: the runbook pauses on `ok: false`.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ClusterConfig, LoadedConfig, RepoConfig } from '../common/config';
import { parseIni } from '../common/ini';
import type { CheckOutcome } from '../common/types';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, failureFor, lastLines, parseInfoJson, PGBACKREST_BIN, pgbackrest, secretEnv } from './pgbackrest';
import { run } from './process';

/** Replace every secret value in a text (pgBackRest output can echo odd things). */
function redact(text: string, secrets: string[]): string {
  let t = text;
  for (const s of secrets) if (s.length >= 4) t = t.split(s).join('***');
  return t;
}

/** The repo `index` of a cluster in this host's config, or a clear refusal naming the file and host. */
export function repoOf(config: LoadedConfig, c: ClusterConfig, index: number): RepoConfig {
  const r = c.repos.find((x) => x.index === index);
  if (!r) {
    throw ApplicationFailure.nonRetryable(
      `cluster "${c.name}" has no repo${index} in ${config.file} on host ${hostname()} (configured: ${c.repos.map((x) => `repo${x.index}`).join(', ')})`,
      FAILURE.badInput,
    );
  }
  return r;
}

/** Read `pgbackrest info --repo=N --output=json` without throwing on its status. */
export async function repoInfo(c: ClusterConfig, repo: number) {
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
export function safeSecretEnv(c: ClusterConfig): { env: Record<string, string>; problem?: string } {
  try {
    return { env: secretEnv(c) };
  } catch (e) {
    return { env: {}, problem: (e as Error).message };
  }
}

export function newHostCheckActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  return {
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
      const r = repoOf(config, c, input.repo);
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
  };
}
