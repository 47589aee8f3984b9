/**
 * Host activities of the non-destructive restore: where a new cluster goes, cleaning it up to the asked
 * databases, and a registry of restored clusters on this host (`pgdr clusters list|drop`).
 * Registry: <stateDir>/restored-clusters/<name>.json; default data: <restore.newClusterDir>/<name>/{data,socket,log}.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ClusterConfig, LoadedConfig } from '../common/config';
import { checkInput, dropRestoredClusterInputSchema } from '../common/inputs';
import { requireCluster, type ActivityDeps } from './context';
import { newClusterDirOf } from './checks';
import { FAILURE } from './pgbackrest';
import { query, serverState, startServer, stopServer } from './postgres';
import { removeTree } from './scratch';
import { restoredTarget, stopRestoredCopy } from './recovery';
import { currentRun, ownerText, readMarker } from './owned-dirs';
import { removeStaging, restoredBy, stagingDir } from './staged-restore';
import { pickFreePort, portInUse } from '../common/net';
import { quoteIdent } from '../common/sql';

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

/**
 * The folder pgdr chose for a new cluster (`ownsDir`), once its data directory is gone: pgdr's own `log` and
 * `socket` folders go, then the folder itself if nothing else is in it. Anything else found there was not put
 * there by pgdr and stays (the folder with it). True when the folder is gone.
 */
async function removeOwnFolder(c: ClusterConfig, l: Pick<NewClusterLayout, 'dir' | 'ownsDir'>): Promise<boolean> {
  if (!l.ownsDir || !existsSync(l.dir)) return false;
  for (const n of ['log', 'socket']) await removeTree(c, join(l.dir, n));
  if (readdirSync(l.dir).length) return false;
  await removeTree(c, l.dir);
  return true;
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

/**
 * `path` as the kernel will reach it: `..` resolved, and the symlinks of its longest existing part
 * followed (the rest does not exist yet). Throws on a dangling symlink.
 */
function canonicalPath(path: string): string {
  let existing = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      lstatSync(existing);
      break;
    } catch {
      rest.unshift(basename(existing));
      existing = dirname(existing);
    }
  }
  return join(realpathSync(existing), ...rest);
}

function canonicalOrResolved(path: string): string {
  try {
    return canonicalPath(path);
  } catch {
    return resolve(path);
  }
}

/** A path that is (or holds, or lies inside) a configured cluster's data directory, symlinks followed. */
function touchesProduction(config: LoadedConfig, path: string): string | undefined {
  const p = canonicalOrResolved(path);
  for (const c of config.clusters) {
    const d = canonicalOrResolved(c.dataDir);
    if (p === d || p.startsWith(`${d}/`) || d.startsWith(`${p}/`)) return c.name;
  }
  return undefined;
}

