/**
 * Tables named in pgdr.yaml (drill.tables, drill.migrationsTable) found in a server's databases, and the one
 * "recent migrations present" check that the drill and the post-restore checklist both run.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { CheckOutcome } from '../common/types';
import { quoteIdent, quoteQualified } from '../common/sql';
import { FAILURE } from './pgbackrest';
import { query, type PgTarget } from './postgres';

export interface TableLocation {
  table: string;
  database: string;
  /** A quoted identifier usable in SQL. */
  sql: string;
}

export async function databases(t: PgTarget): Promise<string[]> {
  const rows = await query<{ datname: string }>(t, 'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname');
  return rows.map((r) => r.datname);
}

/**
 * "db:table" names a database explicitly; a bare name is looked up in the server's database first, then in
 * the other databases (it must exist in exactly one). `where` names the server in the error ("production").
 */
export async function locateTables(t: PgTarget, names: string[], where: string): Promise<TableLocation[]> {
  if (!names.length) return [];
  const dbs = await databases(t);
  const out: TableLocation[] = [];
  for (const name of names) {
    const i = name.indexOf(':');
    if (i > 0) {
      out.push({ table: name, database: name.slice(0, i), sql: quoteQualified(name.slice(i + 1)) });
      continue;
    }
    const found: string[] = [];
    for (const db of [t.database, ...dbs.filter((d) => d !== t.database)]) {
      const [r] = await query<{ ok: boolean }>(t, 'SELECT to_regclass($1) IS NOT NULL AS ok', [quoteQualified(name)], db).catch(() => [{ ok: false }]);
      if (r.ok) {
        found.push(db);
        if (db === t.database) break;
      }
    }
    if (!found.length) {
      throw ApplicationFailure.nonRetryable(`table "${name}" does not exist on ${where} (searched databases ${dbs.join(', ')})`, FAILURE.badInput);
    }
    if (found.length > 1 && found[0] !== t.database) {
      throw ApplicationFailure.nonRetryable(`table "${name}" exists in databases ${found.join(', ')}: write it as "<database>:${name}"`, FAILURE.badInput);
    }
    out.push({ table: name, database: found[0], sql: quoteQualified(name) });
  }
  return out;
}

/** Columns that name a migration, in the order tried: what a note shows of a row (else the whole row). */
const MIGRATION_NAME_COLUMNS = ['migration_name', 'name', 'version', 'id'];

/**
 * The rows of a migrations table, newest first where it has `started_at` (up to `upTo` if given): each as the
 * whole row in text (compared) and its name (shown).
 */
async function migrationRows(t: PgTarget, tl: TableLocation, upTo?: string): Promise<{ row: string; name: string }[]> {
  const bare = tl.sql.split('.').pop()!.replace(/"/g, '');
  const cols = (await query<{ column_name: string }>(t, 'SELECT column_name FROM information_schema.columns WHERE table_name = $1', [bare], tl.database)).map((x) => x.column_name);
  const started = cols.includes('started_at');
  const named = MIGRATION_NAME_COLUMNS.find((c) => cols.includes(c));
  const where = started && upTo ? ' WHERE started_at <= $1' : '';
  const order = started ? ' ORDER BY started_at DESC' : '';
  const name = named ? `t.${quoteIdent(named)}::text` : 't::text';
  const rows = await query<{ row: string; name: string }>(t, `SELECT t::text AS row, ${name} AS name FROM ${tl.sql} t${where}${order}`, where ? [upTo] : [], tl.database);
  return rows;
}

/**
 * Recent migrations present (drill.migrationsTable) in a restored server. With the source (production, for a
 * copy restored beside it), every row the source held up to `upTo` must be in the copy; without one (an
 * in-place restore replaced production), the table must hold rows, and the newest are named.
 */
export async function checkMigrations(restored: PgTarget, table: string, from?: { source: PgTarget; upTo?: string }): Promise<CheckOutcome> {
  const [tl] = await locateTables(from?.source ?? restored, [table], from ? 'production' : 'the restored server');
  const copy = await migrationRows(restored, tl);
  if (!from) {
    return copy.length
      ? { ok: true, note: `${copy.length} rows in ${tl.database}.${table}; newest: ${copy.slice(0, 3).map((r) => r.name).join(', ')}` }
      : { ok: false, note: `${tl.database}.${table} is empty` };
  }
  const expected = await migrationRows(from.source, tl, from.upTo);
  const have = new Set(copy.map((r) => r.row));
  const missing = expected.filter((r) => !have.has(r.row));
  return {
    ok: missing.length === 0 && (expected.length === 0 || copy.length > 0),
    note: missing.length ? `${missing.length} migration row(s) missing, e.g. ${missing[0].name}` : `${copy.length} migration rows; all ${expected.length} expected present`,
  };
}
