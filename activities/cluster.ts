/** Activities that only read the configuration: they run on the shared workflow task queue. */
import { ApplicationFailure } from '@temporalio/activity';
import { hostTaskQueue, type ClusterSummary } from '../common/types';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE } from './pgbackrest';

export function clusterActivities({ config }: ActivityDeps) {
  return {
    /** Every database host in the config, with its task queue. */
    async listHosts(): Promise<{ host: string; taskQueue: string; clusters: string[] }[]> {
      const hosts = [...new Set(config.clusters.map((c) => c.host))];
      return hosts.map((host) => ({ host, taskQueue: hostTaskQueue(host), clusters: config.clusters.filter((c) => c.host === host).map((c) => c.name) }));
    },

    /** Where a cluster lives and how it is backed up; fails (non-retryable) for an unknown cluster or repo. */
    async describeCluster(input: { cluster: string; repo?: number }): Promise<ClusterSummary> {
      const c = requireCluster(config, input.cluster);
      const repos = c.repos.map((r) => r.index);
      if (input.repo !== undefined && !repos.includes(input.repo)) {
        throw ApplicationFailure.nonRetryable(
          `cluster "${c.name}" has no repo${input.repo} (configured repos: ${repos.map((r) => `repo${r}`).join(', ')})`,
          FAILURE.badInput,
        );
      }
      return {
        name: c.name,
        host: c.host,
        taskQueue: hostTaskQueue(c.host),
        stanza: c.stanza,
        port: c.port,
        dataDir: c.dataDir,
        repos,
        processMax: c.backup.processMax,
        backupTimeout: c.backup.timeout,
        heartbeatTimeout: config.worker.heartbeatTimeout,
      };
    },
  };
}
