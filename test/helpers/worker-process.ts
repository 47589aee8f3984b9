/**
 * A pgdr worker in a child process that a test can SIGKILL: `node dist/test/helpers/worker-process.js <config>`.
 * Prints "ready" on stdout once its workers run; SIGTERM shuts it down gracefully.
 */
import { loadConfig } from '../../common/config';
import { createWorkerSet } from '../../worker/worker';

async function main() {
  const config = loadConfig(process.argv[2]);
  // A bundle built once by the test (harness workflowBundleFile) makes a restarted worker ready in a second.
  const codePath = process.env.PGDR_WORKFLOW_BUNDLE;
  // PGDR_WORKER_HOSTS=a,b: the hosts this process owns (default: every host in the file), as `pgdr worker --host`.
  const hosts = process.env.PGDR_WORKER_HOSTS ? process.env.PGDR_WORKER_HOSTS.split(',') : undefined;
  const set = await createWorkerSet({ config, hosts, ...(codePath ? { workflowBundle: { codePath } } : {}) });
  process.on('SIGTERM', () => set.shutdown());
  const running = set.run();
  process.stdout.write(`ready ${set.taskQueues.join(',')}\n`);
  await running;
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`worker-process: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
