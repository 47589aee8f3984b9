/** pgdr's logger (pino, JSON lines on stderr) and the adapter that routes the Temporal SDK's logs to it. */
import pino from 'pino';

export const log = pino({ name: 'pgdr', level: process.env.PGDR_LOG_LEVEL ?? 'info' }, pino.destination(2));

type Meta = Record<string, unknown> | undefined;

/** A Temporal SDK Logger backed by pino. */
export const temporalLogger = {
  log: (level: string, message: string, meta?: Meta) => {
    const l = level.toLowerCase();
    if (l === 'trace' || l === 'debug' || l === 'info' || l === 'warn' || l === 'error') log[l](meta ?? {}, message);
    else log.info(meta ?? {}, message);
  },
  trace: (m: string, meta?: Meta) => log.trace(meta ?? {}, m),
  debug: (m: string, meta?: Meta) => log.debug(meta ?? {}, m),
  info: (m: string, meta?: Meta) => log.info(meta ?? {}, m),
  warn: (m: string, meta?: Meta) => log.warn(meta ?? {}, m),
  error: (m: string, meta?: Meta) => log.error(meta ?? {}, m),
};
