/**
 * The shared configuration's one source of truth: a tiny workflow that never ends (id
 * `<taskQueue>-shared-config`, i.e. `pgdr-shared-config` for the default queue) holding the published
 * SHARED part of pgdr.yaml (common/shared-config.ts) with its fingerprint and who published it when.
 *
 * - query `sharedConfig`: the record (needs a worker);
 * - memo `sharedConfig`: the same record, readable with DescribeWorkflowExecution without any worker
 *   (a worker reads it at start, before it polls anything; the client sets it when it starts the workflow);
 * - Update `publish`: replaces the record (validator: the record's shape); `pgdr config publish` sends it.
 *
 * It has no activities and no timers; it continues as new after PUBLISHES_PER_RUN publishes so its history
 * stays short.
 */
import { allHandlersFinished, condition, continueAsNew, defineQuery, defineUpdate, setHandler, upsertMemo, workflowInfo } from '@temporalio/workflow';

/** The published shared configuration (JSON of common/shared-config.ts sharedPart) and its provenance. */
export interface PublishedSharedConfig {
  /** First 16 hex digits of the SHA-256 of the canonical JSON of `shared`. */
  fingerprint: string;
  shared: Record<string, unknown>;
  /** Who published it, e.g. "root@db1 (pgdr config publish)" or "worker root@db1 at start (first worker)". */
  publishedBy: string;
  /** ISO 8601 UTC. */
  publishedAt: string;
  /** The file it was read from, on the publisher's host. */
  file: string;
}

export const SHARED_CONFIG_WORKFLOW = 'sharedConfig';
export const SHARED_CONFIG_MEMO = 'sharedConfig';
export const sharedConfigQuery = defineQuery<PublishedSharedConfig>('sharedConfig');
export const publishUpdate = defineUpdate<{ previous: string; fingerprint: string }, [PublishedSharedConfig]>('publish');

/** The workflow id of an installation's record: one per namespace and shared task queue. */
export function sharedConfigWorkflowId(taskQueue: string): string {
  return `${taskQueue}-shared-config`;
}

/** Publishes per run before continue-as-new. */
export const PUBLISHES_PER_RUN = 20;

/** Why a record is not a valid published record (the Update validator), or undefined when it is. */
export function invalidRecord(r: unknown): string | undefined {
  if (!r || typeof r !== 'object' || Array.isArray(r)) return 'expected an object {fingerprint, shared, publishedBy, publishedAt, file}';
  const x = r as Record<string, unknown>;
  if (typeof x.fingerprint !== 'string' || !/^[0-9a-f]{16}$/.test(x.fingerprint)) return 'fingerprint: 16 lowercase hex digits';
  if (!x.shared || typeof x.shared !== 'object' || Array.isArray(x.shared)) return 'shared: the shared part of a config (an object)';
  const s = x.shared as Record<string, unknown>;
  if (!Array.isArray(s.clusters) || s.clusters.length === 0) return 'shared.clusters: at least one cluster';
  if (!s.temporal || typeof s.temporal !== 'object' || !s.approvals || typeof s.approvals !== 'object') return 'shared: needs "temporal" and "approvals"';
  if (typeof x.publishedBy !== 'string' || !x.publishedBy.trim()) return 'publishedBy: who publishes';
  if (typeof x.publishedAt !== 'string' || Number.isNaN(Date.parse(x.publishedAt))) return 'publishedAt: an ISO 8601 time';
  if (typeof x.file !== 'string') return 'file: the file it was read from';
  return undefined;
}

export async function sharedConfig(initial: PublishedSharedConfig): Promise<never> {
  let current = initial;
  let publishes = 0;
  setHandler(sharedConfigQuery, () => current, { description: 'The published shared configuration, its fingerprint, who published it and when' });
  setHandler(
    publishUpdate,
    (next) => {
      const previous = current.fingerprint;
      current = next;
      publishes++;
      upsertMemo({ [SHARED_CONFIG_MEMO]: next });
      return { previous, fingerprint: next.fingerprint };
    },
    {
      validator: (next) => {
        const why = invalidRecord(next);
        if (why) throw new Error(`not a shared configuration record: ${why}`);
      },
      description: 'Replace the published shared configuration (pgdr config publish --config <file>)',
    },
  );
  // The memo a worker reads without polling; a start by the client sets it too (the same record).
  if (JSON.stringify(workflowInfo().memo?.[SHARED_CONFIG_MEMO] ?? null) !== JSON.stringify(current)) upsertMemo({ [SHARED_CONFIG_MEMO]: current });
  await condition(() => publishes >= PUBLISHES_PER_RUN);
  await condition(allHandlersFinished);
  return continueAsNew<typeof sharedConfig>(current);
}
