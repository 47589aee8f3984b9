/** The DR report of a full-site recovery, written on a host: Markdown + SVG timeline in <stateDir>/audit/dr-reports/. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ActivityDeps } from './context';

export function drReportActivities({ config }: ActivityDeps) {
  return {
    /** Write the DR report (Markdown + SVG timeline) to <stateDir>/audit/dr-reports/ on this host, atomically. */
    async writeDrReport(input: { workflowId: string; markdown: string; svg: string }): Promise<{ file: string; svgFile: string; host: string }> {
      const dir = join(config.stateDirAbs, 'audit', 'dr-reports');
      mkdirSync(dir, { recursive: true });
      const base = input.workflowId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 150);
      const write = (name: string, text: string) => {
        const path = join(dir, name);
        writeFileSync(`${path}.tmp`, text);
        renameSync(`${path}.tmp`, path);
        return path;
      };
      const svgFile = write(`${base}.svg`, input.svg);
      const file = write(`${base}.md`, input.markdown);
      return { file, svgFile, host: hostname() };
    },
  };
}
