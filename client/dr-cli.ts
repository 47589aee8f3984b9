/**
 * CLI of full-site recovery: `pgdr dr full-site`, `pgdr dr retry|abort <workflowId>` and
 * `pgdr report <workflowId>`. Registered on the main program by client/cli.ts.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { checkInput, fullSiteRecoveryInputSchema } from '../common/inputs';
import type { DrPause } from '../common/dr-report';
import { drReportQuery, fullSiteStateQuery, type FullSiteRecoveryResult } from '../workflows/full-site-recovery';
import { pausesQuery, pauseUpdates, type Pause, type PauseDecisionArgs } from '../workflows/pause';
import { when } from './format';
import { askOrWithdrawn, note } from './terminal';
import { defaultIdentity, type CliContext } from './approvals-cli';
import { ask, guide, interactive, type GuideStep } from './guide';
import { targetFromOptions } from './restore-cli';
import { CliError, connectClient, runWorkflow, workflowId } from './temporal';
import { rootMessage } from '../common/errors';
import * as runbooks from '../workflows';

async function update(client: Client, wf: string, name: 'retry' | 'abort', args: PauseDecisionArgs): Promise<DrPause> {
  try {
    return await client.workflow.getHandle(wf).executeUpdate(pauseUpdates[name], { args: [args] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(`refused: ${rootMessage(err)}`);
    throw err;
  }
}

/** Full-site recovery's own question each round: a pause with its error (at a terminal: retry / abort). */
function pauseStep(client: Client, wf: string, me: string): GuideStep {
  return async (handle, shown) => {
    const paused = (await handle.query(fullSiteStateQuery).catch(() => undefined))?.paused;
    if (!paused || shown.has(`pause:${paused.since}`)) return;
    shown.add(`pause:${paused.since}`);
    process.stderr.write(
      `\n  ⏸ PAUSED — "${paused.step}" failed:\n    ${paused.error.split('\n').join('\n    ')}\n` +
        `    fix the host, then: pgdr dr retry ${wf} --as <you> --note "…"   or   pgdr dr abort ${wf} --as <you> --reason "…"\n`,
    );
    if (!interactive()) return;
    // The question follows the run: someone may decide this pause from another terminal, Slack or the UI.
    const decided = watchPause(handle, paused.since);
    try {
      const a = (await askOrWithdrawn('    [r]etry now, [a]bort, or leave it paused [Enter]? ', { signal: decided.signal }))?.toLowerCase();
      if (a === 'r' || a === 'retry') {
        const note = await askOrWithdrawn('    What was fixed (note): ', { signal: decided.signal });
        if (note !== undefined) await update(client, wf, 'retry', { by: me, note: note || undefined }).catch((e) => process.stderr.write(`    ${(e as Error).message}\n`));
      } else if (a === 'a' || a === 'abort') {
        const reason = await askOrWithdrawn('    Reason: ', { signal: decided.signal, required: 'a reason is needed to abort' });
        if (reason !== undefined) await update(client, wf, 'abort', { by: me, reason }).catch((e) => process.stderr.write(`    ${(e as Error).message}\n`));
      }
      const d = decided.decision();
      if (d) note(`    ✓ "${paused.step}": ${d.decision} by ${d.by}${d.decidedAt ? ` at ${when(d.decidedAt)}` : ''}${d.note ? ` (${d.note})` : ''}; question withdrawn\n`);
    } finally {
      decided.stop();
    }
  };
}

/** Watch one pause of a run (the `pauses` query): aborts the signal once someone has decided it. */
function watchPause(handle: WorkflowHandle, since: string) {
  const ac = new AbortController();
  let found: Pause | undefined;
  const timer = setInterval(() => {
    void handle
      .query(pausesQuery)
      .then((all) => {
        const p = all.find((x) => x.since === since);
        if (p?.decision && !ac.signal.aborted) {
          found = p;
          ac.abort();
        }
      })
      .catch(() => undefined);
  }, 1000);
  return { signal: ac.signal, decision: () => found, stop: () => clearInterval(timer) };
}

