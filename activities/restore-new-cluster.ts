/**
 * Host activities of the non-destructive restore: where a new cluster goes, cleaning it up to the asked
 * databases, and a registry of restored clusters on this host (`pgdr clusters list|drop`).
 * Registry: <stateDir>/restored-clusters/<name>.json; default data: <restore.newClusterDir>/<name>/{data,socket,log}.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { LoadedConfig } from '../common/config';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE } from './pgbackrest';
import { query, serverState } from './postgres';
import { pickFreePort, removeTree, restoredTarget, stopRestoredCopy } from './restore';
import { portInUse } from '../worker/temporal-dev-server';

export interface NewClusterLayout {
  name: string;
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  port: number;
  /** pgdr chose `dir` and may delete it whole; otherwise only `dataDir` (given by the user) is ours. */
  ownsDir: boolean;
}

export interface RestoredClusterRecord extends NewClusterLayout {
  source: string;
  host: string;
  target: string;
  set: string;
  databases?: string[];
  workflowId: string;
  createdAt: string;
}

const registryDir = (config: LoadedConfig) => join(config.stateDirAbs, 'restored-clusters');
const recordFile = (config: LoadedConfig, name: string) => join(registryDir(config), `${name}.json`);

function readRecord(config: LoadedConfig, name: string): RestoredClusterRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordFile(config, name), 'utf8')) as RestoredClusterRecord;
  } catch {
    return undefined;
  }
}

/** A path that is (or holds, or lies inside) a configured cluster's data directory. */
function touchesProduction(config: LoadedConfig, path: string): string | undefined {
  const p = resolve(path);
  for (const c of config.clusters) {
    const d = resolve(c.dataDir);
    if (p === d || p.startsWith(`${d}/`) || d.startsWith(`${p}/`)) return c.name;
  }
  return undefined;
}

export function newClusterActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  return {
    /** Decide where the new cluster goes; refuses a name or directory in use, a port in use, production paths. */
    async planNewCluster(input: { cluster: string; name: string; dataDir?: string; port?: number; newClusterDir: string }): Promise<NewClusterLayout> {
      const c = cluster(input.cluster);
      if (config.clusters.some((x) => x.name === input.name)) {
        throw ApplicationFailure.nonRetryable(`"${input.name}" is the name of a configured production cluster; pick another name`, FAILURE.badInput);
      }
      if (readRecord(config, input.name)) throw ApplicationFailure.nonRetryable(`a restored cluster named "${input.name}" already exists (pgdr clusters list)`, FAILURE.badInput);
      const dir = input.dataDir ? dirname(resolve(input.dataDir)) : join(input.newClusterDir, input.name);
      const dataDir = input.dataDir ? resolve(input.dataDir) : join(dir, 'data');
      const prod = touchesProduction(config, dataDir);
      if (prod) throw ApplicationFailure.nonRetryable(`${dataDir} is the data directory of configured cluster ${prod}; pgdr restores new clusters elsewhere`, FAILURE.badInput);
      if (existsSync(dataDir) && readdirSync(dataDir).length) throw ApplicationFailure.nonRetryable(`${dataDir} exists and is not empty`, FAILURE.badInput);
      const port = input.port ?? (await pickFreePort());
      if (port === c.port || (await portInUse(port))) throw ApplicationFailure.nonRetryable(`port ${port} is in use`, FAILURE.badInput);
      let socketDir = input.dataDir ? `${dataDir}.socket` : join(dir, 'socket');
      if (`${socketDir}/.s.PGSQL.${port}.lock`.length > 100) socketDir = join('/tmp', `pgdr-${input.name}.s`);
      const ownsDir = !input.dataDir;
      const logFile = ownsDir ? join(dir, 'log', 'postgresql.log') : `${dataDir}.log`;
      return { name: input.name, dir: ownsDir ? dir : dataDir, dataDir, socketDir, logFile, port, ownsDir };
    },

    /**
     * After a `--db-include` restore the other databases still appear in pg_database but cannot be used:
     * drop them so the new cluster holds only what was asked for.
     */
    async dropExcludedDatabases(input: { cluster: string; at: { port: number; socketDir: string; dataDir: string }; keep: string[] }): Promise<string[]> {
      const c = cluster(input.cluster);
      const t = restoredTarget(c, input.at.dataDir, input.at.port, input.at.socketDir, 'postgres');
      const rows = await query<{ datname: string }>(t, "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')");
      const dropped: string[] = [];
      for (const { datname } of rows) {
        if (input.keep.includes(datname)) continue;
        await query(t, `DROP DATABASE "${datname.replace(/"/g, '""')}"`);
        dropped.push(datname);
      }
      return dropped;
    },

    async registerRestoredCluster(input: { record: RestoredClusterRecord }): Promise<void> {
      mkdirSync(registryDir(config), { recursive: true });
      writeFileSync(recordFile(config, input.record.name), `${JSON.stringify(input.record, null, 2)}\n`);
    },

    /** Restored clusters on this host, with whether each one runs. */
    async listRestoredClusters(): Promise<(RestoredClusterRecord & { running: boolean })[]> {
      if (!existsSync(registryDir(config))) return [];
      const out: (RestoredClusterRecord & { running: boolean })[] = [];
      for (const f of readdirSync(registryDir(config)).filter((n) => n.endsWith('.json'))) {
        const r = readRecord(config, f.replace(/\.json$/, ''));
        if (!r) continue;
        const c = config.clusters.find((x) => x.name === r.source);
        const running = c ? (await serverState(restoredTarget(c, r.dataDir, r.port, r.socketDir))) === 'running' : false;
        out.push({ ...r, running });
      }
      return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },

    /** Stop a restored cluster and delete its folder. Never a configured production cluster. */
    async dropRestoredCluster(input: { name: string }): Promise<{ name: string; dir: string }> {
      if (config.clusters.some((x) => x.name === input.name)) {
        throw ApplicationFailure.nonRetryable(`"${input.name}" is a configured production cluster; pgdr clusters drop only removes restored clusters`, FAILURE.badInput);
      }
      const r = readRecord(config, input.name);
      if (!r) throw ApplicationFailure.nonRetryable(`no restored cluster named "${input.name}" on this host (pgdr clusters list)`, FAILURE.badInput);
      const prod = touchesProduction(config, r.dataDir);
      if (prod) throw ApplicationFailure.nonRetryable(`${r.dataDir} belongs to configured cluster ${prod}; refusing`, FAILURE.badInput);
      const c = cluster(r.source);
      await stopRestoredCopy(c, r.dataDir);
      await removeTree(c, r.ownsDir ? r.dir : r.dataDir);
      if (r.socketDir.startsWith('/tmp/pgdr-')) rmSync(r.socketDir, { recursive: true, force: true });
      rmSync(recordFile(config, input.name), { force: true });
      return { name: input.name, dir: r.dir };
    },

    /** Remove a new cluster whose restore failed (it never held anything but the failed copy). */
    async discardNewCluster(input: { cluster: string; layout: NewClusterLayout }): Promise<void> {
      const c = cluster(input.cluster);
      if (touchesProduction(config, input.layout.dataDir)) return;
      await stopRestoredCopy(c, input.layout.dataDir);
      await removeTree(c, input.layout.ownsDir ? input.layout.dir : input.layout.dataDir);
    },
  };
}
