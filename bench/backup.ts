/**
 * Benchmark: backup overhead of pgdr. A full backup of a ~1 GB cluster (pgbench -i -s 60) through the
 * `backup` workflow vs bare `pgbackrest backup --type=full` on the same cluster, alternating, several
 * runs. Prints the median ratio and the absolute overhead. Not a test: it never fails on time.
 */
import { run } from '../activities/process';
import type { BackupResult } from '../common/types';
import { Harness } from '../test/helpers/harness';
import { loadPgbench, median, RUNS, runBench, SCALE } from './helpers/cluster';


async function main() {
  const h = new Harness('bench-backup');
  try {
    await h.startTemporal();
    const c = await h.addCluster({ name: 'bench' });
    h.writeConfig();
    await h.startWorker();
    await h.execute('setupStanza', { cluster: 'bench' });
    await loadPgbench(c);

    const bare: number[] = [];
    const pgdr: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Alternate which goes first so that cache warmth does not favour one side.
      const order = i % 2 === 0 ? ['bare', 'pgdr'] : ['pgdr', 'bare'];
      for (const side of order) {
        const t = Date.now();
        if (side === 'bare') {
          const r = await run('pgbackrest', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, '--type=full', `--process-max=${h.config.clusters[0].backup.processMax}`, 'backup'], { user: c.osUser });
          if (r.exitCode !== 0) throw new Error(r.stderr);
          bare.push((Date.now() - t) / 1000);
        } else {
          await h.execute<BackupResult>('backup', { cluster: 'bench', type: 'full' });
          pgdr.push((Date.now() - t) / 1000);
        }
      }
      console.log(`run ${i + 1}: bare ${bare[i].toFixed(2)} s, pgdr ${pgdr[i].toFixed(2)} s`);
    }
    const ratio = median(pgdr) / median(bare);
    const ratios = pgdr.map((p, i) => p / bare[i]);
    console.log(`full backup of ~${SCALE * 15} MB, ${RUNS} runs each, alternating`);
    console.log(`median bare pgbackrest: ${median(bare).toFixed(2)} s; median through pgdr: ${median(pgdr).toFixed(2)} s`);
    console.log(`median ratio pgdr/bare: ${ratio.toFixed(3)} (per-run median ${median(ratios).toFixed(3)}; aim ≤ 1.03); absolute overhead ${(median(pgdr) - median(bare)).toFixed(2)} s`);
  } finally {
    await h.teardown();
  }
}

runBench(main);
