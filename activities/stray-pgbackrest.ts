/**
 * Stray pgBackRest processes: a restore or backup left running by a worker that was killed keeps writing.
 * Found by their exact argv in /proc (no splitting of command lines) and killed with their process groups
 * before a retried step starts again.
 */
import { sleep } from '@temporalio/activity';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** A process that has exited but was not reaped yet (state Z). */
function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

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

/**
 * The local worker processes (`restore:local`, `backup:local`) of pgBackRest processes: they carry their
 * parent's `--exec-id=<pid>-<random>`, and may outlive a killed parent for a while.
 */
function pgBackRestWorkersOf(pids: number[]): { pid: number; pgid: number }[] {
  if (!pids.length) return [];
  const prefixes = pids.map((p) => `--exec-id=${p}-`);
  const found: { pid: number; pgid: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes('pgbackrest')) && argv.some((a) => prefixes.some((p) => a.startsWith(p)))) found.push({ pid: Number(entry), pgid: processGroupOf(Number(entry)) });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/**
 * Kill stray pgBackRest `command` processes (see strayPgBackRest) with their process groups and their local
 * workers; wait until gone.
 */
export async function killStrayPgBackRest(command: string, args: string[]): Promise<number> {
  const found = strayPgBackRest(command, args);
  const stray = [...found, ...pgBackRestWorkersOf(found.map((s) => s.pid))];
  const own = processGroupOf('self');
  for (const s of stray) {
    for (const target of s.pgid === own ? [s.pid] : [-s.pgid, s.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  const alive = () => stray.some((s) => existsSync(`/proc/${s.pid}`) && !zombie(s.pid));
  for (let i = 0; i < 50 && alive(); i++) await sleep(100);
  return found.length;
}

/** PIDs and process groups of pgBackRest processes restoring into `dataDir` (e.g. left by a killed worker). */
export async function strayRestores(dataDir: string): Promise<{ pid: number; pgid: number }[]> {
  return strayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
}

/** Kill stray restores into `dataDir` (and local workers whose parent is gone already) and wait until they are gone. */
export async function killStrayRestores(dataDir: string): Promise<number> {
  const restores = await killStrayPgBackRest('restore', [`--pg1-path=${dataDir}`]);
  return restores + (await killStrayPgBackRest('restore:local', [`--pg1-path=${dataDir}`]));
}
