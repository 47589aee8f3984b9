/**
 * Automated items of the restore checklists (the DR plan's "Restore Checklist"), the restore settings a
 * runbook needs from the config, and the restore report appended to the audit log.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { CheckOutcome } from '../common/types';
import { encodeButtonValue, SLACK_ACTION } from '../common/approvals';
import { log } from '../common/log';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChecklistItemConfig, ClusterConfig, LoadedConfig } from '../common/config';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE, lastLines } from './pgbackrest';
import { query, type PgTarget } from './postgres';
import { run } from './process';
import { slackTarget, workflowUrl } from '../common/slack';
import { stopPoint } from './stop-points';
import { quoteQualified } from '../common/sql';
import { checkMigrations } from './tables';

/** Where restoreToNewCluster puts new clusters on this host: restore.newClusterDir, else <stateDir>/restored. */
export function newClusterDirOf(config: LoadedConfig, c: ClusterConfig): string {
  return c.restore.newClusterDir ?? join(config.stateDirAbs, 'restored');
}

/** Where a restored server answers (the cluster itself after an in-place restore, or a new cluster). */
export interface CheckTarget {
  port: number;
  socketDir: string;
  dataDir: string;
}

/** What the restore runbooks read from the config (no secrets). */
export interface RestoreSettings {
  confirmationToken: string;
  safetyBackup: boolean;
  newClusterDir: string;
  expectTables: Record<string, number>;
  migrationsTable?: string;
  preChecklist: { add: ChecklistItemConfig[]; remove: string[] };
  postChecklist: { add: ChecklistItemConfig[]; remove: string[] };
  applications: ChecklistItemConfig[];
  rto: { pitr: string; fullSite: string };
  drillTables: string[];
  preChecklistTimeout: string;
  postChecklistTimeout: string;
  pauseTimeout: string;
  /** restore.newTimelineArchiveWait (absent in runs recorded before it existed: 60s). */
  newTimelineArchiveWait?: string;
}

