/**
 * The DR report of a full-site recovery (or its drill): Markdown for people at the post-mortem and an SVG
 * Gantt chart of the steps. Pure (no I/O, no clock): the workflow collects the data, an activity writes the
 * files, `pgdr report <workflowId>` prints the Markdown.
 */
import { walSegmentEnd } from './restore-target';
import { lsnToBigInt } from './types';
import { formatDuration } from './human-time';

export type DrOutcome = 'running' | 'recovered' | 'drill-passed' | 'aborted' | 'failed';

export interface DrStep {
  name: string;
  state: 'running' | 'done' | 'failed' | 'skipped';
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  note?: string;
}

export interface DrChecklistItem {
  id: string;
  title: string;
  kind: 'auto' | 'manual';
  state: string;
  optional?: boolean;
  by?: string;
  at?: string;
  note?: string;
}

export interface DrChecklist {
  name: string;
  items: DrChecklistItem[];
}

export interface DrVote {
  by: string;
  decision: 'approve' | 'reject';
  via: string;
  at: string;
  comment?: string;
}

export interface DrApproval {
  approvalId: string;
  status: string;
  required: number;
  requestedAt: string;
  decidedAt?: string;
  votes: DrVote[];
}

export interface DrPause {
  step: string;
  error: string;
  since: string;
  attempt: number;
  decidedAt?: string;
  decision?: 'retry' | 'abort' | 'keep' | 'rollBack' | 'timeout';
  by?: string;
  note?: string;
}

export interface DrReached {
  recoveryMs: number;
  lastReplayLsn: string | null;
  lastReplayTime: string | null;
  timeline: number | null;
  stoppedAt: string | null;
  /** The newest WAL segment the repository held when the restore started. */
  walMax?: string | null;
  /** The recovery replayed at least up to walMax (latest targets). */
  reachedWalMax?: boolean | null;
}

export interface DrReportData {
  workflowId: string;
  cluster: string;
  targetHost: string;
  /** The host the cluster lived on according to the config of the worker that ran the workflow. */
  previousHost?: string;
  drill: boolean;
  outcome: DrOutcome;
  requestedBy: string;
  reason: string;
  startedAt: string;
  endedAt?: string;
  repo?: { index: number; name?: string };
  set?: { label: string; type: string; stoppedAt: string; size: number };
  /** What was asked for ("latest", "time 2025-…") and what pgdr resolved it to. */
  target: { requested: string; description?: string };
  location?: { dataDir: string; port: number; scratch?: boolean };
  reached?: DrReached;
  steps: DrStep[];
  approvals: DrApproval[];
  checklists: DrChecklist[];
  pauses: DrPause[];
  rto: { target: string; targetMs: number };
  /** When the database answered its post-restore checks (ISO). */
  databaseAvailableAt?: string;
  error?: string;
  /** Extra follow-ups known to the workflow (e.g. the scratch copy could not be removed). */
  notes?: string[];
}

/** What a run has established so far (set step by step as facts become known). */
export type DrFacts = Omit<DrReportData, 'endedAt' | 'steps' | 'approvals' | 'checklists' | 'pauses'>;

/** The report's data as of now: the facts so far, the live parts (steps, votes, lists, pauses), and the end once there is an outcome. */
export function drReportData(facts: DrFacts, live: Pick<DrReportData, 'steps' | 'approvals' | 'checklists' | 'pauses'>, now: string): DrReportData {
  return { ...facts, endedAt: facts.outcome === 'running' ? undefined : now, ...live };
}

const hms = (iso?: string) => (iso ? iso.slice(11, 19) : '—');
const stamp = (iso?: string) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : '—');
/** Markdown table cells: no pipes or newlines. */
const cell = (s: string | undefined) => (s ?? '').replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** End of the run so far (the last step end, or endedAt). */
function runEnd(d: DrReportData): string | undefined {
  if (d.endedAt) return d.endedAt;
  const ends = d.steps.map((s) => s.endedAt ?? s.startedAt).sort();
  return ends[ends.length - 1];
}

/** Measured RTO: from the start of the runbook to its end (recovered) or so far. */
export function measuredRto(d: DrReportData): { measuredMs?: number; databaseMs?: number; exceeded?: boolean } {
  const end = runEnd(d);
  const measuredMs = end ? Date.parse(end) - Date.parse(d.startedAt) : undefined;
  const databaseMs = d.databaseAvailableAt ? Date.parse(d.databaseAvailableAt) - Date.parse(d.startedAt) : undefined;
  return { measuredMs, databaseMs, exceeded: measuredMs !== undefined ? measuredMs > d.rto.targetMs : undefined };
}

