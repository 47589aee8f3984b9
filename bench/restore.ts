/**
 * Benchmark: in-place restore time, from "stop" to "server accepts writes", through pgdr's restoreInPlace
 * vs the bare manual sequence (pg_ctl stop, mv, pgbackrest restore, pg_ctl start, wait for promotion), on
 * the same ~1 GB cluster (pgbench -i -s 60) and the same target, alternating. Approval and sign-offs are
 * given at once and excluded: pgdr's time is read from its own step records. Prints the median ratio.
 */
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pgCtl, query } from '../activities/postgres';
import { run } from '../activities/process';
import { pgTime } from '../common/restore-target';
import type { RunbookState } from '../workflows/runbook';
import { Harness, switchWalAndWaitArchived, waitFor } from '../test/helpers/harness';
import { voteWhenAsked } from '../test/helpers/people';
import type { LocalCluster } from '../worker/local-cluster';
import { loadPgbench, median, RUNS, runBench, SCALE } from './helpers/cluster';

const PROCESS_MAX = 2;

/** Delete the directories earlier runs moved aside (the benchmark's own cluster: nothing to keep). */
function dropKeptDirectories(c: LocalCluster) {
  for (const n of readdirSync(dirname(c.dataDir))) if (/^data\.(pre|failed)-restore-|^data\.bare-/.test(n)) rmSync(join(dirname(c.dataDir), n), { recursive: true, force: true });
}

async function bareSequence(c: LocalCluster, target: string): Promise<number> {
  const t0 = Date.now();
  await pgCtl(c, ['-m', 'fast', '-w', 'stop']);
  await run('mv', [c.dataDir, `${c.dataDir}.bare-${t0}`], { user: c.osUser });
  await run('mkdir', ['-m', '700', c.dataDir], { user: c.osUser });
  const r = await run('pgbackrest', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, `--process-max=${PROCESS_MAX}`, '--type=time', `--target=${target}`, '--target-action=promote', 'restore'], { user: c.osUser });
  if (r.exitCode !== 0) throw new Error(r.stderr);
  await pgCtl(c, ['-l', c.logFile, '-w', 'start']);
  await waitFor('promotion', async () => !(await query<{ r: boolean }>(c, 'SELECT pg_is_in_recovery() AS r').catch(() => [{ r: true }]))[0].r, 600_000, 50);
  const took = (Date.now() - t0) / 1000;
  await afterRun(c);
  return took;
}

/**
 * Not timed, after each run of either side: a commit on the new timeline (a time target is only reached
 * when recovery sees a commit after it) and its WAL archived, so the next run can restore the same target.
 */
async function afterRun(c: LocalCluster): Promise<void> {
  await query(c, 'CREATE TABLE IF NOT EXISTS bench_tick (at timestamptz); INSERT INTO bench_tick VALUES (now())');
  await switchWalAndWaitArchived(c);
}

async function throughPgdr(h: Harness, target: string): Promise<number> {
  const handle = await h.start('restoreInPlace', { cluster: 'bench', target: { type: 'time', value: target }, confirmation: 'I_UNDERSTAND_THIS_WILL_DELETE_DATABASE_DATA', reason: 'benchmark', requestedBy: 'bench' });
  await voteWhenAsked(handle, 'approve', 'alice');
  await handle.result();
  const { steps } = await handle.query<RunbookState>('steps');
  const stop = steps.find((s) => s.name.startsWith('Stop PostgreSQL'))!;
  const promoted = steps.find((s) => s.name.startsWith('Start PostgreSQL and wait'))!;
  return (Date.parse(promoted.endedAt!) - Date.parse(stop.startedAt)) / 1000;
}

async function main() {
  const h = new Harness('bench-restore');
  try {
    await h.startTemporal();
    const c = await h.addCluster({ name: 'bench' });
    h.writeConfig(
      { approvals: { restoreInPlace: { approvers: ['alice'] } } },
      {
        bench: {
          backup: { processMax: PROCESS_MAX },
          // No people in the loop for a benchmark: the manual items are removed, and no safety backup
          // (the bare sequence takes none either).
          restore: { safetyBackup: false, preChecklist: { remove: ['target-confirmed', 'stakeholders-notified'] }, postChecklist: { remove: ['app-health', 'monitoring'] } },
        },
      },
    );
    await h.startWorker();
    await h.execute('setupStanza', { cluster: 'bench' });
    await loadPgbench(c);
    await h.execute('backup', { cluster: 'bench', type: 'full' });
    await query(c, 'UPDATE pgbench_branches SET bbalance = bbalance + 1');
    await new Promise((r) => setTimeout(r, 1100));
    const [{ t }] = await query<{ t: Date }>(c, 'SELECT clock_timestamp() AS t');
    // pgBackRest wants 'YYYY-MM-DD HH:MM:SS.mmm+00'; pgdr accepts that and ISO 8601 alike.
    const target = pgTime(t.toISOString());
    await new Promise((r) => setTimeout(r, 1100));
    await query(c, 'UPDATE pgbench_branches SET bbalance = bbalance + 1');
    await switchWalAndWaitArchived(c);

    const bare: number[] = [];
    const pgdr: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const side of i % 2 === 0 ? ['bare', 'pgdr'] : ['pgdr', 'bare']) {
        dropKeptDirectories(c);
        if (side === 'bare') bare.push(await bareSequence(c, target));
        else {
          pgdr.push(await throughPgdr(h, target));
          await afterRun(c);
        }
      }
      console.log(`run ${i + 1}: bare ${bare[i].toFixed(2)} s, pgdr ${pgdr[i].toFixed(2)} s`);
    }
    dropKeptDirectories(c);
    console.log(`in-place restore of ~${SCALE * 15} MB to a point in time, stop → accepting writes, ${RUNS} runs each, alternating`);
    console.log(`median bare sequence: ${median(bare).toFixed(2)} s; median through pgdr: ${median(pgdr).toFixed(2)} s`);
    console.log(`median ratio pgdr/bare: ${(median(pgdr) / median(bare)).toFixed(3)} (aim ≤ 1.05; approval wait excluded)`);
  } finally {
    await h.teardown();
  }
}

runBench(main);
