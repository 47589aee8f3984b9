/**
 * A typed wrapper around the pgBackRest command line.
 *
 * Every call: an argument array through execa, as the cluster's OS user, with the stanza's config file.
 * `ERROR: [NNN]` becomes a typed failure: transient conditions (a lock held by another backup, an archive
 * timeout, a database that does not answer yet) are retryable, everything else — bad options, an unknown
 * stanza or set, a bad config — is a non-retryable ApplicationFailure carrying pgBackRest's own message.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { readFileSync } from 'node:fs';
import type { ClusterConfig } from '../common/config';
import type { VerifyReport } from '../common/drill';
import { timelineOf, type BackupSet, type BackupType, type RecoverableWindow, type StanzaInfo, type TimelineSwitch } from '../common/types';
import { run, type RunResult } from './process';

export const PGBACKREST_BIN = process.env.PGDR_PGBACKREST_BIN ?? 'pgbackrest';

/** pgBackRest error codes pgdr treats specially (see pgBackRest's error list). */
export const PGBR_ERROR = {
  optionInvalidValue: 32,
  optionRequired: 37,
  postmasterRunning: 38,
  pathNotEmpty: 40,
  lockAcquire: 50,
  dbConnect: 56,
  backupSetInvalid: 75,
  archiveTimeout: 82,
  repoInvalid: 103,
} as const;

/** Conditions that go away by themselves: worth a retry with backoff. */
const RETRYABLE = new Set<number>([PGBR_ERROR.lockAcquire, PGBR_ERROR.dbConnect, PGBR_ERROR.archiveTimeout, 39 /* protocol */, 49 /* host connect */]);

/** Failure types, usable in RetryPolicy.nonRetryableErrorTypes and in tests. */
export const FAILURE = {
  /** Another backup/expire holds the stanza lock; the caller waits and retries. */
  stanzaBusy: 'StanzaBusy',
  /** pgBackRest refused the request (bad option, unknown stanza/set, bad config): retrying will not help. */
  rejected: 'PgBackRestRejected',
  /** pgBackRest failed in a way that may be transient. */
  failed: 'PgBackRestFailed',
  badInput: 'BadInput',
  /** verify found damage in the repository. */
  repoDamaged: 'RepoDamaged',
  /** pgBackRest could not read or write a file or folder ("[13] Permission denied"): fix owner/permissions; not damage. */
  accessDenied: 'AccessDenied',
} as const;

export interface PgBackRestError {
  code: number;
  message: string;
  hint?: string;
}

/** The first `ERROR: [NNN]: message` (and its HINT) in pgBackRest's output. */
export function parseError(text: string): PgBackRestError | undefined {
  const m = /ERROR: \[(\d{3})\]: ([^\n]*)/.exec(text);
  if (!m) return undefined;
  const hint = /HINT: ([^\n]*)/.exec(text.slice(m.index))?.[1];
  return { code: Number(m[1]), message: m[2].replace(/\s+/g, ' ').trim(), hint };
}

/** Turn a failed pgBackRest run into the failure an on-call engineer should see. */
export function failureFor(command: string, stanza: string, res: RunResult): ApplicationFailure {
  const err = parseError(res.stderr) ?? parseError(res.stdout);
  const code = err?.code ?? res.exitCode;
  if (code === PGBR_ERROR.lockAcquire) {
    return ApplicationFailure.retryable(
      `Another backup or expire is running on stanza "${stanza}"; waiting for it to finish before the ${command}.`,
      FAILURE.stanzaBusy,
      { code },
    );
  }
  const detail = err ? `[${pad3(err.code)}] ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}` : lastLines(res.stderr || res.stdout, 5) || `exit code ${res.exitCode}`;
  const details = { code, error: err?.message ?? null, hint: err?.hint ?? null };
  if (isAccessProblem(detail)) {
    return ApplicationFailure.nonRetryable(`pgbackrest ${command} failed for stanza "${stanza}": access denied (owner/permissions, not damage): ${detail}`, FAILURE.accessDenied, details);
  }
  const message = `pgbackrest ${command} failed for stanza "${stanza}": ${detail}`;
  if (RETRYABLE.has(code)) return ApplicationFailure.retryable(message, FAILURE.failed, details);
  return ApplicationFailure.nonRetryable(message, FAILURE.rejected, details);
}

export function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

