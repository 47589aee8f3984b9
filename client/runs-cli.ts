/**
 * Finding runs: `pgdr runs` (a visibility query over pgdr's search attributes), `pgdr status <id>`,
 * `pgdr watch <id>` (re-attach to the live step view, e.g. after Ctrl-C), `pgdr cancel <id> --reason`, and
 * `pgdr search-attributes apply` (register pgdr's search attributes on a namespace).
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Command } from 'commander';
import type { LoadedConfig } from '../common/config';
import { PGDR_SEARCH_ATTRIBUTES, ROUTINE_RUNBOOKS } from '../common/search-attributes';
import { stepsQuery, type RunbookState } from '../workflows/runbook';
import { workflowUrl } from '../common/slack';
import { defaultIdentity } from './approvals-cli';
import { times, when } from './format';
import { applySearchAttributes, formatSearchAttributeReport } from './search-attributes';
import { CliError, connectClient, followSteps } from './temporal';
import { rootMessage } from '../common/errors';

interface Helpers {
  config: () => LoadedConfig;
  print: (text: string, json: unknown) => void;
}

export interface RunsFilter {
  cluster?: string;
  runbook?: string;
  running?: boolean;
  failed?: boolean;
  /** Started since: a duration back from now (`2h`, `1d`) or a time with a zone. */
  since?: string;
  /** Also the read-only lookups and routine health checks. */
  all?: boolean;
}

const quote = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** The visibility query of `pgdr runs` (the same text works in the Temporal UI's search box). */
export function runsQuery(config: LoadedConfig, f: RunsFilter, now = Date.now()): string {
  if (f.running && f.failed) throw new CliError('choose one of --running and --failed', undefined, 'usage');
  const parts = [`TaskQueue=${quote(config.temporal.taskQueue)}`];
  if (f.cluster) parts.push(`${PGDR_SEARCH_ATTRIBUTES.cluster.name}=${quote(f.cluster)}`);
  if (f.runbook) parts.push(`WorkflowType=${quote(f.runbook)}`);
  else if (!f.all) parts.push(`WorkflowType NOT IN (${ROUTINE_RUNBOOKS.map(quote).join(', ')})`);
  if (f.running) parts.push('ExecutionStatus="Running"');
  if (f.failed) parts.push('ExecutionStatus IN ("Failed", "TimedOut", "Terminated")');
  if (f.since) parts.push(`StartTime > ${quote(sinceTime(f.since, now))}`);
  return parts.join(' AND ');
}

function sinceTime(since: string, now: number): string {
  if (/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(since.trim())) return new Date(now - msToNumber(since.trim() as never)).toISOString();
  if (/\d{4}-\d{2}-\d{2}/.test(since) && /(Z|[+-]\d{2}(:?\d{2})?)$/.test(since.trim())) {
    const t = Date.parse(since.trim().replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'));
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  throw new CliError(`--since "${since}" is neither a duration (30m, 2h, 1d) nor a time with a zone ("2026-11-21 14:30:00+00")`, undefined, 'usage');
}

export interface RunRow {
  workflowId: string;
  runbook: string;
  status: string;
  outcome?: string;
  cluster?: string;
  host?: string;
  destructive?: boolean;
  startedAt: string;
  closedAt?: string;
  summary?: string;
}

function rowOf(w: Omit<WorkflowExecutionInfo, 'raw'>, summary?: string): RunRow {
  const sa = w.typedSearchAttributes;
  const k = PGDR_SEARCH_ATTRIBUTES;
  return {
    workflowId: w.workflowId,
    runbook: w.type,
    status: w.status.name,
    outcome: sa.get(k.outcome),
    cluster: sa.get(k.cluster),
    host: sa.get(k.host),
    destructive: sa.get(k.destructive),
    startedAt: w.startTime.toISOString(),
    closedAt: w.closeTime?.toISOString(),
    summary,
  };
}

/** The runs matching the filter, newest first, with their summaries (one describe each). */
export async function listRuns(client: Client, config: LoadedConfig, f: RunsFilter, limit = 30): Promise<RunRow[]> {
  const found: WorkflowExecutionInfo[] = [];
  for await (const w of client.workflow.list({ query: runsQuery(config, f), pageSize: Math.min(limit, 100) })) {
    found.push(w);
    if (found.length >= limit) break;
  }
  return Promise.all(
    found.map(async (w) => {
      const summary = await client.workflow
        .getHandle(w.workflowId, w.runId)
        .describe()
        .then((d) => d.staticSummary())
        .catch(() => undefined);
      return rowOf(w, summary);
    }),
  );
}

export function formatRuns(rows: RunRow[], query: string): string {
  if (!rows.length) return `no runs match: ${query}`;
  return rows
    .map((r) => {
      const state = r.status === 'RUNNING' ? 'RUNNING' : `${r.status}${r.outcome && r.outcome !== 'running' ? ` (${r.outcome})` : ''}`;
      const tags = [r.cluster && `cluster ${r.cluster}`, r.host && `host ${r.host}`, r.destructive && 'DESTRUCTIVE'].filter(Boolean).join(', ');
      return [`${when(r.startedAt)}  ${state.padEnd(10)}  ${r.runbook}  ${r.workflowId}`, `    ${r.summary ?? '(no summary)'}${tags ? `  [${tags}]` : ''}`].join('\n');
    })
    .join('\n');
}

/** The steps of a run (its `steps` query; a worker must run) — undefined when it cannot answer. */
async function stepsOf(client: Client, id: string): Promise<RunbookState | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    client.workflow.getHandle(id).query(stepsQuery),
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 5000))),
  ])
    .catch(() => undefined)
    .finally(() => clearTimeout(timer));
}

