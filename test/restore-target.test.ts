/** Restore target validation: every refusal happens before anything is touched, with the valid window. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTimelineHistory } from '../activities/pgbackrest';
import { parseTargetTime, resolveRestoreTarget, walSegmentEnd, type RestoreTarget } from '../common/restore-target';
import type { BackupSet, StanzaInfo } from '../common/types';

const set = (label: string, type: BackupSet['type'], stop: string, lsnStop: string, annotations: Record<string, string> = {}): BackupSet => ({
  label,
  type,
  prior: null,
  repo: 1,
  annotations,
  startedAt: stop,
  stoppedAt: stop,
  lsnStart: lsnStop,
  lsnStop,
  walStart: null,
  walStop: null,
  size: 1,
  delta: 1,
  repoSize: 1,
  repoDelta: 1,
  error: false,
});

const info: StanzaInfo = {
  stanza: 'main',
  status: { code: 0, message: 'ok' },
  backupInProgress: false,
  cipher: 'none',
  sets: [
    set('20250115-020000F', 'full', '2025-01-15T02:05:00.000Z', '0/3000100'),
    set('20250115-020000F_20250115-080000D', 'diff', '2025-01-15T08:01:00.000Z', '0/5000100'),
    set('20250115-120000F', 'full', '2025-01-15T12:03:00.000Z', '0/8000100', { 'pgdr-snapshot': 'pre-migration-v2.3' }),
  ],
  archive: [{ id: '15-1', min: '000000010000000000000001', max: '00000001000000000000000A' }],
  window: { from: '2025-01-15T02:05:00.000Z', to: '2025-01-15T15:00:00.000Z', toSource: 'archiver', walMin: '000000010000000000000001', walMax: '00000001000000000000000A' },
};
const NOW = '2025-01-15T16:00:00.000Z';
const resolve = (t: RestoreTarget) => resolveRestoreTarget(t, info, NOW);
const ok = (t: RestoreTarget) => {
  const r = resolve(t);
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.target;
};
const refused = (t: RestoreTarget, re: RegExp) => {
  const r = resolve(t);
  assert.equal(r.ok, false, `expected a refusal for ${JSON.stringify(t)}`);
  assert.match((r as { message: string }).message, re);
};

describe('time parsing', () => {
  test('accepts PostgreSQL style and ISO 8601 with a zone', () => {
    assert.deepEqual(parseTargetTime('2025-01-15 14:30:00+00'), { ok: true, iso: '2025-01-15T14:30:00.000Z', ms: Date.UTC(2025, 0, 15, 14, 30) });
    assert.equal((parseTargetTime('2025-01-15T14:30:00Z') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
    assert.equal((parseTargetTime('2025-01-15T15:30:00+01:00') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
    assert.equal((parseTargetTime('2025-01-15 09:30:00.250-05') as { iso: string }).iso, '2025-01-15T14:30:00.250Z');
    assert.equal((parseTargetTime('2025-01-15 14:30:00 UTC') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
  });
  for (const bad of ['2025-01-15 14:30:00', 'yesterday', '15/01/2025 14:30 +00', '2025-02-30 10:00:00Z', '2025-01-15 25:00:00Z', '2025-01-15 14:30:00+15:00', '']) {
    test(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseTargetTime(bad).ok, false));
  }
});

describe('restore targets', () => {
  test('a time picks the newest set that ended before it, and promotes', () => {
    const t = ok({ type: 'time', value: '2025-01-15 10:00:00+00' });
    assert.equal(t.set.label, '20250115-020000F_20250115-080000D');
    assert.deepEqual(t.options, ['--set=20250115-020000F_20250115-080000D', '--type=time', '--target=2025-01-15 10:00:00.000+00', '--target-action=promote']);
  });
  test('a time outside the window is refused with the window', () => {
    refused({ type: 'time', value: '2025-01-15 01:00:00+00' }, /before the oldest backup ends; the recoverable window is 2025-01-15 02:05:00.000\+00 → 2025-01-15 15:00:00.000\+00/);
    refused({ type: 'time', value: '2025-01-15 15:30:00+00' }, /after the last archived WAL/);
    refused({ type: 'time', value: '2030-01-01 00:00:00+00' }, /in the future/);
    refused({ type: 'time', value: '2025-01-15 10:00' }, /time zone/);
  });
  test('an explicit set that ends after the target time is refused', () => {
    refused({ type: 'time', value: '2025-01-15 10:00:00+00', set: '20250115-120000F' }, /ends at .* after the target time/);
    assert.equal(ok({ type: 'time', value: '2025-01-15 10:00:00+00', set: '20250115-020000F' }).set.label, '20250115-020000F');
  });
  test('a restore point pgdr created picks its snapshot set', () => {
    const t = ok({ type: 'name', value: 'pre-migration-v2.3' });
    assert.equal(t.set.label, '20250115-120000F');
    assert.ok(t.options.includes('--type=name') && t.options.includes('--target=pre-migration-v2.3'));
  });
  test('an unknown restore point is refused unless a set is given and confirmed', () => {
    refused({ type: 'name', value: 'nightly' }, /did not create a restore point named "nightly" \(known: pre-migration-v2.3\)/);
    refused({ type: 'name', value: 'nightly', set: '20250115-020000F' }, /confirmUnknownName/);
    assert.equal(ok({ type: 'name', value: 'nightly', set: '20250115-020000F', confirmUnknownName: true }).set.label, '20250115-020000F');
  });
  test('an LSN picks the newest set that ended before it and must be archived', () => {
    assert.equal(ok({ type: 'lsn', value: '0/6000000' }).set.label, '20250115-020000F_20250115-080000D');
    refused({ type: 'lsn', value: '0/1000000' }, /before the end of the oldest backup/);
    refused({ type: 'lsn', value: '0/FF000000' }, /beyond the last archived WAL segment/);
    refused({ type: 'lsn', value: 'zz' }, /like "0\/3000060"/);
    assert.equal(walSegmentEnd('00000001000000000000000A'), 0xb000000n);
  });
  test('an xid needs an explicit set', () => {
    refused({ type: 'xid', value: '1234' }, /give set/);
    refused({ type: 'xid', value: 'abc', set: '20250115-020000F' }, /a number/);
    assert.deepEqual(ok({ type: 'xid', value: '1234', set: '20250115-020000F' }).options, ['--set=20250115-020000F', '--type=xid', '--target=1234', '--target-action=promote']);
  });
  test('latest and immediate use the newest set unless told otherwise', () => {
    assert.equal(ok({ type: 'latest' }).set.label, '20250115-120000F');
    assert.deepEqual(ok({ type: 'immediate', set: '20250115-020000F' }).options, ['--set=20250115-020000F', '--type=immediate', '--target-action=promote']);
  });
  test('unknown sets, repos without sets, bad timelines and types are refused', () => {
    refused({ type: 'latest', set: 'nope' }, /backup set nope does not exist/);
    refused({ type: 'latest', repo: 2 }, /no usable backup set in repo2/);
    refused({ type: 'latest', timeline: 'newest' }, /timeline must be/);
    refused({ type: 'bogus' as never }, /target type must be one of/);
  });
  test('after a point-in-time recovery, sets taken on the old timeline past the branch point are not used', () => {
    const branched: StanzaInfo = {
      ...info,
      sets: [
        ...info.sets,
        // A safety backup on timeline 1 after the branch point 0/8000200 of timeline 2…
        { ...set('20250115-120000F_20250115-130000I', 'incr', '2025-01-15T13:00:00.000Z', '0/9000100'), walStart: '000000010000000000000009' },
      ],
      timeline: { current: 2, history: [{ parent: 1, switchLsn: '0/8000200' }] },
    };
    const r = resolveRestoreTarget({ type: 'time', value: '2025-01-15 14:00:00+00' }, branched, NOW);
    assert.ok(r.ok);
    assert.equal(r.target.set.label, '20250115-120000F', 'the newest set in timeline 2\'s history');
    const explicit = resolveRestoreTarget({ type: 'time', value: '2025-01-15 14:00:00+00', set: '20250115-120000F_20250115-130000I' }, branched, NOW);
    assert.equal(explicit.ok, false);
    assert.match((explicit as { message: string }).message, /taken on timeline 1 after it branched off to the current timeline 2 at LSN 0\/8000200/);
    assert.equal((resolveRestoreTarget({ type: 'latest' }, branched, NOW) as { target: { set: BackupSet } }).target.set.label, '20250115-120000F');
    // An immediate restore of that set stays on its own timeline: allowed.
    assert.ok(resolveRestoreTarget({ type: 'immediate', set: '20250115-120000F_20250115-130000I' }, branched, NOW).ok);
    assert.deepEqual(parseTimelineHistory('1\t0/1734FCC8\tbefore 2026-11-21 20:32:03.247323+00\n\n'), [{ parent: 1, switchLsn: '0/1734FCC8' }]);
  });
});