/** Environment carrying repo cipher passphrases from env vars or secret files named in the config. */
export function secretEnv(cluster: ClusterConfig): Record<string, string> {
  const env: Record<string, string> = {};
  for (const repo of cluster.repos) {
    let pass: string | undefined;
    if (repo.cipherPassEnv) pass = process.env[repo.cipherPassEnv];
    if (!pass && repo.cipherPassFile) {
      try {
        pass = readFileSync(repo.cipherPassFile, 'utf8').trim();
      } catch (e) {
        throw ApplicationFailure.nonRetryable(
          `cannot read the cipher passphrase file for repo${repo.index} of cluster "${cluster.name}": ${(e as Error).message}`,
          FAILURE.badInput,
        );
      }
    }
    if (pass) env[`PGBACKREST_REPO${repo.index}_CIPHER_PASS`] = pass;
  }
  return env;
}

export interface PgBackRestCall {
  /** Options placed before the command, without the leading "--" handled by the caller. */
  options?: string[];
  /** Parameters after the command (e.g. the file of repo-get). */
  params?: string[];
  /** Extra environment (e.g. PGBACKREST_* overrides). */
  env?: Record<string, string>;
  /** Console log level (default warn; "detail" gives per-file progress). */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'detail';
  /** Progress callback, fed from "(size, NN.NN%)" lines at detail level. */
  onProgress?: (percent: number) => void;
  heartbeatDetails?: () => unknown;
  /** Do not throw on a non-zero exit; let the caller look at the result. */
  allowFailure?: boolean;
}

/** Run `pgbackrest <command>` for a cluster's stanza. Throws the mapped failure unless allowFailure. */
export async function pgbackrest(cluster: ClusterConfig, command: string, call: PgBackRestCall = {}): Promise<RunResult> {
  const args = [
    `--config=${cluster.pgbackrestConfig}`,
    `--stanza=${cluster.stanza}`,
    `--log-level-console=${call.logLevel ?? 'warn'}`,
    '--log-level-stderr=error',
    ...(call.options ?? []),
    command,
    ...(call.params ?? []),
  ];
  const res = await run(PGBACKREST_BIN, args, {
    user: cluster.osUser,
    env: { ...secretEnv(cluster), ...call.env },
    onLine: call.onProgress
      ? (line) => {
          const m = /\(\d+(?:\.\d+)?[KMGT]?B, (\d+(?:\.\d+)?)%\)/.exec(line);
          if (m) call.onProgress!(Number(m[1]));
        }
      : undefined,
    heartbeatDetails: call.heartbeatDetails,
  });
  if (res.exitCode !== 0 && !call.allowFailure) throw failureFor(command, cluster.stanza, res);
  return res;
}

// ---------------------------------------------------------------------------------------------------------
// info --output=json

interface RawBackup {
  label: string;
  type: string;
  prior: string | null;
  annotation?: Record<string, string>;
  archive?: { start: string | null; stop: string | null };
  lsn?: { start: string | null; stop: string | null };
  timestamp: { start: number; stop: number };
  info?: { size?: number; delta?: number; repository?: { size?: number; delta?: number } };
  database?: { id: number; 'repo-key': number };
  error?: boolean;
}

interface RawStanza {
  name: string;
  cipher?: string;
  status: { code: number; message: string; lock?: { backup?: { held?: boolean } } };
  backup?: RawBackup[];
  archive?: { id: string; min: string | null; max: string | null }[];
}

/** Parse `info --output=json`, tolerating control characters pgBackRest may put in messages. */
export function parseInfoJson(text: string): RawStanza[] {
  // Raw bytes in error messages (e.g. a wrong cipher passphrase) make JSON.parse throw.
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').replace(/"system-id":(\d+)/g, '"system-id":"$1"');
  const parsed = JSON.parse(clean) as unknown;
  if (!Array.isArray(parsed)) throw new Error('pgbackrest info did not return a JSON array');
  return parsed as RawStanza[];
}

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

export function normaliseSet(b: RawBackup): BackupSet {
  return {
    label: b.label,
    type: b.type as BackupType,
    prior: b.prior ?? null,
    repo: b.database?.['repo-key'] ?? 1,
    annotations: b.annotation ?? {},
    startedAt: iso(b.timestamp.start),
    stoppedAt: iso(b.timestamp.stop),
    lsnStart: b.lsn?.start ?? null,
    lsnStop: b.lsn?.stop ?? null,
    walStart: b.archive?.start ?? null,
    walStop: b.archive?.stop ?? null,
    size: b.info?.size ?? 0,
    delta: b.info?.delta ?? 0,
    repoSize: b.info?.repository?.size ?? 0,
    repoDelta: b.info?.repository?.delta ?? 0,
    error: Boolean(b.error),
  };
}

