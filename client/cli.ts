/**
 * The pgdr command line. Every runbook command starts a workflow, follows its steps and prints a readable
 * result (or JSON with --json). Errors are one clear line plus a hint, with a non-zero exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, defaultConfigPath, loadConfig, type LoadedConfig } from '../common/config';
import { backupInputSchema, checkInput } from '../common/inputs';
import { PROJECT_ROOT, STATE_DIR } from '../common/paths';
import type { StanzaInfo } from '../common/types';
import { formatBackupResult, formatStanzaInfo, times } from './format';
import { CliError, connectClient, EXIT_CODES, runWorkflow, workflowId, type ErrorKind } from './temporal';
import { registerApprovalCommands } from './approvals-cli';
import { registerDrillCommands } from './drill-cli';
import { registerScheduleCommands } from './schedules-cli';
import { registerRestoreCommands } from './restore-cli';
import { registerDrCommands } from './dr-cli';
import { registerRunsCommands } from './runs-cli';
import { registerSharedConfigCommands } from './shared-config-cli';
import * as runbooks from '../workflows';

const program = new Command();
program
  .name('pgdr')
  .description('PostgreSQL disaster-recovery runbooks (pgBackRest) as durable Temporal workflows')
  .option('-c, --config <file>', 'config file (default: $PGDR_CONFIG, ./pgdr.yaml, or the embedded demo)')
  .option('--json', 'print results as JSON')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ outputError: (text, write) => (jsonMode() ? undefined : write(text)) });

const globals = () => program.opts<{ config?: string; json?: boolean }>();
/** --json, also when the error came before commander could parse it. */
const jsonMode = () => Boolean(globals().json) || process.argv.slice(2).includes('--json');
const config = (): LoadedConfig => loadConfig(defaultConfigPath(PROJECT_ROOT, globals().config, STATE_DIR));

/** Fail fast, before anything starts, for a cluster the config does not have. */
function requireClusterName(cfg: LoadedConfig, name: string): void {
  if (!cfg.clusters.some((c) => c.name === name)) {
    throw new CliError(`unknown cluster "${name}" in ${cfg.file}`, `configured clusters: ${cfg.clusters.map((c) => c.name).join(', ')}`, 'usage');
  }
}
/** Text for people (times in one format), or the result as JSON (ISO 8601 times) with --json. */
const print = (text: string, json: unknown) => process.stdout.write(`${globals().json ? JSON.stringify(json, null, 2) : times(text)}\n`);

function collect(value: string, prev: string[]) {
  return [...prev, value];
}

