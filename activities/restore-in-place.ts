/**
 * Host activities of the destructive restore: the data directory is moved aside (renamed on the same
 * filesystem, never deleted), the restore goes into the original path, and any failure puts the original
 * back. Every step is idempotent, so a worker crash anywhere resumes to the same outcome.
 *
 *   <data>                         the cluster's data directory
 *   <data>.pre-restore-<run>       the original, kept until `pgdr cleanup --run <run>` (with approval)
 *   <data>.failed-restore-<run>    a restore that failed and was rolled back, kept for inspection
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { existsSync, readdirSync, renameSync, statfsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { makeOwnedDir } from '../worker/local-cluster';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, lastLines, secretEnv } from './pgbackrest';
import { pgCtl, query, serverState, startServer, stopServer } from './postgres';
import { run } from './process';
import { killStrayRestores, restoreInto, startAndAwaitPromotion, type RecoveryReport, type RestoreOutcome, type RestoreRequest } from './restore';

export const asidePath = (c: ClusterConfig, run: string) => `${c.dataDir}.pre-restore-${run}`;
export const failedPath = (c: ClusterConfig, run: string) => `${c.dataDir}.failed-restore-${run}`;

const RUN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/;
function checkRun(run: string) {
  if (!RUN_RE.test(run)) throw ApplicationFailure.nonRetryable(`bad run id "${run}"`, FAILURE.badInput);
}

export interface InPlaceLayout {
  dataDir: string;
  aside: string;
  failed: string;
}

export interface DiskReport {
  path: string;
  freeBytes: number;
  neededBytes: number;
  ok: boolean;
}

function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

/** A postmaster process is alive for this data directory (postmaster.pid names a live process). */
async function postmasterRunning(c: ClusterConfig, dataDir: string): Promise<boolean> {
  if (!existsSync(`${dataDir}/postmaster.pid`)) return false;
  return (await serverState({ ...c, dataDir })) === 'running';
}

