/**
 * The embedded default's Temporal: `temporal server start-dev` with SQLite persistence under the state
 * folder, in its own process group so that stopping pgdr stops it too.
 */
import { Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { createConnection } from 'node:net';

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

export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
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
      if (exited || !child.pid) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 10_000);
      await child;
      clearTimeout(t);
    },
  };
}
