/**
 * A restore that can never overwrite anything: `pgbackrest restore` goes into a staging folder that this
 * run creates (`<dir>.restoring-<run tag>/data`, marker inside), and the result is renamed into `<dir>`,
 * which must be absent or an EMPTY directory — rename(2) cannot replace a non-empty directory. The restored
 * directory carries this run's marker ('restored data directory'), so a retry after a crash recognises its
 * own work and a cleanup deletes only what this run restored. Used by the in-place restore and by the
 * restore into a new cluster.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, readdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { rewritePgConfSetting } from '../common/conf-value';
import { runTag, type RunIdentity } from '../common/run-identity';
import { makeOwnedDir } from '../worker/local-cluster';
import { ownedBy, ownerText, readMarker, removeMarker, requireOwned, writeMarker } from './owned-dirs';
import { FAILURE } from './pgbackrest';
import { run } from './process';
import { killStrayRestores, restoreInto, type RestoreOutcome, type RestoreRequest } from './restore';
import { stopPoint } from './stop-points';

export const stagingDir = (dir: string, run: RunIdentity) => `${dir}.restoring-${runTag(run)}`;

const isEmptyDir = (dir: string) => existsSync(dir) && readdirSync(dir).length === 0;

/** `dir` holds the restore this very run put there. */
export const restoredBy = (dir: string, run: RunIdentity) => ownedBy(dir, run) && readMarker(dir)?.what === 'restored data directory';

/** Restore `request` into `request.dataDir` through this run's staging folder (see the file comment). Idempotent. */
export async function restoreViaStaging(c: ClusterConfig, me: RunIdentity, request: RestoreRequest): Promise<RestoreOutcome> {
  const dir = request.dataDir;
  if (restoredBy(dir, me)) return { dataDir: dir, set: request.set ?? null, durationMs: 0 }; // a retry after the rename
  if (existsSync(dir) && !isEmptyDir(dir)) {
    throw ApplicationFailure.nonRetryable(`refusing to restore into ${dir}: it is not empty (${ownerText(dir)}); pgdr never overwrites a data directory`, FAILURE.badInput);
  }
  const staging = stagingDir(dir, me);
  if (existsSync(staging)) requireOwned(staging, me, 'restore into');
  else {
    makeOwnedDir(staging, c.osUser, 0o700);
    writeMarker(staging, { what: 'restore in progress', cluster: c.name }, me);
  }
  const into = join(staging, 'data');
  const out = await restoreInto(c, { ...request, dataDir: into, delta: false });
  // pgBackRest carries --pg1-path=<staging> into restore_command: point it at where the cluster will live.
  const autoConf = join(into, 'postgresql.auto.conf');
  const text = readFileSync(autoConf, 'utf8');
  const written = /^restore_command = '(.*)'$/m.exec(text)?.[1]?.replace(/''/g, "'");
  if (written) writeFileSync(autoConf, rewritePgConfSetting(text, 'restore_command', written.split(`--pg1-path=${into}`).join(`--pg1-path=${dir}`)));
  writeMarker(into, { what: 'restored data directory', cluster: c.name }, me);
  await stopPoint('restore:before-rename');
  if (existsSync(dir)) {
    if (!isEmptyDir(dir)) throw ApplicationFailure.nonRetryable(`refusing to rename the restore into ${dir}: it is not empty`, FAILURE.badInput);
    rmdirSync(dir); // empty, so nothing is lost
  }
  renameSync(into, dir);
  removeMarker(staging);
  rmdirSync(staging);
  return { ...out, dataDir: dir };
}

/** Remove this run's staging folder for `dir` (a partial restore: no user data ever lived there). */
export async function removeStaging(dir: string, me: RunIdentity): Promise<boolean> {
  const staging = stagingDir(dir, me);
  if (!existsSync(staging)) return false;
  requireOwned(staging, me, 'delete');
  await killStrayRestores(join(staging, 'data'));
  await run('rm', ['-rf', '--', staging]);
  return true;
}
