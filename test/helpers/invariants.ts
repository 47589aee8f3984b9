/**
 * The safety invariants, as assertions over a cluster's folder, and the matrix a test prints:
 * runbook × fault × point → outcome. Used by test/safety*.test.ts.
 */
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MARKER_FILE, type Marker } from '../../activities/owned-dirs';
import { run } from '../../activities/process';
import type { LocalCluster } from '../../worker/local-cluster';
import { sql, switchWalAndWaitArchived, waitFor, type Harness } from './harness';

/** Stop points: hold a named point (activities/stop-points.ts, pgbackrest-hook.sh) until released. */
export class StopPoints {
  constructor(readonly dir: string) {}
  hold(name: string): void {
    rmSync(join(this.dir, `${name}.reached`), { force: true });
    writeFileSync(join(this.dir, `${name}.hold`), '');
  }
  async reached(name: string, timeoutMs = 120_000): Promise<void> {
    await waitFor(`stop point ${name}`, async () => existsSync(join(this.dir, `${name}.reached`)), timeoutMs, 50);
  }
  release(name?: string): void {
    for (const f of readdirSync(this.dir)) if ((f.endsWith('.hold') || f.endsWith('.fail')) && (!name || f === `${name}.hold` || f === `${name}.fail`)) rmSync(join(this.dir, f), { force: true });
  }
  /** The step fails at `name` until released. */
  fail(name: string): void {
    writeFileSync(join(this.dir, `${name}.fail`), '');
  }
}

/** Worker settings for crash tests: a dead worker is noticed in seconds, its workflow tasks move on at once. */
export const CRASH_TEST_WORKER = { metricsPort: 0, heartbeatTimeout: '3s', stickyQueueTimeout: '2s' };

/**
 * Stop points for a test (a hooks folder the postgres user can write to) and the environment of a worker
 * process that honours them: pgBackRest through the hook wrapper, and the workflow bundle prebuilt once.
 */
export async function crashableWorker(h: Harness): Promise<{ points: StopPoints; env: Record<string, string> }> {
  const dir = join(h.root, 'hooks');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  const env = { PGDR_HOOK_DIR: dir, PGDR_PGBACKREST_BIN: join(__dirname, '../../../test/helpers/pgbackrest-hook.sh'), PGDR_WORKFLOW_BUNDLE: await h.workflowBundleFile() };
  return { points: new StopPoints(dir), env };
}

/** A file planted in a data directory, to follow where that directory went. */
export function plant(dataDir: string, name: string): void {
  writeFileSync(join(dataDir, `pgdr-test-${name}`), name);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A test's accident on cluster `c`: 5 rows tagged `name` in `orders` (database app) exist at the target time,
 * then they are deleted and the WAL holding both is archived; the data directory is planted with `name`.
 */
export async function accident(c: LocalCluster, name: string): Promise<{ name: string; target: string }> {
  await sql(c, 'INSERT INTO orders (tag) SELECT $1 FROM generate_series(1, 5)', [name], 'app');
  await pause(1100);
  const [{ t }] = await sql<{ t: Date }>(c, 'SELECT clock_timestamp() AS t');
  await pause(1100);
  await sql(c, 'DELETE FROM orders WHERE tag = $1', [name], 'app');
  await switchWalAndWaitArchived(c);
  plant(c.dataDir, name); // follows the original data directory wherever it goes
  return { name, target: t.toISOString() };
}

/** Every directory beside the data directory (data.*) with its marker. */
export function besides(c: LocalCluster): { name: string; dir: string; marker?: Marker; planted: string[] }[] {
  const parent = dirname(c.dataDir);
  const base = basename(c.dataDir);
  return readdirSync(parent)
    .filter((n) => n.startsWith(`${base}.`))
    .map((name) => {
      const dir = join(parent, name);
      let marker: Marker | undefined;
      try {
        marker = JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8')) as Marker;
      } catch {
        marker = undefined;
      }
      const planted = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('pgdr-test-')) : [];
      return { name, dir, marker, planted };
    });
}

