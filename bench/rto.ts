/**
 * Benchmark (`npm run bench -- rto`): an in-place point-in-time restore, stop → accepting writes, on a
 * loop-mounted XFS with reflinks that the bench makes. The typical incident: a full backup, then a small
 * change (~1 % of the rows) and an accidental DELETE; restore to just before the DELETE. Four ways, alternating,
 * in one run, at two sizes:
 *   bare delta   `pgbackrest restore --delta` on the live directory (fast, and gives up the original)
 *   bare full    move aside, `pgbackrest restore` into an empty directory
 *   pgdr full    restoreInPlace with restore.reflink off (move aside + full restore, staged)
 *   pgdr reflink restoreInPlace: delta onto a reflink clone of the original, which stays untouched
 *   pgdr reflink ts   the same with restore.deltaBy timestamp (pgBackRest --delta --force: sizes and timestamps)
 * Prints medians and ratios; never passes or fails on time. Needs root (mount) and xfsprogs.
 * Knobs: PGDR_BENCH_RTO_SCALES (default "40,130": ~0.6 and ~2 GB), PGDR_BENCH_RUNS (default 3).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pgCtl, query } from '../activities/postgres';
import { run } from '../activities/process';
import { pgTime } from '../common/restore-target';
import type { RestoreInPlaceResult } from '../workflows/restore-in-place';
import type { RunbookState } from '../workflows/runbook';
import { Harness, switchWalAndWaitArchived, waitFor } from '../test/helpers/harness';
import { voteWhenAsked } from '../test/helpers/people';
import { stopLocalCluster, type LocalCluster } from '../worker/local-cluster';
import { loadPgbench, median, RUNS, runBench } from './helpers/cluster';

const SCALES = (process.env.PGDR_BENCH_RTO_SCALES ?? '40,130').split(',').map(Number);
const PROCESS_MAX = 2;
type Way = 'bare delta' | 'bare full' | 'pgdr full' | 'pgdr reflink' | 'pgdr reflink ts';
const WAYS: Way[] = ['bare delta', 'bare full', 'pgdr full', 'pgdr reflink', 'pgdr reflink ts'];
/** The restore settings each pgdr way runs with. */
const PGDR_WAYS: Partial<Record<Way, { reflink: 'auto' | 'off'; deltaBy: 'checksum' | 'timestamp' }>> = {
  'pgdr full': { reflink: 'off', deltaBy: 'checksum' },
  'pgdr reflink': { reflink: 'auto', deltaBy: 'checksum' },
  'pgdr reflink ts': { reflink: 'auto', deltaBy: 'timestamp' },
};

/** What earlier runs kept or moved aside: the bench's own cluster, nothing to keep. */
function dropKept(c: LocalCluster) {
  for (const n of readdirSync(dirname(c.dataDir))) if (/^data\.(pre-restore|failed-restore|rolled-back|restoring|bare)-/.test(n)) rmSync(join(dirname(c.dataDir), n), { recursive: true, force: true });
}

async function promoted(c: LocalCluster) {
  await waitFor('promotion', async () => !(await query<{ r: boolean }>(c, 'SELECT pg_is_in_recovery() AS r').catch(() => [{ r: true }]))[0].r, 900_000, 50);
}

async function bare(c: LocalCluster, target: string, delta: boolean): Promise<number> {
  const t0 = Date.now();
  await pgCtl(c, ['-m', 'fast', '-w', 'stop']);
  if (!delta) {
    await run('mv', [c.dataDir, `${c.dataDir}.bare-${t0}`], { user: c.osUser });
    await run('mkdir', ['-m', '700', c.dataDir], { user: c.osUser });
  }
  const r = await run('pgbackrest', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, `--process-max=${PROCESS_MAX}`, ...(delta ? ['--delta'] : []), '--type=time', `--target=${target}`, '--target-action=promote', 'restore'], { user: c.osUser });
  if (r.exitCode !== 0) throw new Error(r.stderr);
  await pgCtl(c, ['-l', c.logFile, '-w', 'start']);
  await promoted(c);
  return (Date.now() - t0) / 1000;
}

