/**
 * Named stop points for deterministic crash tests. In production PGDR_HOOK_DIR is unset and `stopPoint`
 * returns at once. A test creates `<PGDR_HOOK_DIR>/<name>.hold`; the activity that reaches the point
 * writes `<name>.reached` (with its pid) and waits, heartbeating, until the hold file is gone — so a
 * test can SIGKILL the worker, cancel or reset the workflow exactly there. While `<name>.fail` exists, the
 * step fails there instead (a retryable failure, as a full disk or a lost mount would). pgBackRest commands
 * have the hold protocol through test/helpers/pgbackrest-hook.sh (names `pgbackrest-<command>`).
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export async function stopPoint(name: string): Promise<void> {
  const dir = process.env.PGDR_HOOK_DIR;
  if (dir && existsSync(join(dir, `${name}.fail`))) throw ApplicationFailure.retryable(`injected failure at ${name} (test)`, 'InjectedFailure');
  if (!dir || !existsSync(join(dir, `${name}.hold`))) return;
  writeFileSync(join(dir, `${name}.reached`), `${process.pid}\n`);
  while (existsSync(join(dir, `${name}.hold`))) {
    let ctx: Context | undefined;
    try {
      ctx = Context.current();
    } catch {
      /* not in an activity */
    }
    ctx?.heartbeat({ stopPoint: name });
    if (ctx?.cancellationSignal.aborted) throw new CancelledFailure(`cancelled at stop point ${name}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
