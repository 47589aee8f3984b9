/**
 * Test harness over real components: a Temporal dev server (the project's pinned `temporal` binary through
 * @temporalio/testing's existing-path), PostgreSQL 15 clusters with pgBackRest stanzas in temp folders,
 * and pgdr workers. Every port is picked free, so test files never collide.
 */
import { Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import * as runbooks from '../../workflows';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { postmasterPid, processAlive, query } from '../../activities/postgres';
import { run } from '../../activities/process';
import { pickFreePort } from '../../common/net';
import { loadConfig, type LoadedConfig } from '../../common/config';
import { temporalBinary } from '../../common/paths';
import { configYaml, initLocalCluster, localCluster, startLocalCluster, stopLocalCluster, type LocalCluster, type LocalClusterSpec } from '../../worker/local-cluster';
import { startTemporalDevServer, type DevServer, type DevServerOptions } from '../../worker/temporal-dev-server';
import { createWorkerSet, installRuntime, type WorkerSet } from '../../worker/worker';
import { builtWorkflowBundle, bundleRunbooks } from '../../worker/workflow-bundle';
import { devServerSearchAttributeArgs } from '../../common/search-attributes';

/** A runbook's workflow function by its type name (for tests that go through runbooks by name). */
export function runbookNamed(name: string): Workflow {
  const w = (runbooks as Record<string, unknown>)[name];
  if (typeof w !== 'function') throw new Error(`no runbook named ${name} in workflows/`);
  return w as Workflow;
}

/** A TCP port nobody listens on right now. */
export const freePort = pickFreePort;

let bundle: Promise<WorkflowBundle> | undefined;
/** The workflow bundle: the one the build made (worker/workflow-bundle.ts), or built once by this test file when it is out of date. */
export function workflowBundle(): Promise<WorkflowBundle> {
  const built = builtWorkflowBundle();
  bundle ??= built ? Promise.resolve({ code: readFileSync(built.codePath, 'utf8') }) : bundleRunbooks().then((code) => ({ code }));
  return bundle;
}

export class Harness {
  env!: TestWorkflowEnvironment;
  readonly root: string;
  readonly clusters: LocalCluster[] = [];
  private workers: { set: WorkerSet; done: Promise<void> }[] = [];
  config!: LoadedConfig;
  configFile!: string;

  constructor(readonly name: string) {
    this.root = mkdtempSync(join(tmpdir(), `pgdr-test-${name}-`));
    chmodSync(this.root, 0o755); // the postgres user must reach the cluster folders
  }

  get client(): Client {
    return this.env.client;
  }

  private devServer?: DevServer;
  private devServerOptions?: DevServerOptions;

  /**
   * A Temporal dev server. `persistent`: with a database file, started by pgdr's own launcher, so that
   * `restartTemporal()` can stop and start it with everything it held (a restarted production server).
   */
  async startTemporal(o: { persistent?: boolean } = {}): Promise<void> {
    installRuntime(); // SDK logs through pgdr's logger (PGDR_LOG_LEVEL), before the test environment makes a Runtime
    if (o.persistent) {
      this.devServerOptions = { bin: temporalBinary(), dbFile: join(this.root, 'temporal.db'), logFile: join(this.root, 'temporal.log'), port: await freePort(), uiPort: await freePort(), extraArgs: ['--headless'] };
      this.devServer = await startTemporalDevServer(this.devServerOptions);
      this.env = await TestWorkflowEnvironment.createFromExistingServer({ address: this.devServer.address });
      return;
    }
    this.env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: temporalBinary() },
        ip: '127.0.0.1',
        ui: false,
        extraArgs: ['--log-level', 'error', ...devServerSearchAttributeArgs()],
      },
    });
  }

  /** Stop the persistent dev server and start it again on the same port and database file. */
  /**
   * Copies a test restored and did not drop (restoreToNewCluster, drills that failed) still run below this
   * test's folder: an immediate shutdown (SIGQUIT) before the folder is deleted, instead of a postmaster
   * that runs on without its data directory until it notices.
   */
  private stopPostmastersBelowRoot(): void {
    for (const dataDir of runningDataDirs(this.root, 5)) {
      const pid = postmasterPid(dataDir);
      // Only that directory's postmaster: a stale postmaster.pid may name a pid that was given to another process.
      let cmdline = '';
      try {
        cmdline = pid ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      } catch {
        /* gone */
      }
      if (pid && processAlive(pid) && cmdline.split('\0').includes(dataDir)) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          /* gone */
        }
      }
    }
  }

  async restartTemporal(): Promise<void> {
    if (!this.devServer || !this.devServerOptions) throw new Error('restartTemporal needs startTemporal({ persistent: true })');
    await this.devServer.stop();
    this.devServer = await startTemporalDevServer(this.devServerOptions);
  }

  /** The workflow bundle as a file, for worker processes (PGDR_WORKFLOW_BUNDLE): the build's, or built once by this test file. */
  async workflowBundleFile(): Promise<string> {
    const built = builtWorkflowBundle();
    if (built) return built.codePath;
    const file = join(this.root, 'workflow-bundle.js');
    if (!existsSync(file)) writeFileSync(file, (await workflowBundle()).code);
    return file;
  }

  /** A new cluster with WAL archiving, started; the stanza is created unless `stanza: false`. */
  async addCluster(spec: Partial<LocalClusterSpec> & { name: string }, opts: { archive?: boolean; cipher?: boolean; env?: Record<string, string> } = {}): Promise<LocalCluster> {
    const c = localCluster({ dir: join(this.root, spec.name), port: await freePort(), ...spec });
    await initLocalCluster(c, opts);
    await startLocalCluster(c);
    this.clusters.push(c);
    return c;
  }

  /**
   * Write pgdr.yaml for the clusters so far (plus extra top-level fields) and load it. Without clusters
   * (tests of the approval gate touch no database) a placeholder entry satisfies the schema.
   */
  writeConfig(extra: Record<string, unknown> = {}, clusterExtra: Record<string, Record<string, unknown>> = {}): LoadedConfig {
    this.configFile = join(this.root, 'pgdr.yaml');
    const address = this.env.connection.options.address;
    const placeholder = { name: 'main', host: 'nohost', stanza: 'main', pgbackrestConfig: '/nonexistent/pgbackrest.conf', dataDir: '/nonexistent/data', port: 5432, socketDir: '/tmp' };
    writeFileSync(
      this.configFile,
      configYaml({
        clusters: this.clusters.length ? this.clusters.map((c) => ({ ...c.configEntry, ...(clusterExtra[c.name] ?? {}) })) : [placeholder],
        temporalAddress: address,
        taskQueue: `pgdr-${this.name}`,
        extra: { worker: { metricsPort: 0 }, ...extra },
      }),
    );
    this.config = loadConfig(this.configFile);
    return this.config;
  }

  /** Start a worker set (shared queue + host queues) in this process. */
  async startWorker(opts: { hosts?: string[]; workflows?: boolean; config?: LoadedConfig } = {}): Promise<WorkerSet> {
    const set = await createWorkerSet({
      config: opts.config ?? this.config,
      hosts: opts.hosts,
      workflows: opts.workflows,
      connection: this.env.nativeConnection,
      workflowBundle: await workflowBundle(),
      // The test owns its server: a restarted worker with a changed file makes it the shared reference.
      sharedConfig: 'publish',
    });
    this.workers.push({ set, done: set.run() });
    return set;
  }

  async stopWorkers(): Promise<void> {
    for (const w of this.workers) w.set.shutdown();
    await Promise.allSettled(this.workers.map((w) => w.done));
    this.workers = [];
  }

  /** Start a workflow on the harness task queue and wait for its result. */
  async execute<T>(workflowType: string, input: unknown, id?: string): Promise<T> {
    return this.client.workflow.execute(workflowType, {
      taskQueue: this.config.temporal.taskQueue,
      workflowId: id ?? `${workflowType}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`,
      args: [input],
    }) as Promise<T>;
  }

  async start(workflowType: string, input: unknown, id?: string): Promise<WorkflowHandle> {
    return this.client.workflow.start(workflowType, {
      taskQueue: this.config.temporal.taskQueue,
      workflowId: id ?? `${workflowType}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`,
      args: [input],
    });
  }

  /** Run a workflow expected to fail; returns the innermost failure (message and type). */
  async expectFailure(workflowType: string, input: unknown): Promise<{ message: string; type?: string; nonRetryable?: boolean; handle: WorkflowHandle }> {
    const handle = await this.start(workflowType, input);
    try {
      await handle.result();
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      let e: { cause?: unknown; message: string; type?: string; nonRetryable?: boolean } = err as never;
      while (e.cause) e = e.cause as typeof e;
      return { message: e.message, type: e.type, nonRetryable: e.nonRetryable, handle };
    }
    throw new Error(`${workflowType} was expected to fail but succeeded`);
  }

  /** Activity types scheduled in a workflow's history. */
  async scheduledActivities(handle: WorkflowHandle): Promise<string[]> {
    const history = await handle.fetchHistory();
    return (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name!);
  }

  async teardown(): Promise<void> {
    await this.stopWorkers();
    for (const c of this.clusters) await stopLocalCluster(c).catch(() => undefined);
    this.stopPostmastersBelowRoot();
    await this.env?.teardown();
    await this.devServer?.stop();
    if (!process.env.PGDR_KEEP_TEST_DIRS) rmSync(this.root, { recursive: true, force: true });
  }
}