function parseAnnotations(list: string[]): Record<string, string> | undefined {
  if (!list.length) return undefined;
  const out: Record<string, string> = {};
  for (const a of list) {
    const i = a.indexOf('=');
    if (i <= 0) throw new CliError(`annotation "${a}" is not key=value`);
    out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}

program
  .command('backup')
  .description('take a full, diff or incr backup, or a named snapshot (full backup + restore point)')
  .requiredOption('--cluster <name>', 'cluster from the config')
  .addOption(new Option('--type <type>', 'backup type (required unless --snapshot)').choices(['full', 'diff', 'incr']))
  .option('--snapshot <name>', 'named snapshot, e.g. pre-migration-v2.3 (always a full backup)')
  .option('--annotation <key=value>', 'annotation stored with the set (repeatable)', collect, [])
  .option('--repo <n>', 'repository number', (v) => Number(v))
  .action(async (o: { cluster: string; type?: string; snapshot?: string; annotation: string[]; repo?: number }) => {
    const cfg = config();
    if (!o.type && !o.snapshot) throw new CliError('choose the backup type: --type full, diff or incr (or --snapshot <name>)', 'a workflow input without "type" takes an incr, as pgBackRest does', 'usage');
    const input = { cluster: o.cluster, type: o.type, snapshot: o.snapshot, annotations: parseAnnotations(o.annotation), repo: o.repo };
    const clean = JSON.parse(JSON.stringify(input)) as object;
    const check = checkInput(backupInputSchema, clean, 'backup');
    if (!check.ok) throw new CliError(check.message, undefined, 'usage');
    requireClusterName(cfg, o.cluster);
    const client = await connectClient(cfg);
    const what = o.snapshot ? `snapshot ${o.snapshot}` : `${o.type} backup`;
    const id = workflowId('backup', o.cluster);
    const result = await runWorkflow(client, cfg, {
      workflow: runbooks.backup,
      input: check.value,
      id,
      summary: `${what} of cluster ${o.cluster}`,
      follow: !globals().json,
    });
    print(`${formatBackupResult(result)}\n  workflow  ${id}`, { workflowId: id, ...result });
  });

program
  .command('info')
  .description('backup sets and the recoverable window of one cluster or all')
  .option('--cluster <name>', 'cluster (default: all)')
  .option('--repo <n>', 'repository number', (v) => Number(v))
  .action(async (o: { cluster?: string; repo?: number }) => {
    const cfg = config();
    if (o.cluster) requireClusterName(cfg, o.cluster);
    const clusters = o.cluster ? [o.cluster] : cfg.clusters.map((c) => c.name);
    const client = await connectClient(cfg);
    const results: Record<string, StanzaInfo> = {};
    for (const name of clusters) {
      results[name] = await runWorkflow(client, cfg, {
        workflow: runbooks.backupStatus,
        input: { cluster: name, ...(o.repo ? { repo: o.repo } : {}) },
        id: workflowId('status', name),
        summary: `Backup status of cluster ${name}`,
      });
    }
    print(
      Object.entries(results)
        .map(([n, i]) => formatStanzaInfo(n, i))
        .join('\n\n'),
      o.cluster ? results[o.cluster] : results,
    );
  });

const stanza = program.command('stanza').description('pgBackRest stanza');
stanza
  .command('setup')
  .description('check archive settings, stanza-create and check')
  .requiredOption('--cluster <name>', 'cluster from the config')
  .option('--fix-archive-settings', 'set archive_mode/wal_level/archive_command with ALTER SYSTEM when wrong')
  .action(async (o: { cluster: string; fixArchiveSettings?: boolean }) => {
    const cfg = config();
    requireClusterName(cfg, o.cluster);
    const client = await connectClient(cfg);
    const r = await runWorkflow(client, cfg, {
      workflow: runbooks.setupStanza,
      input: { cluster: o.cluster, ...(o.fixArchiveSettings ? { fixArchiveSettings: true } : {}) },
      id: workflowId('stanza-setup', o.cluster),
      summary: `Stanza setup for cluster ${o.cluster}`,
      follow: !globals().json,
    });
    print(`Stanza ${r.stanza} of cluster ${r.cluster} is ${r.created ? 'created' : 'in place'} and pgbackrest check passed.`, r);
  });

const configCmd = program.command('config').description('configuration');
// `config check` (the file, and its shared part against the published one) and `config publish`.
registerSharedConfigCommands(configCmd, { config, print });

program
  .command('worker')
  .description('run the worker for this host (one per database host)')
  .option('--host <name...>', 'hosts this worker owns (default: every host in the config)')
  .option('--no-workflows', 'do not serve the shared workflow task queue')
  .action(async (o: { host?: string[]; workflows: boolean }) => {
    const cfg = config();
    // The worker (and its native runtime) loads only here and in `pgdr dev`, not for `pgdr approve` and the like.
    const { createWorkerSet } = await import('../worker/worker.js');
    const set = await createWorkerSet({ config: cfg, hosts: o.host, workflows: o.workflows }).catch((err: Error) => {
      // This file's shared part disagrees with the published one: a config error (exit 3), the message says the fix.
      if (err.name === 'SharedConfigMismatchError') throw new CliError(err.message, 'pgdr config check shows the differences', 'config');
      throw err;
    });
    process.stderr.write(`pgdr worker serving ${set.taskQueues.join(', ')} on ${cfg.temporal.address}\n`);
    const stop = () => set.shutdown();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    await set.run();
  });

program
  .command('dev')
  .description('the embedded default: Temporal dev server, a demo cluster and the worker (npm start)')
  .action(async () => {
    const { runDev } = await import('../worker/dev.js');
    await runDev();
  });

registerApprovalCommands(program, { config, print });
registerDrillCommands(program, { config, print });
registerScheduleCommands(program, { config, print });
registerRestoreCommands(program, { config, print });
registerDrCommands(program, { config, print });
registerRunsCommands(program, { config, print });

/** One error: a line plus a hint for people, `{"error": {…}}` on stdout with --json; the exit code says its kind. */
function reportError(kind: ErrorKind, message: string, hint?: string, workflowId?: string): void {
  const exitCode = EXIT_CODES[kind];
  if (jsonMode()) {
    process.stdout.write(`${JSON.stringify({ error: { kind, message, ...(hint ? { hint } : {}), ...(workflowId ? { workflowId } : {}), exitCode } }, null, 2)}\n`);
  } else {
    process.stderr.write(`pgdr: error: ${times(message)}\n${hint ? `  hint: ${hint}\n` : ''}`);
  }
  process.exitCode = exitCode;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return; // --help, --version
      reportError('usage', err.message.replace(/^error: /, ''), 'run with --help for usage');
    } else if (err instanceof ConfigError) {
      reportError('config', err.message, 'fix the file, then run `pgdr config check`');
    } else if (err instanceof CliError) {
      reportError(err.kind, err.message, err.hint, err.workflowId);
      // The SDK goes on retrying the wait on the lost server for a while: the error is said, so exit now.
      if (err.kind === 'server-lost') process.exit(process.exitCode);
    } else {
      reportError('failed', (err as Error).message ?? String(err));
    }
  }
}

if (require.main === module) void main(process.argv);
