/**
 * Host activities of the destructive restore. The safety invariants are enforced here, not in the
 * workflow, so that no workflow bug, Reset or reused workflow id can break them:
 *
 *   <data>                          the cluster's data directory (live, or absent while the restore runs)
 *   <data>.pre-restore-<tag>        the original, moved aside by run <tag>; kept until `pgdr cleanup --run <tag>`
 *   <data>.restoring-<tag>/data     the restore in progress (created by run <tag>)
 *   <data>.failed-restore-<tag>     a restore that failed before promotion and was rolled back
 *   <data>.rolled-back-<tag>        a promoted restore a person chose to roll back: every write since promotion
 *
 * <tag> names one Temporal run (workflow id + run id, common/run-identity.ts) and every one of these
 * directories carries a marker naming that run (owned-dirs.ts). The restore lands in its own staging folder
 * and is then renamed into <data>, which must be absent or an EMPTY directory: rename(2) cannot replace a
 * non-empty directory, so a live data directory is never emptied or overwritten, whatever the history says.
 * The original is at every moment either <data> or <data>.pre-restore-<tag> (invariant 2). Every step is
 * idempotent: a retry after a worker crash resumes to the same outcome.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ClusterConfig } from '../common/config';
import { pgConfLines } from '../common/conf-value';
import { RUN_TAG_RE, runTag, type RunIdentity } from '../common/run-identity';
import { requireCluster, type ActivityDeps } from './context';
import { currentRun, ownedBy, ownerText, readMarker, removeMarker, requireOwned, writeMarker, type OwnedWhat } from './owned-dirs';
import { FAILURE, lastLines, secretEnv } from './pgbackrest';
import { controlProblems, query, serverState, startServer, stopServer } from './postgres';
import { run } from './process';
import { killStrayRestores } from './stray-pgbackrest';
import { startAndAwaitPromotion, type RecoveryReport } from './recovery';
import { type RestoreRequest } from './restore-command';
import { removeStaging, restoreViaStaging, supportsReflinks, type RestoreMode, type StagedRestoreOutcome } from './staged-restore';
import { stopPoint } from './stop-points';
import { freeBytes } from './disk';

/** The directories of one run's in-place restore. */
export function inPlacePaths(dataDir: string, tag: string) {
  return {
    dataDir,
    aside: `${dataDir}.pre-restore-${tag}`,
    staging: `${dataDir}.restoring-${tag}`, // = stagingDir(dataDir, run)
    failed: `${dataDir}.failed-restore-${tag}`,
    rolledBack: `${dataDir}.rolled-back-${tag}`,
  };
}
export type InPlacePaths = ReturnType<typeof inPlacePaths>;

export interface InPlaceLayout extends InPlacePaths {
  /** The run tag (`pgdr cleanup --run <tag>`). */
  run: string;
  running: boolean;
}

/** How an in-place restore will run (chooseInPlaceMode), shown in the approval request. */
export interface InPlaceMode {
  mode: RestoreMode;
  why: string;
  /** In words, e.g. "the original is cloned in seconds; restore --delta rewrites only …". */
  estimate: string;
  originalBytes: number;
}

