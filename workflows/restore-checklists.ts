/**
 * The default pre- and post-restore checklists (the DR plan's "Restore Checklist"), adjusted per cluster
 * by the config's restore.preChecklist / restore.postChecklist (add, remove). Shared by the restore
 * runbooks and full-site recovery.
 */
import type { RestoreSettings } from '../activities/checks';
import type { ChecklistItemSpec } from './checklist';

type Overrides = RestoreSettings['preChecklist'];

function adjust(items: ChecklistItemSpec[], o: Overrides): ChecklistItemSpec[] {
  const kept = items.filter((i) => !o.remove.includes(i.id));
  const added = o.add.map<ChecklistItemSpec>((a) => ({ id: a.id, title: a.title, optional: a.optional, kind: a.command || a.url ? 'auto' : 'manual' }));
  return [...kept.filter((i) => !added.some((a) => a.id === i.id)), ...added];
}

export function preRestoreItems(s: RestoreSettings, mode: 'in-place' | 'new-cluster'): ChecklistItemSpec[] {
  const items: ChecklistItemSpec[] = [
    { id: 'restore-point-identified', title: 'The exact restore point is identified (set and recoverable window)', kind: 'auto' },
    ...(mode === 'in-place' ? [{ id: 'target-confirmed', title: 'Target cluster and mode (IN PLACE) confirmed by someone other than the requester', kind: 'manual' as const, notRequester: true }] : []),
    { id: 'backup-available', title: 'The backup set is available in the repository (pgbackrest info)', kind: 'auto' },
    { id: 'disk-space', title: mode === 'in-place' ? 'Free disk space for the restore while the old data directory is kept' : 'Free disk space for the new cluster', kind: 'auto' },
    ...(mode === 'in-place' ? [{ id: 'stakeholders-notified', title: 'Stakeholders notified of the expected downtime', kind: 'manual' as const, optional: true }] : []),
    { id: 'reason-documented', title: 'The reason for the restore is documented', kind: 'auto' },
  ];
  return adjust(items, s.preChecklist);
}

export function postRestoreItems(s: RestoreSettings, mode: 'in-place' | 'new-cluster'): ChecklistItemSpec[] {
  const items: ChecklistItemSpec[] = [
    { id: 'connectivity', title: 'Database connectivity: SELECT 1', kind: 'auto' },
    ...(Object.keys(s.expectTables).length ? [{ id: 'table-counts', title: 'Table counts match expectations', kind: 'auto' as const }] : []),
    ...(s.migrationsTable ? [{ id: 'migrations', title: `Recent migrations are present (${s.migrationsTable})`, kind: 'auto' as const }] : []),
    ...(mode === 'in-place'
      ? [
          ...(s.applications.length
            ? s.applications.map((a) => ({ id: a.id, title: a.title, kind: 'auto' as const, optional: a.optional }))
            : [{ id: 'app-health', title: 'Application health checks pass', kind: 'manual' as const }]),
          { id: 'monitoring', title: 'Error rates monitored for 30 minutes', kind: 'manual' as const, optional: true },
        ]
      : []),
    { id: 'outcome-documented', title: 'The restore outcome is documented (report in the audit log)', kind: 'auto' },
  ];
  return adjust(items, s.postChecklist);
}
