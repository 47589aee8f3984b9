/** Quoting for the few SQL statements pgdr has to build as text (names and values that cannot be bind parameters). */

/** A quoted identifier: "name" with inner quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A possibly schema-qualified name ("public.orders"), each part quoted. */
export function quoteQualified(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

/** A string literal: 'value' with inner quotes doubled (standard_conforming_strings is on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
