/**
 * The embedded default's Temporal: `temporal server start-dev` with SQLite persistence under the state
 * folder, in its own process group so that stopping pgdr stops it too.
 */
import { Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { readdirSync, readFileSync } from 'node:fs';
import { stopProcessGroup } from '../activities/process';
import { portInUse } from '../common/net';
import { devServerSearchAttributeArgs } from '../common/search-attributes';

export interface DevServerOptions {
  bin: string;
  dbFile: string;
  logFile: string;
  port: number;
  uiPort: number;
  namespace?: string;
  extraArgs?: string[];
}

export interface DevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
}

export async function startTemporalDevServer(o: DevServerOptions): Promise<DevServer> {
  for (const p of [o.port, o.uiPort]) {
    if (await portInUse(p)) throw new Error(`port ${p} is already in use (another Temporal dev server?). Stop it, or choose ports with PGDR_TEMPORAL_PORT / PGDR_UI_PORT.`);
  }
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    o.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(o.port),
    '--ui-port',
    String(o.uiPort),
    '--namespace',
    o.namespace ?? 'default',
    '--log-level',
    'warn',
    // pgdr's search attributes (PgdrCluster, PgdrRunbook, …): runs can be found at once.
    ...devServerSearchAttributeArgs(),
    ...(o.extraArgs ?? []),
  ];
  const child: ResultPromise = execa(o.bin, args, { detached: true, stdout: { file: o.logFile, append: true }, stderr: { file: o.logFile, append: true }, stdin: 'ignore', reject: false });
  const address = `127.0.0.1:${o.port}`;
  const deadline = Date.now() + 60_000;
  let exited = false;
  void child.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`temporal server start-dev exited at start; see ${o.logFile}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: '1s' });
      await conn.workflowService.getSystemInfo({});
      await conn.close();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`Temporal dev server did not answer on ${address} within 60 s; see ${o.logFile}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return {
    address,
    uiUrl: `http://127.0.0.1:${o.uiPort}`,
    stop: async () => {
      if (!exited) await stopProcessGroup(child, 10_000);
    },
  };
}

/**
 * `temporal server start-dev` processes that use `dbFile` (read from /proc: exact argv), e.g. left running
 * by an earlier `pgdr dev` that was killed before it could stop them.
 */
export function devServersUsing(dbFile: string): { pid: number; pgid: number }[] {
  const found: { pid: number; pgid: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--db-filename');
      if (i < 0 || argv[i + 1] !== dbFile || !argv.includes('start-dev')) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      found.push({ pid: Number(entry), pgid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Stop such left-over dev servers (SIGTERM to their process groups, SIGKILL after 10 s); wait until gone. */
export async function stopDevServersUsing(dbFile: string): Promise<number> {
  const found = devServersUsing(dbFile);
  const signal = (sig: NodeJS.Signals) => {
    for (const p of found) {
      for (const target of [-p.pgid, p.pid]) {
        try {
          process.kill(target, sig);
        } catch {
          /* gone */
        }
      }
    }
  };
  signal('SIGTERM');
  for (let i = 0; i < 100 && devServersUsing(dbFile).length; i++) await new Promise((r) => setTimeout(r, 100));
  if (devServersUsing(dbFile).length) signal('SIGKILL');
  for (let i = 0; i < 50 && devServersUsing(dbFile).length; i++) await new Promise((r) => setTimeout(r, 100));
  return found.length;
}
