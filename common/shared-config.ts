/**
 * The SHARED part of a pgdr configuration: what every worker of one pgdr installation must agree on,
 * because activities that read it run on the shared task queue (config.temporal.taskQueue), which every
 * host's worker polls. Whichever worker answers, routing (which host owns a cluster), the approval policy
 * and the runbooks' defaults must be the same; `sharedFingerprint` identifies that part, and the worker
 * compares it with the reference published in Temporal (workflows/shared-config.ts,
 * worker/shared-config-guard.ts).
 *
 * Everything is SHARED unless it is named in HOST_LOCAL below — a new field is shared until someone
 * decides otherwise here. HOST_LOCAL is the one list of fields that may differ from host to host: how this
 * host reaches Temporal, where it keeps its files, how it runs and connects to PostgreSQL, and secrets.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createHash } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { LoadedConfig, PgdrConfig } from './config';
import { publishUpdate, SHARED_CONFIG_MEMO, SHARED_CONFIG_WORKFLOW, sharedConfigWorkflowId, type PublishedSharedConfig } from '../workflows/shared-config';

/**
 * The fields that may differ between hosts ("*" = every cluster, "*" in repos = every repo). Why each is
 * host-local:
 * - temporal.address / tls / apiKeyEnv / uiUrl: how THIS host reaches the server (namespace and task
 *   queue are shared: they decide which installation a worker serves);
 * - stateDir: this host's folder (the approval audit log lands on approvals.auditHost's, see there);
 * - worker.* except heartbeatTimeout: this process's limits, metrics endpoint and schedule duty.
 *   worker.heartbeatTimeout is SHARED: describeCluster (shared queue) hands it to every runbook as the
 *   heartbeat timeout of that cluster's host activities, so it must not depend on who answered;
 * - slack.tokenEnv / signingSecretEnv / apiUrl / interactivityPort: secrets' names and this host's endpoints
 *   (slack.channel is shared: where people are asked);
 * - per cluster, how this host runs and reaches the cluster: pgbackrestConfig, dataDir, port, socketDir,
 *   osUser, pgBinDir, serverLog, control (pg_ctl / pg_ctlcluster), and the passphrases' places
 *   (repos[].cipherPassEnv / cipherPassFile), the scratch and restore folders (drill.scratchDir,
 *   restore.newClusterDir, fullSite.scratchDir) and the DNS hook (fullSite.dnsSwitchCommand);
 * - per cluster dbUser and database: the role and database pgdr connects as over THIS host's unix socket
 *   (peer/trust or .pgpass are set per host). Only host activities read them — no shared-queue answer and
 *   no decision depends on them — so hosts may differ (e.g. a rebuilt host whose local role is named
 *   differently). What a drill or a checklist validates is shared (drill.validations, restore.expectTables).
 *
 * Host-local fields of a cluster that another host owns are never read by this host's worker for a
 * decision (only the owner's host queue uses them); a file may fill them with placeholders.
 */
export const HOST_LOCAL: readonly string[] = [
  'temporal.address',
  'temporal.tls',
  'temporal.apiKeyEnv',
  'temporal.uiUrl',
  'stateDir',
  'worker.maxCachedWorkflows',
  'worker.maxConcurrentActivities',
  'worker.metricsPort',
  'worker.metricsTextfile',
  'worker.applySchedules',
  'worker.stickyQueueTimeout',
  'slack.tokenEnv',
  'slack.signingSecretEnv',
  'slack.apiUrl',
  'slack.interactivityPort',
  'clusters.*.pgbackrestConfig',
  'clusters.*.dataDir',
  'clusters.*.port',
  'clusters.*.socketDir',
  'clusters.*.osUser',
  'clusters.*.dbUser',
  'clusters.*.database',
  'clusters.*.pgBinDir',
  'clusters.*.serverLog',
  'clusters.*.control',
  'clusters.*.repos.*.cipherPassEnv',
  'clusters.*.repos.*.cipherPassFile',
  'clusters.*.drill.scratchDir',
  'clusters.*.restore.newClusterDir',
  'clusters.*.fullSite.scratchDir',
  'clusters.*.fullSite.dnsSwitchCommand',
];