/** The report of a run: its result, the details of its failure, or the live query while it runs. */
export async function reportOf(client: Client, wf: string): Promise<{ markdown: string; status: string; result?: FullSiteRecoveryResult }> {
  const handle = client.workflow.getHandle(wf);
  const desc = await handle.describe().catch((err: Error) => {
    throw new CliError(`no workflow ${wf}: ${err.message}`);
  });
  if (desc.type !== 'fullSiteRecovery') throw new CliError(`${wf} is a ${desc.type} run, not a full-site recovery`);
  const status = desc.status.name;
  if (status === 'COMPLETED') {
    const r = (await handle.result()) as FullSiteRecoveryResult;
    return { markdown: r.report.markdown, status, result: r };
  }
  if (status === 'FAILED') {
    try {
      await handle.result();
    } catch (err) {
      const details = err instanceof WorkflowFailedError ? ((err.cause as { details?: unknown[] })?.details?.[0] as FullSiteRecoveryResult | undefined) : undefined;
      if (details?.report?.markdown) return { markdown: details.report.markdown, status, result: details };
    }
  }
  // Running, cancelled or terminated: ask the workflow (a worker replays it when it has ended).
  const markdown = await handle.query(drReportQuery).catch((err: Error) => {
    throw new CliError(`cannot read the report of ${wf} (${status}): ${err.message}`, 'is a pgdr worker running?');
  });
  return { markdown, status };
}