/** Data directories (holding postmaster.pid) at most `depth` levels below `dir`. */
function runningDataDirs(dir: string, depth: number): string[] {
  if (existsSync(join(dir, 'postmaster.pid'))) return [dir];
  if (depth === 0) return [];
  let names: string[] = [];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.isSymbolicLink()).map((e) => e.name);
  } catch {
    return [];
  }
  return names.flatMap((n) => runningDataDirs(join(dir, n), depth - 1));
}

export async function sql<T extends Record<string, unknown> = Record<string, unknown>>(c: LocalCluster, text: string, params: unknown[] = [], database?: string): Promise<T[]> {
  return query<T>(c, text, params, database);
}

/** pgBackRest (or any command) as the cluster's OS user, for assertions. */
export async function pgbackrestJson(c: LocalCluster, args: string[]): Promise<unknown> {
  const r = await run('pgbackrest', [`--config=${c.pgbackrestConfig}`, `--stanza=${c.stanza}`, ...args, '--output=json'], { user: c.osUser });
  return JSON.parse(r.stdout.replace(/"system-id":(\d+)/g, '"system-id":"$1"'));
}

/** PIDs of processes whose command line matches all the given fragments. */
export async function processesMatching(...fragments: string[]): Promise<number[]> {
  const r = await run('ps', ['-eo', 'pid=,args=']);
  return r.stdout
    .split('\n')
    .filter((l) => fragments.every((f) => l.includes(f)) && !l.includes('ps -eo'))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A pgdr worker in a child process (test/helpers/worker-process.ts) serving what its config file names:
 * a test can SIGKILL it to play a crashed worker, or give each "host" its own.
 */
export async function startWorkerProcess(configFile: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const p = spawn(process.execPath, [join(__dirname, 'worker-process.js'), configFile], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    p.on('exit', (code) => reject(new Error(`worker process for ${configFile} exited ${code}`)));
  });
  return p;
}

/** Stop a worker process (SIGTERM: graceful; SIGKILL: a crash) and wait until it is gone. */
export async function stopWorkerProcess(p: ChildProcess, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await gone;
}

/** Switch to a new WAL segment and wait until the one holding everything so far is archived. */
export async function switchWalAndWaitArchived(t: Parameters<typeof query>[0]): Promise<string> {
  const [{ f }] = await query<{ f: string }>(t, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
  await query(t, 'SELECT pg_switch_wal()');
  await waitFor(`WAL ${f} archived`, async () => {
    const [s] = await query<{ w: string | null }>(t, 'SELECT last_archived_wal AS w FROM pg_stat_archiver');
    // Compare segment positions (a timeline history file or a new timeline's names must not confuse it).
    return s.w !== null && /^[0-9A-F]{24}$/.test(s.w) && s.w.slice(8) >= f.slice(8);
  });
  return f;
}
