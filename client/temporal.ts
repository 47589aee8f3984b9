/**
 * Starting runbooks from the CLI: connect, start with a summary the Temporal UI shows, follow the steps
 * while the runbook runs, and turn failures into one clear line.
 */
import { Client, Connection, WorkflowFailedError, type WorkflowHandle, type WorkflowStartOptions } from '@temporalio/client';
import type { Workflow, WorkflowResultType } from '@temporalio/common';
import { runIdentity, startSearchAttributes } from '../common/search-attributes';
import { isUnregisteredSearchAttributeError } from './search-attributes';
import type { LoadedConfig } from '../common/config';
import { checkTemporal, probeTemporal, TemporalConnectionProblem, TemporalTlsFileError, temporalConnectionOptions, type TemporalCheckReport } from '../common/temporal-connection';
import { stepsQuery, type RunbookState } from '../workflows/runbook';
import { times } from './format';
import { note } from './terminal';
import { rootMessage } from '../common/errors';

export async function connectClient(config: LoadedConfig): Promise<Client> {
  const options = (() => {
    try {
      return temporalConnectionOptions(config.temporal);
    } catch (err) {
      if (err instanceof TemporalTlsFileError) throw new CliError(`${config.file}: ${err.message}`, 'fix the path in temporal.tls', 'config');
      throw err;
    }
  })();
  const connection = await Connection.connect({ ...options, connectTimeout: '5s' }).catch(async (err: Error) => {
    // gRPC only says "failed to connect": find out which step fails (DNS, TCP, TLS both ways).
    const problem = await probeTemporal(config.temporal).then(() => undefined, (p: unknown) => p);
    if (problem instanceof TemporalConnectionProblem && problem.kind !== 'refused') {
      throw new CliError(`cannot reach Temporal at ${config.temporal.address}: ${problem.message}`, problem.hint, 'unreachable');
    }
    throw new CliError(`cannot reach Temporal at ${config.temporal.address}: ${problem instanceof Error ? problem.message : err.message}`, 'is the server running? `npm start` starts the embedded default', 'unreachable');
  });
  return new Client({ connection, namespace: config.temporal.namespace });
}

/**
 * `pgdr config check` online: the Temporal server answers as configured (DNS, TCP, TLS/mTLS, version,
 * namespace), as one line; otherwise a CliError saying exactly which step failed, with a hint.
 */
export async function checkTemporalConnection(config: LoadedConfig): Promise<{ line: string; report: TemporalCheckReport }> {
  const report = await checkTemporal(config.temporal).catch((err: unknown) => {
    if (err instanceof TemporalTlsFileError) throw new CliError(`${config.file}: ${err.message}`, 'fix the path in temporal.tls', 'config');
    if (err instanceof TemporalConnectionProblem) {
      throw new CliError(`${config.file} is valid, but Temporal at ${config.temporal.address}: ${err.message}`, err.hint, err.kind === 'namespace' ? 'config' : 'unreachable');
    }
    throw err;
  });
  const how = report.security === 'plain' ? 'without TLS' : `over ${report.security}${report.serverName ? ` (server name ${report.serverName})` : ''}`;
  const retention = report.retentionDays !== undefined ? `, retention ${report.retentionDays} day(s)` : '';
  return { line: `Temporal ${report.address}: ok — server ${report.serverVersion} ${how}; namespace ${report.namespace} ${report.namespaceState}${retention}`, report };
}

/**
 * What went wrong, for scripts (`--json` prints `{"error": {kind, message, hint?, workflowId?}}`), and the
 * exit code of each kind.
 */
export const EXIT_CODES = { failed: 1, usage: 3, config: 3, unreachable: 4, 'server-lost': 4 } as const;
export type ErrorKind = keyof typeof EXIT_CODES;

/** An error the CLI prints as one line plus a hint. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly kind: ErrorKind = 'failed',
    readonly workflowId?: string,
  ) {
    super(message);
  }
}

/**
 * Rejects when the Temporal server stops answering while we wait on a runbook (a long poll alone would hang
 * silently): three missed health checks in a row (one a second, each given 2 s), about 10 s.
 */
function watchServer(client: Client, config: LoadedConfig, id: string, url: string, stopped: () => boolean): Promise<never> {
  return new Promise<never>((_, reject) => {
    let misses = 0;
    const tick = async () => {
      if (stopped()) return;
      try {
        await client.connection.withDeadline(Date.now() + 2000, () => client.workflowService.getSystemInfo({}));
        misses = 0;
      } catch (err) {
        if (++misses >= 3) {
          reject(
            new CliError(
              `lost the Temporal server at ${config.temporal.address} while waiting for ${id} (${rootMessage(err)})`,
              `the runbook's state is kept by Temporal: once the server is back (\`npm start\`), it goes on; see ${url}`,
              'server-lost',
              id,
            ),
          );
          return;
        }
      }
      setTimeout(() => void tick(), 1000).unref();
    };
    setTimeout(() => void tick(), 1000).unref();
  });
}