/** Rough throughputs for the estimates shown to the approver (not measured here). */
const FULL_RESTORE_BPS = 150 * 2 ** 20;
const COPY_BPS = 300 * 2 ** 20;
const mb = (b: number) => `${Math.round(b / 2 ** 20)} MB`;
const minutes = (s: number) => (s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`);

/** Bytes per second of a plain copy here: the first 64 MB of the largest file, copied to a file this check removes. */
async function copyThroughput(dataDir: string, parent: string): Promise<number> {
  const r = await run('find', [dataDir, '-type', 'f', '-size', '+1M', '-printf', '%s %p\\n']);
  const biggest = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(' ')).sort((a, b) => Number(b[0]) - Number(a[0]))[0];
  if (!biggest) return COPY_BPS;
  const sample = join(parent, `.pgdr-copy-probe-${process.pid}-${Date.now()}`);
  try {
    const t0 = Date.now();
    const dd = await run('dd', [`if=${biggest.slice(1).join(' ')}`, `of=${sample}`, 'bs=1M', 'count=64', 'conv=fsync', 'status=none']);
    const bytes = Math.min(Number(biggest[0]), 64 * 2 ** 20);
    return dd.exitCode === 0 ? bytes / Math.max(0.001, (Date.now() - t0) / 1000) : COPY_BPS;
  } finally {
    rmSync(sample, { force: true });
  }
}

/** Full restores measured on this host (bytes/s), kept in <stateDir>/restore-throughput.json. */
function restoreThroughput(stateDir: string, cluster: string): number | undefined {
  try {
    const all = JSON.parse(readFileSync(join(stateDir, 'restore-throughput.json'), 'utf8')) as Record<string, { bps: number }>;
    return all[cluster]?.bps;
  } catch {
    return undefined;
  }
}

function recordRestoreThroughput(stateDir: string, cluster: string, set: string, bytes: number, ms: number): void {
  const file = join(stateDir, 'restore-throughput.json');
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    /* first one */
  }
  all[cluster] = { bps: Math.round(bytes / (ms / 1000)), set, bytes, ms, at: new Date().toISOString() };
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(all, null, 1)}\n`);
}

/** Bytes under a directory (du), 0 when it cannot be read. */
async function directoryBytes(dir: string): Promise<number> {
  const r = await run('du', ['-sb', '--', dir]);
  return r.exitCode === 0 ? Number(r.stdout.split(/\s/)[0]) || 0 : 0;
}

export interface DiskReport {
  path: string;
  freeBytes: number;
  neededBytes: number;
  ok: boolean;
}

/** A postmaster process is alive for this data directory (postmaster.pid names a live process). */
async function postmasterRunning(c: ClusterConfig, dataDir: string): Promise<boolean> {
  if (!existsSync(`${dataDir}/postmaster.pid`)) return false;
  return (await serverState({ ...c, dataDir })) === 'running';
}

const isEmptyDir = (dir: string) => existsSync(dir) && readdirSync(dir).length === 0;

/** A free name: `base`, else `base.2`, `base.3`… (a second rollback of one run keeps both). */
function freeName(base: string): string {
  if (!existsSync(base)) return base;
  for (let i = 2; ; i++) if (!existsSync(`${base}.${i}`)) return `${base}.${i}`;
}

/** An approval belongs to one run: a Reset or a new run with the same workflow id must ask again. */
function requireApprovalOfThisRun(approvedInRun: string, doing: string): RunIdentity {
  const me = currentRun();
  if (approvedInRun !== me.runId) {
    throw ApplicationFailure.nonRetryable(
      `refusing to ${doing}: the approval was given to run ${approvedInRun}, not to this run ${me.runId} (a Reset or a reused workflow id); nothing was changed`,
      'ApprovalFromAnotherRun',
    );
  }
  return me;
}

function heartbeat(d: unknown) {
  try {
    Context.current().heartbeat(d);
  } catch {
    /* not in an activity */
  }
}

