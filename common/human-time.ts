/**
 * One human format for times, with the zone, for the CLI and Slack: `2026-11-21 22:34:51 UTC`. (`--json`
 * keeps ISO 8601.) Pure: the client and the Slack renderers in activities/ both use it.
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
