/**
 * What every activity module gets: the loaded configuration and a logger. Activities are created per worker
 * process by `createActivities(config)` so that tests can run workers with their own configuration.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { ClusterConfig, LoadedConfig } from '../common/config';
import { FAILURE } from './pgbackrest';

export interface ActivityDeps {
  config: LoadedConfig;
}

/** The configured cluster, or a non-retryable failure naming the clusters that exist. */
export function requireCluster(config: LoadedConfig, name: string): ClusterConfig {
  const c = config.clusters.find((x) => x.name === name);
  if (!c) {
    throw ApplicationFailure.nonRetryable(
      `unknown cluster "${name}" (configured: ${config.clusters.map((x) => x.name).join(', ')}; file ${config.file})`,
      FAILURE.badInput,
    );
  }
  return c;
}
