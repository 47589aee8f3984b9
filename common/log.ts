/**
 * pgdr's logger: pino, JSON lines on stderr (for log shippers), or short readable lines when stderr is a
 * terminal, or JSON lines appended to $PGDR_LOG_FILE. The Temporal SDK's own logs go through it too, one level quieter (its info is our debug).
 */
import pino from 'pino';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One readable line per log record, for people watching a terminal. */
const readable = {
  write(line: string) {
    try {
      const { level, time, msg, pid: _p, hostname: _h, name: _n, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
      process.stderr.write(`${new Date(time as number).toISOString().slice(11, 19)} ${LEVELS[level as number] ?? level} ${msg}${extra}\n`);
    } catch {
      process.stderr.write(line);
    }
  },
};

/** Where records go: $PGDR_LOG_FILE (appended; the test suite collects every worker's log there), else stderr. */
function destination() {
  const file = process.env.PGDR_LOG_FILE;
  if (file) return pino.destination({ dest: file, append: true, mkdir: true, sync: true });
  return process.stderr.isTTY ? readable : pino.destination(2);
}

export const log = pino({ name: 'pgdr', level: process.env.PGDR_LOG_LEVEL ?? 'info' }, destination());

type Meta = Record<string, unknown> | undefined;

/** A Temporal SDK Logger backed by pino (SDK info → debug, so that a worker's routine chatter stays out). */
export const temporalLogger = {
  log: (level: string, message: string, meta?: Meta) => {
    const l = level.toLowerCase();
    // A host queue's worker serves activities only, by design: its "No workflows registered" is no warning.
    if (l === 'warn' && message.startsWith('No workflows registered')) log.debug(meta ?? {}, message);
    else if (l === 'warn' || l === 'error') log[l](meta ?? {}, message);
    else log.debug(meta ?? {}, message);
  },
  trace: (m: string, meta?: Meta) => log.trace(meta ?? {}, m),
  debug: (m: string, meta?: Meta) => log.debug(meta ?? {}, m),
  info: (m: string, meta?: Meta) => log.debug(meta ?? {}, m),
  warn: (m: string, meta?: Meta) => (m.startsWith('No workflows registered') ? log.debug(meta ?? {}, m) : log.warn(meta ?? {}, m)),
  error: (m: string, meta?: Meta) => log.error(meta ?? {}, m),
};
