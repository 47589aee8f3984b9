/**
 * Activities of the verification drill (workflows/verify-drill.ts): `pgbackrest verify` with its output
 * parsed (it exits 0 even when it finds damage), the preflight, the RPO marker on production, and the
 * validation of the restored copy. The restore mechanics themselves are generic: activities/restore.ts.
 *
 * The drill never writes to production except the RPO marker table (pgdr.drill_marker, only for a time
 * target) and the `pgdr-verified` annotation of the set it proved.
 */
import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig, ValidationQuery } from '../common/config';
import type { DrillTarget, PreflightReport, RpoMarker, ValidationCheck, ValidationReport, VerifyReport } from '../common/drill';
import { resolveRestoreTarget } from '../common/restore-target';
import type { BackupSet } from '../common/types';
import { makeOwnedDir } from '../worker/local-cluster';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, pgbackrest, stanzaInfo } from './pgbackrest';
import { archiverStats, query, serverState, type PgTarget } from './postgres';
import { run } from './process';
import { restoredTarget, scratchLayout, scratchRoot } from './restore';
import { recordDrillResult } from './metrics';

// ---------------------------------------------------------------------------------------------------------
// pgbackrest verify

/** Parse `pgbackrest verify --log-level-console=detail` output. Pure (unit-testable). */
export function parseVerifyOutput(text: string): Omit<VerifyReport, 'durationMs'> {
  const problems: string[] = [];
  const badFiles: { set: string | null; file: string; problem: string }[] = [];
  // "P01   INFO: invalid checksum '20261121-193148F/pg_data/base/5/2655.gz'" (also "file missing", "invalid size" …)
  for (const m of text.matchAll(/(?:INFO|WARN|DETAIL|ERROR)[^:]*:\s*((?:invalid|missing|file missing|checksum|unable to)[^'\n]*?)\s*'([^']+)'/gi)) {
    const path = m[2];
    const set = /^(\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?)\//.exec(path)?.[1] ?? null;
    badFiles.push({ set, file: set ? path.slice(set.length + 1) : path, problem: m[1].trim() });
  }
  // The summary block: "backup: <label>, status: invalid, …" followed by indented counters.
  const invalidSets: { label: string; status: string; details: string[] }[] = [];
  const lines = text.split('\n');
  let stanzaStatus: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const st = /^\s*(?:.*INFO: stanza: \S+\s*)?status: (\S+)/.exec(lines[i]);
    if (st && !/backup:|archiveId:/.test(lines[i])) stanzaStatus = st[1];
    const b = /backup: (\S+), status: ([^,]+)/.exec(lines[i]);
    if (b && b[2].trim() !== 'valid') {
      const details: string[] = [];
      for (let j = i + 1; j < lines.length && /^\s+[a-z][a-z ]+: \d+/.test(lines[j]) && !/backup:|archiveId:/.test(lines[j]); j++) details.push(lines[j].trim());
      invalidSets.push({ label: b[1].replace(/,$/, ''), status: b[2].trim(), details });
    }
    const a = /archiveId: (\S+), total WAL checked: \d+, total valid WAL: \d+/.exec(lines[i]);
    if (a) {
      for (let j = i + 1; j < lines.length && /^\s+[a-z][a-z ]+: \d+/.test(lines[j]); j++) problems.push(`WAL of ${a[1].replace(/,$/, '')}: ${lines[j].trim()}`);
    }
  }
  // WAL ranges (detail): a gap between two ranges of one archive id and timeline means missing segments.
  const ranges = [...text.matchAll(/archiveId: (\S+), wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})/g)].map((m) => ({
    archiveId: m[1].replace(/,$/, ''),
    start: m[2],
    stop: m[3],
  }));
  const gaps: string[] = [];
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1];
    const b = ranges[i];
    if (a.archiveId === b.archiveId && a.stop.slice(0, 8) === b.start.slice(0, 8)) {
      gaps.push(`WAL missing in ${a.archiveId} after ${a.stop} up to ${b.start} (exclusive)`);
    }
  }
  for (const s of invalidSets) {
    const files = badFiles.filter((f) => f.set === s.label).map((f) => `${f.file} (${f.problem})`);
    problems.push(`backup set ${s.label}: ${s.status}${s.details.length ? ` (${s.details.join(', ')})` : ''}${files.length ? ` — ${files.join('; ')}` : ''}`);
  }
  for (const f of badFiles.filter((x) => !x.set || !invalidSets.some((s) => s.label === x.set))) {
    problems.push(`${f.set ? `backup set ${f.set}: ` : ''}${f.file}: ${f.problem}`);
  }
  problems.push(...gaps);
  if (!problems.length && stanzaStatus && stanzaStatus !== 'ok') problems.push(`verify reported status "${stanzaStatus}"`);
  return {
    ok: problems.length === 0,
    problems,
    badFiles,
    invalidSets: invalidSets.map((s) => s.label),
    walRanges: ranges.map((r) => `${r.archiveId}: ${r.start} → ${r.stop}`),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Tables: where each configured table lives on production.

interface TableLocation {
  table: string;
  database: string;
  /** A quoted identifier usable in SQL. */
  sql: string;
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
const quoteTable = (name: string) => name.split('.').map(quoteIdent).join('.');

async function databases(c: ClusterConfig): Promise<string[]> {
  const rows = await query<{ datname: string }>(c, 'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname');
  return rows.map((r) => r.datname);
}

/**
 * "db:table" names a database explicitly; a bare name is looked up in the cluster's database first, then in
 * the other databases (it must exist in exactly one).
 */
async function locateTables(c: ClusterConfig, names: string[]): Promise<TableLocation[]> {
  if (!names.length) return [];
  const dbs = await databases(c);
  const out: TableLocation[] = [];
  for (const name of names) {
    const i = name.indexOf(':');
    if (i > 0) {
      out.push({ table: name, database: name.slice(0, i), sql: quoteTable(name.slice(i + 1)) });
      continue;
    }
    const found: string[] = [];
    for (const db of [c.database, ...dbs.filter((d) => d !== c.database)]) {
      const [r] = await query<{ ok: boolean }>(c, 'SELECT to_regclass($1) IS NOT NULL AS ok', [quoteTable(name)], db).catch(() => [{ ok: false }]);
      if (r.ok) {
        found.push(db);
        if (db === c.database) break;
      }
    }
    if (!found.length) {
      throw ApplicationFailure.nonRetryable(`drill table "${name}" does not exist on production (searched databases ${dbs.join(', ')})`, FAILURE.badInput);
    }
    if (found.length > 1 && found[0] !== c.database) {
      throw ApplicationFailure.nonRetryable(`drill table "${name}" exists in databases ${found.join(', ')}: write it as "<database>:${name}"`, FAILURE.badInput);
    }
    out.push({ table: name, database: found[0], sql: quoteTable(name) });
  }
  return out;
}

async function countRows(t: PgTarget, tables: TableLocation[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const tl of tables) {
    const [r] = await query<{ n: string }>(t, `SELECT count(*) AS n FROM ${tl.sql}`, [], tl.database);
    counts[tl.table] = Number(r.n);
  }
  return counts;
}

const USER_TABLES_SQL = "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')";

// ---------------------------------------------------------------------------------------------------------

export const MARKER_TABLE = 'pgdr.drill_marker';

export function drillActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);

  return {
    /** Publish a drill's outcome in the worker's metrics (and textfile); never fails the drill. */
    async recordDrillMetrics(input: { cluster: string; ok: boolean; finishedAt: string; durationMs: number }): Promise<{ recorded: boolean; error?: string }> {
      try {
        await recordDrillResult(input);
        return { recorded: true };
      } catch (e) {
        return { recorded: false, error: (e as Error).message };
      }
    },

    /** The RTO target a drill's measured restore is compared with (reads the config only). */
    async describeDrillRto(input: { cluster: string; pitr: boolean }): Promise<string> {
      const c = cluster(input.cluster);
      return c.drill.rto ?? (input.pitr ? c.rto.pitr : c.rto.fullSite);
    },

    /**
     * `pgbackrest verify` at detail level. Exit 0 does not mean a healthy repo: the output is parsed and any
     * invalid backup file, invalid/missing WAL or WAL gap fails with RepoDamaged naming set and file.
     */
    async verifyRepository(input: { cluster: string; repo?: number }): Promise<VerifyReport> {
      const c = cluster(input.cluster);
      const options = input.repo ? [`--repo=${input.repo}`] : [];
      const res = await pgbackrest(c, 'verify', { options, logLevel: 'detail' });
      const report = { ...parseVerifyOutput(`${res.stdout}\n${res.stderr}`), durationMs: res.durationMs };
      if (!report.ok) {
        throw ApplicationFailure.nonRetryable(
          `pgbackrest verify found damage in the repository of stanza "${c.stanza}"${input.repo ? ` (repo${input.repo})` : ''}: ${report.problems.join('; ')}`,
          FAILURE.repoDamaged,
          report,
        );
      }
      return report;
    },

    /**
     * RPO proof: a marker row committed on production, then the target time (after the commit), the row
     * counts of the drill tables as of that moment, and a second marker after the target; then a WAL
     * switch and a wait until the segment is archived.
     */
    async writeRpoMarker(input: { cluster: string; drill: string; target?: string; timeoutSeconds?: number }): Promise<RpoMarker> {
      const c = cluster(input.cluster);
      await query(c, `CREATE SCHEMA IF NOT EXISTS pgdr; CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (id bigserial PRIMARY KEY, drill text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
      const [before] = await query<{ id: string; at: Date }>(c, `INSERT INTO ${MARKER_TABLE} (drill) VALUES ($1) RETURNING id, at`, [`${input.drill}:before`]);
      await sleep(20);
      const [t] = await query<{ at: Date }>(c, 'SELECT clock_timestamp() AS at');
      const tables = await locateTables(c, c.drill.tables);
      const counts = await countRows(c, tables);
      await sleep(20);
      const [after] = await query<{ id: string; at: Date }>(c, `INSERT INTO ${MARKER_TABLE} (drill) VALUES ($1) RETURNING id, at`, [`${input.drill}:after`]);
      const [w] = await query<{ f: string }>(c, 'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS f');
      await query(c, 'SELECT pg_switch_wal()');
      const deadline = Date.now() + (input.timeoutSeconds ?? 120) * 1000;
      for (;;) {
        const s = await archiverStats(c);
        if (s.lastArchivedWal && s.lastArchivedWal.slice(0, 24) >= w.f) break;
        if (Date.now() > deadline) throw ApplicationFailure.retryable(`WAL ${w.f} with the drill marker was not archived in time (last archived ${s.lastArchivedWal})`, 'WalNotArchived');
        Context.current().heartbeat({ waitingFor: w.f });
        await sleep(250);
      }
      // A target given by the user (in the past) is what the copy must reach; else the moment just taken.
      const target = input.target ? new Date(Date.parse(input.target)).toISOString() : t.at.toISOString();
      const [{ n, last }] = await query<{ n: string; last: string | null }>(c, `SELECT count(*) AS n, max(id) AS last FROM ${MARKER_TABLE} WHERE at <= $1`, [target]);
      return {
        beforeId: Number(before.id),
        beforeAt: before.at.toISOString(),
        target,
        ownTarget: !input.target,
        lastIdUpToTarget: last === null ? null : Number(last),
        afterId: Number(after.id),
        afterAt: after.at.toISOString(),
        markersUpToTarget: Number(n),
        walFile: w.f,
        counts,
      };
    },

    /** The set exists, the target lies in the recoverable window, and the scratch location has room. */
    async drillPreflight(input: { cluster: string; repo?: number; set?: string; target?: DrillTarget; scratch: string }): Promise<PreflightReport> {
      const c = cluster(input.cluster);
      const bad = (msg: string) => ApplicationFailure.nonRetryable(`preflight: ${msg}`, FAILURE.badInput);
      let lastArchivedAt: string | null = null;
      if ((await serverState(c)) === 'running') lastArchivedAt = await archiverStats(c).then((s) => s.lastArchivedAt, () => null);
      const info = await stanzaInfo(c, { repo: input.repo, lastArchivedAt });
      if (!info.window) throw bad(`stanza "${c.stanza}" has no backup set to restore`);
      const w = info.window;
      const t = input.target;
      // The same check as the restore runbooks: window, timelines, and the set pgBackRest must use.
      const checked = resolveRestoreTarget(
        // A restore point pgdr did not create is accepted when the drill names the set to restore.
        { type: t?.type ?? 'immediate', value: t?.value, set: input.set && input.set !== 'latest' ? input.set : undefined, repo: input.repo, confirmUnknownName: Boolean(input.set && input.set !== 'latest') },
        info,
        new Date().toISOString(),
      );
      if (!checked.ok) throw bad(checked.message);
      const set: BackupSet = checked.target.set;
      if (set.error) throw bad(`backup set ${set.label} was taken with errors (pgBackRest flagged it); it cannot prove anything`);
      const root = scratchRoot(c);
      makeOwnedDir(root, c.osUser, 0o755);
      const fs = statfsSync(root);
      const free = Number(fs.bavail) * Number(fs.bsize);
      const needed = Math.ceil(set.size * (1 + c.drill.diskMargin));
      if (free < needed) {
        throw bad(`not enough free space in ${root}: backup set ${set.label} needs ${needed} bytes (restore size ${set.size} + ${Math.round(c.drill.diskMargin * 100)} %), ${free} free`);
      }
      return { set, window: w, scratchRoot: root, scratchDir: scratchLayout(c, input.scratch).dir, freeBytes: free, neededBytes: needed };
    },

    /**
     * Validate the restored copy: SELECT 1, user tables, row counts against production (exact against the
     * counts taken at the marker, else within the tolerance), pg_amcheck, the configured queries, the
     * newest migrations, and for an RPO drill exactly the markers up to the target.
     */
    async validateRestoredCopy(input: {
      cluster: string;
      scratch: string;
      port: number;
      socketDir: string;
      /** Exact production counts as of the target (RPO marker); else production is counted now. */
      exactCounts?: Record<string, number>;
      marker?: RpoMarker;
      validations?: ValidationQuery[];
      /** Upper bound of what the copy can hold (target or set stop time) for the migrations check. */
      pointInTime?: string;
    }): Promise<ValidationReport> {
      const c = cluster(input.cluster);
      const l = scratchLayout(c, input.scratch);
      const copy = restoredTarget(c, l.dataDir, input.port, input.socketDir);
      const checks: ValidationCheck[] = [];
      const check = async (name: string, fn: () => Promise<{ ok: boolean; detail: string }>) => {
        try {
          checks.push({ name, ...(await fn()) });
        } catch (e) {
          checks.push({ name, ok: false, detail: (e as Error).message });
        }
        Context.current().heartbeat({ checked: checks.length });
      };

      await check('SELECT 1', async () => {
        const [r] = await query<{ one: number }>(copy, 'SELECT 1 AS one');
        return { ok: r.one === 1, detail: 'the copy answers queries' };
      });
      let userTables = 0;
      await check('Tables present', async () => {
        const dbs = await databases(c);
        let restored = 0;
        let prod = 0;
        for (const db of dbs) {
          restored += Number((await query<{ n: string }>(copy, USER_TABLES_SQL, [], db).catch(() => [{ n: '0' }]))[0].n);
          prod += Number((await query<{ n: string }>(c, USER_TABLES_SQL, [], db))[0].n);
        }
        userTables = restored;
        return { ok: prod === 0 || restored > 0, detail: `${restored} user tables in the copy, ${prod} on production now` };
      });

      const rowCounts: ValidationReport['rowCounts'] = [];
      if (c.drill.tables.length) {
        const tables = await locateTables(c, c.drill.tables);
        const prod = input.exactCounts ?? (await countRows(c, tables));
        const exact = Boolean(input.exactCounts);
        for (const tl of tables) {
          await check(`Row count of ${tl.table}`, async () => {
            const [r] = await query<{ n: string }>(copy, `SELECT count(*) AS n FROM ${tl.sql}`, [], tl.database);
            const restored = Number(r.n);
            const p = prod[tl.table];
            const diff = Math.abs(restored - p) / Math.max(p, 1);
            const ok = exact ? restored === p : diff <= c.drill.rowCountTolerance;
            rowCounts.push({ table: tl.table, database: tl.database, restored, production: p, exact });
            return {
              ok,
              detail: `${restored} rows in the copy, ${p} on production${exact ? ' at the target (must be equal)' : ` now (tolerance ${c.drill.rowCountTolerance * 100} %, off by ${(diff * 100).toFixed(2)} %)`}`,
            };
          });
        }
      }

      if (input.marker) {
        const m = input.marker;
        await check('RPO markers: exactly those up to the target', async () => {
          const rows = await query<{ id: string; at: Date }>(copy, `SELECT id, at FROM ${MARKER_TABLE} ORDER BY id`);
          const ids = rows.map((r) => Number(r.id));
          const late = rows.filter((r) => r.at.toISOString() > m.target);
          const last = ids.length ? ids[ids.length - 1] : null;
          const ok = late.length === 0 && rows.length === m.markersUpToTarget && last === m.lastIdUpToTarget && !ids.includes(m.afterId);
          return {
            ok,
            detail: `${rows.length} markers restored, ${m.markersUpToTarget} expected up to ${m.target} (newest id ${last ?? 'none'}, expected ${m.lastIdUpToTarget ?? 'none'}); ${late.length} after the target; marker ${m.afterId} written after the target ${ids.includes(m.afterId) ? 'PRESENT' : 'absent'}`,
          };
        });
      }

      if (c.drill.amcheck) {
        await check('pg_amcheck', async () => {
          const r = await run(join(c.pgBinDir, 'pg_amcheck'), ['-h', input.socketDir, '-p', String(input.port), '-U', c.dbUser, '--all', '--install-missing', '--heapallindexed'], { user: c.osUser });
          return { ok: r.exitCode === 0, detail: r.exitCode === 0 ? 'no corruption found' : (r.stdout + r.stderr).trim().split('\n').slice(-5).join(' | ') };
        });
      }

      for (const v of [...c.drill.validations, ...(input.validations ?? [])]) {
        await check(`Query "${v.name}"`, async () => {
          const rows = await query<Record<string, unknown>>(copy, v.sql, [], v.database);
          const first = rows[0] ? Object.values(rows[0])[0] : undefined;
          const got = first instanceof Date ? first.toISOString() : first === undefined || first === null ? String(first) : String(first);
          return { ok: got === v.expect, detail: `got ${JSON.stringify(got)}, expected ${JSON.stringify(v.expect)}` };
        });
      }

      if (c.drill.migrationsTable) {
        const name = c.drill.migrationsTable;
        await check(`Migrations in ${name}`, async () => {
          const [tl] = await locateTables(c, [name]);
          const cols = await query<{ column_name: string }>(c, "SELECT column_name FROM information_schema.columns WHERE table_name = $1", [tl.sql.split('.').pop()!.replace(/"/g, '')], tl.database);
          const hasStarted = cols.some((x) => x.column_name === 'started_at');
          const where = hasStarted && input.pointInTime ? ' WHERE started_at <= $1' : '';
          const params = where ? [input.pointInTime] : [];
          const expected = await query<{ r: string }>(c, `SELECT t::text AS r FROM ${tl.sql} t${where}`, params, tl.database);
          const restored = new Set((await query<{ r: string }>(copy, `SELECT t::text AS r FROM ${tl.sql} t`, [], tl.database)).map((x) => x.r));
          const missing = expected.filter((x) => !restored.has(x.r));
          return {
            ok: missing.length === 0 && (expected.length === 0 || restored.size > 0),
            detail: missing.length ? `${missing.length} migration row(s) missing, e.g. ${missing[0].r}` : `${restored.size} migration rows; all ${expected.length} expected present`,
          };
        });
      }

      return { ok: checks.every((x) => x.ok), checks, rowCounts, userTables };
    },
  };
}
