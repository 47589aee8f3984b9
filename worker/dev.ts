/**
 * The embedded default (`npm start` → `pgdr dev`): a Temporal dev server, a demo PostgreSQL 15 cluster
 * with a pgBackRest stanza, and the worker — all under the state folder (.pgdr/), all stopped by Ctrl-C.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectClient, runWorkflow, workflowId } from '../client/temporal';
import { loadConfig } from '../common/config';
import { STATE_DIR, temporalBinary } from '../common/paths';
import type { BackupResult, SetupStanzaResult } from '../common/types';
import { configYaml, initLocalCluster, loadDemoData, localCluster, startLocalCluster, stopLocalCluster } from './local-cluster';
import { startTemporalDevServer } from './temporal-dev-server';
import { createWorkerSet } from './worker';
import { serverState } from '../activities/postgres';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

export async function runDev(): Promise<void> {
  const temporalPort = env('PGDR_TEMPORAL_PORT', 7233);
  const uiPort = env('PGDR_UI_PORT', 8233);
  const pgPort = env('PGDR_DEMO_PG_PORT', 54329);
  mkdirSync(STATE_DIR, { recursive: true });
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const cleanups: (() => Promise<void>)[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('\npgdr: stopping (worker, PostgreSQL fast shutdown, Temporal)…');
    for (const c of cleanups.reverse()) await c().catch((e) => say(`  ${(e as Error).message}`));
    say('pgdr: stopped; nothing left running.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    say(`pgdr: starting Temporal dev server (state ${join(STATE_DIR, 'temporal.db')})`);
    const temporal = await startTemporalDevServer({
      bin: temporalBinary(),
      dbFile: join(STATE_DIR, 'temporal.db'),
      logFile: join(STATE_DIR, 'temporal.log'),
      port: temporalPort,
      uiPort,
    });
    cleanups.push(() => temporal.stop());

    const demo = localCluster({ dir: join(STATE_DIR, 'demo'), name: 'demo', port: pgPort });
    const configFile = join(demo.dir, 'pgdr.yaml');
    const created = await initLocalCluster(demo);
    say(`pgdr: ${created ? 'created' : 'reusing'} demo cluster in ${demo.dataDir} (port ${pgPort}, socket ${demo.socketDir})`);
    if ((await serverState(demo)) !== 'running') await startLocalCluster(demo);
    cleanups.push(() => stopLocalCluster(demo));
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
            expire: { approvers: ['alice', 'bob'] },
            fullSiteRecovery: { approvers: ['alice', 'bob', 'carol'], required: 2 },
          },
        },
      }),
    );
    const config = loadConfig(configFile);

    const workers = await createWorkerSet({ config });
    const running = workers.run();
    cleanups.push(async () => {
      workers.shutdown();
      await running;
    });
    say(`pgdr: worker serving ${workers.taskQueues.join(', ')}`);

    const client = await connectClient(config);
    if (!existsSync(join(demo.repoPath, 'backup', demo.stanza, 'backup.info'))) {
      say('pgdr: first run — setting up the stanza and taking a first full backup through Temporal');
      await runWorkflow<SetupStanzaResult>(client, config, {
        workflowType: 'setupStanza',
        input: { cluster: 'demo' },
        id: workflowId('stanza-setup', 'demo'),
        summary: 'Stanza setup for the demo cluster',
        follow: true,
      });
      const b = await runWorkflow<BackupResult>(client, config, {
        workflowType: 'backup',
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
  Config        ${configFile}   (the pgdr CLI finds it by itself)

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
              ${bin} restore --cluster demo --in-place --time "<just before a DELETE>" --reason "…"
     approve as one of the demo approvers: ${bin} approve <workflowId> --as alice
  7. Rehearse losing the host: ${bin} dr full-site --cluster demo --host demo --drill

Ctrl-C stops everything.`);
    await running;
  } catch (err) {
    say(`pgdr: error: ${(err as Error).message}`);
    await stopAll(1);
  }
}
