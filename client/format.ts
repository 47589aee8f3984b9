/** Readable text for CLI results. */
import { offTimeline } from '../common/restore-target';
import { timelineOf, type BackupResult, type BackupSet, type StanzaInfo } from '../common/types';

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** The one human time format of the CLI and Slack (common/human-time.ts); `--json` keeps ISO 8601. */
import { times, when } from '../common/human-time';

export { times, when };

function annotationText(a: Record<string, string>): string {
  return Object.entries(a)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function formatBackupResult(r: BackupResult): string {
  const s = r.set;
  const lines = [
    `Backup set ${s.label} (${s.type}${s.prior ? `, based on ${s.prior}` : ''}) of cluster ${r.cluster}, stanza ${r.stanza}, repo${s.repo}`,
    `  taken     ${when(s.startedAt)} → ${when(s.stoppedAt)}   (${(r.durationMs / 1000).toFixed(1)} s through pgdr)`,
    `  size      database ${bytes(s.size)}, this set ${bytes(s.delta)}; in the repository ${bytes(s.repoSize)}, this set ${bytes(s.repoDelta)}`,
    `  WAL       ${s.walStart} → ${s.walStop}   LSN ${s.lsnStart} → ${s.lsnStop}`,
  ];
  if (Object.keys(s.annotations).length) lines.push(`  annotated ${annotationText(s.annotations)}`);
  if (r.snapshot) lines.push(`  snapshot  restore point "${r.snapshot.name}" at LSN ${r.snapshot.lsn}, ${when(r.snapshot.createdAt)} (WAL ${r.snapshot.walFile} archived)`);
  return lines.join('\n');
}

export function formatSetRow(s: BackupSet, timeline?: StanzaInfo['timeline']): string[] {
  const tli = timelineOf(s.walStart);
  const off = offTimeline(s, timeline);
  return [s.label, s.type, `repo${s.repo}`, when(s.stoppedAt), tli === null ? '?' : `${tli}${off ? ' (past a fork)' : ''}`, bytes(s.size), bytes(s.repoDelta), annotationText(s.annotations)];
}

export function formatStanzaInfo(cluster: string, info: StanzaInfo): string {
  const lines = [`Cluster ${cluster} — stanza ${info.stanza}: ${info.status.message}${info.backupInProgress ? ' (a backup is running)' : ''}, cipher ${info.cipher}`];
  if (info.window) {
    const src = info.window.toSource === 'archiver' ? 'last archived WAL' : 'latest backup; WAL archive time unknown';
    lines.push(`  recoverable window: ${when(info.window.from)} → ${when(info.window.to)} (${src}); WAL ${info.window.walMin} → ${info.window.walMax}`);
  } else {
    lines.push('  no backups yet: nothing can be restored');
  }
  if (info.timeline) {
    const h = info.timeline.history;
    const forks = h.map((x, i) => `${x.parent}→${h[i + 1]?.parent ?? info.timeline!.current} at ${x.switchLsn}`);
    lines.push(`  timeline: ${info.timeline.current}${forks.length ? ` (forks: ${forks.join(', ')})` : ''}`);
  }
  if (info.sets.length) {
    lines.push('', table([['LABEL', 'TYPE', 'REPO', 'STOPPED', 'TIMELINE', 'DB SIZE', 'IN REPO', 'ANNOTATIONS'], ...info.sets.map((s) => formatSetRow(s, info.timeline))]).replace(/^/gm, '  '));
    const past = info.sets.map((s) => offTimeline(s, info.timeline)).filter(Boolean);
    if (past.length) lines.push('', ...past.map((p) => `  past a fork: ${p}; it cannot restore to the current timeline`));
  }
  return lines.join('\n');
}