export function newClusterActivities({ config }: ActivityDeps) {
  const cluster = (name: string) => requireCluster(config, name);
  return {
    /**
     * Decide where the new cluster goes; refuses a name or directory in use, a port in use, a dataDir outside
     * the restore folder (newClusterDir, after `..` and symlinks) and production paths. Creates nothing.
     */
    async planNewCluster(input: { cluster: string; name: string; dataDir?: string; port?: number; newClusterDir?: string }): Promise<NewClusterLayout> {
      const c = cluster(input.cluster);
      // restore.newClusterDir is host-local: THIS host's folder, not the one the shared queue's worker named
      // (input.newClusterDir, from restoreSettings, is kept for runs in flight and otherwise ignored).
      const newClusterDir = newClusterDirOf(config, c);
      if (config.clusters.some((x) => x.name === input.name)) {
        throw ApplicationFailure.nonRetryable(`"${input.name}" is the name of a configured production cluster; pick another name`, FAILURE.badInput);
      }
      if (readRecord(config, input.name)) throw ApplicationFailure.nonRetryable(`a restored cluster named "${input.name}" already exists (pgdr clusters list)`, FAILURE.badInput);
      let dataDir = join(newClusterDir, input.name, 'data');
      if (input.dataDir) {
        const root = canonicalOrResolved(newClusterDir);
        try {
          dataDir = canonicalPath(input.dataDir);
        } catch (err) {
          throw ApplicationFailure.nonRetryable(`dataDir ${input.dataDir}: ${(err as Error).message}`, FAILURE.badInput);
        }
        if (!dataDir.startsWith(`${root}/`)) {
          const via = dataDir === resolve(input.dataDir) ? '' : ` (${input.dataDir} leads to ${dataDir})`;
          throw ApplicationFailure.nonRetryable(
            `dataDir ${input.dataDir} is outside the restore folder ${root}${via}: new clusters go inside it (restore.newClusterDir), e.g. ${join(root, input.name, 'data')}`,
            FAILURE.badInput,
          );
        }
      }
      const dir = dirname(dataDir);
      const prod = touchesProduction(config, dataDir);
      if (prod) throw ApplicationFailure.nonRetryable(`${dataDir} is, holds or lies inside the data directory of configured cluster ${prod}; pgdr restores new clusters elsewhere`, FAILURE.badInput);
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
        await query(t, `DROP DATABASE ${quoteIdent(datname)}`);
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

    /**
     * Start or stop a restored cluster (`pgdr clusters start|stop`; the embedded default stops them all with
     * the stack). Only a registered one whose data directory carries its restore's marker; fast shutdown.
     */
    async setRestoredClusterRunning(input: { name: string; running: boolean }): Promise<RestoredClusterRecord & { running: boolean; changed: boolean }> {
      const valid = checkInput(dropRestoredClusterInputSchema, { name: input.name }, 'setRestoredClusterRunning');
      if (!valid.ok) throw ApplicationFailure.nonRetryable(valid.message, FAILURE.badInput);
      const r = readRecord(config, input.name);
      if (!r) throw ApplicationFailure.nonRetryable(`no restored cluster named "${input.name}" on this host (pgdr clusters list)`, FAILURE.badInput);
      const prod = touchesProduction(config, r.dataDir);
      if (prod) throw ApplicationFailure.nonRetryable(`${r.dataDir} belongs to configured cluster ${prod}; refusing`, FAILURE.badInput);
      const m = readMarker(r.dataDir);
      if (!m || m.workflowId !== r.workflowId) {
        throw ApplicationFailure.nonRetryable(`refusing to touch ${r.dataDir}: it holds ${ownerText(r.dataDir)}, not the restore of workflow ${r.workflowId}`, FAILURE.badInput);
      }
      const t = restoredTarget(cluster(r.source), r.dataDir, r.port, r.socketDir);
      const was = (await serverState(t)) === 'running';
      if (input.running && !was) {
        if (await portInUse(r.port)) throw ApplicationFailure.nonRetryable(`port ${r.port} of restored cluster ${r.name} is in use by another process`, FAILURE.badInput);
        await startServer(t, r.logFile);
      }
      if (!input.running && was) await stopServer(t);
      return { ...r, running: input.running, changed: was !== input.running };
    },

    /** Stop a restored cluster and delete its folder. Never a configured production cluster. */
    async dropRestoredCluster(input: { name: string }): Promise<{ name: string; dir: string }> {
      const valid = checkInput(dropRestoredClusterInputSchema, input, 'dropRestoredCluster');
      if (!valid.ok) throw ApplicationFailure.nonRetryable(valid.message, FAILURE.badInput);
      if (config.clusters.some((x) => x.name === input.name)) {
        throw ApplicationFailure.nonRetryable(`"${input.name}" is a configured production cluster; pgdr clusters drop only removes restored clusters`, FAILURE.badInput);
      }
      const r = readRecord(config, input.name);
      if (!r) throw ApplicationFailure.nonRetryable(`no restored cluster named "${input.name}" on this host (pgdr clusters list)`, FAILURE.badInput);
      const prod = touchesProduction(config, r.dataDir);
      if (prod) throw ApplicationFailure.nonRetryable(`${r.dataDir} belongs to configured cluster ${prod}; refusing`, FAILURE.badInput);
      const c = cluster(r.source);
      // Only the directory that the registered restore run put there (its marker names that workflow).
      const m = readMarker(r.dataDir);
      if (existsSync(r.dataDir) && (!m || m.workflowId !== r.workflowId || m.what !== 'restored data directory')) {
        throw ApplicationFailure.nonRetryable(`refusing to delete ${r.dataDir}: it holds ${ownerText(r.dataDir)}, not the restore of workflow ${r.workflowId}`, FAILURE.badInput);
      }
      await stopRestoredCopy(c, r.dataDir);
      await removeTree(c, r.dataDir);
      await removeOwnFolder(c, r);
      if (r.socketDir.startsWith('/tmp/pgdr-')) rmSync(r.socketDir, { recursive: true, force: true });
      rmSync(recordFile(config, input.name), { force: true });
      return { name: input.name, dir: r.dir };
    },

    /**
     * Remove a new cluster whose restore failed or was cancelled — only what this run restored (its marker)
     * and its staging folder; a data directory this run did not fill is left alone and named.
     */
    async discardNewCluster(input: { cluster: string; layout: NewClusterLayout }): Promise<{ removed: string[]; leftAlone: string[] }> {
      const c = cluster(input.cluster);
      const { dataDir, dir, ownsDir } = input.layout;
      if (touchesProduction(config, dataDir)) return { removed: [], leftAlone: [dataDir] };
      const me = currentRun();
      const removed: string[] = [];
      const leftAlone: string[] = [];
      if (await removeStaging(dataDir, me)) removed.push(stagingDir(dataDir, me));
      await stopRestoredCopy(c, dataDir);
      if (restoredBy(dataDir, me) || (existsSync(dataDir) && readdirSync(dataDir).length === 0)) {
        await removeTree(c, dataDir);
        removed.push(dataDir);
      } else if (existsSync(dataDir)) leftAlone.push(dataDir);
      if (await removeOwnFolder(c, input.layout)) removed.push(dir);
      else if (ownsDir && existsSync(dir)) leftAlone.push(dir);
      return { removed, leftAlone };
    },
  };
}
