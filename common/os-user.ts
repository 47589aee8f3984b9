/**
 * The OS user that owns a cluster's files (usually `postgres`): its ids, looked up through the system's
 * user database (NSS: files, LDAP, sssd…), and folders created owned by it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';

const known = new Map<string, { uid: number; gid: number }>();

/** uid and gid of an OS user, as `id` resolves them (so NSS/LDAP users work too). */
export function osUserIds(user: string): { uid: number; gid: number } {
  const cached = known.get(user);
  if (cached) return cached;
  const me = userInfo();
  let ids: { uid: number; gid: number };
  if (user === me.username) {
    ids = { uid: me.uid, gid: me.gid };
  } else {
    const id = (flag: '-u' | '-g') => {
      try {
        return Number(execFileSync('id', [flag, '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
      } catch {
        throw new Error(`OS user "${user}" does not exist (install postgresql-15, which creates postgres, or fix osUser in pgdr.yaml)`);
      }
    };
    ids = { uid: id('-u'), gid: id('-g') };
  }
  known.set(user, ids);
  return ids;
}

/** mkdir -p owned by the cluster's OS user; parents stay as they are but must be traversable. */
export function makeOwnedDir(path: string, user: string, mode = 0o750): void {
  mkdirSync(path, { recursive: true });
  const { uid, gid } = osUserIds(user);
  if (process.getuid?.() === 0) chownSync(path, uid, gid);
  chmodSync(path, mode);
}