export function inPlaceActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);

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

    /**
     * Where this run's directories go, and whether the cluster runs. Refuses — before any approval — when a
     * name this run would use is taken by anything this run did not create.
     */
    async inPlaceLayout(input: { cluster: string }): Promise<InPlaceLayout> {
      const c = cluster(input.cluster);
      const me = currentRun();
      const tag = runTag(me);
      const p = inPlacePaths(c.dataDir, tag);
      for (const d of [p.aside, p.staging, p.failed, p.rolledBack]) {
        if (existsSync(d) && !ownedBy(d, me)) {
          throw ApplicationFailure.nonRetryable(`${d} already exists and holds ${ownerText(d)}; refusing to start an in-place restore that would use that name. Nothing was touched.`, FAILURE.badInput);
        }
      }
      if (!existsSync(`${c.dataDir}/PG_VERSION`) && !existsSync(p.aside)) {
        throw ApplicationFailure.nonRetryable(`${c.dataDir} is not a PostgreSQL data directory (no PG_VERSION). Nothing was touched.`, FAILURE.badInput);
      }
      // How the cluster is stopped and started again (control) must work before anything is stopped.
      const problems = await controlProblems(c, secretEnv(c), c.pgbackrestConfig);
      if (problems.length) throw ApplicationFailure.nonRetryable(`${problems.join('; ')}. Nothing was touched.`, FAILURE.badInput);
      return { ...p, run: tag, running: (await serverState(c)) === 'running' };
    },

    /**
     * How this restore will run, and why: delta onto a reflink clone of the original when the filesystem clones
     * files (tried here, not guessed), a plain copy + delta when allowed and there is room, else a full restore.
     */
    async chooseInPlaceMode(input: { cluster: string; restoreBytes: number }): Promise<InPlaceMode> {
      const c = cluster(input.cluster);
      const parent = dirname(c.dataDir);
      const size = await directoryBytes(c.dataDir);
      const full: InPlaceMode = { mode: 'full', why: '', estimate: `a full restore of ${mb(input.restoreBytes)} (~${minutes(input.restoreBytes / FULL_RESTORE_BPS)})`, originalBytes: size };
      if (c.restore.reflink === 'off') return { ...full, why: 'restore.reflink is off' };
      const probe = await supportsReflinks(parent);
      if (probe.ok) {
        const by = c.restore.deltaBy === 'timestamp' ? 'compares sizes and timestamps and rewrites' : 'reads every file and rewrites';
        return { mode: 'reflink-delta', why: probe.why, estimate: `the original is cloned in seconds; restore --delta ${by} only the files that differ from the backup (at most ~${minutes(input.restoreBytes / FULL_RESTORE_BPS)})`, originalBytes: size };
      }
      if (c.restore.copyDelta) {
        const free = freeBytes(parent);
        if (free <= size * 1.1 + input.restoreBytes * 0.1) return { ...full, why: `${probe.why}; no room for a plain copy (${mb(size)} needed, ${mb(free)} free)` };
        // Measured on this host: copying now (a sample), restoring from this host's earlier restores.
        const copyBps = await copyThroughput(c.dataDir, parent);
        const restoreBps = restoreThroughput(config.stateDirAbs, c.name) ?? FULL_RESTORE_BPS;
        const copyS = size / copyBps;
        const restoreS = input.restoreBytes / restoreBps;
        const measured = `copy ${mb(copyBps)}/s measured now, full restore ${mb(restoreBps)}/s ${restoreThroughput(config.stateDirAbs, c.name) ? 'measured in earlier restores here' : '(assumed: no earlier restore here)'}`;
        if (copyS < restoreS) {
          return { mode: 'copy-delta', why: `${probe.why}; restore.copyDelta: a plain copy (~${minutes(copyS)}) is faster than a full restore (~${minutes(restoreS)}): ${measured}`, estimate: `a copy of ${mb(size)} (~${minutes(copyS)}) + restore --delta`, originalBytes: size };
        }
        return { ...full, why: `${probe.why}; restore.copyDelta: a full restore (~${minutes(restoreS)}) is faster than a plain copy (~${minutes(copyS)}): ${measured}` };
      }
      return { ...full, why: `${probe.why}; the original is moved aside and the backup restored in full` };
    },

    /** Stop the cluster with a fast shutdown (fine when it is already stopped), for the run that was approved. */
    async stopCluster(input: { cluster: string; approvedInRun: string }): Promise<{ wasRunning: boolean }> {
      const c = cluster(input.cluster);
      requireApprovalOfThisRun(input.approvedInRun, `stop ${c.name} for an in-place restore`);
      await stopPoint('stopCluster');
      const r = await stopServer(c);
      return { wasRunning: r === 'stopped' };
    },

    /**
     * Rename the data directory to <data>.pre-restore-<tag>, with this run's marker inside (written before
     * the rename, so that a crash in between is recognised). Idempotent.
     */
    async moveDataDirAside(input: { cluster: string; approvedInRun: string }): Promise<{ aside: string; alreadyMoved: boolean }> {
      const c = cluster(input.cluster);
      const me = requireApprovalOfThisRun(input.approvedInRun, `move ${c.dataDir} aside`);
      const p = inPlacePaths(c.dataDir, runTag(me));
      heartbeat({ moving: c.dataDir });
      if (existsSync(p.aside)) {
        requireOwned(p.aside, me, 'use');
        return { aside: p.aside, alreadyMoved: true };
      }
      if (!existsSync(`${c.dataDir}/PG_VERSION`)) throw ApplicationFailure.nonRetryable(`${c.dataDir} holds no data directory to move aside`, FAILURE.badInput);
      if (await postmasterRunning(c, c.dataDir)) {
        throw ApplicationFailure.nonRetryable(`PostgreSQL still runs in ${c.dataDir}; it must be stopped before the data directory is moved`, FAILURE.badInput);
      }
      writeMarker(c.dataDir, { what: 'original data directory, kept aside', cluster: c.name, from: c.dataDir }, me);
      await stopPoint('moveDataDirAside:before-rename');
      renameSync(c.dataDir, p.aside);
      return { aside: p.aside, alreadyMoved: false };
    },

    /**
     * `pgbackrest restore` into this run's staging folder, then rename it into the cluster's data directory —
     * only when the original is kept aside by this run and <data> is absent or empty. WAL archiving stays as
     * configured: the restored cluster is production again.
     */
    async restoreIntoDataDir(input: {
      cluster: string;
      approvedInRun: string;
      request: Omit<RestoreRequest, 'cluster' | 'dataDir' | 'archiveModeOff' | 'delta'>;
      /** From chooseInPlaceMode: seed the restore with a clone of the original (delta), or restore in full. */
      mode?: RestoreMode;
    }): Promise<StagedRestoreOutcome & { spaceUsedBytes: number }> {
      const c = cluster(input.cluster);
      const me = requireApprovalOfThisRun(input.approvedInRun, `restore into ${c.dataDir}`);
      const p = inPlacePaths(c.dataDir, runTag(me));
      if (!existsSync(p.aside)) throw ApplicationFailure.nonRetryable(`refusing to restore into ${c.dataDir}: this run has not kept the original at ${p.aside}`, FAILURE.badInput);
      requireOwned(p.aside, me, 'restore beside');
      const freeBefore = freeBytes(dirname(c.dataDir));
      const out = await restoreViaStaging(c, me, { ...input.request, cluster: c.name, dataDir: c.dataDir, archiveModeOff: false, delta: false }, { from: p.aside, mode: input.mode ?? 'full' });
      if (out.mode === 'full' && out.durationMs > 0) recordRestoreThroughput(config.stateDirAbs, c.name, input.request.set ?? '', await directoryBytes(c.dataDir), out.durationMs);
      return { ...out, spaceUsedBytes: Math.max(0, freeBefore - freeBytes(dirname(c.dataDir))) };
    },

    /**
     * Start the cluster in its own data directory (its own configuration: port, socket, archiving) and wait
     * until recovery has ended and it is promoted.
     */
    async startClusterAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<RecoveryReport> {
      const c = cluster(input.cluster);
      await stopPoint('startClusterAndWait');
      return startAndAwaitPromotion(c, c, c.serverLog!, { timeoutSeconds: input.timeoutSeconds });
    },

    /**
     * Put this run's kept original back and start it. What is in <data> is renamed aside, never deleted:
     * before promotion to <data>.failed-restore-<tag>, after promotion (a person chose it) to
     * <data>.rolled-back-<tag>, which holds every write since the promotion. A run that moved nothing aside
     * only makes sure the cluster runs. Idempotent.
     */
    async rollBackInPlace(input: { cluster: string; afterPromotion?: boolean }): Promise<{ rolledBack: boolean; keptAt: string | null; answers: boolean; note: string; newTimeline?: number | null }> {
      const c = cluster(input.cluster);
      const me = currentRun();
      const p = inPlacePaths(c.dataDir, runTag(me));
      heartbeat({ rollback: 'stopping any restore of this run' });
      await killStrayRestores(`${p.staging}/data`);
      let keptAt: string | null = null;
      let note: string;
      let newTimeline: number | null | undefined;
      if (existsSync(p.aside)) {
        requireOwned(p.aside, me, 'put back');
        if (await postmasterRunning(c, c.dataDir)) {
          await stopServer(c, 120, input.afterPromotion ? 'fast' : 'immediate').catch((e: Error) => {
            throw ApplicationFailure.retryable(`cannot stop the restored server in ${c.dataDir}: ${e.message}`, 'RollbackFailed');
          });
        }
        if (existsSync(c.dataDir)) {
          if (isEmptyDir(c.dataDir)) rmdirSync(c.dataDir);
          else {
            const what: OwnedWhat = input.afterPromotion ? 'writes after promotion, kept aside' : 'failed restore';
            writeMarker(c.dataDir, { what, cluster: c.name, from: c.dataDir }, me);
            keptAt = freeName(input.afterPromotion ? p.rolledBack : p.failed);
            renameSync(c.dataDir, keptAt);
          }
        }
        await stopPoint('rollBackInPlace:before-put-back');
        renameSync(p.aside, c.dataDir);
        note = `the original is back in ${c.dataDir}${keptAt ? `; what was there is kept at ${keptAt}` : ''}`;
      } else if (ownedBy(c.dataDir, me) && readMarker(c.dataDir)?.what === 'original data directory, kept aside') {
        note = `the original is back in ${c.dataDir}`; // a retry after the rename
      } else {
        note = `this run moved nothing aside; ${c.dataDir} was not touched`;
      }
      if (ownedBy(c.dataDir, me) && readMarker(c.dataDir)?.what === 'original data directory, kept aside') removeMarker(c.dataDir);
      await removeStaging(c.dataDir, me);
      heartbeat({ rollback: 'starting the original cluster' });
      if (!existsSync(`${c.dataDir}/PG_VERSION`)) {
        throw ApplicationFailure.nonRetryable(`${c.dataDir} holds no data directory and this run kept nothing to put back (${note})`, 'RollbackFailed');
      }
      if (input.afterPromotion && keptAt && (await serverState(c)) !== 'running') {
        // The abandoned restore's timeline is in the archive now: bring the original up on a NEW timeline
        // above it, so that a later restore to "latest" follows production, not the abandoned branch.
        prepareTimelineSwitch(c, true);
        try {
          const r = await startAndAwaitPromotion(c, c, c.serverLog!, { timeoutSeconds: 600, what: 'the original cluster' });
          newTimeline = r.timeline;
          note += `; it runs on timeline ${r.timeline}, above the abandoned restore's`;
        } catch (err) {
          // Production comes back whatever happens: start it as it was, and say what to do.
          prepareTimelineSwitch(c, false);
          note += `; it could NOT be moved to a new timeline (${(err as Error).message.split('\n')[0]}): take a full backup now, and until then do not restore this cluster to "latest"`;
        }
      }
      if ((await serverState(c)) !== 'running') await startServer(c, c.serverLog!, 600, secretEnv(c), c.pgbackrestConfig);
      const [ok] = await query<{ one: number }>(c, 'SELECT 1 AS one');
      return { rolledBack: note.startsWith('the original'), keptAt, answers: ok.one === 1, note, newTimeline };
    },

    /** The directories an in-place restore run kept (for `pgdr cleanup --run <tag>`): exact names, checked markers. */
    async keptDirectories(input: { cluster: string; run: string }): Promise<{ dir: string; what: string }[]> {
      return keptBy(cluster(input.cluster), input.run);
    },

    /**
     * Delete what an in-place restore run kept — exact names of that run, each proven by its marker, never the
     * data directory, never anything with a running server — in the cleanup run that got the approval.
     */
    async removeKeptDirectories(input: { cluster: string; run: string; approvedInRun: string }): Promise<string[]> {
      const c = cluster(input.cluster);
      requireApprovalOfThisRun(input.approvedInRun, `delete what run ${input.run} kept`);
      const removed: string[] = [];
      for (const { dir } of keptBy(c, input.run)) {
        if (await postmasterRunning(c, dir)) throw ApplicationFailure.nonRetryable(`a server runs in ${dir}; not deleting it`, FAILURE.badInput);
        const r = await run('rm', ['-rf', '--', dir]);
        if (existsSync(dir)) throw ApplicationFailure.retryable(`cannot delete ${dir}: ${lastLines(r.stderr, 3)}`, 'CleanupFailed');
        removed.push(dir);
      }
      return removed;
    },
  };
}

