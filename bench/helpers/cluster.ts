/** What the benchmarks share: a ~1 GB pgbench cluster, medians, and how they end. */
import { join } from 'node:path';
import { query } from '../../activities/postgres';
import { run } from '../../activities/process';
import { PG_BIN_DIR, type LocalCluster } from '../../worker/local-cluster';

export const SCALE = Number(process.env.PGDR_BENCH_SCALE ?? 60);
export const RUNS = Number(process.env.PGDR_BENCH_RUNS ?? 3);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** `pgbench -i -s SCALE` (~15 MB per scale unit), then VACUUM FREEZE so that the cluster stops writing hint bits. */
export async function loadPgbench(c: LocalCluster, scale = SCALE): Promise<string> {
  const t = Date.now();
  const init = await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', c.socketDir, '-p', String(c.port), '-U', 'postgres', 'postgres'], { user: c.osUser });
  if (init.exitCode !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  await query(c, 'VACUUM FREEZE');
  const [{ size }] = await query<{ size: string }>(c, 'SELECT pg_size_pretty(pg_database_size(current_database())) AS size');
  const line = `cluster: pgbench -i -s ${scale}, database ${size} (${((Date.now() - t) / 1000).toFixed(0)} s to load)`;
  console.log(line);
  return size;
}

/** Run a benchmark's main and exit with its outcome (workers and servers must not keep it alive). */
export function runBench(main: () => Promise<void>): void {
  void main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