/** Who signed off / approved / resumed around a step, for the timeline's "by" column. */
function whoFor(step: DrStep, d: DrReportData): string {
  if (/^approval/i.test(step.name)) {
    const a = d.approvals[d.approvals.length - 1];
    if (a) return a.votes.map((v) => `${v.decision === 'approve' ? 'approved' : 'rejected'} by ${v.by}`).join(', ');
  }
  return '';
}

export function followUps(d: DrReportData): string[] {
  const out: string[] = [];
  const rto = measuredRto(d);
  if (d.outcome === 'aborted' || d.outcome === 'failed') {
    out.push(
      d.drill
        ? 'The drill did not complete: fix the cause below and run the drill again before relying on this runbook.'
        : `Cluster ${d.cluster} is NOT recovered on ${d.targetHost}: production is still down until a recovery completes.`,
    );
  }
  if (rto.exceeded) out.push(`RTO target exceeded (${formatDuration(rto.measuredMs!)} against ${d.rto.target}): find the slowest steps in the timeline and shorten them.`);
  for (const p of d.pauses) out.push(`Root cause of "${p.step}" failing (${p.error.split('\n')[0].slice(0, 200)}): make sure a rebuilt host has this right from the start.`);
  for (const c of d.checklists) {
    for (const i of c.items) {
      if (i.state === 'failed') out.push(`${c.name}: "${i.title}" failed${i.note ? ` (${i.note.split('\n')[0].slice(0, 200)})` : ''}.`);
      if (i.state === 'skipped' && !d.drill) out.push(`${c.name}: "${i.title}" was skipped${i.note ? ` (${i.note})` : ''}: do it or document why not.`);
    }
  }
  if (d.reached && d.reached.reachedWalMax === false) {
    out.push(`Recovery ended at ${d.reached.lastReplayLsn} before the newest archived WAL segment ${d.reached.walMax}: find out what is missing from the archive.`);
  }
  if (!d.drill && d.outcome === 'recovered') {
    out.push(`Take a new full backup of ${d.cluster} on ${d.targetHost} (pgdr backup --cluster ${d.cluster} --type full): the cluster runs on a new timeline.`);
    out.push(`Update pgdr.yaml everywhere: cluster ${d.cluster} now lives on host ${d.targetHost}${d.previousHost && d.previousHost !== d.targetHost ? ` (was ${d.previousHost})` : ''}; re-apply the schedules (pgdr schedules apply).`);
    if (d.repo && d.repo.index !== 1) out.push(`The recovery used repo${d.repo.index}${d.repo.name ? ` (${d.repo.name})` : ''}: check or rebuild repo1 before the next backup relies on it.`);
  }
  if (d.drill && d.outcome === 'drill-passed') out.push('Schedule the next full-site drill (quarterly) and compare its timeline with this one.');
  out.push(...(d.notes ?? []));
  return [...new Set(out)];
}

const outcomeText: Record<DrOutcome, string> = {
  running: 'IN PROGRESS',
  recovered: 'RECOVERED',
  'drill-passed': 'DRILL PASSED',
  aborted: 'ABORTED',
  failed: 'FAILED',
};

