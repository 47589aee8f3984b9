/**
 * Stray pgBackRest processes: a restore or backup left running by a worker that was killed keeps writing.
 * Found by their exact argv in /proc (no splitting of command lines) and killed with their process groups
 * before a retried step starts again.
 */
import { sleep } from '@temporalio/activity';
import { readdirSync, readFileSync } from 'node:fs';

/** The process group of `pid` (field 5 of /proc/<pid>/stat, after the command name in parentheses). */
function processGroupOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/**
 * PIDs and process groups of pgBackRest processes running `command` (exactly that argument) whose argument
 * lists hold every one of `args` — e.g. left by a killed worker. Read from /proc: exact argv, no splitting.
 */
export function strayPgBackRest(command: string, args: string[]): { pid: number; pgid: number }[] {
  const own = processGroupOf('self');
  const found: { pid: number; pgid: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.includes('pgbackrest')) || !argv.includes(command) || !args.every((a) => argv.includes(a))) continue;
      const pgid = processGroupOf(Number(entry));
      if (pgid !== own) found.push({ pid: Number(entry), pgid });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Kill stray pgBackRest `command` processes (see strayPgBackRest) with their process groups; wait until gone. */
export async function killStrayPgBackRest(command: string, args: string[]): Promise<number> {
  const stray = strayPgBackRest(command, args);
  for (const s of stray) {
    for (const target of [-s.pgid, s.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (let i = 0; i < 50 && stray.length && strayPgBackRest(command, args).length; i++) await sleep(100);
  return stray.length;
}

/** PIDs and process groups of pgBackRest processes restoring into `dataDir` (e.g. left by a killed worker). */
export async function strayRestores(dataDir: string): Promise<{ pid: number; pgid: number }[]> {
  return strayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
}

/** Kill stray restores into `dataDir` and wait until they are gone. */
export function killStrayRestores(dataDir: string): Promise<number> {
  return killStrayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
}
