/**
 * Build the workflow bundle once per `npm test` run (scripts/test.sh), into the file named by the first
 * argument: every test file and worker process then loads it (PGDR_TEST_WORKFLOW_BUNDLE) instead of
 * bundling the same code again.
 */
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../../worker/worker';

async function main(file: string): Promise<void> {
  const noop = () => undefined;
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: (m: string) => console.error(m), log: noop } as never;
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES, logger });
  writeFileSync(file, code);
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
