/**
 * Database hosts as Linux network namespaces, for the multi-host tests. Everything stays on this machine:
 *
 *   root namespace                                          host namespace pgdr-<pid>-<host>
 *   pd<pid>h<i>  10.231.R.(4i+1)/30  <── veth ──>  eth0  10.231.R.(4i+2)/30, lo
 *   pd<pid>s0    10.231.R.254/32  (the service address: Temporal and S3 bind there, and only there)
 *
 * Why a service address of its own: a host is torn down in the middle of a test (its veth goes with its
 * namespace), so the servers cannot bind to a host's root-side address. A `dummy` link is what one would use,
 * but this kernel has no dummy driver; a veth pair whose two ends both stay in the root namespace is the same
 * thing for our purpose (an always-up local address, reachable from every host veth because Linux answers for
 * any local address on any interface). Each host namespace gets exactly two routes: its /30 and the service
 * /32 — no default route, no forwarding, no NAT: nothing can leave the machine, and no host can reach another.
 *
 * Host names: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for what it runs, so each
 * namespace gets its own hosts file (localhost plus the names given to `createNetnsLab`, e.g. the S3 endpoint's
 * DNS name → the service address) without touching the machine's /etc/hosts.
 *
 * Names carry this process's pid; `createNetnsLab` first removes what a crashed earlier run left (namespaces
 * and links with the pgdr prefix whose pid is dead, and the processes still inside those namespaces), and
 * `teardown` removes everything it made on every exit path the test gives it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { run, type RunOptions, type RunResult } from '../../activities/process';

const NS_PREFIX = 'pgdr-';
const LINK_PREFIX = 'pd';

export interface NetnsHost {
  name: string;
  /** The network namespace: pgdr-<pid>-<name>. */
  ns: string;
  /** The host's own address (host side of its veth). */
  ip: string;
  /** Root-side address of its veth (its only gateway, towards the service address). */
  gateway: string;
  /** Root-side link name. */
  link: string;
  /** Run a command inside the namespace (as `user` through runuser, else as root) and wait for it. */
  exec(file: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Start a long-running process inside the namespace (`ip netns exec` replaces itself: the pid is the process's). */
  spawn(file: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** PIDs of every process inside the namespace. */
  pids(): Promise<number[]>;
}

export interface ListeningSocket {
  where: string;
  local: string;
  process: string;
}

export interface NetnsLab {
  /** pgdr-<pid>- */
  prefix: string;
  /** The address every server in the root namespace binds to. */
  serviceIp: string;
  hosts: Map<string, NetnsHost>;
  addHost(name: string): Promise<NetnsHost>;
  /** Kill what runs in the namespace (SIGKILL: a lost host), delete it and its veth. */
  removeHost(name: string): Promise<void>;
  /** TCP listening sockets inside the host namespaces, and those of the given root-namespace pids. */
  listening(rootPids: number[]): Promise<ListeningSocket[]>;
  teardown(): Promise<void>;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function ip(args: string[], allowFailure = false): Promise<RunResult> {
  const r = await run('ip', args);
  if (r.exitCode !== 0 && !allowFailure) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return r;
}

async function namespaces(): Promise<string[]> {
  const r = await ip(['netns', 'list'], true);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

async function links(): Promise<string[]> {
  const r = await ip(['-o', 'link', 'show']);
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => Boolean(n));
}

async function nsPids(ns: string): Promise<number[]> {
  const r = await ip(['netns', 'pids', ns], true);
  return r.stdout.split('\n').map(Number).filter((n) => n > 0);
}

async function killAllIn(ns: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pids = await nsPids(ns);
    if (!pids.length) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const NETNS_ETC = '/etc/netns';

async function deleteNamespace(ns: string): Promise<void> {
  await killAllIn(ns);
  await ip(['netns', 'del', ns], true);
  rmSync(`${NETNS_ETC}/${ns}`, { recursive: true, force: true });
}

/** Remove namespaces and links with pgdr's prefix that belong to a process that is gone (a crashed run). */
export async function removeStale(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await namespaces()) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(ns);
    if (!m || alive(Number(m[1]))) continue;
    await deleteNamespace(ns);
    removed.push(`netns ${ns}`);
  }
  for (const l of await links()) {
    const m = new RegExp(`^${LINK_PREFIX}(\\d+)[hs]\\d*$`).exec(l);
    if (!m || alive(Number(m[1]))) continue;
    await ip(['link', 'del', l], true);
    removed.push(`link ${l}`);
  }
  let etc: string[] = [];
  try {
    etc = readdirSync(NETNS_ETC);
  } catch {
    /* none */
  }
  for (const ns of etc) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(ns);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(`${NETNS_ETC}/${ns}`, { recursive: true, force: true });
    removed.push(`${NETNS_ETC}/${ns}`);
  }
  return removed;
}

/** A /24 in 10.231.0.0/16 that no interface of the root namespace uses yet. */
async function freeSubnet(): Promise<number> {
  const used = (await ip(['-4', '-o', 'addr', 'show'])).stdout;
  const start = process.pid % 250;
  for (let k = 0; k < 250; k++) {
    const r = 1 + ((start + k) % 250);
    if (!used.includes(` 10.231.${r}.`)) return r;
  }
  throw new Error('no free 10.231.R.0/24 for the test network');
}

/** `names`: host names every namespace resolves (its own /etc/hosts), e.g. { 's3.pgdr.test': 'service' } — 'service' means the service address. */
export async function createNetnsLab(o: { names?: Record<string, 'service' | string> } = {}): Promise<NetnsLab> {
  const stale = await removeStale();
  if (stale.length) console.log(`netns: removed what a crashed run left: ${stale.join(', ')}`);
  const pid = process.pid;
  const prefix = `${NS_PREFIX}${pid}-`;
  const subnet = await freeSubnet();
  const serviceIp = `10.231.${subnet}.254`;
  const svcLink = `${LINK_PREFIX}${pid}s0`;
  const hosts = new Map<string, NetnsHost>();
  let nextIndex = 1;
  const madeLinks = [svcLink, `${LINK_PREFIX}${pid}s1`];

  await ip(['link', 'add', svcLink, 'type', 'veth', 'peer', 'name', `${LINK_PREFIX}${pid}s1`]);
  await ip(['addr', 'add', `${serviceIp}/32`, 'dev', svcLink]);
  await ip(['link', 'set', svcLink, 'up']);
  await ip(['link', 'set', `${LINK_PREFIX}${pid}s1`, 'up']);

  const lab: NetnsLab = {
    prefix,
    serviceIp,
    hosts,
    async addHost(name) {
      if (hosts.has(name)) throw new Error(`host ${name} exists`);
      const i = nextIndex++;
      if (i > 60) throw new Error('at most 60 hosts per run');
      const ns = `${prefix}${name}`;
      const link = `${LINK_PREFIX}${pid}h${i}`;
      const gateway = `10.231.${subnet}.${4 * i + 1}`;
      const hostIp = `10.231.${subnet}.${4 * i + 2}`;
      await ip(['netns', 'add', ns]);
      mkdirSync(`${NETNS_ETC}/${ns}`, { recursive: true });
      const names = Object.entries(o.names ?? {}).map(([n, a]) => `${a === 'service' ? serviceIp : a} ${n}`);
      writeFileSync(`${NETNS_ETC}/${ns}/hosts`, ['127.0.0.1 localhost', `${hostIp} ${name}`, ...names, ''].join('\n'));
      madeLinks.push(link);
      await ip(['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['addr', 'add', `${gateway}/30`, 'dev', link]);
      await ip(['link', 'set', link, 'up']);
      const inNs = (args: string[]) => ip(['netns', 'exec', ns, 'ip', ...args]);
      await inNs(['link', 'set', 'lo', 'up']);
      await inNs(['addr', 'add', `${hostIp}/30`, 'dev', 'eth0']);
      await inNs(['link', 'set', 'eth0', 'up']);
      await inNs(['route', 'add', `${serviceIp}/32`, 'via', gateway, 'dev', 'eth0']);
      const host: NetnsHost = {
        name,
        ns,
        ip: hostIp,
        gateway,
        link,
        exec: (file, args, opts = {}) => {
          const { user, ...rest } = opts;
          const argv = user && user !== 'root' ? ['runuser', '-u', user, '--', file, ...args] : [file, ...args];
          return run('ip', ['netns', 'exec', ns, ...argv], rest);
        },
        spawn: (file, args, opts = {}) => spawn('ip', ['netns', 'exec', ns, file, ...args], opts),
        pids: () => nsPids(ns),
      };
      hosts.set(name, host);
      return host;
    },
    async removeHost(name) {
      const h = hosts.get(name);
      if (!h) return;
      await deleteNamespace(h.ns);
      await ip(['link', 'del', h.link], true); // gone with the namespace already, normally
      hosts.delete(name);
    },
    async listening(rootPids) {
      const out: ListeningSocket[] = [];
      const parse = (text: string, where: string, keep: (pids: number[]) => boolean) => {
        for (const line of text.split('\n').filter(Boolean)) {
          const cols = line.trim().split(/\s+/);
          const pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
          if (keep(pids)) out.push({ where, local: cols[3], process: /users:\(\("([^"]+)"/.exec(line)?.[1] ?? '?' });
        }
      };
      const wanted = new Set(rootPids.flatMap((p) => [p, ...descendants(p)]));
      parse((await run('ss', ['-ltnpH'])).stdout, 'root', (pids) => pids.some((p) => wanted.has(p)));
      for (const h of hosts.values()) parse((await h.exec('ss', ['-ltnpH'])).stdout, h.name, () => true);
      return out;
    },
    async teardown() {
      for (const name of [...hosts.keys()]) await lab.removeHost(name).catch(() => undefined);
      for (const l of madeLinks) if ((await links()).includes(l)) await ip(['link', 'del', l], true);
      try {
        rmdirSync(NETNS_ETC); // only when empty: another user's namespaces keep theirs
      } catch {
        /* not empty, or gone */
      }
    },
  };
  return lab;
}

/** Every descendant pid of `pid` (from /proc). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}
