/**
 * Scratch copies and restored folders: a folder per run for a drill's throw-away copy, its marker files,
 * and deletion that refuses anything pgdr did not create (or a configured cluster's data directory). The
 * restore activities of the drill and of new clusters.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { makeOwnedDir } from '../common/os-user';
import { requireCluster, type ActivityDeps } from './context';
import { currentRun, readMarker, requireOwned, writeMarker } from './owned-dirs';
import { FAILURE, lastLines } from './pgbackrest';
import { run } from './process';
import { guardNotProduction, startAndAwaitRecovery, stopRestoredCopy, type RecoveryReport, type StartRequest } from './recovery';
import { restoreInto, type RestoreOutcome, type RestoreRequest } from './restore-command';
import { restoreViaStaging } from './staged-restore';

/** Delete a directory tree as the OS user (and as a last resort as ourselves). */
export async function removeTree(c: ClusterConfig, dir: string): Promise<boolean> {
  guardNotProduction(c, dir);
  if (!existsSync(dir)) return false;
  const r = await run('rm', ['-rf', '--', dir], { user: c.osUser });
  if (existsSync(dir)) {
    const r2 = await run('rm', ['-rf', '--', dir]);
    if (existsSync(dir)) throw ApplicationFailure.retryable(`cannot delete ${dir}: ${lastLines(r.stderr || r2.stderr, 3)}`, 'ScratchCleanupFailed');
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Scratch copies: a folder per run, named by the caller (derived from the workflow id, so that a retried or
// restarted cleanup finds it): <root>/<name>/{data, s (socket), postgresql.log, .pgdr-scratch}.

export const SCRATCH_MARKER = '.pgdr-scratch';

export interface ScratchLayout {
  root: string;
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
}

/** Default scratch root: drill.scratchDir, else `pgdr-scratch` beside the cluster's data directory. */
export function scratchRoot(c: ClusterConfig): string {
  return c.drill.scratchDir ?? join(dirname(c.dataDir), 'pgdr-scratch');
}

export function scratchLayout(c: ClusterConfig, name: string): ScratchLayout {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$/.test(name)) throw ApplicationFailure.nonRetryable(`bad scratch name "${name}"`, FAILURE.badInput);
  const root = scratchRoot(c);
  const dir = join(root, name);
  // Unix socket paths are limited to 107 bytes: fall back to a short folder in /tmp.
  let socketDir = join(dir, 's');
  if (`${socketDir}/.s.PGSQL.65535.lock`.length > 100) socketDir = join('/tmp', `${name.slice(-40)}.s`);
  return { root, dir, dataDir: join(dir, 'data'), socketDir, logFile: join(dir, 'postgresql.log') };
}

/** Create the scratch folder (owned by the OS user) with its marker files; refuses another run's folder. */
export function prepareScratch(c: ClusterConfig, l: ScratchLayout): void {
  makeOwnedDir(l.root, c.osUser, 0o755);
  if (existsSync(l.dir) && readMarker(l.dir)) requireOwned(l.dir, currentRun(), 'reuse the scratch folder');
  makeOwnedDir(l.dir, c.osUser, 0o750);
  writeFileSync(join(l.dir, SCRATCH_MARKER), `pgdr scratch copy of cluster ${c.name}\n`);
  if (!readMarker(l.dir)) writeMarker(l.dir, { what: 'restore in progress', cluster: c.name });
}

/** Stop and delete a scratch copy; fine when it does not exist (idempotent). */
export async function removeScratch(c: ClusterConfig, l: ScratchLayout): Promise<{ existed: boolean; postmasterStopped: boolean; straysKilled: number }> {
  const stopped = await stopRestoredCopy(c, l.dataDir);
  if (existsSync(l.dir) && !existsSync(join(l.dir, SCRATCH_MARKER)) && existsSync(l.dataDir)) {
    throw ApplicationFailure.nonRetryable(`refusing to delete ${l.dir}: it has no ${SCRATCH_MARKER} marker, so pgdr did not create it`, FAILURE.badInput);
  }
  if (existsSync(l.dir) && readMarker(l.dir)) requireOwned(l.dir, currentRun(), 'delete the scratch folder');
  const existed = await removeTree(c, l.dir);
  if (!l.socketDir.startsWith(`${l.dir}/`) && basename(l.socketDir).endsWith('.s')) await removeTree(c, l.socketDir);
  return { existed, ...stopped };
}

// ---------------------------------------------------------------------------------------------------------
// Activities (host task queue).

export interface ScratchRestoreInput extends Omit<RestoreRequest, 'dataDir'> {
  /** Scratch folder name (see scratchLayout). */
  scratch: string;
}

export function restoreActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  return {
    /** Restore a backup into a fresh scratch folder (emptied first on a retry). */
    async restoreToScratch(input: ScratchRestoreInput): Promise<RestoreOutcome & { layout: ScratchLayout }> {
      const c = cluster(input.cluster);
      const layout = scratchLayout(c, input.scratch);
      prepareScratch(c, layout);
      const { scratch: _scratch, ...req } = input;
      const out = await restoreInto(c, { ...req, dataDir: layout.dataDir, delta: false });
      return { ...out, layout };
    },

    /** Start a scratch copy on a free port and wait until recovery has ended and it is promoted. */
    async startScratchCopy(input: { cluster: string; scratch: string; timeoutSeconds?: number }): Promise<RecoveryReport> {
      const c = cluster(input.cluster);
      const l = scratchLayout(c, input.scratch);
      return startAndAwaitRecovery(c, { cluster: c.name, dataDir: l.dataDir, socketDir: l.socketDir, logFile: l.logFile, timeoutSeconds: input.timeoutSeconds });
    },

    /** Stop a scratch copy and delete its folder: idempotent, so it can run again after a crash. */
    async removeScratchCopy(input: { cluster: string; scratch: string }): Promise<{ dir: string; existed: boolean; postmasterStopped: boolean; straysKilled: number }> {
      const c = cluster(input.cluster);
      const l = scratchLayout(c, input.scratch);
      return { dir: l.dir, ...(await removeScratch(c, l)) };
    },

    /** Restore into a new cluster's data directory, through this run's staging folder (staged-restore.ts). */
    async restoreBackup(input: RestoreRequest): Promise<RestoreOutcome> {
      return restoreViaStaging(cluster(input.cluster), currentRun(), input);
    },

    /** Start any restored directory and wait for the end of recovery. */
    async startRestoredCluster(input: StartRequest): Promise<RecoveryReport> {
      return startAndAwaitRecovery(cluster(input.cluster), input);
    },
  };
}
