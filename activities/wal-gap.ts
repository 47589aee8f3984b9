/**
 * Closing the gap between "seconds ago" and the archive (`pgdr restore --switch-wal`, workflow closeWalGap).
 * PostgreSQL stops a time-targeted recovery only at a commit (or abort) record later than the target: a WAL
 * switch alone leaves the archive without one, and recovery ends with "recovery ended before configured
 * recovery target was reached". So a transaction that commits now (an xid, nothing written) goes first, then
 * the switch; the workflow then waits until that segment is archived (waitForWalArchived).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { requireCluster, type ActivityDeps } from './context';
import { FAILURE } from './pgbackrest';
import { query, serverState } from './postgres';

export function walGapActivities({ config }: ActivityDeps) {
  return {
    /** Commit a transaction now (a timestamped commit record), switch WAL; the segment holding both. */
    async commitAndSwitchWal(input: { cluster: string }): Promise<{ walFile: string; committedAt: string }> {
      const c = requireCluster(config, input.cluster);
      if ((await serverState(c)) !== 'running') {
        throw ApplicationFailure.nonRetryable(`cluster ${c.name} is not running: nothing can be switched; wait for its archive_timeout or pick an earlier target`, FAILURE.badInput);
      }
      const [tx] = await query<{ at: Date }>(c, 'SELECT pg_current_xact_id(), clock_timestamp() AS at');
      const [w] = await query<{ f: string }>(c, 'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS f');
      await query(c, 'SELECT pg_switch_wal()');
      return { walFile: w.f, committedAt: tx.at.toISOString() };
    },
  };
}
