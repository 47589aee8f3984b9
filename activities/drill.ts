/**
 * Activities of the verification drill (workflows/verify-drill.ts): `pgbackrest verify` with its output
 * parsed (it exits 0 even when it finds damage), the preflight, the RPO marker on production, and the
 * validation of the restored copy. The restore mechanics themselves are generic: activities/restore.ts.
 *
 * The drill never writes to production except the RPO marker table (pgdr.drill_marker, only for a time
 * target) and the `pgdr-verified` annotation of the set it proved.
 */
import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, type QueryConfig } from 'pg';
import type { ClusterConfig } from '../common/config';
import type { DrillTarget } from '../common/inputs';
import { scratchSpaceNeeded, type PreflightReport, type RpoMarker, type ValidationCheck, type ValidationReport, type VerifyReport } from '../common/drill';
import { parseTargetTime, resolveRestoreTarget } from '../common/restore-target';
import type { BackupSet } from '../common/types';
import { makeOwnedDir } from '../common/os-user';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, parseVerifyOutput, pgbackrest, stanzaInfo, verifyFailure } from './pgbackrest';
import { archiverStats, connectionOptions, query, serverState, type PgTarget } from './postgres';
import { run } from './process';
import { restoredTarget } from './recovery';
import { scratchLayout, scratchRoot } from './scratch';
import { stopPoint } from './stop-points';
import { recordDrillResult } from './metrics';
import { quoteIdent, quoteLiteral } from '../common/sql';
import { freeBytes } from './disk';
import { checkMigrations, databases, locateTables, type TableLocation } from './tables';

// ---------------------------------------------------------------------------------------------------------
// pgbackrest verify

// Parsed in pgbackrest.ts; exported here too for the drill's callers.
export { parseVerifyOutput };

// ---------------------------------------------------------------------------------------------------------
// Tables: where each configured table lives on production.

async function countRows(t: PgTarget, tables: TableLocation[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const tl of tables) {
    const [r] = await query<{ n: string }>(t, `SELECT count(*) AS n FROM ${tl.sql}`, [], tl.database);
    counts[tl.table] = Number(r.n);
  }
  return counts;
}

/** A connection for a transaction that spans statements (query() opens one per statement). */
async function connect(t: PgTarget, database?: string, user?: string): Promise<Client> {
  const client = new Client({ ...connectionOptions(t, database), ...(user ? { user } : {}) });
  await client.connect();
  return client;
}

/**
 * The time now in UTC with PostgreSQL's microseconds, as text: as a JS Date it would be cut to milliseconds,
 * and a target up to 999 µs early stops recovery before commits that are in the counts.
 */
const NOW_US = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** How long a SHARE lock on a drill table may wait for writers (below the default deadlock_timeout of 1 s). */
const COUNT_LOCK_TIMEOUT = '500ms';

/**
 * The target time and the row counts of the drill tables in ONE consistent view. SHARE locks on the tables
 * (in every database that holds one) wait until their writers have ended and hold new writers off for a
 * few milliseconds, while each database's snapshot is exported and the time is taken: every write to the
 * tables committed before that time is in the snapshots, none commits until after it. A restore to that
 * time therefore holds exactly the counted rows. Counting runs in the imported snapshots after the locks
 * are released, so a big table does not stall production for the length of a count.
 */
