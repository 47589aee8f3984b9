/**
 * CLI commands of schedules, retention and health: `pgdr schedules apply|list|pause|resume|trigger`, `pgdr expire`, `pgdr health`.
 */
import { Option, type Command } from 'commander';
import type { LoadedConfig } from '../common/config';
import { checkInput } from '../common/inputs';
import { expireInputSchema, type ArchiveHealthResult, type ExpireResult, type FreshnessResult } from '../common/health-inputs';
import { when } from './format';
import { applySchedules, formatApplyReport, formatScheduleRows, listSchedules, pauseSchedule, resumeSchedule, triggerSchedule } from './schedules';
import { CliError, connectClient, runWorkflow, workflowId } from './temporal';
import * as runbooks from '../workflows';
import { formatDuration } from '../common/human-time';

interface Helpers {
  config: () => LoadedConfig;
  print: (text: string, json: unknown) => void;
}

/** A health check's verdict with what it measured: the age of each newest set and of the last archived WAL, against the limits. */
export function formatHealthResult(r: FreshnessResult | ArchiveHealthResult, maxArchiveAge?: string): string {
  const lines = [`${r.check}: ${r.ok ? 'ok' : 'FAILING'} (checked ${when(r.checkedAt)})`];
  if (r.check === 'freshness') {
    const limit = { full: `health.maxAgeFull ${r.thresholds.maxAgeFull}`, diff: `health.maxAgeDiff ${r.thresholds.maxAgeDiff ?? r.thresholds.maxAgeFull}`, incr: `health.maxAgeIncr ${r.thresholds.maxAgeIncr}` };
    for (const repo of r.repos) {
      for (const kind of ['full', 'diff', 'incr'] as const) {
        const n = repo[kind];
        lines.push(`  repo${repo.repo} newest ${kind === 'incr' ? 'any' : kind === 'diff' ? 'full/diff' : 'full'}: ${n ? `${n.label}, ${formatDuration(n.ageSeconds * 1000)} old` : 'none'} (limit ${limit[kind]})`);
      }
    }
  } else {
    const age = r.lastArchivedAt ? (Date.now() - Date.parse(r.lastArchivedAt)) / 1000 : undefined;
    lines.push(
      `  last archived WAL: ${r.lastArchivedWal ?? 'none'}${age !== undefined ? `, ${formatDuration(Math.max(0, Math.round(age)) * 1000)} ago` : ''}${maxArchiveAge ? ` (limit health.maxArchiveAge ${maxArchiveAge})` : ''}`,
      `  cluster ${r.running ? 'running' : 'stopped'}; pgbackrest check ${r.checkPassed === null ? 'not run' : r.checkPassed ? 'passed' : 'FAILED'}; archive failures ${r.failedCount ?? '?'}${r.newFailures ? ` (${r.newFailures} new)` : ''}`,
    );
  }
  return [...lines, ...r.problems.map((p) => `  - ${p}`), ...r.notes.map((n) => `  · ${n}`)].join('\n');
}

/** The retention options pgBackRest ran with, from its "expire command begin" line (`repo1-retention-full=2`). */
export function retentionOptions(output: string): string[] {
  const begin = output.split('\n').find((l) => /expire command begin/.test(l)) ?? '';
  return [...begin.matchAll(/--(repo\d+-retention-[a-z-]+)=(\S+)/g)].map((m) => `${m[1]}=${m[2]}`);
}

export function formatExpireResult(r: ExpireResult): string {
  const read = retentionOptions(r.output);
  const remaining = r.remaining.filter((l) => !r.dryRun || !r.expired.includes(l));
  return [
    `${r.dryRun ? 'Would expire' : 'Expired'}: ${r.expired.join(', ') || 'nothing'}`,
    `${r.dryRun ? 'Would remain' : 'Remaining'}: ${remaining.join(', ') || 'none'}`,
    `Retention: ${r.retention}${read.length ? ` — pgBackRest ran with ${read.join(', ')}` : ''}`,
  ].join('\n');
}