/** The recoverable window: earliest backup stop → last archived WAL time (or latest backup stop). */
export function recoverableWindow(sets: BackupSet[], archive: StanzaInfo['archive'], lastArchivedAt?: string | null): RecoverableWindow | null {
  if (!sets.length) return null;
  const stops = sets.map((s) => s.stoppedAt).sort();
  const latestStop = stops[stops.length - 1];
  const useArchiver = Boolean(lastArchivedAt && lastArchivedAt > latestStop);
  const walMin = archive.map((a) => a.min).filter(Boolean).sort()[0] ?? null;
  const walMax = archive.map((a) => a.max).filter(Boolean).sort().pop() ?? null;
  return {
    from: stops[0],
    to: useArchiver ? lastArchivedAt! : latestStop,
    toSource: useArchiver ? 'archiver' : 'latest-backup',
    walMin,
    walMax,
  };
}

export function toStanzaInfo(raw: RawStanza, lastArchivedAt?: string | null): StanzaInfo {
  const sets = (raw.backup ?? []).map(normaliseSet);
  const archive = (raw.archive ?? []).map((a) => ({ id: a.id, min: a.min ?? null, max: a.max ?? null }));
  return {
    stanza: raw.name,
    status: { code: raw.status.code, message: raw.status.message },
    backupInProgress: Boolean(raw.status.lock?.backup?.held),
    cipher: raw.cipher ?? 'none',
    sets,
    archive,
    window: recoverableWindow(sets, archive, lastArchivedAt),
  };
}

/** `pgbackrest info` for the cluster's stanza, parsed. Status codes other than 0/2 are failures. */
export async function stanzaInfo(cluster: ClusterConfig, opts: { repo?: number; set?: string; lastArchivedAt?: string | null } = {}): Promise<StanzaInfo> {
  const options = ['--output=json'];
  if (opts.repo) options.push(`--repo=${opts.repo}`);
  if (opts.set) options.push(`--set=${opts.set}`);
  const res = await pgbackrest(cluster, 'info', { options });
  const raw = parseInfoJson(res.stdout).find((s) => s.name === cluster.stanza);
  if (!raw) throw ApplicationFailure.nonRetryable(`pgbackrest info returned nothing for stanza "${cluster.stanza}"`, FAILURE.rejected);
  const info = toStanzaInfo(raw, opts.lastArchivedAt);
  info.timeline = await timelineHistory(cluster, info, opts.repo);
  // 0 ok, 2 no valid backups, 4 different across repos (e.g. only repo1 has a backup yet): a readable stanza.
  // 1/3 missing stanza, 5 database mismatch, 99 other (e.g. a wrong cipher passphrase) are not.
  if (![0, 2, 4].includes(info.status.code)) {
    throw ApplicationFailure.nonRetryable(
      `pgBackRest cannot read stanza "${cluster.stanza}" (status ${info.status.code}: ${info.status.message.trim()})` +
        (info.status.code === 1 || info.status.code === 3 ? ' — run `pgdr stanza setup` first' : ''),
      FAILURE.rejected,
      { statusCode: info.status.code },
    );
  }
  return info;
}

/** Parse a timeline history file: "parentTLI<TAB>switchpoint<TAB>reason" per line. */
export function parseTimelineHistory(text: string): TimelineSwitch[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => /^\d+$/.test(f[0] ?? '') && /^[0-9A-F]+\/[0-9A-F]+$/i.test(f[1] ?? ''))
    .map((f) => ({ parent: Number(f[0]), switchLsn: f[1].toUpperCase() }));
}

/**
 * The newest timeline in the archive and its history (read with `repo-get`, which decrypts). After a
 * point-in-time recovery the old timeline goes on past the branch point, and backups taken there cannot
 * reach the new timeline: restore target checks need this to choose a backup set PostgreSQL can use.
 */
