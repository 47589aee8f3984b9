/**
 * Recorded workflow histories (test/histories/<runbook>.<path>.json: the History message as protobufjs'
 * `toObject` JSON — enums as names, int64 as strings, bytes as base64): written by test/record-histories.ts,
 * replayed by test/replay.test.ts with the current workflow code. (Not @temporalio/common's historyToJSON:
 * with the protobufjs copies installed here it throws "type must be a Type".)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { PROJECT_ROOT } from '../common/paths';

/** In the source tree (not dist/): recordings are committed. */
export const HISTORIES_DIR = join(PROJECT_ROOT, 'test', 'histories');

export interface RecordedHistory {
  file: string;
  runbook: string;
  /** happy, waiting-for-approval, paused-on-failed-check, rolled-back… */
  path: string;
  history: temporal.api.history.v1.IHistory;
}

export function historyFileName(runbook: string, path: string): string {
  return `${runbook}.${path}.json`;
}

export function recordedHistories(): RecordedHistory[] {
  return readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const [runbook, path] = file.replace(/\.json$/, '').split('.');
      return { file, runbook, path, history: historyFromFile(readFileSync(join(HISTORIES_DIR, file), 'utf8')) };
    });
}

const History = temporal.api.history.v1.History;

export function historyToFile(history: temporal.api.history.v1.IHistory): string {
  return `${JSON.stringify(History.toObject(History.fromObject(history), { enums: String, longs: String, bytes: String }), null, 1)}\n`;
}

export function historyFromFile(text: string): temporal.api.history.v1.History {
  return History.fromObject(JSON.parse(text));
}

/** One event in words, for a replay failure: `#12 ActivityTaskScheduled restoreData`. */
export function describeEvent(history: temporal.api.history.v1.IHistory, eventId: number): string {
  const e = history.events?.find((x) => Number(x.eventId) === eventId);
  if (!e) return `#${eventId}`;
  const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k]);
  const attrs = kind ? ((e as Record<string, unknown>)[kind] as Record<string, unknown>) : {};
  const name =
    (attrs.activityType as { name?: string } | undefined)?.name ??
    (attrs.timerId as string | undefined) ??
    (attrs.markerName as string | undefined) ??
    (attrs.signalName as string | undefined) ??
    '';
  return `#${eventId} ${kind ? kind.replace(/EventAttributes$/, '').replace(/^./, (c) => c.toUpperCase()) : 'event'}${name ? ` ${name}` : ''}`;
}
