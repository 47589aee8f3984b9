/**
 * All activities of pgdr. Workers register `createActivities(config)`; workflows import the type only.
 * Activities that read configuration run on the shared task queue; the rest run on the task queue of the
 * host that owns the cluster (see common/types.ts hostTaskQueue).
 */
import type { LoadedConfig } from '../common/config';
import { backupActivities } from './backup';
import { clusterActivities } from './cluster';
import { notifyActivities } from './notify';
import { drillActivities } from './drill';
import { restoreActivities } from './restore';
import { inPlaceActivities } from './restore-in-place';
import { newClusterActivities } from './restore-new-cluster';
import { checkActivities } from './checks';
import { healthActivities, policyActivities } from './health';
import { approvalActivities } from './approval';
import { fullSiteActivities } from './full-site';
import { runActivities } from './owned-dirs';
import { walGapActivities } from './wal-gap';

export function createActivities(config: LoadedConfig) {
  const deps = { config };
  return {
    ...clusterActivities(deps),
    ...backupActivities(deps),
    ...notifyActivities(deps),
    ...restoreActivities(deps),
    ...inPlaceActivities(deps),
    ...newClusterActivities(deps),
    ...checkActivities(deps),
    ...drillActivities(deps),
    ...healthActivities(deps),
    ...policyActivities(deps),
    ...approvalActivities(deps),
    ...fullSiteActivities(deps),
    ...runActivities(),
    ...walGapActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