async function countAtTarget(c: ClusterConfig, tables: TableLocation[]): Promise<{ at: string; counts: Record<string, number> }> {
  if (!tables.length) return { at: (await query<{ at: string }>(c, `SELECT ${NOW_US} AS at`))[0].at, counts: {} };
  const dbs = [...new Set(tables.map((t) => t.database))];
  for (let attempt = 1; ; attempt++) {
    const clients: Client[] = [];
    const open = async (db: string) => {
      const cl = await connect(c, db);
      clients.push(cl);
      return cl;
    };
    try {
      const lockers = new Map<string, Client>();
      for (const db of dbs) {
        const cl = await open(db);
        await cl.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL lock_timeout = '${COUNT_LOCK_TIMEOUT}'`);
        await cl.query(`LOCK TABLE ${tables.filter((t) => t.database === db).map((t) => t.sql).join(', ')} IN SHARE MODE`);
        lockers.set(db, cl);
      }
      const snapshots = new Map<string, string>();
      for (const [db, cl] of lockers) snapshots.set(db, (await cl.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0].s);
      const [{ at }] = (await lockers.get(dbs[0])!.query<{ at: string }>(`SELECT ${NOW_US} AS at`)).rows;
      const readers = new Map<string, Client>();
      for (const db of dbs) {
        const cl = await open(db);
        await cl.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await cl.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshots.get(db)!)}`);
        readers.set(db, cl);
      }
      for (const cl of lockers.values()) await cl.query('COMMIT');
      const counts: Record<string, number> = {};
      for (const tl of tables) counts[tl.table] = Number((await readers.get(tl.database)!.query<{ n: string }>(`SELECT count(*) AS n FROM ${tl.sql}`)).rows[0].n);
      return { at, counts };
    } catch (e) {
      // 55P03 lock_not_available: a long writer holds a table; try again rather than queue writers behind us.
      if ((e as { code?: string }).code !== '55P03') throw e;
      if (attempt >= 20) throw ApplicationFailure.retryable(`drill tables ${tables.map((t) => t.table).join(', ')} stayed locked by writers for ${attempt} tries of ${COUNT_LOCK_TIMEOUT}: cannot count them consistently`, 'DrillTablesBusy');
      Context.current().heartbeat({ waitingForLock: attempt });
      await sleep(500);
    } finally {
      await Promise.all(clients.map((cl) => cl.end().catch(() => undefined)));
    }
  }
}

const USER_TABLES_SQL = "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')";

// ---------------------------------------------------------------------------------------------------------

export const MARKER_TABLE = 'pgdr.drill_marker';

// ---------------------------------------------------------------------------------------------------------
// Validation queries run as a role that cannot harm the host: no superuser (so no COPY … TO PROGRAM, no
// server files), pg_read_all_data only, one statement in a READ ONLY transaction.

export const VALIDATOR_ROLE = 'pgdr_drill_validator';

/**
 * Create (or defang, when production had one) the validator role in the throw-away copy and let it log in
 * on the copy's own socket: a trust line on top of the copy's pg_hba.conf, reloaded. Refuses to edit an
 * hba file outside the copy's data directory.
 */
async function prepareValidator(copy: PgTarget, databases: string[]): Promise<void> {
  const [{ hba_file: hba }] = await query<{ hba_file: string }>(copy, 'SHOW hba_file');
  if (!resolve(hba).startsWith(`${resolve(copy.dataDir)}/`)) throw new Error(`the copy's hba_file ${hba} lies outside its data directory ${copy.dataDir}; pgdr does not edit it`);
  await query(
    copy,
    `DO $$
     DECLARE r record;
     BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${VALIDATOR_ROLE}') THEN CREATE ROLE ${VALIDATOR_ROLE}; END IF;
       ALTER ROLE ${VALIDATOR_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
       ALTER ROLE ${VALIDATOR_ROLE} RESET ALL;
       FOR r IN SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '${VALIDATOR_ROLE}' LOOP
         EXECUTE format('REVOKE %I FROM ${VALIDATOR_ROLE}', r.rolname);
       END LOOP;
       GRANT pg_read_all_data TO ${VALIDATOR_ROLE};
       ALTER ROLE ${VALIDATOR_ROLE} SET default_transaction_read_only = on;
     END $$`,
  );
  for (const db of new Set(databases)) await query(copy, `GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${VALIDATOR_ROLE}`);
  const line = `local all ${VALIDATOR_ROLE} trust`;
  const text = readFileSync(hba, 'utf8');
  if (!text.startsWith(`${line}\n`)) writeFileSync(hba, `${line}\n${text}`);
  await query(copy, 'SELECT pg_reload_conf()');
}

/** One validation statement as the validator, in a READ ONLY transaction (extended protocol: one statement). */
async function validatorQuery(copy: PgTarget, sql: string, database?: string): Promise<Record<string, unknown>[]> {
  let client: Client | undefined;
  // The postmaster applies the reloaded pg_hba.conf a moment after pg_reload_conf().
  for (let i = 0; !client; i++) {
    client = await connect(copy, database, VALIDATOR_ROLE).catch(async (e: { code?: string }) => {
      if (i >= 25 || (e.code !== '28000' && e.code !== '28P01')) throw e;
      await sleep(200);
      return undefined;
    });
  }
  try {
    await client.query('BEGIN TRANSACTION READ ONLY');
    return (await client.query({ text: sql, queryMode: 'extended' } as QueryConfig)).rows;
  } finally {
    await client.end().catch(() => undefined); // ends the transaction without committing anything
  }
}

