/**
 * The DR record of a full-site recovery: the facts the runbook establishes step by step, the report built from
 * them at any moment (the `drReport` query), and at the end the report written on the new host (or where the
 * workflow runs when that host does not answer) and announced.
 */
import type { HostActivities } from '../activities';
import { drReportData, measuredRto, renderDrReport, renderGanttSvg, type DrApproval, type DrFacts, type DrReportData } from '../common/dr-report';
import { rootMessage } from '../common/errors';
import { formatDuration } from '../common/human-time';
import { lookups } from './activity-options';
import { approvalAudit } from './approval';
import type { AttendedSteps } from './attended-steps';
import type { Pauses } from './pause';
import { notify, type Runbook } from './runbook';

/** Where the report went: its Markdown and SVG, the files and host, or why it could not be written. */
export interface DrReportOutcome {
  markdown: string;
  svg: string;
  file?: string;
  svgFile?: string;
  host?: string;
  writeError?: string;
}

/** File name (without extension) of a run's report. */
export function reportBaseName(workflowId: string): string {
  return workflowId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 150);
}

const now = () => new Date().toISOString();

export class DrRecord {
  constructor(
    readonly facts: DrFacts,
    private readonly rb: Runbook,
    private readonly pauses: Pauses,
    private readonly attended: AttendedSteps,
  ) {}

  /** The report's data as of now. */
  data(): DrReportData {
    return drReportData(
      this.facts,
      {
        steps: this.rb.steps.map((s) => ({ ...s })),
        approvals: approvalAudit().map<DrApproval>((a) => ({
          approvalId: a.approvalId,
          status: a.status,
          required: a.required,
          requestedAt: a.requestedAt,
          decidedAt: a.decidedAt,
          votes: a.votes.map((v) => ({ by: v.by, decision: v.decision, via: v.via, at: v.at, comment: v.comment })),
        })),
        checklists: this.attended.lists.map((l) => l.snapshot()),
        pauses: this.pauses.all.map((p) => ({ ...p })),
      },
      now(),
    );
  }

  /** The report as Markdown, as of now. */
  markdown(): string {
    return renderDrReport(this.data(), { svgFile: `${reportBaseName(this.facts.workflowId)}.svg (beside this file)` });
  }

  /**
   * The step "Write the DR report": on the new host (`onTarget`'s report proxy), or where the workflow runs
   * when that host's worker does not answer. Never throws: a failure is kept in `writeError`.
   */
  async write(onTargetHost: Pick<HostActivities, 'writeDrReport'>): Promise<DrReportOutcome> {
    const workflowId = this.facts.workflowId;
    const svg = renderGanttSvg(this.data());
    const markdown = this.markdown();
    const report: DrReportOutcome = { markdown, svg };
    try {
      const w = await this.rb.step('Write the DR report', async () => {
        try {
          return await onTargetHost.writeDrReport({ workflowId, markdown, svg });
        } catch {
          // The target host's worker does not answer: keep the report where the workflow runs.
          return await lookups.writeDrReport({ workflowId, markdown, svg });
        }
      });
      this.attended.noteLast(`${w.file} on ${w.host}`);
      Object.assign(report, w);
    } catch (err) {
      report.writeError = rootMessage(err);
    }
    // The final Markdown includes the report step itself.
    report.markdown = this.markdown();
    return report;
  }

  /** The closing notification: the outcome, the measured RTO against its target, where the report is. */
  async announce(report: DrReportOutcome): Promise<ReturnType<typeof measuredRto>> {
    const f = this.facts;
    const m = measuredRto(this.data());
    const what = f.drill ? 'DR drill' : 'full-site recovery';
    const headline = f.outcome === 'recovered' ? 'RECOVERED' : f.outcome === 'drill-passed' ? 'DR drill passed' : f.outcome === 'aborted' ? 'ABORTED' : 'FAILED';
    await notify({
      level: f.outcome === 'recovered' || f.outcome === 'drill-passed' ? 'success' : 'alert',
      title: `${headline}: ${what} of ${f.cluster} onto ${f.targetHost}`,
      cluster: f.cluster,
      runbook: 'fullSiteRecovery',
      fields: {
        'Measured RTO': `${m.measuredMs !== undefined ? formatDuration(m.measuredMs) : '—'} (target ${f.rto.target}: rto.fullSite${m.exceeded ? ', EXCEEDED' : ''})`,
        ...(report.file ? { Report: `${report.file} on ${report.host}` } : {}),
      },
      text: report.markdown.slice(0, 2800),
      error: f.error,
    });
    return m;
  }
}
