/** Percentiles, process sampling (/proc) and plain-text tables for the benchmarks. */
import { readFileSync } from 'node:fs';

/** Nearest-rank percentile of an unsorted list (undefined for an empty one). */
export function pct(xs: number[], p: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function summary(xs: number[]): { n: number; min?: number; p50?: number; p99?: number; max?: number; median?: number } {
  return { n: xs.length, min: pct(xs, 0), p50: pct(xs, 50), p99: pct(xs, 99), max: pct(xs, 100), median: pct(xs, 50) };
}

const TICK = 100; // USER_HZ on Linux

/** utime+stime (own) and cutime+cstime (waited-for children) of a process, in seconds; RSS in MB. */
export function procSample(pid: number): { rssMb: number; cpuS: number; childCpuS: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
    return { rssMb: rssKb / 1024, cpuS: (utime + stime) / TICK, childCpuS: (cutime + cstime) / TICK };
  } catch {
    return undefined;
  }
}

export interface ProcStats {
  rssMaxMb: number;
  rssMedianMb: number;
  rssEndMb: number;
  /** Average CPU over the sampled window, % of one core. */
  cpuAvgPct: number;
  /** Highest CPU over any 10 s of the window, % of one core. */
  cpuPeak10sPct: number;
  childCpuAvgPct: number;
  seconds: number;
}

/** Samples a process every `everyMs` between start() and stop(). */
export class ProcSampler {
  private samples: { t: number; rssMb: number; cpuS: number; childCpuS: number }[] = [];
  private timer?: NodeJS.Timeout;
  constructor(
    readonly pid: number,
    readonly everyMs = 1000,
  ) {}

  start(): this {
    this.samples = [];
    const take = () => {
      const s = procSample(this.pid);
      if (s) this.samples.push({ t: performance.now(), ...s });
    };
    take();
    this.timer = setInterval(take, this.everyMs);
    return this;
  }

  stop(): ProcStats {
    clearInterval(this.timer);
    const s = procSample(this.pid);
    if (s) this.samples.push({ t: performance.now(), ...s });
    const a = this.samples[0];
    const z = this.samples[this.samples.length - 1];
    const secs = (z.t - a.t) / 1000 || 1;
    let peak = 0;
    for (let i = 0, j = 0; i < this.samples.length; i++) {
      while (j < i && this.samples[i].t - this.samples[j + 1].t >= 10_000) j++;
      const dt = (this.samples[i].t - this.samples[j].t) / 1000;
      if (dt >= 9.5) peak = Math.max(peak, ((this.samples[i].cpuS - this.samples[j].cpuS) / dt) * 100);
    }
    const rss = this.samples.map((x) => x.rssMb);
    return {
      rssMaxMb: Math.max(...rss),
      rssMedianMb: pct(rss, 50)!,
      rssEndMb: z.rssMb,
      cpuAvgPct: ((z.cpuS - a.cpuS) / secs) * 100,
      cpuPeak10sPct: peak,
      childCpuAvgPct: ((z.childCpuS - a.childCpuS) / secs) * 100,
      seconds: secs,
    };
  }
}

/** A plain table: first row is the header; columns padded to their widest cell. */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

/** Run `fn` over `items` with at most `n` at a time. */
export async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}