/** Where the directory holding planted file `name` is now: the live data directory, or one kept beside it. */
export function whereIs(c: LocalCluster, name: string): string[] {
  const out: string[] = [];
  if (existsSync(join(c.dataDir, `pgdr-test-${name}`))) out.push('live');
  for (const b of besides(c)) if (b.planted.includes(`pgdr-test-${name}`)) out.push(b.name);
  return out;
}

/** Processes (postmasters, pgBackRest) working under `root`, except the cluster's own postmaster. */
export async function strays(root: string, except: string[] = []): Promise<string[]> {
  const r = await run('ps', ['-eo', 'pid=,args=']);
  return r.stdout
    .split('\n')
    .filter((l) => l.includes(root) && !l.includes('ps -eo'))
    .filter((l) => /pgbackrest|postgres -D|postgres: /.test(l) || /bin\/postgres/.test(l))
    .filter((l) => !except.some((e) => l.includes(`-D ${e}`) || l.endsWith(` ${e}`)))
    .map((l) => l.trim());
}

/**
 * Invariants 1 and 2 after a cell: every directory beside the data directory was made by pgdr (a marker), no
 * staging folder is left behind, and the original data directory (planted file) is exactly one place — live or
 * kept aside — never gone.
 */
export function assertNothingLost(c: LocalCluster, original: string, where: 'live' | 'kept'): void {
  const places = whereIs(c, original);
  assert.equal(places.length, 1, `the original (${original}) is in exactly one place, found: ${places.join(', ') || 'NOWHERE'}`);
  if (where === 'live') assert.equal(places[0], 'live', `the original is live again, found at ${places[0]}`);
  else assert.match(places[0], /\.pre-restore-/, `the original is kept aside, found at ${places[0]}`);
  for (const b of besides(c)) {
    assert.ok(b.marker, `${b.name} carries a pgdr marker`);
    assert.ok(!/\.restoring-/.test(b.name), `no restore staging folder is left: ${b.name}`);
  }
}

/** How a workflow ended: its result, or the messages of its failure chain joined for matching. */
export async function outcome<T>(handle: WorkflowHandle): Promise<{ result?: T; failure?: string }> {
  try {
    return { result: (await handle.result()) as T };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const parts: string[] = [];
    for (let x = err as { message?: string; cause?: unknown } | undefined; x; x = x.cause as typeof x) parts.push(String(x.message));
    return { failure: parts.join(' | ') };
  }
}

export interface Cell {
  runbook: string;
  fault: string;
  point: string;
  outcome: string;
  ok: boolean;
}

/** The matrix: one row per cell, and a summary line. */
export class Matrix {
  readonly cells: Cell[] = [];
  async cell(runbook: string, fault: string, point: string, fn: () => Promise<string>): Promise<void> {
    const c: Cell = { runbook, fault, point, outcome: '', ok: false };
    this.cells.push(c);
    try {
      c.outcome = await fn();
      c.ok = true;
    } catch (err) {
      c.outcome = `FAILED: ${(err as Error).message.split('\n')[0]}`;
      throw err;
    }
  }
  print(title: string): void {
    const w = [20, 15, 34];
    const row = (c: string[]) => c.map((x, i) => (i < w.length ? x.padEnd(w[i]) : x)).join('  ');
    const lines = [row(['RUNBOOK', 'FAULT', 'POINT', 'OUTCOME']), ...this.cells.map((c) => row([c.runbook, c.fault, c.point, `${c.ok ? '✓' : '✗'} ${c.outcome}`]))];
    const passed = this.cells.filter((c) => c.ok).length;
    process.stdout.write(`\n${title}: ${this.cells.length} cells, ${passed} passed, ${this.cells.length - passed} failed\n${lines.join('\n')}\n\n`);
  }
}
