/** Every runbook pgdr registers. One runbook per file; shared mechanics in runbook.ts. */
export { backup } from './backup';
export { backupStatus } from './backup-status';
export { setupStanza } from './setup-stanza';
export { expire } from './expire';
export { archiveHealth, backupFreshness } from './health';
export { verifyDrill } from './verify-drill';
export { demoApproval } from './demo-approval';
export { restoreToNewCluster } from './restore-to-new-cluster';
export { restoreInPlace } from './restore-in-place';
export { cleanupRestore } from './cleanup-restore';
export { restoredClusters } from './restored-clusters';
export { dropRestoredCluster } from './drop-restored-cluster';
export { fullSiteRecovery } from './full-site-recovery';
export { restoredClusterPower } from './restored-cluster-power';
export { closeWalGap } from './close-wal-gap';
export { sharedConfig } from './shared-config';
