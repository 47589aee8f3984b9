/**
 * CLI commands of the restore runbooks: `pgdr restore`, `pgdr check`, `pgdr clusters list|drop`,
 * `pgdr cleanup`. Registered on the main program by client/cli.ts.
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { LoadedConfig } from '../common/config';
import { checkInput, restoreInPlaceInputSchema, type RestoreInPlaceInput } from '../common/inputs';
import { parseTargetTime, resolveRestoreTarget, timeMicros, type RestoreTarget } from '../common/restore-target';
import type { StanzaInfo } from '../common/types';
import type { ChecklistSnapshot } from '../workflows/checklist';
import { pauseUpdates } from '../workflows/pause';
import { defaultIdentity, type CliContext } from './approvals-cli';
import { table } from './format';
import { guide, signOff } from './guide';
import { ask, interactive, note } from './terminal';
import { CliError, connectClient, runWorkflow, workflowId } from './temporal';
import { rootMessage } from '../common/errors';
import * as runbooks from '../workflows';

interface TargetOptions {
  time?: string;
  name?: string;
  lsn?: string;
  xid?: string;
  immediate?: boolean;
  latest?: boolean;
  set?: string;
  repo?: number;
  timeline?: string;
  confirmUnknownName?: boolean;
}

/** The one restore target the options name (default: latest). */
export function targetFromOptions(o: TargetOptions): RestoreTarget {
  const chosen = (
    [
      ['time', o.time],
      ['name', o.name],
      ['lsn', o.lsn],
      ['xid', o.xid],
      ['immediate', o.immediate ? '' : undefined],
      ['latest', o.latest ? '' : undefined],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (chosen.length > 1) throw new CliError(`choose one restore target, not ${chosen.map(([k]) => `--${k}`).join(' and ')}`);
  const [type, value] = chosen[0] ?? ['latest', ''];
  const t: RestoreTarget = { type };
  if (value) t.value = value;
  if (o.set) t.set = o.set;
  if (o.repo) t.repo = o.repo;
  if (o.timeline) t.timeline = o.timeline;
  if (o.confirmUnknownName) t.confirmUnknownName = true;
  return t;
}

function checklistText(lists: ChecklistSnapshot[]): string {
  return lists
    .map((l) => [`  ${l.name}:`, ...l.items.map((i) => `    ${i.state === 'failed' ? '✗' : i.state === 'pending' ? '☐' : i.state === 'skipped' ? '–' : '✓'} ${i.title}${i.by ? ` (${i.state} by ${i.by})` : ''}${i.note ? `: ${i.note}` : ''}`)].join('\n'))
    .join('\n');
}

/**
 * Check the restore target against the recoverable window before anything starts (a runbook is never started
 * that its own target check would fail). A time seconds ago is usually "after the last archived WAL": the
 * segment holding it is still being written. When the cluster runs, close the gap — commit, switch WAL, wait
 * until it is archived, check again — with --switch-wal or after asking; otherwise say exactly what to do.
 *
 * Inside the window is not always enough: recovery to a time stops only at a commit after it, and the window
 * ends at the time the archiver last archived a segment, which a WAL switch without a commit (`pgbackrest
 * check`, a backup) moves on. So a time after the newest backup set ends gets a commit after it too (the same
 * runbook; one empty transaction), unless --no-switch-wal; if the cluster does not run, the archive is all
 * there is and the restore goes on.
 */
export async function checkTargetFirst(client: Client, cfg: LoadedConfig, cluster: string, target: RestoreTarget, switchWal: boolean | undefined): Promise<void> {
  const read = () =>
    runWorkflow(client, cfg, {
      workflow: runbooks.backupStatus,
      input: { cluster, ...(target.repo ? { repo: target.repo } : {}) },
      id: workflowId('status', cluster),
      summary: `Backup status of cluster ${cluster} (restore target check)`,
    });
  const closeGap = () =>
    runWorkflow(client, cfg, {
      workflow: runbooks.closeWalGap,
      input: { cluster },
      id: workflowId('switch-wal', cluster),
      summary: `Switch WAL on cluster ${cluster} and wait until it is archived (restore target ${target.value ?? target.type})`,
      follow: true,
    });
  const status = await read();
  let check = resolveRestoreTarget(target, status, new Date().toISOString());
  if (check.ok) {
    if (switchWal !== false && afterNewestSet(target, status)) {
      await closeGap().then(
        () => note('  ✓ a commit after the target time is archived\n'),
        (err: Error) => note(`  (no commit after the target could be made on ${cluster}: ${err.message}; the restore uses what the archive holds)\n`),
      );
    }
    return;
  }
  if (!/after the last archived WAL/.test(check.message)) throw new CliError(`${check.message}. Nothing was started.`, undefined, 'usage');
  const howTo =
    `the WAL holding that time is not archived yet: pass --switch-wal (pgdr switches WAL on the running cluster and waits until it is archived), ` +
    `or run \`SELECT pg_switch_wal()\` on the primary of ${cluster}, or wait up to its archive_timeout; then run the restore again`;
  let go = switchWal;
  if (go === undefined && interactive()) {
    note(`${check.message}\n`);
    go = /^y(es)?$/i.test(await ask(`Switch WAL on ${cluster} now, wait until it is archived, and check the target again? [y/N] `));
  }
  if (!go) throw new CliError(`${check.message}. Nothing was started.`, howTo, 'usage');
  await closeGap().catch((err: Error) => {
    throw new CliError(`cannot close the WAL gap on ${cluster}: ${err.message}`, `is ${cluster} running and archiving? otherwise wait up to its archive_timeout, or pick an earlier target`);
  });
  check = resolveRestoreTarget(target, await read(), new Date().toISOString());
  if (!check.ok) throw new CliError(`${check.message}. Nothing was started.`, howTo, 'usage');
  note(`  ✓ target is inside the recoverable window now\n`);
}

/** A time target later than the newest backup set's end: recovery replays WAL archived after that set. */
function afterNewestSet(target: RestoreTarget, status: StanzaInfo): boolean {
  if (target.type !== 'time' || !target.value || !status.sets.length) return false;
  const at = parseTargetTime(target.value);
  return at.ok && at.us > Math.max(...status.sets.map((s) => timeMicros(s.stoppedAt)));
}

export function registerRestoreCommands(program: Command, ctx: CliContext): void {
  program
    .command('restore')
    .description('restore a cluster: into a new cluster (preferred) or IN PLACE (destructive: token, checklist, approval, rollback)')
    .requiredOption('--cluster <name>', 'cluster from the config')
    .option('--new-cluster <name>', 'restore into a new cluster with this name (non-destructive)')
    .option('--in-place', 'restore over the cluster itself (its data directory is moved aside, never deleted)')
    .option('--time <time>', 'point in time, with a zone: "2025-01-15 14:30:00+00"')
    .option('--name <restorePoint>', 'a named restore point (e.g. from pgdr backup --snapshot)')
    .option('--lsn <lsn>', 'an LSN, e.g. 0/3000060')
    .option('--xid <xid>', 'a transaction id (needs --set)')
    .option('--immediate', 'the end of the backup set, no WAL replay beyond consistency')
    .option('--latest', 'everything the archive holds (default)')
    .option('--set <label>', 'backup set to restore from')
    .option('--repo <n>', 'repository number', (v) => Number(v))
    .option('--timeline <tli>', 'recovery_target_timeline: current, latest or a number')
    .option('--confirm-unknown-name', 'allow a restore point pgdr did not create (with --set)')
    .option('--databases <list>', 'new cluster: only these databases, comma-separated')
    .option('--port <port>', 'new cluster: port (default: a free one)', (v) => Number(v))
    .option('--data-dir <dir>', 'new cluster: data directory')
    .option('--confirm <token>', 'in place: the confirmation token (asked for at a terminal)')
    .option('--reason <text>', 'why (required in place; asked for at a terminal)')
    .option('--as <identity>', 'who asks (default $PGDR_IDENTITY or the OS user)')
    .option('--switch-wal', 'when the target time is not archived yet: commit and switch WAL on the running cluster and wait until it is (asked at a terminal); a time after the newest backup set gets this commit anyway')
    .option('--no-switch-wal', 'never switch WAL: fail with what to do, or restore from what the archive holds')
    .action(async (o: TargetOptions & { cluster: string; newCluster?: string; inPlace?: boolean; databases?: string; port?: number; dataDir?: string; confirm?: string; reason?: string; as?: string; switchWal?: boolean }) => {
      const cfg = ctx.config();
      const prod = cfg.clusters.find((c) => c.name === o.cluster);
      if (!prod) throw new CliError(`unknown cluster "${o.cluster}" in ${cfg.file}`, `configured clusters: ${cfg.clusters.map((c) => c.name).join(', ')}`, 'usage');
      if (Boolean(o.newCluster) === Boolean(o.inPlace)) throw new CliError('choose --new-cluster <name> (non-destructive) or --in-place', undefined, 'usage');
      const target = targetFromOptions(o);
      const me = o.as ?? defaultIdentity();
      const switchWal = process.argv.includes('--switch-wal') ? true : process.argv.includes('--no-switch-wal') ? false : undefined;
      // In place: the token and the reason first (asked again until they are right), then the target.
      let inPlace: RestoreInPlaceInput | undefined;
      let confirmation = o.confirm;
      let reason = o.reason;
      const token = prod.restore.confirmationToken;
      if (o.inPlace) {
        if (confirmation === undefined) {
          if (!interactive()) throw new CliError(`an in-place restore needs --confirm ${token} (restore.confirmationToken of cluster ${o.cluster})`, undefined, 'usage');
          process.stderr.write(`An IN-PLACE restore replaces the current state of cluster ${o.cluster}; its data directory is moved aside, not deleted.\n`);
          for (;;) {
            confirmation = await ask(`Type ${token} to continue (restore.confirmationToken), or Enter to stop: `);
            if (!confirmation) throw new CliError('stopped: no confirmation token typed. Nothing was started.', undefined, 'usage');
            if (confirmation === token) break;
            process.stderr.write(`    that is not it: type exactly ${token}\n`);
          }
        }
        if (confirmation !== token) {
          throw new CliError(`the confirmation token does not match restore.confirmationToken of cluster ${o.cluster}: pass --confirm ${token}. Nothing was started.`, undefined, 'usage');
        }
        if (!reason?.trim()) {
          if (!interactive()) throw new CliError('an in-place restore needs --reason "<why>"', undefined, 'usage');
          reason = await ask('Reason for this restore: ', { required: 'a reason is required (it goes into the approval request and the audit log)' });
        }
        const check = checkInput(restoreInPlaceInputSchema, { cluster: o.cluster, target, confirmation, reason, requestedBy: me }, 'restore --in-place');
        if (!check.ok) throw new CliError(`${check.message}. Nothing was started.`, undefined, 'usage');
        inPlace = check.value;
      }
      const client = await connectClient(cfg);
      await checkTargetFirst(client, cfg, o.cluster, target, switchWal);
      if (o.newCluster) {
        const input = {
          cluster: o.cluster,
          target,
          name: o.newCluster,
          ...(o.port ? { port: o.port } : {}),
          ...(o.dataDir ? { dataDir: o.dataDir } : {}),
          ...(o.databases ? { databases: o.databases.split(',').map((d) => d.trim()).filter(Boolean) } : {}),
          requestedBy: me,
          ...(o.reason ? { reason: o.reason } : {}),
        };
        const newId = workflowId('restore-new', o.cluster);
        const r = await runWorkflow(client, cfg, {
          workflow: runbooks.restoreToNewCluster,
          input,
          id: newId,
          summary: `Restore ${o.cluster} into new cluster ${o.newCluster} (${target.type}${target.value ? ` ${target.value}` : ''})`,
          follow: true,
        });
        ctx.print(
          [
            `New cluster ${r.name} restored from ${r.source}: ${r.target}`,
            `  data      ${r.dataDir}`,
            `  connect   ${r.connect}`,
            `  recovery  ${(r.recovery.recoveryMs / 1000).toFixed(1)} s${r.recovery.stoppedAt ? `; ${r.recovery.stoppedAt}` : ''}; timeline ${r.recovery.timeline}`,
            ...(r.droppedDatabases.length ? [`  dropped   ${r.droppedDatabases.join(', ')} (not asked for)`] : []),
            checklistText(r.checklists),
            `It keeps running until \`pgdr clusters stop ${r.name}\` (the embedded default stops it with Ctrl-C; \`pgdr clusters start ${r.name}\` starts it again); remove it with: pgdr clusters drop ${r.name}`,
          ].join('\n'),
          { workflowId: newId, ...r },
        );
        return;
      }
      const id = workflowId('restore-in-place', o.cluster);
      let finished = false;
      const guiding = guide(client, id, me, () => finished, undefined, { approvers: cfg.approvals.restoreInPlace?.approvers ?? [], requestedBy: me });
      try {
        const r = await runWorkflow(client, cfg, {
          workflow: runbooks.restoreInPlace,
          input: inPlace!,
          id,
          summary: `IN-PLACE restore of ${o.cluster} (${target.type}${target.value ? ` ${target.value}` : ''}) requested by ${me}`,
          follow: true,
          destructive: true,
        });
        ctx.print(
          [
            `Cluster ${r.cluster} restored IN PLACE: ${r.target}`,
            `  recovery    ${(r.recovery.recoveryMs / 1000).toFixed(1)} s; timeline ${r.recovery.timeline}${r.recovery.stoppedAt ? `; ${r.recovery.stoppedAt}` : ''}`,
            `  original    kept at ${r.keptOriginalAt}`,
            ...(r.safetyBackup ? [`  safety net  backup ${r.safetyBackup.label}, restore point "${r.safetyBackup.restorePoint}"`] : []),
            `  approved by ${r.approvals.flatMap((a) => a.votes.filter((v) => v.decision === 'approve').map((v) => v.by)).join(', ')}`,
            checklistText(r.checklists),
            `When you no longer need the kept directory: pgdr cleanup --cluster ${r.cluster} --run ${r.run} --reason "…"`,
          ].join('\n'),
          { workflowId: id, ...r },
        );
      } finally {
        finished = true;
        await guiding;
      }
    });

  program
    .command('decide <workflowId> <choice>')
    .description('decide a paused runbook: retry, keep, roll-back (in-place restore past its point of no return) or abort')
    .option('--as <identity>', 'who decides (default $PGDR_IDENTITY or the OS user); must be on approvals.<kind>.approvers')
    .option('--note <text>', 'what was fixed, or why (abort needs it)')
    .action(async (wf: string, choice: string, o: { as?: string; note?: string }) => {
      const update = ({ retry: 'retry', keep: 'keep', 'roll-back': 'rollBack', abort: 'abort' } as const)[choice as 'retry'];
      if (!update) throw new CliError(`choice must be retry, keep, roll-back or abort (not "${choice}")`);
      const client = await connectClient(ctx.config());
      try {
        const p = await client.workflow.getHandle(wf).executeUpdate(pauseUpdates[update], { args: [{ by: o.as ?? defaultIdentity(), note: o.note, reason: o.note }] });
        ctx.print(`${choice}: "${p.step}" (paused since ${p.since})`, p);
      } catch (err) {
        throw new CliError(rootMessage(err));
      }
    });

  program
    .command('check <workflowId> <item>')
    .description('sign off a manual checklist item of a running runbook')
    .option('--as <identity>', 'who signs (default $PGDR_IDENTITY or the OS user)')
    .option('--note <text>', 'a note for the record')
    .option('--skip', 'skip an optional item (needs --note with the reason)')
    .action(async (wf: string, item: string, o: { as?: string; note?: string; skip?: boolean }) => {
      const cfg = ctx.config();
      const client = await connectClient(cfg);
      const r = await signOff(client, wf, item, o.as ?? defaultIdentity(), o.note, o.skip);
      ctx.print(`✓ ${r.title}: ${r.state} by ${r.by}${r.note ? ` (${r.note})` : ''}`, r);
    });

  const clusters = program.command('clusters').description('restored clusters (from pgdr restore --new-cluster)');
  clusters
    .command('list')
    .description('restored clusters on every host')
    .action(async () => {
      const cfg = ctx.config();
      const client = await connectClient(cfg);
      const list = await listRestored(client, cfg);
      ctx.print(
        list.length
          ? table([
              ['NAME', 'FROM', 'HOST', 'PORT', 'STATE', 'TARGET', 'DATA DIRECTORY'],
              ...list.map((r) => [r.name, r.source, r.host, String(r.port), r.running ? 'running' : 'stopped', r.target, r.dataDir]),
            ])
          : 'no restored clusters',
        list,
      );
    });
  const listRestored = (client: Client, cfg: LoadedConfig) =>
    runWorkflow(client, cfg, {
      workflow: runbooks.restoredClusters,
      input: {},
      id: workflowId('restored-clusters'),
      summary: 'List restored clusters',
    });
  for (const [verb, running] of [
    ['start', true],
    ['stop', false],
  ] as const) {
    clusters
      .command(`${verb} <name>`)
      .description(`${verb} a restored cluster (${running ? 'on its own port and socket' : 'fast shutdown; its data stays'})`)
      .action(async (name: string) => {
        const cfg = ctx.config();
        if (cfg.clusters.some((c) => c.name === name)) throw new CliError(`"${name}" is a configured production cluster; pgdr clusters ${verb} only acts on restored clusters`, undefined, 'usage');
        const client = await connectClient(cfg);
        const id = workflowId(`${verb}-restored`, name);
        const r = await runWorkflow(client, cfg, {
          workflow: runbooks.restoredClusterPower,
          input: { name, running },
          id,
          summary: `${running ? 'Start' : 'Stop'} restored cluster ${name}`,
        });
        ctx.print(
          `${r.name} on host ${r.host} ${r.changed ? (running ? 'started' : 'stopped') : running ? 'was already running' : 'was not running'}${running ? ` — psql -h ${r.socketDir} -p ${r.port} -U postgres` : ''}`,
          { ...r, restoredBy: r.workflowId, workflowId: id },
        );
      });
  }
  clusters
    .command('drop <name>')
    .description('stop a restored cluster and delete it (never a configured production cluster); a running one is asked about first')
    .option('-y, --yes', 'drop it even when it is running, without asking')
    .action(async (name: string, o: { yes?: boolean }) => {
      const cfg = ctx.config();
      if (cfg.clusters.some((c) => c.name === name)) throw new CliError(`"${name}" is a configured production cluster; pgdr clusters drop only removes restored clusters`, undefined, 'usage');
      const client = await connectClient(cfg);
      if (!o.yes) {
        const r = (await listRestored(client, cfg)).find((x) => x.name === name);
        if (!r) throw new CliError(`no restored cluster named "${name}" (pgdr clusters list)`, undefined, 'usage');
        if (r.running) {
          const question = `${name} is RUNNING on host ${r.host} (port ${r.port}); whoever uses it loses it. Drop it?`;
          if (!interactive()) throw new CliError(`${question} Pass --yes to drop a running cluster, or stop it first: pgdr clusters stop ${name}`, undefined, 'usage');
          if (!/^y(es)?$/i.test(await ask(`${question} [y/N] `))) throw new CliError(`not dropped: ${name} keeps running`, undefined, 'usage');
        }
      }
      const id = workflowId('drop-restored', name);
      const r = await runWorkflow(client, cfg, {
        workflow: runbooks.dropRestoredCluster,
        input: { name },
        id,
        summary: `Drop restored cluster ${name}`,
        follow: !process.argv.includes('--json'),
      });
      ctx.print(`Dropped ${r.name} on host ${r.host} (${r.dir} deleted)`, { workflowId: id, ...r });
    });

  program
    .command('cleanup')
    .description('delete the directories an in-place restore kept (needs its own approval)')
    .requiredOption('--cluster <name>', 'cluster')
    .requiredOption('--run <tag>', 'the in-place restore run tag (printed when it finished; also in the kept directory names)')
    .requiredOption('--reason <text>', 'why it can go')
    .option('--as <identity>', 'who asks (default $PGDR_IDENTITY or the OS user)')
    .action(async (o: { cluster: string; run: string; reason: string; as?: string }) => {
      const cfg = ctx.config();
      const client = await connectClient(cfg);
      const me = o.as ?? defaultIdentity();
      const id = workflowId('cleanup', o.cluster);
      let finished = false;
      const guiding = guide(client, id, me, () => finished);
      try {
        const r = await runWorkflow(client, cfg, {
          workflow: runbooks.cleanupRestore,
          input: { cluster: o.cluster, run: o.run, reason: o.reason, requestedBy: me },
          id,
          summary: `Clean up in-place restore ${o.run} of ${o.cluster}`,
          follow: true,
          destructive: true,
        });
        ctx.print(`Deleted: ${r.removed.join(', ')}`, r);
      } finally {
        finished = true;
        await guiding;
      }
    });
}