async function describeRun(client: Client, id: string) {
  try {
    return await client.workflow.getHandle(id).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no workflow "${id}"`, 'find it with `pgdr runs`', 'usage');
    throw err;
  }
}

export function registerRunsCommands(program: Command, { config, print }: Helpers): void {
  program
    .command('runs')
    .description('list runs, newest first (read-only lookups and health checks only with --all or --runbook)')
    .option('--cluster <name>', 'only runs about this cluster (PgdrCluster)')
    .option('--runbook <type>', 'only this runbook (workflow type), e.g. restoreInPlace')
    .option('--running', 'only runs still running (waiting for people included)')
    .option('--failed', 'only failed, timed-out or terminated runs')
    .option('--since <when>', 'started since: 30m, 2h, 1d, or a time with a zone')
    .option('--all', 'also read-only lookups and routine health checks')
    .option('--limit <n>', 'at most this many (default 30)', (v) => Number(v), 30)
    .action(async (o: RunsFilter & { limit: number }) => {
      const cfg = config();
      const query = runsQuery(cfg, o);
      const rows = await listRuns(await connectClient(cfg), cfg, o, o.limit);
      print(formatRuns(rows, query), { query, runs: rows });
    });

  program
    .command('status <workflowId>')
    .description("a run's state, search attributes and steps")
    .action(async (id: string) => {
      const cfg = config();
      const client = await connectClient(cfg);
      const d = await describeRun(client, id);
      const summary = await d.staticSummary().catch(() => undefined);
      const steps = await stepsOf(client, id);
      const row = rowOf(d, summary);
      const icon: Record<string, string> = { running: '…', done: '✓', failed: '✗', skipped: '–' };
      const text = [
        `${id}  ${row.runbook}  ${row.status}${row.outcome ? ` (${row.outcome})` : ''}`,
        `  ${row.summary ?? steps?.title ?? '(no summary)'}`,
        `  started ${when(row.startedAt)}${row.closedAt ? `, closed ${when(row.closedAt)}` : ''}`,
        ...(row.cluster || row.host ? [`  cluster ${row.cluster ?? '-'}, host ${row.host ?? '-'}${row.destructive ? ', DESTRUCTIVE' : ''}`] : []),
        ...(steps
          ? steps.steps.map((s) => `  ${icon[s.state] ?? '?'} ${s.name}${s.durationMs !== undefined && s.state !== 'running' ? ` (${(s.durationMs / 1000).toFixed(1)} s)` : ''}${s.note ? ` — ${times(s.note)}` : ''}`)
          : ['  (steps not available: is a pgdr worker running?)']),
        `  ${workflowUrl(cfg, id)}`,
      ].join('\n');
      print(text, { ...row, steps: steps?.steps ?? null, url: workflowUrl(cfg, id) });
    });

  program
    .command('watch <workflowId>')
    .description("follow a run's steps until it ends (Ctrl-C stops watching, not the run)")
    .action(async (id: string) => {
      const cfg = config();
      const client = await connectClient(cfg);
      const d = await describeRun(client, id);
      process.stderr.write(`${(await d.staticSummary().catch(() => undefined)) ?? d.type}\n  workflow ${id}\n  ${workflowUrl(cfg, id)}\n`);
      const handle = client.workflow.getHandle(id);
      let stop = false;
      const follower = followSteps(() => handle.query(stepsQuery), () => stop);
      try {
        const result = await handle.result();
        print(`${id}: completed`, { workflowId: id, status: 'COMPLETED', result });
      } catch (err) {
        if (err instanceof WorkflowFailedError) throw new CliError(`${id}: ${rootMessage(err)}`, `see ${workflowUrl(cfg, id)}`, 'failed', id);
        throw err;
      } finally {
        stop = true;
        await follower;
      }
    });

  program
    .command('cancel <workflowId>')
    .description('cancel a run (runbooks clean up or pause as they document); the reason is kept in its history')
    .requiredOption('--reason <text>', 'why')
    .option('--as <identity>', 'who cancels (default $PGDR_IDENTITY or the OS user)')
    .action(async (id: string, o: { reason: string; as?: string }) => {
      if (!o.reason.trim()) throw new CliError('--reason must say why', undefined, 'usage');
      const cfg = config();
      const client = await connectClient(cfg);
      const d = await describeRun(client, id);
      if (d.status.name !== 'RUNNING') throw new CliError(`${id} is not running (${d.status.name})`, undefined, 'usage', id);
      const by = o.as ?? defaultIdentity();
      await client.workflowService.requestCancelWorkflowExecution({
        namespace: cfg.temporal.namespace,
        workflowExecution: { workflowId: id },
        identity: `pgdr cancel by ${by}`,
        requestId: randomUUID(),
        reason: `${o.reason} (by ${by})`,
      });
      print(`${id}: cancellation requested (${o.reason}); follow with \`pgdr watch ${id}\``, { workflowId: id, cancelRequested: true, reason: o.reason, by });
    });

  const sa = program.command('search-attributes').description("pgdr's search attributes (PgdrCluster, PgdrHost, PgdrRunbook, PgdrOutcome, PgdrDestructive)");
  sa.command('apply')
    .description('register the missing ones on the namespace (idempotent; the dev servers pgdr starts have them already)')
    .option('--dry-run', 'only show what would be added')
    .action(async (o: { dryRun?: boolean }) => {
      const cfg = config();
      const client = await connectClient(cfg);
      const r = await applySearchAttributes(client, cfg.temporal.namespace, o).catch((err: Error) => {
        throw new CliError(`cannot register search attributes on ${cfg.temporal.namespace}: ${rootMessage(err)}`, 'this needs operator rights on the namespace (Temporal Cloud: add them in the Cloud UI or with tcld)');
      });
      print(formatSearchAttributeReport(r, o.dryRun), r);
      if (r.conflicts.length) throw new CliError(`${r.conflicts.length} search attribute(s) have another type`, 'remove or rename them by hand; pgdr does not change types');
    });
}
