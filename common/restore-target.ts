/**
 * Restore targets: what the user asked for, checked against what the repository can deliver, before any
 * directory or process is touched. Pure (no I/O): workflows call it with the stanza's `info`.
 *
 * pgBackRest's own traps this guards against (see the reference notes):
 * - a time before every backup fails late; a time in the future, or an unknown restore point name, exits 0
 *   and PostgreSQL then replays everything and shuts down without reaching the target;
 * - `name`, `lsn` and `xid` targets do not choose a backup set: without `--set` the latest is used, and a
 *   target older than it fails at PostgreSQL start;
 * - an explicit `--set` with a time before that set's stop is silently wrong.
 */
import { z } from 'zod';
import { ANNOTATION, lsnToBigInt, timelineOf, type BackupSet, type StanzaInfo } from './types';

export type RestoreTargetType = 'latest' | 'time' | 'name' | 'lsn' | 'xid' | 'immediate';

/** A restore target as people give it (restoreToNewCluster, restoreInPlace, fullSiteRecovery); checked against info later. */
export const restoreTargetSchema = z
  .object({
    type: z.enum(['latest', 'time', 'name', 'lsn', 'xid', 'immediate'], {
      errorMap: () => ({ message: 'target.type must be one of latest, time, name, lsn, xid, immediate' }),
    }),
    value: z.string().min(1).max(200).regex(/^[^\n\r\0]*$/, 'target.value: a single line').optional(),
    /** Backup set label to restore from (pgdr picks one when it can). */
    set: z.string().regex(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/, 'target.set: a backup set label like 20260115-020000F').optional(),
    repo: z.number().int().min(1).max(256).optional(),
    /** recovery_target_timeline: 'current', 'latest' or a number. */
    timeline: z.string().optional(),
    /** Allow a restore point name pgdr did not create (needs `set`). */
    confirmUnknownName: z.boolean().optional(),
  })
  .strict();

export type RestoreTarget = z.input<typeof restoreTargetSchema>;

export interface ResolvedTarget {
  type: RestoreTargetType;
  /** Normalised target value as given to pgBackRest ('2025-01-15 14:30:00.000+00' for times, microseconds kept). */
  value?: string;
  /** The backup set pgBackRest will restore. */
  set: BackupSet;
  repo?: number;
  timeline?: string;
  /** pgBackRest restore options for this target (without paths). */
  options: string[];
  /** One line for people: "time 2025-01-15 14:30:00.000+00 from full backup 20250115-020001F". */
  description: string;
}

export type TargetCheck = { ok: true; target: ResolvedTarget } | { ok: false; message: string };

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * Parse a time with an explicit time zone: ISO 8601 ("2025-01-15T14:30:00Z", "+01:00") or PostgreSQL's
 * style ("2025-01-15 14:30:00+00"). Anything without a zone is ambiguous and refused. PostgreSQL keeps
 * microseconds, and so does the result: `us` (microseconds since the epoch, exact in a double) for
 * comparisons and `iso` in UTC with the fraction given (at least milliseconds, up to microseconds);
 * `ms` is the JS Date value (cut to milliseconds: never write it back as the target).
 */
export function parseTargetTime(text: string): { ok: true; iso: string; ms: number; us: number } | { ok: false; message: string } {
  const m = TIME_RE.exec(text.trim());
  if (!m) {
    return {
      ok: false,
      message: `"${text}" is not a time with a time zone; use e.g. "2025-01-15 14:30:00+00" or "2025-01-15T14:30:00Z" (a time without a zone is ambiguous)`,
    };
  }
  const [, y, mo, d, h, mi, s = '0', frac = '', zone] = m;
  let offsetMin = 0;
  if (!/^(Z|UTC)$/i.test(zone)) {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
    offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? 0));
    if (Math.abs(offsetMin) > 14 * 60) return { ok: false, message: `"${text}": time zone offset ${zone} is out of range` };
  }
  const seconds = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) - offsetMin * 60_000;
  const check = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s));
  if (check.getUTCFullYear() !== +y || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 59) {
    return { ok: false, message: `"${text}" is not a valid calendar time` };
  }
  const fraction = frac.padEnd(3, '0');
  const us = seconds * 1000 + Number(fraction.padEnd(6, '0'));
  return { ok: true, iso: new Date(seconds).toISOString().replace(/\.\d{3}Z$/, `.${fraction}Z`), ms: Math.floor(us / 1000), us };
}

/** Microseconds since the epoch of an ISO 8601 / PostgreSQL time with a zone (NaN when it is not one). */
export function timeMicros(text: string): number {
  const p = parseTargetTime(text);
  return p.ok ? p.us : NaN;
}