export function workflowId(kind: string, cluster?: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
  return [kind, cluster, stamp, Math.random().toString(36).slice(2, 6)].filter(Boolean).join('-');
}

export interface StartOptions<W extends Workflow = Workflow> {
  /** The runbook: its workflow function (workflows/), so that its input and result are typed. */
  workflow: W;
  input: Parameters<W>[0];
  id: string;
  summary: string;
  /** Markdown shown in the UI's details; defaults to the input as JSON. */
  details?: string;
  /** Print the steps as they run (to stderr, so that --json output stays clean). */
  follow?: boolean;
  /**
   * A destructive runbook: its workflow id is never reused (REJECT_DUPLICATE), so an id names one run and
   * its approval. (Directory names carry the run id too; this keeps ids unambiguous for people.)
   */
  destructive?: boolean;
}

/** `p`, or a rejection after `ms`: a query to a server that went away must not hang the CLI. */
export function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)))]).finally(() => clearTimeout(timer));
}


/** Namespaces (by client) found without pgdr's search attributes: later starts skip them without asking again. */
const withoutSearchAttributes = new WeakSet<Client>();

/**
 * Start a runbook with its summary, details and search attributes (PgdrRunbook, PgdrCluster, PgdrHost,
 * PgdrDestructive, PgdrOutcome=running). A namespace without pgdr's attributes refuses such a start: the run
 * is started without them (it still runs; it is only harder to find) and the CLI says how to fix it.
 */
export async function startRunbook<W extends Workflow>(client: Client, config: LoadedConfig, o: StartOptions<W>): Promise<WorkflowHandle<W>> {
  const identity = runIdentity(o.workflow.name, o.input, (name) => config.clusters.find((c) => c.name === name)?.host);
  const options = {
    taskQueue: config.temporal.taskQueue,
    workflowId: o.id,
    args: [o.input] as Parameters<W>,
    ...(o.destructive ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
    staticSummary: o.summary,
    staticDetails: o.details ?? ['```json', JSON.stringify(o.input, null, 2), '```'].join('\n'),
  };
  if (!withoutSearchAttributes.has(client)) {
    try {
      return await client.workflow.start(o.workflow, { ...options, typedSearchAttributes: startSearchAttributes(identity) } as unknown as WorkflowStartOptions<W>);
    } catch (err) {
      if (!isUnregisteredSearchAttributeError(err)) throw err;
      withoutSearchAttributes.add(client);
      note(`pgdr: namespace ${config.temporal.namespace} lacks pgdr's search attributes; started without them (run \`pgdr search-attributes apply\` so that runs can be found by cluster)\n`);
    }
  }
  return client.workflow.start(o.workflow, options as unknown as WorkflowStartOptions<W>);
}

export async function runWorkflow<W extends Workflow>(client: Client, config: LoadedConfig, o: StartOptions<W>): Promise<WorkflowResultType<W>> {
  const handle = await startRunbook(client, config, o);
  const url = `${config.temporal.uiUrl.replace(/\/$/, '')}/namespaces/${config.temporal.namespace}/workflows/${encodeURIComponent(o.id)}`;
  if (o.follow) note(`${o.summary}\n  workflow ${o.id}\n  ${url}\n`);
  let stop = false;
  const follower = o.follow ? followSteps(() => handle.query(stepsQuery), () => stop) : Promise.resolve();
  try {
    return (await Promise.race([handle.result(), watchServer(client, config, o.id, url, () => stop)])) as WorkflowResultType<W>;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      throw new CliError(rootMessage(err), `see ${url}`, 'failed', o.id);
    }
    throw err;
  } finally {
    stop = true;
    await follower;
  }
}

/** Poll the runbook's `steps` query and print each step once when it ends (and once when it starts). */
export async function followSteps(read: () => Promise<RunbookState>, done: () => boolean): Promise<void> {
  const printed = new Map<number, string>();
  const icon: Record<string, string> = { running: '…', done: '✓', failed: '✗', skipped: '–' };
  const show = (state: RunbookState) => {
    state.steps.forEach((s, i) => {
      if (printed.get(i) === s.state) return;
      if (s.state !== 'running' || !printed.has(i)) {
        const took = s.durationMs !== undefined && s.state !== 'running' ? ` (${(s.durationMs / 1000).toFixed(1)} s)` : '';
        note(`  ${icon[s.state] ?? '?'} ${s.name}${took}${s.note && s.state !== 'done' ? ` — ${times(s.note)}` : ''}\n`);
      }
      printed.set(i, s.state);
    });
  };
  for (;;) {
    const finished = done();
    try {
      show(await within(read(), 3000));
    } catch {
      /* query not answerable yet, or the workflow is gone */
    }
    if (finished) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}
