/**
 * The embedded default (`npm start` → `pgdr dev`): a Temporal dev server, a demo PostgreSQL 15 cluster
 * with a pgBackRest stanza, and the worker — all under the state folder (.pgdr/), all stopped by Ctrl-C,
 * restored copies of the demo cluster included (`pgdr clusters start <name>` starts one again).
 *
 * Ctrl-C through a pipe (`npm start 2>&1 | tee start.log`) kills the pipe's reader with the same SIGINT:
 * every write after it fails with EPIPE. Shutdown never depends on its output: writes that fail are dropped
 * and the stopping goes on. A start finds what an earlier run left behind (a killed `pgdr dev`) and says
 * what it does with it; the last line says what still runs, checked, not assumed. Its own lines also go to
 * <state>/dev.log, to be read when the terminal is gone.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectClient, runWorkflow, workflowId } from '../client/temporal';
import { loadConfig, type LoadedConfig } from '../common/config';
import { PROJECT_ROOT, STATE_DIR, temporalBinary } from '../common/paths';
import * as runbooks from '../workflows';
import { configYaml, initLocalCluster, loadDemoData, localCluster, startLocalCluster, stopLocalCluster } from './local-cluster';
import { devServersUsing, startTemporalDevServer, stopDevServersUsing } from './temporal-dev-server';
import { createWorkerSet } from './worker';
import { serverState } from '../activities/postgres';
import { newClusterActivities } from '../activities/restore-to-new-cluster';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

/** A later write to a pipe whose reader is gone fails with EPIPE: from then on, output is dropped. */
let outputGone = false;
const isEpipe = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
function say(s: string): void {
  try {
    appendFileSync(join(STATE_DIR, 'dev.log'), `${new Date().toISOString()} ${s.trim()}\n`); // also when the terminal is gone
  } catch {
    /* the log is a convenience */
  }
  if (outputGone) return;
  try {
    process.stdout.write(`${s}\n`);
  } catch {
    outputGone = true;
  }
}

/** The pid of another `pgdr dev` that runs on this state folder, if any. */
function otherDevRunning(lockFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockFile, 'utf8').trim());
    if (!pid || pid === process.pid) return undefined;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('dev') && argv.some((a) => a.includes('pgdr')) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Run one cleanup, but never longer than `ms`: the next ones still run. */