export function registerScheduleCommands(program: Command, { config, print }: Helpers): void {
  const json = () => Boolean(program.opts<{ json?: boolean }>().json);
  const schedules = program.command('schedules').description('Temporal Schedules of backups, expire, drills and health checks (from the config)');
  schedules
    .command('apply')
    .description('create/update/delete pgdr schedules so that they match the config (idempotent; never touches other schedules)')
    .option('--dry-run', 'only show what would change')
    .action(async (o: { dryRun?: boolean }) => {
      const cfg = config();
      const report = await applySchedules(await connectClient(cfg), cfg, { dryRun: o.dryRun });
      print(formatApplyReport(report, o.dryRun), report);
      if (report.errors.length) throw new CliError(`${report.errors.length} schedule(s) could not be applied`, 'see the lines marked ✗ above');
    });
  schedules
    .command('list')
    .description("pgdr's schedules with their next run times")
    .action(async () => {
      const cfg = config();
      const rows = await listSchedules(await connectClient(cfg), cfg);
      print(formatScheduleRows(rows), rows);
    });
  for (const [name, what, fn] of [
    ['pause', 'pause a schedule', pauseSchedule],
    ['resume', 'resume a paused schedule', resumeSchedule],
    ['trigger', "run a schedule's action now", triggerSchedule],
  ] as const) {
    schedules
      .command(`${name} <schedule>`)
      .description(`${what} (id like pgdr:main:full, or main:full)`)
      .option('--note <text>', 'why (shown in the Temporal UI)')
      .action(async (ref: string, o: { note?: string }) => {
        const cfg = config();
        const client = await connectClient(cfg);
        const id = await fn(client, cfg, ref, o.note).catch((e: Error) => {
          throw new CliError(e.message);
        });
        print(`${id}: ${name === 'trigger' ? 'triggered' : `${name}d`}`, { scheduleId: id, done: name });
      });
  }

  program
    .command('expire')
    .description('expire old backups with the configured retention, a one-off override, or one set (refuses the latest full)')
    .requiredOption('--cluster <name>', 'cluster from the config')
    .option('--retention-full <n>', 'keep this many full backups (one-off override)', (v) => Number(v))
    .option('--retention-diff <n>', 'keep this many diff backups (one-off override)', (v) => Number(v))
    .option('--set <label>', 'expire exactly this backup set')
    .option('--repo <n>', 'repository number', (v) => Number(v))
    .option('--dry-run', 'only show what would be expired')
    .action(async (o: { cluster: string; retentionFull?: number; retentionDiff?: number; set?: string; repo?: number; dryRun?: boolean }) => {
      const cfg = config();
      const input = JSON.parse(JSON.stringify(o)) as object;
      const check = checkInput(expireInputSchema, input, 'expire');
      if (!check.ok) throw new CliError(check.message);
      const id = workflowId('expire', o.cluster);
      const r = await runWorkflow(await connectClient(cfg), cfg, {
        workflow: runbooks.expire,
        input: check.value,
        id,
        summary: `Expire backups of cluster ${o.cluster}${o.dryRun ? ' (dry run)' : ''}`,
        follow: !json(),
      });
      print(formatExpireResult(r), { workflowId: id, ...r, retentionRead: retentionOptions(r.output) });
    });

  program
    .command('health')
    .description('run the backup freshness and WAL archive health checks now')
    .requiredOption('--cluster <name>', 'cluster from the config')
    .addOption(new Option('--check <check>', 'only one check').choices(['freshness', 'archive']))
    .action(async (o: { cluster: string; check?: string }) => {
      const cfg = config();
      const client = await connectClient(cfg);
      const results: (FreshnessResult | ArchiveHealthResult)[] = [];
      if (o.check !== 'archive') {
        results.push(await runWorkflow(client, cfg, { workflow: runbooks.backupFreshness, input: { cluster: o.cluster }, id: workflowId('freshness', o.cluster), summary: `Backup freshness of cluster ${o.cluster}` }));
      }
      if (o.check !== 'freshness') {
        results.push(await runWorkflow(client, cfg, { workflow: runbooks.archiveHealth, input: { cluster: o.cluster }, id: workflowId('archive-health', o.cluster), summary: `WAL archive health of cluster ${o.cluster}` }));
      }
      const health = cfg.clusters.find((c) => c.name === o.cluster)?.health;
      print(results.map((r) => formatHealthResult(r, health?.maxArchiveAge)).join('\n'), results);
      if (results.some((r) => !r.ok)) process.exitCode = 2;
    });
}