/**
 * `on`: make the next start of a cleanly stopped primary an archive recovery to the end of its own timeline's
 * WAL, which then promotes: PostgreSQL picks a timeline above every one in the archive. (A target such as
 * 'immediate' fails on PostgreSQL 15 when no redo is needed.) Earlier recovery settings left by pgBackRest
 * restores are removed either way: two recovery targets would stop the server from starting. `off`: undo it.
 */
function prepareTimelineSwitch(c: ClusterConfig, on: boolean): void {
  const autoConf = join(c.dataDir, 'postgresql.auto.conf');
  const kept = readFileSync(autoConf, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*(restore_command|recovery_target\w*)\s*=/.test(l) && !l.startsWith('# pgdr: rolled back'));
  const settings = on
    ? ['# pgdr: rolled back after a promotion; start on a new timeline', ...pgConfLines({
        restore_command: `pgbackrest --config=${c.pgbackrestConfig} --stanza=${c.stanza} archive-get %f "%p"`,
        recovery_target_timeline: 'current', // the original's own; 'latest' would be the abandoned branch
      })]
    : [];
  writeFileSync(autoConf, [...kept.filter((l, i) => l !== '' || i < kept.length - 1), ...settings, ''].join('\n'));
  if (on) writeFileSync(join(c.dataDir, 'recovery.signal'), '');
  else rmSync(join(c.dataDir, 'recovery.signal'), { force: true });
}