export async function timelineHistory(cluster: ClusterConfig, info: StanzaInfo, repo?: number): Promise<StanzaInfo['timeline']> {
  const archiveId = info.archive[info.archive.length - 1]?.id;
  if (!archiveId) return undefined;
  const repoOpt = repo ? [`--repo=${repo}`] : [];
  // A promotion archives its timeline's history file at once, before any segment of the new timeline:
  // the history files, not the newest segment, tell which timeline recovery will follow.
  const ls = await pgbackrest(cluster, 'repo-ls', { options: [...repoOpt, '--filter=\\.history$', '--output=json'], params: [`archive/${cluster.stanza}/${archiveId}`], allowFailure: true });
  let historyFiles: string[] = [];
  try {
    historyFiles = ls.exitCode === 0 ? Object.keys(JSON.parse(ls.stdout) as Record<string, unknown>) : [];
  } catch {
    /* unreadable listing: fall back to segment names */
  }
  const tlis = [
    ...historyFiles.map((f) => parseInt(f.slice(0, 8), 16)),
    ...info.archive.map((a) => timelineOf(a.max)),
    ...info.sets.map((s) => timelineOf(s.walStart)),
  ].filter((t): t is number => typeof t === 'number' && !Number.isNaN(t));
  if (!tlis.length) return undefined;
  const current = Math.max(...tlis);
  if (current === 1) return { current, history: [] };
  const file = `archive/${cluster.stanza}/${archiveId}/${current.toString(16).toUpperCase().padStart(8, '0')}.history`;
  const res = await pgbackrest(cluster, 'repo-get', { options: repoOpt, params: [file], allowFailure: true });
  return { current, history: res.exitCode === 0 ? parseTimelineHistory(res.stdout) : [] };
}

// ---------------------------------------------------------------------------------------------------------
// verify

/** A file `verify` could not prove: a file of a backup set, or a WAL segment. */
export interface VerifyBadFile {
  /** The backup set, or null for WAL and unknown paths. */
  set: string | null;
  /** WAL: the archive id ("15-1"). */
  archiveId?: string;
  /** The path inside the set, or the WAL segment name. */
  file: string;
  /** pgBackRest's reason: "invalid checksum", "unexpected eof in compressed data", "unable to open file '…' for read: [13] Permission denied". */
  problem: string;
  /** pgBackRest's error code when reading the file raised one ("[29] raised from local-1 protocol: …"). */
  code?: number;
  /** Unreadable (permissions): an access problem, which says nothing about the file's content. */
  access: boolean;
}

export interface VerifyOutput extends Omit<VerifyReport, 'durationMs' | 'badFiles'> {
  badFiles: VerifyBadFile[];
  /** Something is damaged or missing (false when every problem is an access problem). */
  damaged: boolean;
}

const SET_PATH_RE = /^(\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?)\/(.+)$/;
const WAL_PATH_RE = /^(\d+-\d+)\/[0-9A-F]{16}\/([0-9A-F]{24})(?:-[0-9a-f]{40})?(?:\.\w+)?$/;

/** An access problem (permissions), as opposed to damage: "[13] Permission denied", "[1] Operation not permitted". */
export const isAccessProblem = (text: string) => /Permission denied|Operation not permitted|\[13\]/i.test(text);

const pad3 = (code: number) => String(code).padStart(3, '0');
const fileProblem = (f: VerifyBadFile) => `${f.code !== undefined ? `[${pad3(f.code)}] ` : ''}${f.problem}`;

function badFile(path: string, problem: string, code?: number): VerifyBadFile {
  const s = SET_PATH_RE.exec(path);
  const w = s ? null : WAL_PATH_RE.exec(path);
  return {
    set: s?.[1] ?? null,
    ...(w ? { archiveId: w[1] } : {}),
    file: s?.[2] ?? w?.[2] ?? path,
    problem,
    ...(code !== undefined ? { code } : {}),
    access: isAccessProblem(problem),
  };
}

