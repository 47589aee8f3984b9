/**
 * Benchmark: what pgdr adds to the pgBackRest work it runs, measured directly, next to
 * the side-by-side ratio. Not a test: it prints figures and never fails on time.
 *
 * The worker runs in a child process with PGDR_PGBACKREST_BIN=bench/pgbackrest-timing.sh, a wrapper that
 * appends `<command> <start> <end>` for every pgBackRest process to a file. For each run through pgdr:
 *
 *   pgdr added = workflow wall time (history: started → completed) − wall time of the pgBackRest process it
 *                ran (backup; restore; the drill's verify and restore — the union of their intervals, as verify
 *                runs concurrently with the restore)
 *
 * and what that added time is made of: the other pgBackRest calls pgdr makes (info, repo-ls, annotate),
 * PostgreSQL's start, recovery and promotion (and the drill's validation queries), and the rest — pgdr's own
 * (Temporal round trips, activities, SQL checks, process start-up). min/median/max over the runs, for
 * `backup` (full), `restoreToNewCluster` (latest, into a new cluster that is started and promoted) and
 * `verifyDrill`. Side by side, alternating, in the same run: bare `pgbackrest backup`; bare
 * `pgbackrest restore` + `pg_ctl start` + wait until promoted; bench/shell-drill.sh.
 *
 * PGDR_BENCH_RUNS (default 5), PGDR_BENCH_SCALE (pgbench scale, default 60 ≈ 1 GB),
 * PGDR_BENCH_OVERHEAD ("backup,restore,drill").
 */
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { run } from '../activities/process';
import type { DrillResult } from '../common/drill';
import { PG_BIN_DIR } from '../worker/local-cluster';
import { makeOwnedDir } from '../common/os-user';
import { freePort, Harness, startWorkerProcess, stopWorkerProcess } from '../test/helpers/harness';
import { loadPgbench, median, runBench, SCALE } from './helpers/cluster';
import { table } from './helpers/stats';

const RUNS = Math.max(5, Number(process.env.PGDR_BENCH_RUNS ?? 5));
const WHICH = (process.env.PGDR_BENCH_OVERHEAD ?? 'backup,restore,drill').split(',');
const BENCH_DIR = join(__dirname, '..', '..', 'bench');

interface Interval {
  cmd: string;
  start: number;
  end: number;
}

/** Sum of the union of intervals (ms). */
function unionMs(xs: Interval[]): number {
  const s = [...xs].sort((a, b) => a.start - b.start);
  let total = 0;
  let cur: [number, number] | undefined;
  for (const x of s) {
    if (!cur || x.start > cur[1]) {
      if (cur) total += cur[1] - cur[0];
      cur = [x.start, x.end];
    } else cur[1] = Math.max(cur[1], x.end);
  }
  if (cur) total += cur[1] - cur[0];
  return total;
}

class Timings {
  constructor(readonly file: string) {
    writeFileSync(file, '');
    chmodSync(file, 0o666); // written by the wrapper as the cluster's OS user
  }
  between(from: number, to: number): Interval[] {
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '))
      .map(([cmd, s, e]) => ({ cmd, start: Number(s) * 1000, end: Number(e) * 1000 }))
      .filter((x) => x.start >= from - 5 && x.end <= to + 5);
  }
}

interface Sample {
  /** Client-side wall time of the pgdr run (start request → result), ms. */
  wall: number;
  /** Workflow wall time from its history (started → completed), ms. */
  workflow: number;
  /** Union of the runbook's main pgBackRest processes (backup; restore; the drill's verify and restore), ms. */
  pgbackrest: number;
  /** Union of all its pgBackRest processes (also info, repo-ls, annotate …), ms. */
  pgbackrestAll: number;
  /** PostgreSQL start/recovery/promotion and validation inside the run (not pgBackRest, not pgdr), ms. */
  postgres: number;
  commands: string;
}