/** LoadedConfig's own additions (where the file is): never part of the shared configuration. */
const LOADED_ONLY = ['file', 'stateDirAbs'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The shared part: the config with every HOST_LOCAL field removed, clusters sorted by name, keys sorted. */
export type SharedConfig = { [k: string]: Json };

function isHostLocal(path: string[]): boolean {
  return HOST_LOCAL.some((pattern) => {
    const p = pattern.split('.');
    return p.length === path.length && p.every((seg, i) => seg === '*' || seg === path[i]);
  });
}

/** Drop host-local fields, sort object keys, drop undefined; `path` uses "*" for array elements. */
function strip(value: unknown, path: string[]): Json | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') return value as Json;
  if (Array.isArray(value)) return value.map((v) => strip(v, [...path, '*']) ?? null);
  const out: { [k: string]: Json } = {};
  for (const key of Object.keys(value).sort()) {
    if (path.length === 0 && LOADED_ONLY.includes(key)) continue;
    if (isHostLocal([...path, key])) continue;
    const v = strip((value as Record<string, unknown>)[key], [...path, key]);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/**
 * The shared part of a loaded (validated, defaults applied) configuration. Cluster order in the file does
 * not matter (sorted by name), except through approvals.auditHost's default (the first cluster's host), which
 * config.ts resolves before: it is compared like any other field.
 */
export function sharedPart(config: PgdrConfig | LoadedConfig): SharedConfig {
  const shared = strip(config, []) as SharedConfig;
  const clusters = shared.clusters as { [k: string]: Json }[];
  shared.clusters = [...clusters].sort((a, b) => (String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0));
  return shared;
}

/** JSON with sorted keys (the shared part is built sorted; this keeps it so for any input). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(strip(value, ['(canonical)']) ?? null);
}

/** First 16 hex digits of the SHA-256 of the canonical JSON of a shared part. */
export function fingerprintOf(shared: SharedConfig): string {
  return createHash('sha256').update(canonicalJson(shared)).digest('hex').slice(0, 16);
}

/** The fingerprint of a configuration's shared part: equal on two hosts ⇔ their shared parts agree. */
export function sharedFingerprint(config: PgdrConfig | LoadedConfig): string {
  return fingerprintOf(sharedPart(config));
}

/** "clusters[main]" for a cluster, "[2]" for other list elements. */
function elementLabel(parent: string, item: Json, i: number): string {
  if (parent === 'clusters' && item && typeof item === 'object' && !Array.isArray(item) && typeof item.name === 'string') return `[${item.name}]`;
  return `[${i}]`;
}

function diff(a: Json | undefined, b: Json | undefined, path: string, out: string[]): void {
  if (canonicalJson(a) === canonicalJson(b)) return;
  const isObj = (v: Json | undefined): v is { [k: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) diff(a[k], b[k], path ? `${path}.${k}` : k, out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const key = path.split('.').pop() ?? '';
    if (key === 'clusters') {
      const byName = (list: Json[]) => new Map(list.map((c, i) => [elementLabel('clusters', c, i), c]));
      const ma = byName(a);
      const mb = byName(b);
      for (const label of [...new Set([...ma.keys(), ...mb.keys()])].sort()) diff(ma.get(label), mb.get(label), `${path}${label}`, out);
      return;
    }
    if (a.length === b.length) {
      a.forEach((x, i) => diff(x, b[i], `${path}[${i}]`, out));
      return;
    }
  }
  out.push(path || '(everything)');
}

/**
 * The paths where two shared parts differ, e.g. `approvals.restoreInPlace.approvers`, `clusters[main].host`;
 * a cluster only one side has is `clusters[name]`. Accepts configurations or shared parts.
 */
export function sharedDifferences(a: PgdrConfig | LoadedConfig | SharedConfig, b: PgdrConfig | LoadedConfig | SharedConfig): string[] {
  const out: string[] = [];
  diff(asShared(a), asShared(b), '', out);
  return out;
}

function asShared(c: PgdrConfig | LoadedConfig | SharedConfig): SharedConfig {
  // A configuration always has stateDir (default '.'); a shared part never has it.
  return 'stateDir' in c ? sharedPart(c as PgdrConfig) : (c as SharedConfig);
}

/** The record published in Temporal (workflows/shared-config.ts) and compared at worker start. */
export type { PublishedSharedConfig } from '../workflows/shared-config';


/** "root@db1" — who publishes, for the record. */
export function whoAmI(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return `${user}@${hostname()}`;
}

/** The record that publishes this configuration's shared part. */
export function sharedRecord(config: LoadedConfig, publishedBy: string, now = new Date()): PublishedSharedConfig {
  const shared = sharedPart(config);
  return { fingerprint: fingerprintOf(shared), shared, publishedBy, publishedAt: now.toISOString(), file: config.file };
}

/**
 * The published record, read from the workflow's memo (DescribeWorkflowExecution: no worker needed), or
 * undefined when nothing was ever published for this namespace and task queue.
 */
export async function readPublished(client: Client, taskQueue: string): Promise<{ record: PublishedSharedConfig; running: boolean } | undefined> {
  try {
    const d = await client.workflow.getHandle(sharedConfigWorkflowId(taskQueue)).describe();
    const record = d.memo?.[SHARED_CONFIG_MEMO] as PublishedSharedConfig | undefined;
    return record ? { record, running: d.status.name === 'RUNNING' } : undefined;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Start the record's workflow with `record` (no worker needed: the start input and the memo carry it).
 * `replace`: a running one is terminated first (atomically, by the server); otherwise a running one makes
 * this return false.
 */
export async function startPublished(client: Client, taskQueue: string, record: PublishedSharedConfig, replace: boolean): Promise<boolean> {
  try {
    await client.workflow.start(SHARED_CONFIG_WORKFLOW, {
      workflowId: sharedConfigWorkflowId(taskQueue),
      taskQueue,
      args: [record],
      memo: { [SHARED_CONFIG_MEMO]: record },
      workflowIdConflictPolicy: replace ? 'TERMINATE_EXISTING' : 'FAIL',
      staticSummary: `pgdr shared configuration ${record.fingerprint}`,
    });
    return true;
  } catch (err) {
    if (!replace && err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw err;
  }
}

export interface PublishOutcome {
  record: PublishedSharedConfig;
  /** The fingerprint it replaced (undefined: nothing was published before). */
  previous?: string;
  /** 'update': the running record took the Update; 'start': started (first publish, or nobody answered the Update). */
  how: 'update' | 'start';
  /** Why the Update was not used, when it was not. */
  note?: string;
}

/**
 * Publish `record` as the reference: the Update `publish` when a worker answers within `updateTimeoutMs`,
 * else a new run with the record (the old one terminated) — so that publishing works also when every worker
 * refuses to serve because their files disagree with the old reference.
 */
export async function publishRecord(client: Client, taskQueue: string, record: PublishedSharedConfig, updateTimeoutMs = 10_000): Promise<PublishOutcome> {
  const before = await readPublished(client, taskQueue);
  if (!before?.running) {
    if (await startPublished(client, taskQueue, record, false)) return { record, previous: before?.record.fingerprint, how: 'start' };
  }
  const handle = client.workflow.getHandle(sharedConfigWorkflowId(taskQueue));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), updateTimeoutMs)));
  try {
    const answer = await Promise.race([handle.executeUpdate(publishUpdate, { args: [record] }), timedOut]);
    if (answer !== 'timeout') return { record, previous: answer.previous, how: 'update' };
  } finally {
    clearTimeout(timer);
  }
  await startPublished(client, taskQueue, record, true);
  return { record, previous: before?.record.fingerprint, how: 'start', note: `no worker answered the Update within ${Math.round(updateTimeoutMs / 1000)} s (none serves ${taskQueue}?): started a new run with the record` };
}

/** What to tell someone whose file disagrees with the published reference. */
export function mismatchMessage(config: LoadedConfig, published: PublishedSharedConfig, mine = sharedPart(config)): string {
  const paths = sharedDifferences(mine, published.shared as SharedConfig);
  return (
    `the shared configuration in ${config.file} (fingerprint ${fingerprintOf(mine)}) differs from the one published in Temporal ` +
    `(fingerprint ${published.fingerprint}, published by ${published.publishedBy} at ${published.publishedAt} from ${published.file}) ` +
    `at: ${paths.join(', ') || '(no field: the fingerprints differ)'}. ` +
    `Fix: make this file agree, or run \`pgdr config publish --config ${config.file}\` to make it the reference`
  );
}
