/** Restore target validation: every refusal happens before anything is touched, with the valid window. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTimelineHistory } from '../activities/pgbackrest';
import { restoreOptions } from '../activities/restore-command';
import type { ClusterConfig } from '../common/config';
import { parseTargetTime, pgTime, resolveRestoreTarget, walSegmentEnd, type RestoreTarget } from '../common/restore-target';
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
    assert.deepEqual(parseTargetTime('2025-01-15 14:30:00+00'), { ok: true, iso: '2025-01-15T14:30:00.000Z', ms: Date.UTC(2025, 0, 15, 14, 30), us: Date.UTC(2025, 0, 15, 14, 30) * 1000 });
    assert.equal((parseTargetTime('2025-01-15T14:30:00Z') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
    assert.equal((parseTargetTime('2025-01-15T15:30:00+01:00') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
    assert.equal((parseTargetTime('2025-01-15 09:30:00.250-05') as { iso: string }).iso, '2025-01-15T14:30:00.250Z');
    assert.equal((parseTargetTime('2025-01-15 14:30:00 UTC') as { iso: string }).iso, '2025-01-15T14:30:00.000Z');
  });
  test('keeps microseconds (PostgreSQL commit times have them)', () => {
    const p = parseTargetTime('2026-11-21 23:14:03.795727+00');
    assert.deepEqual(p, { ok: true, iso: '2026-11-21T23:14:03.795727Z', ms: Date.UTC(2026, 10, 21, 23, 14, 3, 795), us: Date.UTC(2026, 10, 21, 23, 14, 3) * 1000 + 795727 });
    assert.equal((parseTargetTime('2026-11-22T00:44:03.795727+01:30') as { iso: string }).iso, '2026-11-21T23:14:03.795727Z');
    assert.equal((parseTargetTime('2026-11-21 23:14:03.7957Z') as { iso: string }).iso, '2026-11-21T23:14:03.7957Z');
    assert.equal(pgTime((parseTargetTime('2026-11-21 23:14:03.795727+00') as { iso: string }).iso), '2026-11-21 23:14:03.795727+00');
    assert.equal(parseTargetTime('2026-11-21 23:14:03.7957271+00').ok, false, 'PostgreSQL has no nanoseconds');
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
  test('a microsecond target is kept in the options and the description, and compared in microseconds', () => {
    const t = ok({ type: 'time', value: '2025-01-15 10:00:00.795727+00' });
    assert.ok(t.options.includes('--target=2025-01-15 10:00:00.795727+00'), t.options.join(' '));
    assert.equal(t.value, '2025-01-15 10:00:00.795727+00');
    assert.match(t.description, /^time 2025-01-15 10:00:00\.795727\+00 from/);
    // One microsecond after the last archived WAL (15:00:00.000) is outside the window.
    refused({ type: 'time', value: '2025-01-15 15:00:00.000001+00' }, /target time 2025-01-15 15:00:00\.000001\+00 is after the last archived WAL/);
    assert.ok(resolve({ type: 'time', value: '2025-01-15 15:00:00.000000+00' }).ok);
    // One microsecond before the diff set's stop (08:01:00.000): the full set, and the diff set is refused.
    assert.equal(ok({ type: 'time', value: '2025-01-15 08:00:59.999999+00' }).set.label, '20250115-020000F');
    refused({ type: 'time', value: '2025-01-15 08:00:59.999999+00', set: '20250115-020000F_20250115-080000D' }, /ends at .* after the target time 2025-01-15 08:00:59\.999999\+00/);
    assert.equal(ok({ type: 'time', value: '2025-01-15 08:01:00.000001+00' }).set.label, '20250115-020000F_20250115-080000D');
  });
  test('pgBackRest gets the microseconds of a time target', () => {
    const c = { backup: { processMax: 1 } } as ClusterConfig;
    const o = restoreOptions(c, { cluster: 'main', dataDir: '/tmp/x', target: { type: 'time', value: '2026-11-21 23:14:03.795727+00' } });
    assert.ok(o.includes('--target=2026-11-21 23:14:03.795727+00'), o.join(' '));
    assert.throws(() => restoreOptions(c, { cluster: 'main', dataDir: '/tmp/x', target: { type: 'name', value: 'a\nb' } }), /single line/);
  });
  test('a delta restore compares checksums unless told to trust sizes and timestamps (--force)', () => {
    const c = { backup: { processMax: 1 } } as ClusterConfig;
    const base = { cluster: 'main', dataDir: '/tmp/x', delta: true };
    assert.deepEqual(restoreOptions(c, base).filter((x) => x === '--delta' || x === '--force'), ['--delta']);
    assert.deepEqual(restoreOptions(c, { ...base, deltaBy: 'timestamp' }).filter((x) => x === '--delta' || x === '--force'), ['--delta', '--force']);
    assert.ok(!restoreOptions(c, { ...base, delta: false, deltaBy: 'timestamp' }).includes('--force'), 'never --force without --delta: that would overwrite everything');
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