/**
 * '2025-01-15T14:30:00.123Z' → '2025-01-15 14:30:00.123+00' (what recovery_target_time reads unambiguously);
 * the fraction is kept as given ('…00.795727Z' → '…00.795727+00').
 */
export function pgTime(iso: string): string {
  return iso.replace('T', ' ').replace('Z', '+00');
}

const LSN_RE = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

/** The LSN just past the end of a WAL segment name (16 MB segments). */
export function walSegmentEnd(walFile: string): bigint {
  const log = BigInt(`0x${walFile.slice(8, 16)}`);
  const seg = BigInt(`0x${walFile.slice(16, 24)}`);
  return (log << 32n) + (seg + 1n) * 0x1000000n;
}

const byStop = (a: BackupSet, b: BackupSet) => a.stoppedAt.localeCompare(b.stoppedAt);

/**
 * Why a backup set cannot reach the newest timeline, or undefined when it can. After a point-in-time
 * recovery the old timeline goes on past the branch point; a backup taken there is not in the new
 * timeline's history, and PostgreSQL cannot recover from it to a target on the new timeline.
 */
export function offTimeline(set: BackupSet, timeline: StanzaInfo['timeline']): string | undefined {
  const tli = timelineOf(set.walStart);
  if (!timeline || tli === null || tli === timeline.current) return undefined;
  const left = timeline.history.find((h) => h.parent === tli);
  if (!left) {
    return timeline.history.length ? `backup set ${set.label} is on timeline ${tli}, which is not an ancestor of the current timeline ${timeline.current}` : undefined;
  }
  if (set.lsnStop && lsnToBigInt(set.lsnStop) > lsnToBigInt(left.switchLsn)) {
    return `backup set ${set.label} was taken on timeline ${tli} after it branched off to the current timeline ${timeline.current} at LSN ${left.switchLsn}`;
  }
  return undefined;
}

function windowText(info: StanzaInfo): string {
  return info.window ? `${pgTime(info.window.from)} → ${pgTime(info.window.to)}` : 'empty (no backups)';
}

/**
 * Check a restore target against the stanza and pick the backup set. `nowIso` is the caller's clock
 * (workflow time), used to refuse targets in the future.
 */
