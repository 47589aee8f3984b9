/**
 * A restore that can never overwrite anything: `pgbackrest restore` goes into a staging folder that this
 * run creates (`<dir>.restoring-<run tag>/data`, marker inside), and the result is renamed into `<dir>`,
 * which must be absent or an EMPTY directory — rename(2) cannot replace a non-empty directory. The restored
 * directory carries this run's marker ('restored data directory'), so a retry after a crash recognises its
 * own work and a cleanup deletes only what this run restored. Used by the in-place restore and by the
 * restore into a new cluster.
 *
 * Fast in-place restores (`seed`): the staging folder starts as a reflink clone of the original this run
 * moved aside (`cp --reflink=always`: near-instant, sharing blocks), and `pgbackrest restore --delta`
 * rewrites only the files that differ from the backup. The original itself stays untouched where it was
 * moved. A clone that fails part-way is removed (it is this run's) and the restore falls back to a full one.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { rewritePgConfSetting } from '../common/conf-value';
import { runTag, type RunIdentity } from '../common/run-identity';
import { makeOwnedDir } from '../common/os-user';
import { ownedBy, ownerText, readMarker, removeMarker, requireOwned, writeMarker } from './owned-dirs';
import { FAILURE } from './pgbackrest';
import { run } from './process';
import { killStrayRestores } from './stray-pgbackrest';
import { restoreInto, type RestoreOutcome, type RestoreRequest } from './restore-command';
import { stopPoint } from './stop-points';

export const stagingDir = (dir: string, run: RunIdentity) => `${dir}.restoring-${runTag(run)}`;

const isEmptyDir = (dir: string) => existsSync(dir) && readdirSync(dir).length === 0;

/** `dir` holds the restore this very run put there. */
export const restoredBy = (dir: string, run: RunIdentity) => ownedBy(dir, run) && readMarker(dir)?.what === 'restored data directory';

/** How the restore went: into an empty folder, or delta onto a clone of the original. */
export interface StagedRestoreOutcome extends RestoreOutcome {
  mode: RestoreMode;
  /** Why a reflink clone was not used (when one was asked for). */
  fallback?: string;
  cloneMs?: number;
}

export type RestoreMode = 'full' | 'reflink-delta' | 'copy-delta';

/** The copy command (a test can point PGDR_CP_BIN at a copy that fails part-way). */
const CP_BIN = process.env.PGDR_CP_BIN ?? 'cp';

/** Seed the staging data folder with a clone of `from`; false (and nothing left behind) when cloning fails. */
async function seedClone(from: string, into: string, mode: Exclude<RestoreMode, 'full'>): Promise<{ ok: boolean; why?: string; ms: number }> {
  const started = Date.now();
  await stopPoint('restore:seed');
  const r = await run(CP_BIN, ['-a', ...(mode === 'reflink-delta' ? ['--reflink=always'] : []), '--', from, into]);
  if (r.exitCode !== 0 || !existsSync(join(into, 'PG_VERSION'))) {
    await run('rm', ['-rf', '--', into]);
    return { ok: false, why: `${mode === 'reflink-delta' ? 'the reflink clone' : 'the copy'} of ${from} failed (${r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`})`, ms: Date.now() - started };
  }
  removeMarker(into); // the clone carries the original's marker: it is not the original
  return { ok: true, ms: Date.now() - started };
}

/** Restore `request` into `request.dataDir` through this run's staging folder (see the file comment). Idempotent. */
export async function restoreViaStaging(c: ClusterConfig, me: RunIdentity, request: RestoreRequest, seed?: { from: string; mode: RestoreMode }): Promise<StagedRestoreOutcome> {
  const dir = request.dataDir;
  if (restoredBy(dir, me)) return { dataDir: dir, set: request.set ?? null, durationMs: 0, mode: (readMarker(dir)?.mode as RestoreMode) ?? 'full' }; // a retry after the rename
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
  let mode: RestoreMode = 'full';
  let fallback: string | undefined;
  let cloneMs: number | undefined;
  if (seed && seed.mode !== 'full') {
    // A retry finds the clone (or a partial delta restore onto it): --delta repairs whatever differs.
    const seeded = existsSync(join(into, 'PG_VERSION')) ? { ok: true, ms: 0 } : await seedClone(seed.from, into, seed.mode);
    if (seeded.ok) mode = seed.mode;
    else fallback = seeded.why;
    cloneMs = seeded.ms;
  }
  const out = await restoreInto(c, { ...request, dataDir: into, delta: mode !== 'full', deltaBy: c.restore.deltaBy });
  // pgBackRest carries --pg1-path=<staging> into restore_command: point it at where the cluster will live.
  const autoConf = join(into, 'postgresql.auto.conf');
  const text = readFileSync(autoConf, 'utf8');
  // The last one: pgBackRest leaves a restore_command the backup already held (e.g. after an in-place restore) above its own.
  const written = [...text.matchAll(/^restore_command = '(.*)'$/gm)].pop()?.[1]?.replace(/''/g, "'");
  if (written) writeFileSync(autoConf, rewritePgConfSetting(text, 'restore_command', written.split(`--pg1-path=${into}`).join(`--pg1-path=${dir}`)));
  writeMarker(into, { what: 'restored data directory', cluster: c.name, mode }, me);
  await stopPoint('restore:before-rename');
  if (existsSync(dir)) {
    if (!isEmptyDir(dir)) throw ApplicationFailure.nonRetryable(`refusing to rename the restore into ${dir}: it is not empty`, FAILURE.badInput);
    rmdirSync(dir); // empty, so nothing is lost
  }
  renameSync(into, dir);
  removeMarker(staging);
  rmdirSync(staging);
  return { ...out, dataDir: dir, mode, fallback, cloneMs };
}

/**
 * Can `dir`'s filesystem clone files (reflinks: XFS with reflink=1, btrfs)? Tried, not guessed: two scratch
 * files this check creates and removes itself.
 */
export async function supportsReflinks(dir: string): Promise<{ ok: boolean; why: string }> {
  const a = join(dir, `.pgdr-reflink-probe-${process.pid}-${Date.now()}`);
  const b = `${a}.clone`;
  try {
    writeFileSync(a, 'pgdr');
    const r = await run('cp', ['--reflink=always', '--', a, b]);
    return r.exitCode === 0 ? { ok: true, why: `the filesystem of ${dir} clones files (reflinks)` } : { ok: false, why: `the filesystem of ${dir} cannot clone files (${r.stderr.trim().split('\n').pop()})` };
  } finally {
    rmSync(a, { force: true });
    rmSync(b, { force: true });
  }
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