export function drillActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);

  return {
    /** Publish a drill's outcome in the worker's metrics (and textfile); never fails the drill. */
    async recordDrillMetrics(input: { cluster: string; ok: boolean; finishedAt: string; durationMs: number; rtoMs?: number; rtoTargetMs?: number }): Promise<{ recorded: boolean; error?: string }> {
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
      const failure = verifyFailure(c.stanza, input.repo, report);
      if (failure) throw failure;
      return report;
    },

    /**
     * RPO proof: a marker row committed on production, then the target time (after the commit) and the row
     * counts of the drill tables in one consistent view (countAtTarget), and a second marker after the
     * target; then a WAL switch and a wait until the segment is archived.
     */
    async writeRpoMarker(input: { cluster: string; drill: string; target?: string; timeoutSeconds?: number }): Promise<RpoMarker> {
      const c = cluster(input.cluster);
      await query(c, `CREATE SCHEMA IF NOT EXISTS pgdr; CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (id bigserial PRIMARY KEY, drill text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
      const [before] = await query<{ id: string; at: Date }>(c, `INSERT INTO ${MARKER_TABLE} (drill) VALUES ($1) RETURNING id, at`, [`${input.drill}:before`]);
      await sleep(20);
      const { at, counts } = await countAtTarget(c, await locateTables(c, c.drill.tables, 'production'));
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
      const given = input.target ? parseTargetTime(input.target) : undefined;
      if (given && !given.ok) throw ApplicationFailure.nonRetryable(given.message, FAILURE.badInput);
      const target = given ? given.iso : at;
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
      const free = freeBytes(root);
      // Recovery restores (and replays) every WAL segment from the set's start to where it stops.
      const walEnd = (t?.type ?? 'immediate') === 'immediate' ? set.walStop : w.walMax;
      const need = scratchSpaceNeeded(set.size, set.walStart, walEnd, c.drill.diskMargin);
      if (free < need.neededBytes) {
        throw bad(
          `not enough free space in ${root}: backup set ${set.label} needs ${need.neededBytes} bytes (restore size ${set.size} + ${Math.round(c.drill.diskMargin * 100)} % + WAL to restore and replay ${need.walBytes} bytes: ${need.walSegments} segment(s) ${set.walStart} → ${walEnd}), ${free} free`,
        );
      }
      await stopPoint('drillPreflight:after');
      return { set, window: w, scratchRoot: root, scratchDir: scratchLayout(c, input.scratch).dir, freeBytes: free, neededBytes: need.neededBytes, walBytes: need.walBytes };
    },

    /** Free space where the cluster's scratch copies live (for a disk-full failure message). */
    async scratchSpace(input: { cluster: string }): Promise<{ path: string; freeBytes: number }> {
      const root = scratchRoot(cluster(input.cluster));
      return { path: root, freeBytes: freeBytes(root) };
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
        const tables = await locateTables(c, c.drill.tables, 'production');
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

      // Configured queries only, as a read-only non-superuser: a query must not be a shell on the host.
      const validator = c.drill.validations.length ? prepareValidator(copy, c.drill.validations.map((v) => v.database ?? c.database)).then(() => null, (e: Error) => e) : null;
      for (const v of c.drill.validations) {
        await check(`Query "${v.name}"`, async () => {
          const setupError = await validator;
          if (setupError) throw new Error(`cannot run it as the read-only role ${VALIDATOR_ROLE}: ${setupError.message}`);
          const rows = await validatorQuery(copy, v.sql, v.database);
          const first = rows[0] ? Object.values(rows[0])[0] : undefined;
          const got = first instanceof Date ? first.toISOString() : first === undefined || first === null ? String(first) : String(first);
          return { ok: got === v.expect, detail: `got ${JSON.stringify(got)}, expected ${JSON.stringify(v.expect)}` };
        });
      }

      if (c.drill.migrationsTable) {
        const name = c.drill.migrationsTable;
        await check(`Migrations in ${name}`, async () => {
          const r = await checkMigrations(copy, name, { source: c, upTo: input.pointInTime });
          return { ok: r.ok, detail: r.note };
        });
      }

      return { ok: checks.every((x) => x.ok), checks, rowCounts, userTables };
    },
  };
}