/** Parse `pgbackrest verify --log-level-console=detail` output (it exits 0 even when it finds damage). Pure. */
export function parseVerifyOutput(text: string): VerifyOutput {
  const lines = text.split('\n');
  const badFiles: VerifyBadFile[] = [];
  const listed = new Set<VerifyBadFile>();
  const problems: string[] = [];
  const invalidSets: string[] = [];
  let damaged = false;
  let stanzaStatus: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    // "P01   INFO: invalid result 15-1/0000000100000000/0000000100000000000000004-<sha1>.gz: [29] raised from local-1 protocol: unexpected eof in compressed data"
    const r = /\b(?:INFO|WARN|DETAIL|ERROR):\s*invalid result (\S+?): \[(\d+)\] (?:raised from \S+ protocol: )?(.*)$/.exec(line);
    // "P01   INFO: invalid checksum '20261121-193148F/pg_data/base/5/2655.gz'" (also "file missing", "invalid size" …)
    const q = r ? null : /\b(?:INFO|WARN|DETAIL|ERROR):\s*((?:invalid|missing|file missing|checksum|unable to)[^'\n]*?)\s*'([^'\n]+)'/i.exec(line);
    if (r) badFiles.push(badFile(r[1], r[3].trim(), Number(r[2])));
    else if (q) badFiles.push(badFile(q[2], q[1].trim()));
    const st = /^\s*(?:.*INFO: stanza: \S+\s*)?status: (\S+)/.exec(line);
    if (st && !/backup:|archiveId:/.test(line)) stanzaStatus = st[1];
    // The summary block: "backup: <label>, status: invalid, …" or "archiveId: 15-1, total WAL checked: 5, total valid WAL: 4",
    // followed by indented counters ("checksum invalid: 2, other: 1").
    const b = /backup: (\S+?),? status: ([^,]+)/.exec(line);
    const a = /archiveId: (\S+?),? total WAL checked: (\d+), total valid WAL: (\d+)/.exec(line);
    if ((b && b[2].trim() !== 'valid') || (a && a[2] !== a[3])) {
      const counters: string[] = [];
      for (let j = i + 1; j < lines.length && /^\s+[a-z][a-z ]+: \d+/.test(lines[j]) && !/backup:|archiveId:/.test(lines[j]); j++) counters.push(lines[j].trim());
      const files = badFiles.filter((f) => (b ? f.set === b[1] : f.archiveId === a![1]));
      files.forEach((f) => listed.add(f));
      if (!files.length || files.some((f) => !f.access)) damaged = true;
      const head = b ? `backup set ${b[1]}: ${b[2].trim()}` : `WAL of ${a![1]}: ${Number(a![2]) - Number(a![3])} of ${a![2]} segments not valid`;
      if (b) invalidSets.push(b[1]);
      problems.push(`${head}${counters.length ? ` (${counters.join(', ')})` : ''}${files.length ? ` — ${files.map((f) => `${f.file} (${fileProblem(f)})`).join('; ')}` : ''}`);
    }
  }
  // Files the summary did not account for (e.g. output cut short).
  for (const f of badFiles.filter((x) => !listed.has(x))) {
    if (!f.access) damaged = true;
    problems.push(`${f.set ? `backup set ${f.set}: ` : f.archiveId ? `WAL of ${f.archiveId}: ` : ''}${f.file}: ${fileProblem(f)}`);
  }
  // WAL ranges (detail): a gap between two ranges of one archive id and timeline means missing segments.
  const ranges = [...text.matchAll(/archiveId: (\S+?),? wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})/g)].map((m) => ({ archiveId: m[1], start: m[2], stop: m[3] }));
  for (let i = 1; i < ranges.length; i++) {
    const [x, y] = [ranges[i - 1], ranges[i]];
    if (x.archiveId === y.archiveId && x.stop.slice(0, 8) === y.start.slice(0, 8)) {
      damaged = true;
      problems.push(`WAL missing in ${x.archiveId} after ${x.stop} up to ${y.start} (exclusive)`);
    }
  }
  if (!problems.length && stanzaStatus && stanzaStatus !== 'ok') {
    damaged = true;
    problems.push(`verify reported status "${stanzaStatus}"`);
  }
  return { ok: problems.length === 0, problems, badFiles, invalidSets, walRanges: ranges.map((r) => `${r.archiveId}: ${r.start} → ${r.stop}`), damaged };
}

/**
 * The failure for a verify run that found problems (undefined when it found none): RepoDamaged when
 * something is damaged or missing, AccessDenied when pgBackRest only could not read files (permissions).
 */
export function verifyFailure(stanza: string, repo: number | undefined, report: VerifyOutput & { durationMs?: number }): ApplicationFailure | undefined {
  if (report.ok) return undefined;
  const where = `the repository of stanza "${stanza}"${repo ? ` (repo${repo})` : ''}`;
  if (report.damaged) return ApplicationFailure.nonRetryable(`pgbackrest verify found damage in ${where}: ${report.problems.join('; ')}`, FAILURE.repoDamaged, report);
  return ApplicationFailure.nonRetryable(
    `pgbackrest verify could not read files in ${where} — an access problem (owner/permissions), not damage: ${report.problems.join('; ')}`,
    FAILURE.accessDenied,
    report,
  );
}
