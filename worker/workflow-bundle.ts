/**
 * The runbooks' workflow bundle, built once by `npm run build` into dist/workflow-bundle.js, so that a worker
 * starts without running webpack (about 1.5 s of CPU per start). A bundle older than any compiled module it
 * could contain is not used: the worker bundles the runbooks itself at start, as it would without one.
 *
 *   node dist/worker/workflow-bundle.js [file]     build it (default: dist/workflow-bundle.js)
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** Workflow interceptor modules bundled with the runbooks (PgdrOutcome when a run ends). */
export const WORKFLOW_INTERCEPTOR_MODULES = [require.resolve('../workflows/search-attributes')];
export const WORKFLOWS_PATH = require.resolve('../workflows');

const noop = () => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: (m: string) => console.error(m), log: noop } as never;

/** Bundle the runbooks (webpack), quietly. */
export async function bundleRunbooks(): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES, logger: quietLogger });
  return code;
}

/** The newest modification time of the compiled modules a runbook may import (workflows/ and common/). */
function newestRunbookModule(dist: string): number {
  let newest = 0;
  for (const dir of ['workflows', 'common'].map((d) => join(dist, d))) {
    for (const f of readdirSync(dir)) if (f.endsWith('.js')) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  }
  return newest;
}

/** The built bundle (in `dist`, default: this build's), when it exists and is not older than the code it was built from. */
export function builtWorkflowBundle(dist = join(__dirname, '..')): { codePath: string } | undefined {
  const codePath = join(dist, 'workflow-bundle.js');
  try {
    return statSync(codePath).mtimeMs >= newestRunbookModule(dist) ? { codePath } : undefined;
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  bundleRunbooks().then(
    (code) => writeFileSync(process.argv[2] ?? join(__dirname, '..', 'workflow-bundle.js'), code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