async function bounded(what: string, f: () => Promise<void>, ms = 60_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    f(),
    new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still not done after ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runDev(): Promise<void> {
  const temporalPort = env('PGDR_TEMPORAL_PORT', 7233);
  const uiPort = env('PGDR_UI_PORT', 8233);
  const pgPort = env('PGDR_DEMO_PG_PORT', 54329);
  mkdirSync(STATE_DIR, { recursive: true });
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e) => {
      if (isEpipe(e)) outputGone = true;
    });
  }
  // pino's destination on stderr has no error listener of its own: an EPIPE there would end the process
  // before its cleanup. Anything else is a real error: stop everything.
  process.on('uncaughtException', (err) => {
    if (isEpipe(err)) {
      outputGone = true;
      return;
    }
    say(`pgdr: error: ${err.stack ?? err.message}`);
    void stopAll(1);
  });

  const dbFile = join(STATE_DIR, 'temporal.db');
  const lockFile = join(STATE_DIR, 'dev.pid');
  const demo = localCluster({ dir: join(STATE_DIR, 'demo'), name: 'demo', port: pgPort });
  let config: LoadedConfig | undefined;
  const restoredCopies = () => (config ? newClusterActivities({ config }).listRestoredClusters() : Promise.resolve([]));

  /** What of this stack still runs: checked, not assumed. */
  const stillRunning = async (): Promise<string[]> => {
    const left = devServersUsing(dbFile).map((p) => `Temporal dev server (pid ${p.pid})`);
    if ((await serverState(demo).catch(() => 'stopped')) === 'running') left.push(`demo PostgreSQL (${demo.dataDir})`);
    for (const r of await restoredCopies().catch(() => [])) if (r.running) left.push(`restored cluster ${r.name} (port ${r.port})`);
    return left;
  };

  const cleanups: [string, () => Promise<void>][] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) {
      say('pgdr: still stopping…');
      return;
    }
    stopping = true;
    say('\npgdr: stopping (worker, restored clusters, PostgreSQL fast shutdown, Temporal)…');
    for (const [what, c] of cleanups.reverse()) await bounded(what, c).catch((e) => say(`  ${what}: ${(e as Error).message}`));
    const left = await stillRunning().catch((e: Error) => [`(cannot tell: ${e.message})`]);
    if (left.length) {
      say(`pgdr: stopped what it could; STILL RUNNING: ${left.join(', ')}. The next \`npm start\` stops or reuses them.`);
      code = code || 1;
    } else {
      say('pgdr: stopped; nothing left running.');
      rmSync(lockFile, { force: true });
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  process.on('SIGHUP', () => void stopAll(0));

  try {
    const other = otherDevRunning(lockFile);
    if (other) {
      stopping = true; // not ours to stop
      say(`pgdr: error: pgdr dev already runs on ${STATE_DIR} (pid ${other}); use it, or stop it first (Ctrl-C in its terminal, or kill ${other})`);
      process.exit(1);
    }
    writeFileSync(lockFile, `${process.pid}\n`);
    const leftTemporal = devServersUsing(dbFile);
    if (leftTemporal.length) {
      say(`pgdr: an earlier run left its Temporal dev server running (pid ${leftTemporal.map((p) => p.pid).join(', ')}); stopping it`);
      await stopDevServersUsing(dbFile);
    }
    say(`pgdr: starting Temporal dev server (state ${dbFile})`);
    const temporal = await startTemporalDevServer({
      bin: temporalBinary(),
      dbFile,
      logFile: join(STATE_DIR, 'temporal.log'),
      port: temporalPort,
      uiPort,
    });
    cleanups.push(['Temporal dev server', () => temporal.stop()]);

    const configFile = join(demo.dir, 'pgdr.yaml');
    const created = await initLocalCluster(demo);
    say(`pgdr: ${created ? 'created' : 'reusing'} demo cluster in ${demo.dataDir} (port ${pgPort}, socket ${demo.socketDir})`);
    if ((await serverState(demo)) !== 'running') await startLocalCluster(demo);
    else if (!created) say('pgdr: the demo PostgreSQL was left running by an earlier run; reusing it');
    cleanups.push(['demo PostgreSQL', () => stopLocalCluster(demo)]);
    if (created) await loadDemoData(demo);
    writeFileSync(
      configFile,
      configYaml({
        clusters: [
          {
            ...demo.configEntry,
            drill: { tables: ['customers', 'orders'], migrationsTable: '_prisma_migrations', amcheck: true },
            restore: { expectTables: { customers: 100, orders: 1 } },
            // Fast demo intervals so that the schedules visibly run (production defaults: see common/config.ts).
            schedules: { diff: { every: '1h', jitter: '1m' }, incr: { every: '10m', jitter: '30s' }, freshness: { every: '1m' }, archiveHealth: { every: '1m' } },
          },
        ],
        temporalAddress: temporal.address,
        uiUrl: temporal.uiUrl,
        stateDir: '.',
        extra: {
          worker: { applySchedules: true, metricsPort: env('PGDR_METRICS_PORT', 9187), metricsTextfile: 'metrics/pgdr.prom' },
          // Made-up people so that the destructive runbooks can be tried at once: approve with --as alice.
          approvals: {
            restoreInPlace: { approvers: ['alice', 'bob'] },
            cleanup: { approvers: ['alice', 'bob'] },
            fullSiteRecovery: { approvers: ['alice', 'bob', 'carol'], required: 2 },
          },
        },
      }),
    );
    config = loadConfig(configFile);
    const leftCopies = (await restoredCopies()).filter((r) => r.running);
    if (leftCopies.length) say(`pgdr: restored cluster(s) left running by an earlier run: ${leftCopies.map((r) => `${r.name} (port ${r.port})`).join(', ')}; reusing them`);
    const copies = newClusterActivities({ config });
    cleanups.push([
      'restored clusters',
      async () => {
        for (const r of await copies.listRestoredClusters()) if (r.running) await copies.setRestoredClusterRunning({ name: r.name, running: false });
      },
    ]);

    // The embedded default owns its Temporal server: its config is the shared reference (no publish step).
    const workers = await createWorkerSet({ config, sharedConfig: 'publish' });
    const running = workers.run();
    cleanups.push([
      'worker',
      async () => {
        workers.shutdown();
        await running;
      },
    ]);
    say(`pgdr: worker serving ${workers.taskQueues.join(', ')}`);

    const client = await connectClient(config);
    if (!existsSync(join(demo.repoPath, 'backup', demo.stanza, 'backup.info'))) {
      say('pgdr: first run — setting up the stanza and taking a first full backup through Temporal');
      await runWorkflow(client, config, {
        workflow: runbooks.setupStanza,
        input: { cluster: 'demo' },
        id: workflowId('stanza-setup', 'demo'),
        summary: 'Stanza setup for the demo cluster',
        follow: true,
      });
      const b = await runWorkflow(client, config, {
        workflow: runbooks.backup,
        input: { cluster: 'demo', type: 'full' },
        id: workflowId('backup', 'demo'),
        summary: 'First full backup of the demo cluster',
        follow: true,
      });
      say(`pgdr: first backup set ${b.set.label}`);
    }
    const bin = './bin/pgdr';
    say(`
pgdr is running.
  Temporal UI   ${temporal.uiUrl}
  Config        ${configFile}   ${STATE_DIR === join(PROJECT_ROOT, '.pgdr') ? '(the pgdr CLI finds it by itself)' : `(the pgdr CLI finds it with PGDR_STATE_DIR=${STATE_DIR}, or --config)`}

Try, in another terminal:
  1. Take a backup from the CLI:
       ${bin} backup --cluster demo --type full
       ${bin} backup --cluster demo --snapshot pre-migration-v2.3
  2. Take one from the UI: ${temporal.uiUrl} → Start Workflow
       Workflow ID: any, e.g. backup-demo-1   Task Queue: ${config.temporal.taskQueue}   Workflow Type: backup
       Input (JSON): {"cluster": "demo", "type": "diff"}
  3. Look at what can be restored:
       ${bin} info --cluster demo
  4. Schedules (backups, health checks) run by themselves: ${bin} schedules list
     Health now: ${bin} health --cluster demo    Metrics: curl http://127.0.0.1:${config.worker.metricsPort}/metrics
  5. Prove the backups restore: ${bin} drill --cluster demo
  6. Restore: ${bin} restore --cluster demo --new-cluster copy --latest      (non-destructive)
              ${bin} restore --cluster demo --in-place --time "<just before a DELETE>" --reason "…" --switch-wal
     it asks for the token (${config.clusters[0].restore.confirmationToken}); approve as one of the demo approvers:
       ${bin} approve <workflowId> --as alice
     and "target confirmed" needs someone other than you: ${bin} check <workflowId> target-confirmed --as bob
  7. Rehearse losing the host: ${bin} dr full-site --cluster demo --host demo --drill

Ctrl-C stops everything (restored copies too: ${bin} clusters start <name> after the next start).`);
    await running;
  } catch (err) {
    say(`pgdr: error: ${(err as Error).message}`);
    await stopAll(1);
  }
}