/** The Markdown report. */
export function renderDrReport(d: DrReportData, opts: { svgFile?: string } = {}): string {
  const rto = measuredRto(d);
  const lines: string[] = [];
  lines.push(`# ${d.drill ? 'DR drill' : 'Full-site recovery'} of cluster ${d.cluster} onto host ${d.targetHost} — ${outcomeText[d.outcome]}`);
  lines.push('');
  lines.push(`- Workflow: \`${d.workflowId}\``);
  lines.push(`- Requested by ${d.requestedBy}: ${d.reason}`);
  lines.push(`- Started ${stamp(d.startedAt)}, ${d.endedAt ? `ended ${stamp(d.endedAt)}` : 'still running'}`);
  if (d.drill) lines.push('- Mode: **drill** — restored into a scratch location on the target host; production, its applications and DNS were not touched');
  if (d.error) lines.push(`- ${d.outcome === 'aborted' ? 'Aborted' : 'Stopped'}: ${d.error.split('\n')[0]}`);
  lines.push('');

  lines.push('## Recovery time');
  lines.push('');
  lines.push(`| Measure | Value |`);
  lines.push(`|---|---|`);
  lines.push(`| RTO target (rto.fullSite) | ${d.rto.target} |`);
  lines.push(`| Measured, start → ${d.endedAt ? 'end' : 'now'} | ${rto.measuredMs !== undefined ? formatDuration(rto.measuredMs) : '—'}${rto.exceeded ? ' — **EXCEEDED**' : rto.measuredMs !== undefined ? ' — within target' : ''} |`);
  lines.push(`| Database available (post-restore checks passed) | ${rto.databaseMs !== undefined ? `after ${formatDuration(rto.databaseMs)}` : 'no'} |`);
  const pausedMs = d.pauses.reduce((sum, p) => sum + (p.decidedAt ? Date.parse(p.decidedAt) - Date.parse(p.since) : 0), 0);
  if (d.pauses.length) lines.push(`| Time paused after failures | ${formatDuration(pausedMs)} in ${d.pauses.length} pause(s) |`);
  lines.push('');

  lines.push('## Backup and recovery point');
  lines.push('');
  lines.push(`- Repository: ${d.repo ? `repo${d.repo.index}${d.repo.name ? ` (${d.repo.name})` : ''}` : 'not chosen yet'}`);
  lines.push(`- Backup set: ${d.set ? `${d.set.label} (${d.set.type}, finished ${stamp(d.set.stoppedAt)})` : '—'}`);
  lines.push(`- Recovery target: ${d.target.requested}${d.target.description ? ` → ${d.target.description}` : ''}`);
  if (d.reached) {
    const r = d.reached;
    const bits = [
      r.lastReplayLsn && `last replayed WAL position ${r.lastReplayLsn}`,
      r.lastReplayTime && `last replayed commit ${stamp(r.lastReplayTime)}`,
      r.timeline !== null && `timeline ${r.timeline} after promotion`,
      r.stoppedAt,
    ].filter(Boolean);
    lines.push(`- Point actually reached: ${bits.join('; ') || 'end of the backup'} (recovery took ${formatDuration(r.recoveryMs)})`);
    if (r.walMax) lines.push(`- Newest archived WAL segment in the repository: ${r.walMax}${r.reachedWalMax === true ? ' — replayed' : r.reachedWalMax === false ? ' — **NOT reached**' : ''}`);
  } else {
    lines.push('- Point actually reached: — (not started)');
  }
  if (d.location) lines.push(`- Runs ${d.location.scratch ? 'as a scratch copy ' : ''}in \`${d.location.dataDir}\`, port ${d.location.port}${d.location.scratch ? ' (torn down at the end of the drill)' : ''}`);
  lines.push('');

  lines.push('## Timeline');
  lines.push('');
  lines.push('| # | Step | Start | End | Duration | Result | Who / note |');
  lines.push('|---|---|---|---|---|---|---|');
  d.steps.forEach((s, i) => {
    const who = s.note ?? whoFor(s, d);
    const result = { running: '⏳ running', done: '✓ done', failed: '✗ failed', skipped: '– skipped' }[s.state];
    lines.push(`| ${i + 1} | ${cell(s.name)} | ${hms(s.startedAt)} | ${hms(s.endedAt)} | ${s.durationMs !== undefined ? formatDuration(s.durationMs) : '—'} | ${result} | ${cell(who.slice(0, 400))} |`);
  });
  if (opts.svgFile) lines.push('', `Timeline chart: \`${opts.svgFile}\``);
  lines.push('');

  lines.push('## Approvals');
  lines.push('');
  if (!d.approvals.length) lines.push(d.drill ? '- none: a drill does not touch production' : '- none recorded');
  for (const a of d.approvals) {
    lines.push(`- ${a.approvalId}: **${a.status}** (${a.required} required), requested ${stamp(a.requestedAt)}${a.decidedAt ? `, decided ${stamp(a.decidedAt)}` : ''}`);
    for (const v of a.votes) lines.push(`  - ${v.decision === 'approve' ? '✓ approved' : '✗ rejected'} by **${v.by}** via ${v.via} at ${hms(v.at)}${v.comment ? ` — ${v.comment}` : ''}`);
  }
  lines.push('');

  lines.push('## Checklists');
  lines.push('');
  const mark: Record<string, string> = { pending: '☐', running: '⏳', passed: '✓', signed: '✓', failed: '✗', skipped: '–' };
  for (const c of d.checklists) {
    lines.push(`**${c.name}**`);
    lines.push('');
    for (const i of c.items) {
      const who = i.by ? ` — ${i.state} by ${i.by}${i.at ? ` at ${hms(i.at)}` : ''}` : ` — ${i.state}`;
      lines.push(`- ${mark[i.state] ?? '?'} ${i.title}${i.optional ? ' (optional)' : ''}${who}${i.note ? `: ${i.note.split('\n')[0].slice(0, 300)}` : ''}`);
    }
    lines.push('');
  }

  if (d.pauses.length) {
    lines.push('## Pauses after failed steps');
    lines.push('');
    for (const p of d.pauses) {
      const how = p.decision ? `${p.decision}${p.by ? ` by ${p.by}` : ''}${p.decidedAt ? ` at ${hms(p.decidedAt)}` : ''}${p.note ? ` (${p.note})` : ''}` : 'waiting for retry or abort';
      lines.push(`- **${p.step}** (attempt ${p.attempt}) failed at ${hms(p.since)}: ${p.error.split('\n')[0].slice(0, 400)} → ${how}`);
    }
    lines.push('');
  }

  lines.push('## Follow-ups');
  lines.push('');
  const fu = followUps(d);
  for (const f of fu) lines.push(`- [ ] ${f}`);
  if (!fu.length) lines.push('- none');
  lines.push('');
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A Gantt chart of the steps: one row per step, bars on a time axis from the start of the run. */
export function renderGanttSvg(d: DrReportData): string {
  const rowH = 22;
  const labelW = 360;
  const chartW = 640;
  const top = 46;
  const t0 = Date.parse(d.startedAt);
  const end = runEnd(d);
  const t1 = Math.max(t0 + 1000, end ? Date.parse(end) : t0 + 1000, ...d.steps.map((s) => Date.parse(s.endedAt ?? s.startedAt)));
  const span = t1 - t0;
  const x = (t: number) => labelW + ((t - t0) / span) * chartW;
  const height = top + d.steps.length * rowH + 40;
  const width = labelW + chartW + 110;
  const color: Record<DrStep['state'], string> = { done: '#2e7d32', failed: '#c62828', skipped: '#9e9e9e', running: '#f9a825' };
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  const rto = measuredRto(d);
  parts.push(
    `<text x="8" y="18" font-size="14" font-weight="bold">${esc(`${d.drill ? 'DR drill' : 'Full-site recovery'}: ${d.cluster} → ${d.targetHost} (${outcomeText[d.outcome]})`)}</text>`,
  );
  parts.push(`<text x="8" y="34">${esc(`${stamp(d.startedAt)} · measured ${rto.measuredMs !== undefined ? formatDuration(rto.measuredMs) : '—'} · RTO target ${d.rto.target}`)}</text>`);
  // Axis: 5 ticks.
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (span * i) / 5;
    const xx = x(t);
    parts.push(`<line x1="${xx.toFixed(1)}" y1="${top - 4}" x2="${xx.toFixed(1)}" y2="${top + d.steps.length * rowH}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${xx.toFixed(1)}" y="${top + d.steps.length * rowH + 16}" text-anchor="middle" fill="#555">+${esc(formatDuration(t - t0))}</text>`);
  }
  // The RTO target line when it falls inside the chart.
  if (d.rto.targetMs > 0 && t0 + d.rto.targetMs <= t1) {
    const xr = x(t0 + d.rto.targetMs);
    parts.push(`<line x1="${xr.toFixed(1)}" y1="${top - 8}" x2="${xr.toFixed(1)}" y2="${top + d.steps.length * rowH}" stroke="#c62828" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${xr.toFixed(1)}" y="${top - 10}" text-anchor="middle" fill="#c62828">RTO ${esc(d.rto.target)}</text>`);
  }
  d.steps.forEach((s, i) => {
    const y = top + i * rowH;
    const start = Date.parse(s.startedAt);
    const stop = s.endedAt ? Date.parse(s.endedAt) : t1;
    const bx = x(start);
    const bw = Math.max(2, x(stop) - bx);
    const label = s.name.length > 58 ? `${s.name.slice(0, 57)}…` : s.name;
    if (i % 2 === 0) parts.push(`<rect x="0" y="${y}" width="${width}" height="${rowH}" fill="#f7f7f7"/>`);
    parts.push(`<text x="8" y="${y + 15}">${esc(`${i + 1}. ${label}`)}</text>`);
    parts.push(
      `<rect x="${bx.toFixed(1)}" y="${y + 4}" width="${bw.toFixed(1)}" height="${rowH - 8}" rx="2" fill="${color[s.state]}"><title>${esc(`${s.name}: ${s.state}, ${s.durationMs !== undefined ? formatDuration(s.durationMs) : 'running'}${s.note ? ` — ${s.note}` : ''}`)}</title></rect>`,
    );
    parts.push(`<text x="${(bx + bw + 4).toFixed(1)}" y="${y + 15}" fill="#333">${esc(s.durationMs !== undefined ? formatDuration(s.durationMs) : s.state)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Did recovery replay at least into the newest archived WAL segment? (16 MB segments; null: not comparable) */
export function replayReached(lsn: string | null, walMax: string | null | undefined): boolean | null {
  if (!lsn || !walMax || !/^[0-9A-F]{24}$/i.test(walMax) || !/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(lsn)) return null;
  const seg = lsnToBigInt(lsn) / 0x1000000n;
  const want = walSegmentEnd(walMax) / 0x1000000n - 1n;
  return seg >= want;
}
