/**
 * One human format for times, with the zone, for the CLI and Slack: `2026-11-21 22:34:51 UTC`, and one for
 * durations and ages: `4 min 05 s`. (`--json` keeps ISO 8601 and milliseconds.) Pure: workflows, the client and
 * the Slack renderers all use it.
 */

/**
 * A time as people read it: `2026-11-21 22:34:51 UTC`. Takes ISO 8601, PostgreSQL's
 * `2026-11-21 22:36:32.000+00`, epoch milliseconds or a Date; text it cannot read is returned as it is.
 */
export function when(t: string | number | Date): string {
  const d = t instanceof Date ? t : typeof t === 'number' ? new Date(t) : new Date(isoOf(t));
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** PostgreSQL / pgBackRest spellings of a time as ISO 8601 (`+00` → `+00:00`, a space → `T`). */
function isoOf(s: string): string {
  return s.trim().replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
}

const TIME_IN_TEXT = /\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)/g;

/** Every zoned timestamp inside free text (step notes, failure messages) in the CLI's format. */
export const times = (text: string) => text.replace(TIME_IN_TEXT, (m) => when(m));

/** A duration or an age as people read it: "850 ms", "12.3 s", "4 min 05 s", "1 h 02 min", "3 d 04 h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const totalS = Math.round(ms / 1000);
  const d = Math.floor(totalS / 86_400);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  if (d >= 2) return `${d} d ${String(h - d * 24).padStart(2, '0')} h`;
  if (h) return `${h} h ${String(m).padStart(2, '0')} min`;
  return `${m} min ${String(s).padStart(2, '0')} s`;
}