export function registerDrCommands(program: Command, ctx: CliContext): void {
  const dr = program.command('dr').description('disaster recovery: rebuild a lost database host from the repository (full-site recovery), or rehearse it (--drill)');

  dr.command('full-site')
    .description('full-site recovery: approval, sign-offs, checks on the new host, restore, start, checks, applications, DNS, DR report')
    .requiredOption('--cluster <name>', 'cluster from the config')
    .requiredOption('--host <name>', 'the host to rebuild on (its worker serves pgdr-host-<name> with its own pgdr.yaml)')
    .option('--repo <n>', 'repository to restore from (default: the first configured on the new host)', (v) => Number(v))
    .option('--time <time>', 'point in time, with a zone (default: latest, everything the archive holds)')
    .option('--name <restorePoint>', 'a named restore point')
    .option('--lsn <lsn>', 'an LSN')
    .option('--immediate', 'the end of the backup set')
    .option('--set <label>', 'backup set to restore from')
    .option('--drill', 'rehearse into a scratch folder on the host; production, applications and DNS untouched')
    .option('--reason <text>', 'why (asked for at a terminal; a drill defaults to "DR drill")')
    .option('--as <identity>', 'who runs it (default $PGDR_IDENTITY or the OS user)')
    .option('--report-file <path>', 'also write the Markdown report here')
    .action(async (o: { cluster: string; host: string; repo?: number; time?: string; name?: string; lsn?: string; immediate?: boolean; set?: string; drill?: boolean; reason?: string; as?: string; reportFile?: string }) => {
      const cfg = ctx.config();
      if (!cfg.clusters.some((c) => c.name === o.cluster)) throw new CliError(`unknown cluster "${o.cluster}" in ${cfg.file}`, `configured clusters: ${cfg.clusters.map((c) => c.name).join(', ')}`);
      const me = o.as ?? defaultIdentity();
      let reason = o.reason;
      if (!reason && o.drill) reason = 'DR drill (full-site recovery rehearsal)';
      if (!reason) {
        if (!interactive()) throw new CliError('a full-site recovery needs --reason "<why>"');
        reason = await ask('Reason for this full-site recovery: ', { required: 'a reason is required (it goes into the approval request and the DR report)' });
      }
      const target = o.time || o.name || o.lsn || o.immediate || o.set ? targetFromOptions(o) : undefined;
      const input = JSON.parse(JSON.stringify({ cluster: o.cluster, targetHost: o.host, repo: o.repo, target, reason, requestedBy: me, drill: o.drill || undefined })) as object;
      const check = checkInput(fullSiteRecoveryInputSchema, input, 'dr full-site');
      if (!check.ok) throw new CliError(check.message);
      const client = await connectClient(cfg);
      if (!o.drill && o.host === cfg.clusters.find((c) => c.name === o.cluster)!.host) {
        // The config says the cluster lives on that host: refuse when it still runs there (its archiver answers).
        const info = await runWorkflow(client, cfg, { workflow: runbooks.backupStatus, input: { cluster: o.cluster }, id: workflowId('status', o.cluster), summary: `Backup status of cluster ${o.cluster} (full-site request check)` });
        if (info.window?.toSource === 'archiver') {
          throw new CliError(
            `host ${o.host} still runs cluster ${o.cluster} (PostgreSQL answers there): a full-site recovery rebuilds a LOST host's cluster on another host. Nothing was started.`,
            'name the new host (--host <other>), or rehearse on this one with --drill',
            'usage',
          );
        }
      }
      const id = workflowId(o.drill ? 'dr-drill' : 'dr-full-site', o.cluster);
      let finished = false;
      const guiding = guide(client, id, me, () => finished, pauseStep(client, id, me));
      let result: FullSiteRecoveryResult;
      try {
        result = await runWorkflow(client, cfg, {
          workflow: runbooks.fullSiteRecovery,
          input: check.value,
          id,
          summary: `${o.drill ? 'DR DRILL' : 'FULL-SITE RECOVERY'} of ${o.cluster} onto host ${o.host} (requested by ${me})`,
          follow: true,
          destructive: !o.drill,
        });
      } catch (err) {
        finished = true;
        await guiding;
        // Aborted or failed: the report exists anyway.
        const r = await reportOf(client, id).catch(() => undefined);
        if (r) {
          process.stdout.write(`${r.markdown}\n`);
          if (o.reportFile) writeFileSync(o.reportFile, r.markdown);
        }
        throw err;
      } finally {
        finished = true;
        await guiding;
      }
      if (o.reportFile) writeFileSync(o.reportFile, result.report.markdown);
      ctx.print(
        [
          result.report.markdown,
          '',
          result.report.file ? `Report: ${result.report.file} (and ${result.report.svgFile}) on ${result.report.host}; again with: pgdr report ${id}` : `Report not written (${result.report.writeError}); see: pgdr report ${id}`,
        ].join('\n'),
        result,
      );
    });

  dr.command('retry <workflowId>')
    .description('run the failed step of a paused full-site recovery again (after fixing the host)')
    .option('--as <identity>', 'who (default $PGDR_IDENTITY or the OS user)')
    .option('--note <text>', 'what was fixed')
    .action(async (wf: string, o: { as?: string; note?: string }) => {
      const client = await connectClient(ctx.config());
      const p = await update(client, wf, 'retry', { by: o.as ?? defaultIdentity(), note: o.note });
      ctx.print(`↻ retrying "${p.step}" (it had failed: ${p.error.split('\n')[0]})`, p);
    });

  dr.command('abort <workflowId>')
    .description('stop a paused full-site recovery; it writes the DR report')
    .requiredOption('--reason <text>', 'why')
    .option('--as <identity>', 'who (default $PGDR_IDENTITY or the OS user)')
    .action(async (wf: string, o: { as?: string; reason: string }) => {
      const client = await connectClient(ctx.config());
      const p = await update(client, wf, 'abort', { by: o.as ?? defaultIdentity(), reason: o.reason });
      ctx.print(`✗ aborted at "${p.step}"; the report: pgdr report ${wf}`, p);
    });

  program
    .command('report <workflowId>')
    .description('the DR report of a full-site recovery or drill (Markdown), finished or still running')
    .option('--out <file>', 'write it to a file as well')
    .action(async (wf: string, o: { out?: string }) => {
      const client = await connectClient(ctx.config());
      const r = await reportOf(client, wf);
      if (o.out) writeFileSync(o.out, r.markdown);
      ctx.print(r.markdown, { workflowId: wf, status: r.status, markdown: r.markdown, file: r.result?.report.file, svgFile: r.result?.report.svgFile });
    });
}
