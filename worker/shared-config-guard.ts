/**
 * One answer whichever worker answers: every host's worker polls the shared task queue, so the activities
 * there that answer from the configuration (routing, approval policy, runbook defaults) must answer from the
 * SAME shared configuration (common/shared-config.ts). The reference is the record published in Temporal
 * (workflows/shared-config.ts).
 *
 * - At start (`guardSharedConfig`): nothing published → this worker publishes its own (the first worker
 *   defines it); the same fingerprint → serve; a different one → refuse to start, naming the differing
 *   paths, both fingerprints, who published, and the fix. The embedded default and in-process test workers
 *   (`mode: 'publish'`) own their Temporal server: they make their file the reference instead.
 * - On each decision (`interceptor`, registered on the shared-queue worker only): the activities in
 *   CONFIG_DECISIONS first compare this worker's fingerprint with the published one (cached for
 *   CHECK_CACHE_MS); on a mismatch the activity fails with the retryable type SharedConfigMismatch (another,
 *   agreeing worker takes the retry) and this worker stops polling the shared queue (host queues go on).
 */
import { ApplicationFailure, type Context } from '@temporalio/activity';
import { Client, type ConnectionLike } from '@temporalio/client';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { LoadedConfig } from '../common/config';
import { log } from '../common/log';
import { fingerprintOf, mismatchMessage, readPublished, sharedDifferences, sharedPart, sharedRecord, startPublished, whoAmI, type SharedConfig } from '../common/shared-config';
import { CONFIG_DECISIONS } from '../activities';
import type { PublishedSharedConfig } from '../workflows/shared-config';

/** Failure type of an activity answered by a worker whose shared configuration is not the published one. */
export const SHARED_CONFIG_MISMATCH = 'SharedConfigMismatch';


/** How long a read of the published fingerprint is reused. */
export const CHECK_CACHE_MS = 5_000;

/** The worker refuses to start: its file disagrees with the published reference. */
export class SharedConfigMismatchError extends Error {
  constructor(
    message: string,
    readonly paths: string[],
  ) {
    super(message);
    this.name = 'SharedConfigMismatchError';
  }
}

export interface SharedConfigGuard {
  /** This worker's shared fingerprint. */
  fingerprint: string;
  /** The activity interceptor of the shared-queue worker. */
  interceptor: ActivityInterceptorsFactory;
  /** Called once, on the first mismatch found while serving (stop polling the shared queue). */
  onMismatch(fn: (message: string) => void): void;
}

export interface GuardOptions {
  config: LoadedConfig;
  connection: ConnectionLike;
  /**
   * 'verify' (default, `pgdr worker`): refuse to start on a mismatch. 'publish': the embedded default and
   * in-process test workers, which own their Temporal server, make this file the reference.
   */
  mode?: 'verify' | 'publish';
}

export async function guardSharedConfig(opts: GuardOptions): Promise<SharedConfigGuard> {
  const { config } = opts;
  const client = new Client({ connection: opts.connection, namespace: config.temporal.namespace });
  const taskQueue = config.temporal.taskQueue;
  const mine: SharedConfig = sharedPart(config);
  const fingerprint = fingerprintOf(mine);
  const me = `worker ${whoAmI()} pid ${process.pid}`;

  const published = await readPublished(client, taskQueue);
  if (!published || (opts.mode === 'publish' && published.record.fingerprint !== fingerprint)) {
    const record = sharedRecord(config, `${me} at start (${published ? 'the embedded default/test worker replaced it' : 'first worker'})`);
    const started = await startPublished(client, taskQueue, record, Boolean(published));
    if (started) {
      log.info({ fingerprint, file: config.file, replaced: published?.record.fingerprint }, `shared configuration ${fingerprint} published by this worker (${published ? `replacing ${published.record.fingerprint}` : 'none was published'})`);
    } else {
      // Another worker published at the same moment: compare with that one below.
      const now = await readPublished(client, taskQueue);
      if (now) refuseUnlessEqual(now.record);
    }
  } else {
    refuseUnlessEqual(published.record);
  }

  function refuseUnlessEqual(record: PublishedSharedConfig): void {
    if (record.fingerprint === fingerprint) return;
    const message = `pgdr worker refuses to start: ${mismatchMessage(config, record, mine)}`;
    throw new SharedConfigMismatchError(message, sharedDifferences(mine, record.shared as SharedConfig));
  }

  let cache: { fingerprint?: string; record?: PublishedSharedConfig; at: number } | undefined;
  let stopHandler: ((message: string) => void) | undefined;
  let stopped = false;
  const checked = new Set<string>(CONFIG_DECISIONS);

  async function publishedNow(): Promise<PublishedSharedConfig | undefined> {
    if (cache && Date.now() - cache.at < CHECK_CACHE_MS) return cache.record;
    try {
      const r = await readPublished(client, taskQueue);
      cache = { record: r?.record, at: Date.now() };
      return r?.record;
    } catch (err) {
      // Temporal unreachable: the activity could not report its result either; answer as before.
      log.warn({ err: (err as Error).message }, 'shared configuration: cannot read the published record; answering from this file');
      return cache?.record;
    }
  }

  const interceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        if (checked.has(ctx.info.activityType)) {
          const record = await publishedNow();
          if (record && record.fingerprint !== fingerprint) {
            const message = mismatchMessage(config, record, mine);
            if (!stopped) {
              stopped = true;
              log.error(
                { fingerprint, published: record.fingerprint, activity: ctx.info.activityType, workflowId: ctx.info.workflowExecution?.workflowId },
                `shared configuration mismatch: this worker stops serving the shared task queue ${taskQueue} (host queues go on): ${message}`,
              );
              // After this activity's failure is reported: shutting down drains in-flight tasks.
              setTimeout(() => stopHandler?.(message), 200);
            }
            throw ApplicationFailure.retryable(`${me} does not answer ${ctx.info.activityType}: ${message}`, SHARED_CONFIG_MISMATCH);
          }
        }
        return next(input);
      },
    },
  });

  return {
    fingerprint,
    interceptor,
    onMismatch: (fn) => {
      stopHandler = fn;
    },
  };
}
