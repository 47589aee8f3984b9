/**
 * Benchmark: pgdr's verifyDrill against a hand-written shell drill (bench/shell-drill.sh: verify, restore,
 * start, count tables, stop, delete — sequential, as in seed 000) on the same ~1 GB cluster
 * (pgbench -i -s 60), alternating, several runs. Prints the median ratio; never passes or fails on time.
 *
 * Measured: wall time of the whole drill as its user sees it — for pgdr from starting the workflow until
 * its result (verify concurrent with preflight+restore+start, process-max from config, validation,
 * annotation, notification, cleanup); for the script from exec to exit.
 */
import { join } from 'node:path';
import { run } from '../activities/process';
import type { DrillResult } from '../common/drill';
import { PG_BIN_DIR } from '../worker/local-cluster';
import { makeOwnedDir } from '../common/os-user';
import { freePort, Harness } from '../test/helpers/harness';
import { loadPgbench, median, RUNS, runBench } from './helpers/cluster';


async function main() {
  const h = new Harness('bench-drill');
  try {
    await h.startTemporal();
    const c = await h.addCluster({ name: 'bench' });
    h.writeConfig({}, { bench: { drill: { scratchDir: join(h.root, 'scratch') }, backup: { processMax: 2 } } });
    await h.startWorker();
    await loadPgbench(c);
    let t = Date.now();
    await h.execute('setupStanza', { cluster: 'bench' });
    await h.execute('backup', { cluster: 'bench', type: 'full' });
    console.log(`full backup taken (${((Date.now() - t) / 1000).toFixed(0)} s)`);

    const script = join(__dirname, '..', '..', 'bench', 'shell-drill.sh');
    makeOwnedDir(join(h.root, 'scratch'), c.osUser, 0o755);
    const shell: number[] = [];
    const pgdr: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const which of i % 2 ? ['pgdr', 'shell'] : ['shell', 'pgdr']) {
        const started = Date.now();
        if (which === 'shell') {
          const dir = join(h.root, 'scratch', `shell-${i}`);
          const r = await run('bash', [script, c.pgbackrestConfig, c.stanza, dir, String(await freePort()), PG_BIN_DIR], { user: c.osUser });
          if (r.exitCode !== 0) throw new Error(`shell drill failed: ${r.stderr}`);
          shell.push(Date.now() - started);
        } else {
          const r = await h.execute<DrillResult>('verifyDrill', { cluster: 'bench' });
          if (!r.passed) throw new Error('pgdr drill failed');
          pgdr.push(Date.now() - started);
          const tm = r.timings;
          console.log(`  pgdr run ${i + 1}: verify ${tm.verifyMs} ms (concurrent), restore ${tm.restoreMs} ms, recovery ${tm.recoveryMs} ms (start→promoted ${r.reached?.startToPromotedMs} ms), validation ${tm.validationMs} ms`);
        }
        console.log(`  ${which} run ${i + 1}: ${((Date.now() - started) / 1000).toFixed(2)} s`);
      }
    }
    const ms = median(shell);
    const mp = median(pgdr);
    console.log(`median shell drill ${(ms / 1000).toFixed(2)} s, pgdr drill ${(mp / 1000).toFixed(2)} s over ${RUNS} alternating runs each`);
    console.log(`median ratio pgdr / shell = ${(mp / ms).toFixed(2)}× (aim: ≤ 1.0×)`);
  } finally {
    await h.teardown();
  }
}

runBench(main);