export function checkActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);

  /** Run one configured command or HTTP check. */
  async function externalCheck(item: ChecklistItemConfig, user?: string): Promise<CheckOutcome> {
    if (item.command) {
      const r = await run(item.command[0], item.command.slice(1), { user });
      return r.exitCode === 0
        ? { ok: true, note: `\`${item.command.join(' ')}\` exited 0` }
        : { ok: false, note: `\`${item.command.join(' ')}\` exited ${r.exitCode}: ${lastLines(r.stderr || r.stdout, 3)}` };
    }
    if (item.url) {
      try {
        const res = await fetch(item.url, { signal: AbortSignal.timeout(10_000) });
        return { ok: res.ok, note: `GET ${item.url} → ${res.status}` };
      } catch (err) {
        return { ok: false, note: `GET ${item.url} failed: ${(err as Error).message}` };
      }
    }
    return { ok: false, note: 'no command or url configured for this check' };
  }

  return {
    async restoreSettings(input: { cluster: string }): Promise<RestoreSettings> {
      const c = cluster(input.cluster);
      return {
        confirmationToken: c.restore.confirmationToken,
        safetyBackup: c.restore.safetyBackup,
        newClusterDir: newClusterDirOf(config, c),
        expectTables: c.restore.expectTables,
        migrationsTable: c.drill.migrationsTable,
        preChecklist: c.restore.preChecklist,
        postChecklist: c.restore.postChecklist,
        applications: c.applications,
        rto: c.rto,
        drillTables: c.drill.tables,
        preChecklistTimeout: c.restore.preChecklistTimeout,
        postChecklistTimeout: c.restore.postChecklistTimeout,
        pauseTimeout: c.restore.pauseTimeout,
        newTimelineArchiveWait: c.restore.newTimelineArchiveWait,
      };
    },

    /**
     * One automated post-restore item, against the restored server:
     * `connectivity` (SELECT 1), `table-counts` (restore.expectTables minimum rows, in any database),
     * `migrations` (the newest rows of drill.migrationsTable), or a configured item's command/url.
     */
    async postRestoreCheck(input: { cluster: string; item: string; at?: CheckTarget }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const t: PgTarget = input.at ? { ...c, port: input.at.port, socketDir: input.at.socketDir, dataDir: input.at.dataDir } : c;
      await stopPoint(`postRestoreCheck:${input.item}`);
      switch (input.item) {
        case 'connectivity': {
          const [r] = await query<{ one: number; v: string }>(t, "SELECT 1 AS one, current_setting('server_version') AS v");
          return { ok: r.one === 1, note: `SELECT 1 answered on port ${t.port} (PostgreSQL ${r.v})` };
        }
        case 'table-counts': {
          const want = Object.entries(c.restore.expectTables);
          if (!want.length) return { ok: true, note: 'no table expectations configured (restore.expectTables)' };
          const dbs = (await query<{ datname: string }>(t, 'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate')).map((r) => r.datname);
          const problems: string[] = [];
          const seen: string[] = [];
          for (const [table, min] of want) {
            let count: number | undefined;
            for (const db of dbs) {
              const exists = await query<{ ok: boolean }>(t, 'SELECT to_regclass($1) IS NOT NULL AS ok', [table], db).catch(() => [{ ok: false }]);
              if (!exists[0].ok) continue;
              const [r] = await query<{ n: string }>(t, `SELECT count(*)::bigint AS n FROM ${quoteQualified(table)}`, [], db);
              count = Number(r.n);
              break;
            }
            if (count === undefined) problems.push(`${table} missing`);
            else if (count < min) problems.push(`${table} has ${count} rows, expected at least ${min}`);
            else seen.push(`${table}: ${count}`);
          }
          return problems.length ? { ok: false, note: problems.join('; ') } : { ok: true, note: seen.join(', ') };
        }
        case 'migrations': {
          const table = c.drill.migrationsTable;
          if (!table) return { ok: true, note: 'no migrations table configured' };
          return checkMigrations(t, table).catch((e: Error) => ({ ok: false, note: e.message }));
        }
        default: {
          const item = [...c.restore.postChecklist.add, ...c.restore.preChecklist.add, ...c.applications].find((i) => i.id === input.item);
          if (!item) throw ApplicationFailure.nonRetryable(`no automated check "${input.item}" for cluster ${c.name}`, FAILURE.badInput);
          return externalCheck(item, c.osUser);
        }
      }
    },

    /** A configured application or checklist item's command/url, by id. */
    async runConfiguredCheck(input: { cluster: string; item: string }): Promise<CheckOutcome> {
      const c = cluster(input.cluster);
      const item = [...c.restore.postChecklist.add, ...c.restore.preChecklist.add, ...c.applications].find((i) => i.id === input.item);
      if (!item) throw ApplicationFailure.nonRetryable(`no configured check "${input.item}" for cluster ${c.name}`, FAILURE.badInput);
      return externalCheck(item, c.osUser);
    },

    /**
     * Ask in Slack for the sign-off of manual checklist items: one "Sign off" button per item, bound to the
     * workflow and the item (the click comes back through `pgdr slack-server`). No Slack: nothing to do.
     * Never fails the runbook: the CLI and the UI can always sign off.
     */
    async postSignOffRequest(input: { checklist: string; title: string; items: { id: string; title: string; optional?: boolean }[] }): Promise<{ posted: boolean }> {
      const slack = slackTarget(config);
      if (!slack) return { posted: false };
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
      const url = workflowUrl(config, workflowId);
      const text = `:clipboard: Sign-off needed — ${input.checklist} of ${input.title}: ${input.items.map((i) => i.title).join('; ')}`;
      try {
        await slack.client.chat.postMessage({
          channel: slack.channel,
          text,
          blocks: [
            { type: 'section', text: { type: 'mrkdwn', text: `:clipboard: *Sign-off needed* — ${input.checklist} of *${input.title}* (<${url}|workflow>)` } },
            ...input.items.map((i) => ({
              type: 'section',
              text: { type: 'mrkdwn', text: `${i.title}${i.optional ? ' _(optional)_' : ''}\n\`pgdr check ${workflowId} ${i.id}\`` },
              accessory: { type: 'button', action_id: SLACK_ACTION.check, text: { type: 'plain_text', text: 'Sign off' }, value: encodeButtonValue({ w: workflowId, a: i.id }) },
            })),
          ],
        });
        return { posted: true };
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'slack: could not ask for sign-offs; the CLI and the UI still work');
        return { posted: false };
      }
    },

    /** Append a runbook report (JSON line) to the audit log on this host; returns the file. */
    async appendRunbookReport(input: { kind: string; report: Record<string, unknown> }): Promise<{ file: string }> {
      const dir = join(config.stateDirAbs, 'audit');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${input.kind}.jsonl`);
      appendFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...input.report })}\n`);
      return { file };
    },
  };
}