async function pgdr(h: Harness, target: string): Promise<{ s: number; mode: string }> {
  const handle = await h.start('restoreInPlace', { cluster: 'bench', target: { type: 'time', value: target }, confirmation: 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA', reason: 'benchmark', requestedBy: 'bench' });
  await voteWhenAsked(handle, 'approve', 'alice');
  const r = (await handle.result()) as RestoreInPlaceResult;
  const { steps } = await handle.query<RunbookState>('steps');
  const stop = steps.find((s) => s.name.startsWith('Stop PostgreSQL'))!;
  const up = steps.find((s) => s.name.startsWith('Start PostgreSQL and wait'))!;
  const took = (prefix: string) => ((steps.find((s) => s.name.startsWith(prefix))?.durationMs ?? 0) / 1000).toFixed(2);
  console.log(
    `    pgdr ${r.restore.mode}: stop ${took('Stop PostgreSQL')} s, move aside ${took('Move the data directory')} s, restore ${took('Restore')} s (clone ${((r.restore.cloneMs ?? 0) / 1000).toFixed(2)} s), start→promoted ${took('Start PostgreSQL and wait')} s`,
  );
  return { s: (Date.parse(up.endedAt!) - Date.parse(stop.startedAt)) / 1000, mode: r.restore.mode };
}

/** Not timed: a commit on the new timeline and its WAL archived, so the next run can restore the same target. */
async function afterRun(c: LocalCluster): Promise<void> {
  await query(c, 'CREATE TABLE IF NOT EXISTS bench_tick (at timestamptz); INSERT INTO bench_tick VALUES (now())');
  await switchWalAndWaitArchived(c);
}

async function oneSize(scale: number): Promise<Record<Way, number>> {
  const h = new Harness(`bench-rto-${scale}`);
  const xfs = join(h.root, 'xfs');
  let c: LocalCluster | undefined;
  try {
    mkdirSync(xfs);
    const img = join(h.root, 'xfs.img');
    await run('truncate', ['-s', `${Math.ceil((scale * 15 * 6) / 1024) + 2}G`, img]);
    const mk = await run('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
    const m = mk.exitCode === 0 ? await run('mount', ['-o', 'loop', img, xfs]) : mk;
    if (m.exitCode !== 0) throw new Error(`cannot make a loop-mounted XFS (needs root and xfsprogs): ${m.stderr}`);
    await run('chmod', ['755', xfs]);
    await h.startTemporal();
    c = await h.addCluster({ name: 'bench', dir: join(xfs, 'bench') });
    const restore = { safetyBackup: false, preChecklist: { remove: ['target-confirmed', 'stakeholders-notified'] }, postChecklist: { remove: ['app-health', 'monitoring'] } };
    const config = (way: Way) =>
      h.writeConfig({ approvals: { restoreInPlace: { approvers: ['alice'] } } }, { bench: { backup: { processMax: PROCESS_MAX }, restore: { ...restore, ...PGDR_WAYS[way] } } });
    config('pgdr reflink');
    await h.startWorker();
    await h.execute('setupStanza', { cluster: 'bench' });
    const size = await loadPgbench(c, scale);
    await h.execute('backup', { cluster: 'bench', type: 'full' });
    // The incident: ~1 % of the rows change, then (after the target) an accidental DELETE.
    await query(c, 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0');
    await new Promise((r) => setTimeout(r, 1100));
    const [{ t }] = await query<{ t: Date }>(c, 'SELECT clock_timestamp() AS t');
    const target = pgTime(t.toISOString());
    await new Promise((r) => setTimeout(r, 1100));
    await query(c, 'DELETE FROM pgbench_history; DELETE FROM pgbench_tellers');
    await switchWalAndWaitArchived(c);

    const times = Object.fromEntries(WAYS.map((w) => [w, [] as number[]])) as Record<Way, number[]>;
    let worker: Way = 'pgdr reflink';
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? WAYS : [...WAYS].reverse();
      for (const way of order) {
        dropKept(c);
        if (way.startsWith('pgdr')) {
          if (way !== worker) {
            await h.stopWorkers();
            config(way);
            await h.startWorker();
            worker = way;
          }
          const r = await pgdr(h, target);
          if ((PGDR_WAYS[way]!.reflink === 'auto') !== (r.mode === 'reflink-delta')) throw new Error(`${way} ran as ${r.mode}`);
          times[way].push(r.s);
        } else times[way].push(await bare(c, target, way === 'bare delta'));
        await afterRun(c);
      }
      console.log(`  run ${i + 1}: ${WAYS.map((w) => `${w} ${times[w][i].toFixed(2)} s`).join(', ')}`);
    }
    dropKept(c);
    const med = Object.fromEntries(WAYS.map((w) => [w, median(times[w])])) as Record<Way, number>;
    console.log(`size ${size} (pgbench -s ${scale}), stop → accepting writes, median of ${RUNS} alternating runs:`);
    for (const w of WAYS) console.log(`  ${w.padEnd(16)} ${med[w].toFixed(2)} s`);
    console.log(`  pgdr reflink / bare delta:      ${(med['pgdr reflink'] / med['bare delta']).toFixed(2)}× (aim ≤ 1.1; both checksum deltas)`);
    console.log(`  bare full / pgdr reflink:       ${(med['bare full'] / med['pgdr reflink']).toFixed(2)}× faster`);
    console.log(`  bare full / pgdr reflink ts:    ${(med['bare full'] / med['pgdr reflink ts']).toFixed(2)}× faster (aim ≥ 3 at ~2 GB)`);
    console.log(`  pgdr full / bare full:          ${(med['pgdr full'] / med['bare full']).toFixed(2)}×`);
    return med;
  } finally {
    await h.stopWorkers();
    if (c) await stopLocalCluster(c).catch(() => undefined);
    await run('umount', ['-l', xfs]);
    await h.teardown();
  }
}

async function main() {
  const rows: [number, Record<Way, number>][] = [];
  for (const scale of SCALES) rows.push([scale, await oneSize(scale)]);
  console.log('\nhow the gap grows with size (medians, seconds):');
  console.log(`  ${'pgbench -s'.padEnd(11)}${WAYS.map((w) => w.padStart(17)).join('')}   full/reflink   full/reflink ts`);
  for (const [scale, m] of rows) console.log(`  ${String(scale).padEnd(11)}${WAYS.map((w) => m[w].toFixed(2).padStart(17)).join('')}   ${(m['bare full'] / m['pgdr reflink']).toFixed(1).padStart(11)}×   ${(m['bare full'] / m['pgdr reflink ts']).toFixed(1).padStart(14)}×`);
}

runBench(main);
