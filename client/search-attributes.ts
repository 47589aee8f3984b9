/**
 * pgdr's search attributes on a namespace: which are registered, and registering the missing ones
 * (`pgdr search-attributes apply`, OperatorService AddSearchAttributes; idempotent). The dev servers pgdr
 * starts register them with `--search-attribute` (common/search-attributes.ts).
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes';

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;
const TYPE_OF: Record<'Keyword' | 'Bool', temporal.api.enums.v1.IndexedValueType> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Bool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
};
const typeName = (t: number) => (IndexedValueType[t] ?? String(t)).replace('INDEXED_VALUE_TYPE_', '');

export interface SearchAttributeReport {
  namespace: string;
  added: string[];
  present: string[];
  /** Registered with another type: pgdr cannot use them (fix by hand; the server never changes a type). */
  conflicts: { name: string; want: string; have: string }[];
}

/** Compare the namespace with what pgdr needs; add the missing attributes unless `dryRun`. */
export async function applySearchAttributes(client: Client, namespace: string, opts: { dryRun?: boolean } = {}): Promise<SearchAttributeReport> {
  const have = (await client.connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};
  const report: SearchAttributeReport = { namespace, added: [], present: [], conflicts: [] };
  const missing: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const [name, want] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) {
    const cur = have[name];
    if (cur === undefined || cur === null) missing[name] = TYPE_OF[want];
    else if (cur !== TYPE_OF[want]) report.conflicts.push({ name, want: want.toUpperCase(), have: typeName(cur) });
    else report.present.push(name);
  }
  if (Object.keys(missing).length && !opts.dryRun) await client.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  report.added = Object.keys(missing);
  return report;
}

/** Every pgdr attribute is registered with its type (false also when the server does not tell). */
export async function pgdrSearchAttributesRegistered(client: Client, namespace: string): Promise<boolean> {
  try {
    const have = (await client.connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};
    return Object.entries(SEARCH_ATTRIBUTE_TYPES).every(([name, want]) => have[name] === TYPE_OF[want]);
  } catch {
    return false;
  }
}

/** The server refused a start because the namespace lacks a search attribute. */
export function isUnregisteredSearchAttributeError(err: unknown): boolean {
  const texts: string[] = [];
  for (let e = err as { cause?: unknown; message?: unknown; details?: unknown } | undefined; e; e = e.cause as typeof e) texts.push(String(e.message ?? ''), String(e.details ?? ''));
  return texts.some((t) => /search attribute/i.test(t));
}

export function formatSearchAttributeReport(r: SearchAttributeReport, dryRun = false): string {
  return [
    `search attributes on namespace ${r.namespace}: ${r.added.length} ${dryRun ? 'would be ' : ''}added, ${r.present.length} present${r.conflicts.length ? `, ${r.conflicts.length} with the wrong type` : ''}`,
    ...r.added.map((n) => `  + ${n} (${SEARCH_ATTRIBUTE_TYPES[n]})`),
    ...r.conflicts.map((c) => `  ✗ ${c.name}: registered as ${c.have}, pgdr needs ${c.want}`),
  ].join('\n');
}