export function resolveRestoreTarget(t: RestoreTarget, info: StanzaInfo, nowIso: string): TargetCheck {
  const fail = (message: string): TargetCheck => ({ ok: false, message });
  const inRepo = info.sets.filter((s) => !s.error && (t.repo === undefined || s.repo === t.repo)).sort(byStop);
  // Recovery follows the newest timeline unless told otherwise (an immediate target stays on the set's own
  // timeline): then only sets in the newest timeline's history can reach the target.
  const followsNewest = (t.timeline === undefined || t.timeline === 'latest') && t.type !== 'immediate';
  const sets = followsNewest ? inRepo.filter((s) => !offTimeline(s, info.timeline)) : inRepo;
  if (!sets.length) return fail(`stanza ${info.stanza} has no usable backup set${t.repo ? ` in repo${t.repo}` : ''}: nothing can be restored`);
  let explicit: BackupSet | undefined;
  if (t.set) {
    explicit = inRepo.find((s) => s.label === t.set);
    if (!explicit) return fail(`backup set ${t.set} does not exist in stanza ${info.stanza}${t.repo ? ` repo${t.repo}` : ''}; sets: ${inRepo.map((s) => s.label).join(', ')}`);
    const off = followsNewest ? offTimeline(explicit, info.timeline) : undefined;
    if (off) return fail(`${off}; it cannot reach a target there — use one of ${sets.map((s) => s.label).join(', ')}, or leave set out`);
  }
  if (t.timeline !== undefined && !/^(current|latest|\d+)$/.test(t.timeline)) return fail(`timeline must be "current", "latest" or a number, not "${t.timeline}"`);
  const latest = sets[sets.length - 1];
  const common = [...(t.timeline ? [`--target-timeline=${t.timeline}`] : [])];
  const done = (set: BackupSet, options: string[], value: string | undefined, what: string): TargetCheck => ({
    ok: true,
    target: {
      type: t.type,
      value,
      set,
      repo: t.repo,
      timeline: t.timeline,
      options: [`--set=${set.label}`, ...options, ...common],
      description: `${what} from ${set.type} backup ${set.label}${t.repo ? ` (repo${t.repo})` : ''}`,
    },
  });

  switch (t.type) {
    case 'latest':
      if (t.value) return fail('a "latest" target takes no value');
      // Replays all archived WAL after the set: the newest state the archive holds.
      return done(explicit ?? latest, ['--type=default'], undefined, 'latest (end of archived WAL)');

    case 'immediate':
      if (t.value) return fail('an "immediate" target takes no value (it ends recovery as soon as the backup is consistent)');
      return done(explicit ?? latest, ['--type=immediate', '--target-action=promote'], undefined, 'end of the backup (immediate)');

    case 'time': {
      if (!t.value) return fail('a "time" target needs value, e.g. "2025-01-15 14:30:00+00"');
      const p = parseTargetTime(t.value);
      if (!p.ok) return fail(p.message);
      // Compared in microseconds (times with different fractions do not sort as text).
      const at = pgTime(p.iso);
      if (p.us > timeMicros(nowIso)) return fail(`target time ${at} is in the future; the recoverable window is ${windowText(info)}`);
      const w = info.window!;
      if (p.us < timeMicros(w.from)) return fail(`target time ${at} is before the oldest backup ends; the recoverable window is ${windowText(info)}`);
      if (p.us > timeMicros(w.to)) {
        return fail(`target time ${at} is after the last archived WAL (${pgTime(w.to)}); the recoverable window is ${windowText(info)}`);
      }
      // pgBackRest picks the newest set that stopped before the target; an explicit set must too.
      const pick = [...sets].reverse().find((s) => timeMicros(s.stoppedAt) <= p.us)!;
      if (explicit && timeMicros(explicit.stoppedAt) > p.us) {
        return fail(`backup set ${explicit.label} ends at ${pgTime(explicit.stoppedAt)}, after the target time ${at}; use ${pick.label} or leave set out`);
      }
      return done(explicit ?? pick, ['--type=time', `--target=${at}`, '--target-action=promote'], at, `time ${at}`);
    }

    case 'name': {
      if (!t.value) return fail('a "name" target needs the restore point name');
      const snap = sets.find((s) => s.annotations[ANNOTATION.snapshot] === t.value);
      if (snap) {
        if (explicit && explicit.stoppedAt > snap.stoppedAt) {
          return fail(`restore point "${t.value}" was created right after backup ${snap.label}; set ${explicit.label} is newer and cannot reach it`);
        }
        return done(explicit ?? snap, ['--type=name', `--target=${t.value}`, '--target-action=promote'], t.value, `restore point "${t.value}"`);
      }
      if (!explicit || !t.confirmUnknownName) {
        const known = sets.map((s) => s.annotations[ANNOTATION.snapshot]).filter(Boolean);
        return fail(
          `pgdr did not create a restore point named "${t.value}" (known: ${known.join(', ') || 'none'}); ` +
            'if it exists anyway, give the backup set taken before it (set) and confirmUnknownName: true',
        );
      }
      return done(explicit, ['--type=name', `--target=${t.value}`, '--target-action=promote'], t.value, `restore point "${t.value}" (not created by pgdr, confirmed)`);
    }

    case 'lsn': {
      if (!t.value || !LSN_RE.test(t.value)) return fail(`an "lsn" target needs a value like "0/3000060", not "${t.value ?? ''}"`);
      const lsn = lsnToBigInt(t.value);
      const candidates = sets.filter((s) => s.lsnStop && lsnToBigInt(s.lsnStop) <= lsn);
      if (!candidates.length) return fail(`LSN ${t.value} is before the end of the oldest backup (${sets[0].lsnStop}); nothing can reach it`);
      const walMax = info.window?.walMax;
      if (walMax && lsn >= walSegmentEnd(walMax)) return fail(`LSN ${t.value} is beyond the last archived WAL segment ${walMax}`);
      const pick = candidates[candidates.length - 1];
      if (explicit && (!explicit.lsnStop || lsnToBigInt(explicit.lsnStop) > lsn)) {
        return fail(`backup set ${explicit.label} ends at LSN ${explicit.lsnStop}, after the target ${t.value}; use ${pick.label} or leave set out`);
      }
      return done(explicit ?? pick, ['--type=lsn', `--target=${t.value}`, '--target-action=promote'], t.value.toUpperCase(), `LSN ${t.value.toUpperCase()}`);
    }

    case 'xid': {
      if (!t.value || !/^\d+$/.test(t.value)) return fail(`an "xid" target needs a transaction id (a number), not "${t.value ?? ''}"`);
      if (!explicit) return fail('pgdr cannot tell which backup set precedes a transaction id: give set (a backup taken before that transaction committed)');
      return done(explicit, ['--type=xid', `--target=${t.value}`, '--target-action=promote'], t.value, `transaction ${t.value}`);
    }

    default:
      return fail(`target type must be one of latest, time, name, lsn, xid, immediate — not "${(t as { type: string }).type}"`);
  }
}