export function inPlaceActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  const heartbeat = (d: unknown) => {
    try {
      Context.current().heartbeat(d);
    } catch {
      /* not in an activity */
    }
  };

  return {
    /**
     * Free space where the restore goes. The original directory is renamed, not copied, so it keeps
     * using the space it uses now: the restore needs its own size plus a margin on top of what is free.
     */
    async checkRestoreDiskSpace(input: { cluster: string; restoreBytes: number; margin?: number; path?: string }): Promise<DiskReport> {
      const c = cluster(input.cluster);
      // The folder may not exist yet (a new cluster): measure the filesystem of its nearest existing parent.
      let path = input.path ?? dirname(c.dataDir);
      while (!existsSync(path) && dirname(path) !== path) path = dirname(path);
      const needed = Math.ceil(input.restoreBytes * (1 + (input.margin ?? 0.1)));
      const free = freeBytes(path);
      return { path, freeBytes: free, neededBytes: needed, ok: free >= needed };
    },

    /** Is the cluster running, and where would its directories go? Refuses if a previous run's names are taken. */
    async inPlaceLayout(input: { cluster: string; run: string }): Promise<InPlaceLayout & { running: boolean }> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      if (!existsSync(`${c.dataDir}/PG_VERSION`) && !existsSync(asidePath(c, input.run))) {
        throw ApplicationFailure.nonRetryable(`${c.dataDir} is not a PostgreSQL data directory (no PG_VERSION)`, FAILURE.badInput);
      }
      return { dataDir: c.dataDir, aside: asidePath(c, input.run), failed: failedPath(c, input.run), running: (await serverState(c)) === 'running' };
    },

    /** Stop the cluster with a fast shutdown (fine when it is already stopped). */
    async stopCluster(input: { cluster: string }): Promise<{ wasRunning: boolean }> {
      const c = cluster(input.cluster);
      const r = await stopServer(c);
      return { wasRunning: r === 'stopped' };
    },

    /**
     * Rename the data directory to <data>.pre-restore-<run> and leave an empty directory for the restore.
     * Idempotent: when the rename already happened (a retry after a crash), it only makes sure the empty
     * directory exists.
     */
    async moveDataDirAside(input: { cluster: string; run: string }): Promise<{ aside: string; alreadyMoved: boolean }> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      const aside = asidePath(c, input.run);
      const alreadyMoved = existsSync(aside);
      heartbeat({ moving: c.dataDir });
      if (!alreadyMoved) {
        if (!existsSync(`${c.dataDir}/PG_VERSION`)) throw ApplicationFailure.nonRetryable(`${c.dataDir} holds no data directory to move aside`, FAILURE.badInput);
        if (await postmasterRunning(c, c.dataDir)) {
          throw ApplicationFailure.nonRetryable(`PostgreSQL still runs in ${c.dataDir}; it must be stopped before the data directory is moved`, FAILURE.badInput);
        }
        renameSync(c.dataDir, aside);
      }
      if (!existsSync(c.dataDir)) makeOwnedDir(c.dataDir, c.osUser, 0o700);
      return { aside, alreadyMoved };
    },

    /**
     * `pgbackrest restore` into the cluster's own data directory — only once the original has been moved
     * aside for this run (checked here, so that no bug elsewhere can restore over live data). WAL
     * archiving stays as configured: the restored cluster is production again.
     */
    async restoreIntoDataDir(input: { cluster: string; run: string; request: Omit<RestoreRequest, 'cluster' | 'dataDir' | 'archiveModeOff' | 'delta'> }): Promise<RestoreOutcome> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      if (!existsSync(`${asidePath(c, input.run)}/PG_VERSION`)) {
        throw ApplicationFailure.nonRetryable(`refusing to restore into ${c.dataDir}: the original is not kept at ${asidePath(c, input.run)}`, FAILURE.badInput);
      }
      return restoreInto(c, { ...input.request, cluster: c.name, dataDir: c.dataDir, archiveModeOff: false, delta: false });
    },

    /**
     * Start the cluster in its own data directory (its own configuration: port, socket, archiving) and wait
     * until recovery has ended and it is promoted.
     */
    async startClusterAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<RecoveryReport> {
      const c = cluster(input.cluster);
      return startAndAwaitPromotion(c, c, c.serverLog!, { timeoutSeconds: input.timeoutSeconds });
    },

    /**
     * Put the original back: stop whatever runs in the data directory (and any restore still writing into
     * it), keep the failed restore as <data>.failed-restore-<run>, rename the original back, start it and
     * check that it answers. Idempotent.
     */
    async rollBackInPlace(input: { cluster: string; run: string }): Promise<{ rolledBack: boolean; failedRestoreDir: string | null; answers: boolean }> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      const aside = asidePath(c, input.run);
      let failedDir: string | null = null;
      heartbeat({ rollback: 'stopping the restored copy' });
      await killStrayRestores(c.dataDir);
      if (existsSync(aside)) {
        if (await postmasterRunning(c, c.dataDir)) {
          const r = await pgCtl(c, ['-m', 'immediate', '-w', '-t', '60', 'stop']);
          if (r.exitCode !== 0 && (await postmasterRunning(c, c.dataDir))) {
            throw ApplicationFailure.retryable(`cannot stop the restored server in ${c.dataDir}: ${lastLines(r.stderr, 3)}`, 'RollbackFailed');
          }
        }
        if (existsSync(c.dataDir)) {
          failedDir = failedPath(c, input.run);
          if (existsSync(failedDir)) failedDir = `${failedDir}-${Date.now()}`;
          if (readdirSync(c.dataDir).length) renameSync(c.dataDir, failedDir);
          else {
            await run('rmdir', [c.dataDir]);
            failedDir = null;
          }
        }
        renameSync(aside, c.dataDir);
      }
      heartbeat({ rollback: 'starting the original cluster' });
      if ((await serverState(c)) !== 'running') await startServer(c, c.serverLog!, 600, secretEnv(c));
      const [ok] = await query<{ one: number }>(c, 'SELECT 1 AS one');
      return { rolledBack: true, failedRestoreDir: failedDir ?? (existsSync(failedPath(c, input.run)) ? failedPath(c, input.run) : null), answers: ok.one === 1 };
    },

    /** The directories an in-place restore of this run kept (for `pgdr cleanup --run`). */
    async keptDirectories(input: { cluster: string; run: string }): Promise<string[]> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      const parent = dirname(c.dataDir);
      const base = basename(c.dataDir);
      return readdirSync(parent)
        .filter((n) => n === `${base}.pre-restore-${input.run}` || n.startsWith(`${base}.failed-restore-${input.run}`))
        .map((n) => `${parent}/${n}`);
    },

    /** Delete directories kept by an in-place restore — only names pgdr gives them, never the data directory. */
    async removeKeptDirectories(input: { cluster: string; run: string }): Promise<string[]> {
      const c = cluster(input.cluster);
      checkRun(input.run);
      const parent = dirname(c.dataDir);
      const base = basename(c.dataDir);
      const removed: string[] = [];
      for (const n of readdirSync(parent)) {
        if (n !== `${base}.pre-restore-${input.run}` && !n.startsWith(`${base}.failed-restore-${input.run}`)) continue;
        const dir = `${parent}/${n}`;
        if (dir === c.dataDir) continue;
        if (await postmasterRunning(c, dir)) throw ApplicationFailure.nonRetryable(`a server runs in ${dir}; not deleting it`, FAILURE.badInput);
        const r = await run('rm', ['-rf', '--', dir], { user: c.osUser });
        if (existsSync(dir)) throw ApplicationFailure.retryable(`cannot delete ${dir}: ${lastLines(r.stderr, 3)}`, 'CleanupFailed');
        removed.push(dir);
      }
      return removed;
    },
  };
}
