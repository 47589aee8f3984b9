/**
 * Starting runbooks from the CLI: connect, start with a summary the Temporal UI shows, follow the steps
 * while the runbook runs, and turn failures into one clear line.
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { LoadedConfig } from '../common/config';
import type { RunbookState } from '../workflows/runbook';

export async function connectClient(config: LoadedConfig): Promise<Client> {
  const connection = await Connection.connect({
    address: config.temporal.address,
    tls: config.temporal.tls || undefined,
    apiKey: config.temporal.apiKeyEnv ? process.env[config.temporal.apiKeyEnv] : undefined,
    connectTimeout: '5s',
  }).catch((err: Error) => {
    throw new CliError(`cannot reach Temporal at ${config.temporal.address}: ${err.message}`, 'is the server running? `npm start` starts the embedded default');
  });
  return new Client({ connection, namespace: config.temporal.namespace });
}

/** An error the CLI prints as one line plus a hint. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function workflowId(kind: string, cluster?: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
  return [kind, cluster, stamp, Math.random().toString(36).slice(2, 6)].filter(Boolean).join('-');
}

export interface StartOptions {
  workflowType: string;
  input: object;
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

/** The innermost message of a failure chain. */
export function rootCause(err: unknown): string {
  let e = err as { cause?: unknown; message?: string } | undefined;
  while (e && e.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export async function runWorkflow<T>(client: Client, config: LoadedConfig, o: StartOptions): Promise<T> {
  const handle = await client.workflow.start(o.workflowType, {
    taskQueue: config.temporal.taskQueue,
    workflowId: o.id,
    args: [o.input],
    ...(o.destructive ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
    staticSummary: o.summary,
    staticDetails: o.details ?? ['```json', JSON.stringify(o.input, null, 2), '```'].join('\n'),
  });
  const url = `${config.temporal.uiUrl.replace(/\/$/, '')}/namespaces/${config.temporal.namespace}/workflows/${encodeURIComponent(o.id)}`;
  if (o.follow) process.stderr.write(`${o.summary}\n  workflow ${o.id}\n  ${url}\n`);
  let stop = false;
  const follower = o.follow ? followSteps(() => handle.query<RunbookState>('steps'), () => stop) : Promise.resolve();
  try {
    return (await handle.result()) as T;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      throw new CliError(rootCause(err), `see ${url}`);
    }
    throw err;
  } finally {
    stop = true;
    await follower;
  }
}

/** Poll the runbook's `steps` query and print each step once when it ends (and once when it starts). */
async function followSteps(read: () => Promise<RunbookState>, done: () => boolean): Promise<void> {
  const printed = new Map<number, string>();
  const icon: Record<string, string> = { running: '…', done: '✓', failed: '✗', skipped: '–' };
  const show = (state: RunbookState) => {
    state.steps.forEach((s, i) => {
      if (printed.get(i) === s.state) return;
      if (s.state !== 'running' || !printed.has(i)) {
        const took = s.durationMs !== undefined && s.state !== 'running' ? ` (${(s.durationMs / 1000).toFixed(1)} s)` : '';
        process.stderr.write(`  ${icon[s.state] ?? '?'} ${s.name}${took}${s.note && s.state !== 'done' ? ` — ${s.note}` : ''}\n`);
      }
      printed.set(i, s.state);
    });
  };
  for (;;) {
    const finished = done();
    try {
      show(await read());
    } catch {
      /* query not answerable yet, or the workflow is gone */
    }
    if (finished) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}
