/** Free space where a restore or a copy will land. */
import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/** The path itself, or its nearest parent that exists (a restore target may not exist yet). */
export function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** Bytes available to an unprivileged writer on the filesystem that holds `path` (or its nearest existing parent). */
export function freeBytes(path: string): number {
  const s = statfsSync(nearestExisting(path));
  return Number(s.bavail) * Number(s.bsize);
}
