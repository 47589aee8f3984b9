/**
 * Running external commands for activities: always an argument array through execa (never a shell string),
 * as the cluster's OS user, in a process group of its own so that a cancelled activity kills the whole tree.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { execa } from 'execa';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';

export interface RunOptions {
  /** Run as this OS user (runuser when we are root; direct when we already are that user). */
  user?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Called with every line of stdout and stderr as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Heartbeat while the command runs (default: when inside an activity). Details come from heartbeatDetails. */
  heartbeatEveryMs?: number;
  heartbeatDetails?: () => unknown;
  /** Keep at most this many bytes of each output stream (the tail). */
  maxOutputBytes?: number;
  /** Standard input. */
  input?: string;
}

export interface RunResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** The command was killed because the activity was cancelled. */
  cancelled: boolean;
}

function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

const me = userInfo().username;

/** The argv that runs `file args` as `user`. */
export function asUser(user: string | undefined, file: string, args: string[]): [string, string[]] {
  if (!user || user === me) return [file, args];
  if (process.getuid?.() === 0) return ['runuser', ['-u', user, '--', file, ...args]];
  return ['sudo', ['-n', '-u', user, '--', file, ...args]];
}

/**
 * Kill a whole process group: `first` (SIGTERM), then SIGKILL after a grace period. Returns a function that
 * calls the SIGKILL off (once the group is known to be gone: its id may be reused).
 */
export function killProcessGroup(pid: number, graceMs = 5000, first: NodeJS.Signals = 'SIGTERM'): () => void {
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  kill(first);
  const t = setTimeout(() => kill('SIGKILL'), graceMs);
  t.unref();
  return () => clearTimeout(t);
}

/** Stop a process started in its own group (detached) and wait for it: SIGTERM, SIGKILL after `graceMs`. */
export async function stopProcessGroup(child: PromiseLike<unknown> & { pid?: number }, graceMs: number, first: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child.pid) return;
  const callOff = killProcessGroup(child.pid, graceMs, first);
  await child;
  callOff();
}

/** Wait until no process of the group is left (after killProcessGroup: its SIGKILL comes after the grace period). */
async function processGroupGone(pgid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return true;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Run a command; never throws for a non-zero exit (callers map exit codes), throws only if it cannot start. */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = asUser(opts.user, file, args);
  const ctx = currentContext();
  const started = Date.now();
  const max = opts.maxOutputBytes ?? 4 * 1024 * 1024;
  const child = execa(cmd, argv, {
    detached: true, // own process group: cancellation kills pgBackRest's workers too
    reject: false,
    buffer: false,
    env: opts.env,
    extendEnv: true,
    cwd: opts.cwd,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
  });
  const out = { stdout: '', stderr: '' };
  const collect = (stream: 'stdout' | 'stderr', s: NodeJS.ReadableStream | null) => {
    if (!s) return Promise.resolve();
    const rl = createInterface({ input: s, crlfDelay: Infinity });
    rl.on('line', (line) => {
      out[stream] += line + '\n';
      if (out[stream].length > max) out[stream] = out[stream].slice(out[stream].length - max);
      opts.onLine?.(line, stream);
    });
    return new Promise<void>((res) => rl.on('close', () => res()));
  };
  const streams = Promise.all([collect('stdout', child.stdout), collect('stderr', child.stderr)]);

  let cancelled = false;
  const onAbort = () => {
    cancelled = true;
    if (child.pid) killProcessGroup(child.pid);
  };
  ctx?.cancellationSignal.addEventListener('abort', onAbort);
  let beat: NodeJS.Timeout | undefined;
  if (ctx) {
    const every = opts.heartbeatEveryMs ?? 2000;
    beat = setInterval(() => ctx.heartbeat(opts.heartbeatDetails?.()), every);
  }
  try {
    const result = await child;
    await streams;
    if (cancelled) {
      // The command's own exit is not enough: its workers (pgBackRest's local processes) may still be
      // exiting. The cancellation is reported once the whole group is gone.
      const gone = child.pid ? await processGroupGone(child.pid) : true;
      throw new CancelledFailure(`cancelled: ${file} (process group ${child.pid}) was killed${gone ? '' : ', but some of its processes were still running 10 s later'}`);
    }
    return {
      command: [file, ...args].join(' '),
      exitCode: result.exitCode ?? (result.signal ? 128 : 1),
      stdout: out.stdout,
      stderr: out.stderr,
      durationMs: Date.now() - started,
      cancelled,
    };
  } finally {
    if (beat) clearInterval(beat);
    ctx?.cancellationSignal.removeEventListener('abort', onAbort);
  }
}
