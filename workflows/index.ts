/** Every runbook pgdr registers. One runbook per file; shared mechanics in runbook.ts. */
export { backup } from './backup';
export { backupStatus } from './backup-status';
export { setupStanza } from './setup-stanza';
export { verifyDrill } from './verify-drill';
export { demoApproval } from './demo-approval';
