/** `pgdr drill`: run a verification drill, follow its steps, print a readable report. */
import type { Command } from 'commander';
import type { LoadedConfig } from '../common/config';
import type { DrillResult } from '../common/drill';
import { checkInput, drillInputSchema } from '../common/inputs';
import { bytes, when } from './format';
import { CliError, connectClient, runWorkflow, workflowId } from './temporal';
import * as runbooks from '../workflows';

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Which setting the drill's RTO target came from, as workflows/verify-drill.ts picks it: drill.rto, else rto.pitr for a PITR target, else rto.fullSite. */
export function rtoSetting(r: Pick<DrillResult, 'target'>, cfg?: LoadedConfig): string {
  if (cfg?.clusters.find((c) => c.name === (r as DrillResult).cluster)?.drill.rto) return 'drill.rto';
  return r.target.type !== 'immediate' ? 'rto.pitr' : 'rto.fullSite';
}

export function formatDrillResult(r: DrillResult, setting = rtoSetting(r)): string {
  const lines = [
    `${r.passed ? 'PASSED' : 'FAILED'}: verification drill of cluster ${r.cluster} (stanza ${r.stanza})`,
  ];
  if (r.set) lines.push(`  proven set   ${r.set.label} (${r.set.type}, taken ${when(r.set.startedAt)} → ${when(r.set.stoppedAt)}, ${bytes(r.set.size)})`);
  lines.push(`  target       ${r.target.type}${r.target.value ? ` ${r.target.value}` : ''}`);
  if (r.reached) {
    const bits = [r.reached.stoppedAt, r.reached.consistentAt && `consistent at ${r.reached.consistentAt}`, r.reached.lastReplayTime && `last replayed commit ${when(r.reached.lastReplayTime)}`, r.reached.timeline && `timeline ${r.reached.timeline}`].filter(Boolean);
    lines.push(`  reached      ${bits.join('; ') || 'end of the backup'}`);
  }
  if (r.rpo) lines.push(`  RPO proof    restored up to ${r.rpo.lastRestoredCommit ? when(r.rpo.lastRestoredCommit) : '?'} for target ${when(r.rpo.target)}${r.rpo.gapMs !== null ? ` — ${r.rpo.gapMs} ms behind the target` : ''}; ${r.rpo.markers} marker(s)`);
  const t = r.timings;
  lines.push(`  timings      verify ${secs(t.verifyMs)} (concurrent), restore ${secs(t.restoreMs)}, recovery ${secs(t.recoveryMs)}, validation ${secs(t.validationMs)}`);
  lines.push(`  measured RTO ${secs(t.totalMs)} (target ${r.rtoTarget}: ${setting}${r.rtoExceeded ? ' — EXCEEDED' : ''}); whole drill ${secs(t.wallMs)}`);
  if (r.validation) {
    for (const c of r.validation.checks) lines.push(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
  }
  if (r.annotated) lines.push(`  annotated    pgdr-verified=${r.annotated} on set ${r.set?.label}`);
  if (r.failure) lines.push(`  failed at    ${r.failure.step}: ${r.failure.message}`);
  lines.push(`  scratch copy ${r.scratchDir || '(none)'} stopped and deleted`);
  return lines.join('\n');
}

export function registerDrillCommands(program: Command, ctx: { config: () => LoadedConfig; print: (text: string, json: unknown) => void }): void {
  program
    .command('drill')
    .description('verification drill: verify the repo, restore a backup set into a scratch copy, validate it, delete it')
    .requiredOption('--cluster <name>', 'cluster from the config')
    .option('--set <label>', 'backup set label or "latest" (default latest)')
    .option('--time <time>', 'restore to this time (ISO 8601); "marker" proves the RPO with a marker the drill writes now')
    .option('--name <restore-point>', 'restore to a named restore point')
    .option('--lsn <lsn>', 'restore to an LSN')
    .option('--repo <n>', 'repository number', (v) => Number(v))
    .action(async (o: { cluster: string; set?: string; time?: string; name?: string; lsn?: string; repo?: number }) => {
      const cfg = ctx.config();
      const targets = [o.time !== undefined, o.name !== undefined, o.lsn !== undefined].filter(Boolean).length;
      if (targets > 1) throw new CliError('give at most one of --time, --name, --lsn');
      const target =
        o.time !== undefined
          ? { type: 'time', ...(o.time === 'marker' ? {} : { value: o.time }) }
          : o.name
            ? { type: 'name', value: o.name }
            : o.lsn
              ? { type: 'lsn', value: o.lsn }
              : undefined;
      const input = JSON.parse(JSON.stringify({ cluster: o.cluster, set: o.set, target, repo: o.repo })) as object;
      const check = checkInput(drillInputSchema, input, 'drill');
      if (!check.ok) throw new CliError(check.message);
      const client = await connectClient(cfg);
      const id = workflowId('drill', o.cluster);
      const r = await runWorkflow(client, cfg, {
        workflow: runbooks.verifyDrill,
        input: check.value,
        id,
        summary: `Verification drill of cluster ${o.cluster}`,
        follow: !process.argv.includes('--json'),
      });
      const setting = rtoSetting(r, cfg);
      ctx.print(formatDrillResult(r, setting), { ...r, workflowId: id, rtoSetting: setting });
    });
}