async function throughPgdr(h: Harness, t: Timings, type: string, input: unknown, main: string[], postgresMs: (r: unknown) => number): Promise<Sample> {
  const t0 = Date.now();
  const handle: WorkflowHandle = await h.start(type, input);
  const result = await handle.result();
  const wall = Date.now() - t0;
  const ev = (await handle.fetchHistory()).events ?? [];
  const ts = (e: (typeof ev)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const from = ts(ev[0]);
  const to = ts(ev[ev.length - 1]);
  const iv = t.between(from, to);
  const counts = new Map<string, number>();
  for (const x of iv) counts.set(x.cmd, (counts.get(x.cmd) ?? 0) + 1);
  return { wall, workflow: to - from, pgbackrest: unionMs(iv.filter((x) => main.includes(x.cmd))), pgbackrestAll: unionMs(iv), postgres: postgresMs(result), commands: [...counts].map(([c, n]) => (n > 1 ? `${c}×${n}` : c)).join(' ') };
}

async function psqlValue(dir: string, port: number, sql: string): Promise<string | undefined> {
  const r = await run(join(PG_BIN_DIR, 'psql'), ['-h', dir, '-p', String(port), '-U', 'postgres', '-Atc', sql], { user: 'postgres' });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function main() {
  const h = new Harness('bench-overhead');
  let worker: ChildProcess | undefined;
  try {
    await h.startTemporal();
    const c = await h.addCluster({ name: 'bench' });
    h.writeConfig({}, { bench: { backup: { processMax: 2 }, drill: { scratchDir: join(h.root, 'scratch') } } });
    makeOwnedDir(join(h.root, 'scratch'), c.osUser, 0o755);
    const timings = new Timings(join(h.root, 'pgbackrest-timings.txt'));
    const wrapper = join(BENCH_DIR, 'pgbackrest-timing.sh');
    worker = await startWorkerProcess(h.configFile, { PGDR_PGBACKREST_BIN: wrapper, PGDR_BENCH_TIMING_FILE: timings.file, PGDR_WORKFLOW_BUNDLE: await h.workflowBundleFile() });
    await h.execute('setupStanza', { cluster: 'bench' });
    await loadPgbench(c);
    const pgbr = (args: string[]) => [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, ...args];
    const results: { name: string; bare: number[]; pgdr: Sample[]; note: string }[] = [];

    if (WHICH.includes('backup')) {
      const bare: number[] = [];
      const pgdr: Sample[] = [];
      for (let i = 0; i < RUNS; i++) {
        for (const side of i % 2 === 0 ? ['bare', 'pgdr'] : ['pgdr', 'bare']) {
          if (side === 'bare') {
            const t = Date.now();
            const r = await run('pgbackrest', pgbr(['--type=full', '--process-max=2', 'backup']), { user: c.osUser });
            if (r.exitCode !== 0) throw new Error(r.stderr);
            bare.push(Date.now() - t);
          } else pgdr.push(await throughPgdr(h, timings, 'backup', { cluster: 'bench', type: 'full' }, ['backup'], () => 0));
        }
        console.log(`  backup run ${i + 1}: bare ${bare[i]} ms, pgdr ${pgdr[i].wall} ms (workflow ${Math.round(pgdr[i].workflow)} ms, backup ${Math.round(pgdr[i].pgbackrest)} ms, all pgBackRest ${Math.round(pgdr[i].pgbackrestAll)} ms: ${pgdr[i].commands})`);
      }
      results.push({ name: 'backup (full)', bare, pgdr, note: 'bare: pgbackrest backup --type=full' });
    } else {
      await h.execute('backup', { cluster: 'bench', type: 'full' });
    }

    if (WHICH.includes('restore')) {
      const bare: number[] = [];
      const pgdr: Sample[] = [];
      for (let i = 0; i < RUNS; i++) {
        for (const side of i % 2 === 0 ? ['bare', 'pgdr'] : ['pgdr', 'bare']) {
          if (side === 'bare') {
            const dir = join(h.root, `bare-restore-${i}`);
            makeOwnedDir(dir, c.osUser, 0o700);
            const port = await freePort();
            const t = Date.now();
            const r = await run('pgbackrest', pgbr(['--process-max=2', `--pg1-path=${dir}/data`, '--archive-mode=off', 'restore']), { user: c.osUser });
            if (r.exitCode !== 0) throw new Error(r.stderr);
            const s = await run(join(PG_BIN_DIR, 'pg_ctl'), ['-D', `${dir}/data`, '-l', `${dir}/log`, '-w', 'start', '-o', `-p ${port} -k ${dir} -c listen_addresses='' -c archive_mode=off`], { user: c.osUser });
            if (s.exitCode !== 0) throw new Error(s.stderr);
            while ((await psqlValue(dir, port, 'SELECT pg_is_in_recovery()')) !== 'f') await new Promise((res) => setTimeout(res, 50));
            bare.push(Date.now() - t);
            await run(join(PG_BIN_DIR, 'pg_ctl'), ['-D', `${dir}/data`, '-m', 'immediate', '-w', 'stop'], { user: c.osUser });
            rmSync(dir, { recursive: true, force: true });
          } else {
            const name = `ovr${i}`;
            pgdr.push(
              await throughPgdr(h, timings, 'restoreToNewCluster', { cluster: 'bench', target: { type: 'latest' }, name }, ['restore'], (r) => (r as { recovery: { recoveryMs: number } }).recovery.recoveryMs),
            );
            await h.execute('dropRestoredCluster', { name });
          }
        }
        const p = pgdr[i];
        console.log(`  restore run ${i + 1}: bare ${bare[i]} ms, pgdr ${p.wall} ms (workflow ${Math.round(p.workflow)} ms, restore ${Math.round(p.pgbackrest)} ms, all pgBackRest ${Math.round(p.pgbackrestAll)} ms: ${p.commands}; start→promoted ${p.postgres} ms)`);
      }
      results.push({ name: 'restoreToNewCluster', bare, pgdr, note: 'bare: pgbackrest restore, pg_ctl start, poll until promoted' });
    }

    if (WHICH.includes('drill')) {
      const bare: number[] = [];
      const pgdr: Sample[] = [];
      for (let i = 0; i < RUNS; i++) {
        for (const side of i % 2 === 0 ? ['bare', 'pgdr'] : ['pgdr', 'bare']) {
          if (side === 'bare') {
            const dir = join(h.root, 'scratch', `shell-${i}`);
            const t = Date.now();
            const r = await run('bash', [join(BENCH_DIR, 'shell-drill.sh'), c.pgbackrestConfig, c.stanza, dir, String(await freePort()), PG_BIN_DIR], { user: c.osUser });
            if (r.exitCode !== 0) throw new Error(`shell drill failed: ${r.stderr}`);
            bare.push(Date.now() - t);
            if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
          } else {
            pgdr.push(
              await throughPgdr(h, timings, 'verifyDrill', { cluster: 'bench' }, ['verify', 'restore'], (r) => {
                const d = r as DrillResult;
                if (!d.passed) throw new Error('pgdr drill failed');
                return d.timings.recoveryMs + d.timings.validationMs;
              }),
            );
          }
        }
        const p = pgdr[i];
        console.log(`  drill run ${i + 1}: shell ${bare[i]} ms, pgdr ${p.wall} ms (workflow ${Math.round(p.workflow)} ms, verify+restore ${Math.round(p.pgbackrest)} ms, all pgBackRest ${Math.round(p.pgbackrestAll)} ms: ${p.commands}; recovery+validation ${p.postgres} ms)`);
      }
      results.push({ name: 'verifyDrill', bare, pgdr, note: 'bare: bench/shell-drill.sh (verify, restore, start, count, stop, rm)' });
    }

    const s = (x: number) => `${(x / 1000).toFixed(3)} s`;
    const mmm = (xs: number[]) => `${s(Math.min(...xs))} / ${s(median(xs))} / ${s(Math.max(...xs))}`;
    const rows = [['', 'runs', 'bare (median)', 'pgdr (median)', 'ratio', 'per-run ratio (median)', 'pgdr added = workflow − pgBackRest (min / median / max)', 'added / workflow', 'of which other pgBackRest calls', 'of which PostgreSQL', "rest: pgdr's own (min / median / max)"]];
    for (const r of results) {
      const added = r.pgdr.map((p) => p.workflow - p.pgbackrest);
      const own = r.pgdr.map((p) => p.workflow - p.pgbackrestAll - p.postgres);
      rows.push([
        r.name,
        String(r.pgdr.length),
        s(median(r.bare)),
        s(median(r.pgdr.map((p) => p.wall))),
        (median(r.pgdr.map((p) => p.wall)) / median(r.bare)).toFixed(3),
        median(r.pgdr.map((p, i) => p.wall / r.bare[i])).toFixed(3),
        mmm(added),
        `${((median(added) / median(r.pgdr.map((p) => p.workflow))) * 100).toFixed(1)} %`,
        s(median(r.pgdr.map((p) => p.pgbackrestAll - p.pgbackrest))),
        r.pgdr.some((p) => p.postgres) ? s(median(r.pgdr.map((p) => p.postgres))) : '-',
        mmm(own),
      ]);
    }
    console.log('');
    console.log(`cluster ~${SCALE * 15} MB (pgbench -s ${SCALE}), ${RUNS} runs per side, alternating; worker in a child process`);
    for (const r of results) console.log(`  ${r.name} — ${r.note}`);
    console.log(table(rows));
    console.log('The ratio compares whole runs on a shared machine (noisy); "pgdr added" is measured inside each pgdr run and does not depend on how fast pgBackRest was that time.');
  } finally {
    if (worker) await stopWorkerProcess(worker);
    await h.teardown();
  }
}

runBench(main);
