/**
 * Steps the restore runbooks share (restoreToNewCluster, restoreInPlace, fullSiteRecovery): turning a
 * checked restore target into a pgBackRest restore request, and the post-restore checklist.
 */
import type { RestoreRequest } from '../activities/restore-command';
import type { CheckTarget } from '../activities/checks';
import { pgTime, type ResolvedTarget } from '../common/restore-target';
import { durationMs, type CheckOutcome, type StanzaInfo } from '../common/types';
import { Checklist, type ChecklistItemSpec } from './checklist';
import { walArchiving, type onHost } from './activity-options';
import { type Runbook } from './runbook';
import { rootMessage } from '../common/errors';

type Host = ReturnType<typeof onHost>;

/** The restore request for a resolved target (the set is always explicit: pgdr chose it). */
export function restoreRequestFor(cluster: string, t: ResolvedTarget): Omit<RestoreRequest, 'dataDir'> {
  const base = { cluster, set: t.set.label, repo: t.repo, timeline: t.timeline };
  if (t.type === 'latest') return base;
  return { ...base, target: { type: t.type, value: t.value } };
}

export interface PostRestoreOptions {
  cluster: string;
  /** The items, or a list made by the caller (run again on a retry: signed items stay signed). */
  items?: ChecklistItemSpec[];
  list?: Checklist;
  /** Where the restored server answers; the cluster itself when left out (in-place restore). */
  at?: CheckTarget;
  /** The restore report appended to the audit log by the `outcome-documented` item. */
  report: () => Record<string, unknown>;
  /** How long to wait for people to sign off manual items. */
  timeout?: string;
}

/** Run the post-restore checklist; failing automated items are reported, not thrown (the caller decides). */
export async function runPostRestoreChecklist(rb: Runbook, host: Host, o: PostRestoreOptions): Promise<Checklist> {
  const post = o.list ?? new Checklist('Post-restore checklist', o.items ?? []).watch(() => rb.render());
  rb.section('post-restore', () => post.markdown());
  await rb.step('Post-restore checklist', () =>
    post.run(async (id) => {
      switch (id) {
        case 'connectivity':
        case 'table-counts':
        case 'migrations':
          return host.quick.postRestoreCheck({ cluster: o.cluster, item: id, at: o.at });
        case 'outcome-documented': {
          const r = await host.quick.appendRunbookReport({ kind: 'restores', report: { ...o.report(), checklist: post.snapshot(), steps: rb.steps } });
          return { ok: true, note: `report appended to ${r.file}` };
        }
        default:
          return host.quick.runConfiguredCheck({ cluster: o.cluster, item: id });
      }
    }, o.timeout as never),
  );
  return post;
}

/**
 * The automated items of the pre-restore checklist, for both restore runbooks (restore-checklists.ts lists
 * them): the target inside the recoverable window, the backup set still in the repository (read again: an
 * expire may have removed it since), room for the restore, the reason; a configured item runs its command.
 */
export function preRestoreCheck(o: { host: Host; cluster: string; target: ResolvedTarget; info: StanzaInfo; repo?: number; diskPath?: string; reason: string }) {
  return async (id: string): Promise<CheckOutcome> => {
    switch (id) {
      case 'restore-point-identified':
        return { ok: true, note: `${o.target.description}; recoverable window ${o.info.window ? `${pgTime(o.info.window.from)} → ${pgTime(o.info.window.to)}` : 'unknown (no WAL archived)'}` };
      case 'backup-available': {
        const now = await o.host.quick.readStanzaInfo({ cluster: o.cluster, repo: o.repo });
        const there = now.sets.some((s) => s.label === o.target.set.label);
        return { ok: now.status.code === 0 && there, note: there ? `set ${o.target.set.label} present (${now.status.message})` : `set ${o.target.set.label} is gone` };
      }
      case 'disk-space': {
        const d = await o.host.quick.checkRestoreDiskSpace({ cluster: o.cluster, restoreBytes: o.target.set.size, ...(o.diskPath ? { path: o.diskPath } : {}) });
        return { ok: d.ok, note: `${Math.round(d.freeBytes / 2 ** 20)} MB free in ${d.path}, the restore needs ${Math.round(d.neededBytes / 2 ** 20)} MB` };
      }
      case 'reason-documented':
        return { ok: true, note: o.reason };
      default:
        return o.host.quick.runConfiguredCheck({ cluster: o.cluster, item: id });
    }
  };
}

/**
 * After a promotion: switch WAL and wait (briefly) until the new timeline's first segment is archived.
 * Until it is, a restore that follows the newest timeline would replay the OLD timeline past the branch
 * point. Returns a problem to report (archiving broken, e.g. a repo gone) instead of failing: the restored
 * cluster is up, and undoing a good restore because archiving lags would be worse. A worker that dies
 * while waiting is retried, and a failure is checked once more before it is reported: an operator must
 * not be sent to fix a non-problem.
 */
export async function archiveNewTimeline(
  rb: Runbook,
  host: { taskQueue: string; heartbeatTimeout?: string; newTimelineArchiveWait?: string },
  cluster: string,
  timeline: number | null,
): Promise<string | undefined> {
  const acts = walArchiving(host);
  const wait = Math.max(1, Math.round(durationMs(host.newTimelineArchiveWait ?? '60s') / 1000));
  let walFile: string | undefined;
  const archived = async (timeoutSeconds: number) => {
    walFile ??= (await acts.switchWal({ cluster })).walFile;
    await acts.waitForWalArchived({ cluster, walFile, timeoutSeconds });
  };
  const name = `Archive the first WAL segment of timeline ${timeline ?? '?'}`;
  try {
    await rb.step(name, () => archived(wait));
    return undefined;
  } catch {
    try {
      await rb.step(`${name}: check again before reporting`, () => archived(Math.min(10, wait)));
      return undefined;
    } catch (err) {
      return `WAL archiving of the restored cluster does not work yet (${err instanceof Error ? rootMessage(err) : String(err)}): fix archive_command / the repositories, then take a full backup; until the new timeline's WAL is archived, a restore may follow the old timeline`;
    }
  }
}