/** Exact names kept by run `tag` (with `.N` suffixes of repeated rollbacks), each with a marker naming that run. */
function keptBy(c: ClusterConfig, tag: string): { dir: string; what: string }[] {
  if (!RUN_TAG_RE.test(tag)) throw ApplicationFailure.nonRetryable(`"${tag}" is not a run tag (like restore-main-1-r0a1b2c3d4e5f; see the restore's result or \`ls ${dirname(c.dataDir)}\`)`, FAILURE.badInput);
  const p = inPlacePaths(c.dataDir, tag);
  const names = new Set([p.aside, p.failed, p.rolledBack].map((d) => basename(d)));
  const out: { dir: string; what: string }[] = [];
  for (const n of readdirSync(dirname(c.dataDir))) {
    const exact = names.has(n) || [...names].some((base) => base !== basename(p.aside) && new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d+$`).test(n));
    if (!exact) continue;
    const dir = join(dirname(c.dataDir), n);
    if (dir === c.dataDir) continue;
    const m = readMarker(dir);
    if (!m || runTag(m) !== tag) throw ApplicationFailure.nonRetryable(`${dir} has the name of run ${tag} but holds ${ownerText(dir)}; not touching it`, FAILURE.badInput);
    out.push({ dir, what: m.what });
  }
  return out;
}
