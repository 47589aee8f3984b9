/**
 * Every activity heartbeats while it runs, whatever it does (SQL, a file rename, waiting for pgBackRest), so
 * that every activity proxy can carry a short heartbeat timeout (`worker.heartbeatTimeout`): a worker that
 * dies in any step — short or long — is noticed in seconds, not after the step's start-to-close timeout.
 * The SDK throttles heartbeats to the timeout, so beating often costs nothing.
 */
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

export const livenessInterceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
  inbound: {
    async execute(input, next) {
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      try {
        return await next(input);
      } finally {
        clearInterval(beat);
      }
    },
  },
});
