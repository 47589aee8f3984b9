/**
 * The one place where a value is made safe for a configuration file pgdr writes.
 *
 * - `postgresql` (postgresql.conf, postgresql.auto.conf): a string literal in single quotes. PostgreSQL's
 *   config lexer (guc-file.l) reads `''` as a quote and backslash escapes (`\\`, `\n`, `\r`, `\t`, …) inside
 *   quotes, and a raw line break ends the line: quotes are doubled, backslashes and line breaks escaped, so
 *   the value read back is exactly the value given. Plain digits stay bare (`port = 5433`).
 * - `pgbackrest` (pgbackrest.conf, an INI file): the value is taken verbatim up to the end of the line, so it
 *   cannot hold a line break (nor start or end with blanks, which pgBackRest trims): those are refused.
 *
 * A NUL byte cannot be written in either. Refusals are non-retryable BadInput failures.
 */
import { ApplicationFailure } from '@temporalio/common';

export type ConfFormat = 'postgresql' | 'pgbackrest';

/** `value` as it must appear after `name =` in a `format` configuration file. */
export function confValue(format: ConfFormat, name: string, value: string): string {
  const refuse = (why: string) =>
    ApplicationFailure.nonRetryable(`cannot write ${name} into a ${format === 'postgresql' ? 'PostgreSQL' : 'pgBackRest'} configuration file: the value ${why}`, 'BadInput');
  if (value.includes('\0')) throw refuse('contains a NUL byte');
  if (format === 'pgbackrest') {
    if (/[\r\n]/.test(value)) throw refuse(`${JSON.stringify(value)} contains a line break`);
    if (value !== value.trim()) throw refuse(`${JSON.stringify(value)} starts or ends with blanks, which pgBackRest would drop`);
    return value;
  }
  if (/^\d+$/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n').replace(/\r/g, '\\r')}'`;
}

/** `name = value` lines for a PostgreSQL configuration file, every value through confValue. */
export function pgConfLines(settings: Record<string, string>): string[] {
  return Object.entries(settings).map(([k, v]) => `${k} = ${confValue('postgresql', k, v)}`);
}

/** `key=value` lines for a pgBackRest configuration file (undefined values left out), through confValue. */
export function iniLines(settings: Record<string, string | number | undefined>): string[] {
  return Object.entries(settings)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${confValue('pgbackrest', k, String(v))}`);
}

/**
 * A PostgreSQL configuration file's text with every `name = …` line replaced by `name = <value escaped>`.
 * pgBackRest writes recovery_target_name into postgresql.auto.conf without escaping it; this repairs it.
 */
export function rewritePgConfSetting(text: string, name: string, value: string): string {
  const line = `${name} = ${confValue('postgresql', name, value)}`;
  return text.replace(new RegExp(`^[ \\t]*${name}[ \\t]*=.*$`, 'gm'), () => line);
}
