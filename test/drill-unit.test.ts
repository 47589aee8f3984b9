/**
 * Pure logic of the verification drill (no servers): scratch space with the WAL recovery restores, the
 * disk-full message, and the refusal of validation SQL in the workflow input.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { diskFullMessage, scratchSpaceNeeded, walSegmentNo } from '../common/drill';
import { checkInput, drillInputSchema } from '../common/inputs';

const MB = 1024 * 1024;

describe('scratch space needed by a drill', () => {
  test('counts every WAL segment from the set start to the end of recovery, across a log boundary', () => {
    assert.equal(walSegmentNo('000000010000000000000002'), 2);
    assert.equal(walSegmentNo('0000000300000001000000FF'), 511);
    assert.equal(walSegmentNo('00000001000000010000000F.partial'), 271);
    assert.equal(walSegmentNo(null), null);
    // 100 MB set, 10 % margin, WAL 0/02 … 1/03: 256 + 3 - 2 + 1 = 258 segments of 16 MB.
    const n = scratchSpaceNeeded(100 * MB, '000000010000000000000002', '000000020000000100000003', 0.1);
    assert.equal(n.walSegments, 258);
    assert.equal(n.walBytes, 258 * 16 * MB);
    assert.equal(n.marginBytes, 10 * MB);
    assert.equal(n.neededBytes, 110 * MB + 258 * 16 * MB);
  });

  test('an immediate target within one segment needs that segment; unknown WAL adds nothing', () => {
    assert.equal(scratchSpaceNeeded(1000, '000000010000000000000005', '000000010000000000000005', 0).neededBytes, 1000 + 16 * MB);
    assert.equal(scratchSpaceNeeded(1000, null, '000000010000000000000005', 0.5).neededBytes, 1500);
  });
});

describe('disk-full failures', () => {
  const at = { path: '/srv/scratch', freeBytes: 3 * MB + 5, neededBytes: 500 * MB };

  test('pgBackRest and PostgreSQL "No space left on device" become "disk full at <path>"', () => {
    const pgbr = "pgbackrest restore failed for stanza \"main\": [039] unable to write '/srv/scratch/x/data/base/5/16390': [28] No space left on device";
    assert.equal(diskFullMessage(pgbr, at), `disk full at /srv/scratch (3 MB free, needed 500 MB): ${pgbr}`);
    const pg = 'the restored copy in /srv/scratch/x/data stopped during recovery: PANIC: could not write to file "pg_wal/xlogtemp.77": No space left on device\n--- PostgreSQL log (last lines) ---\n…';
    assert.match(diskFullMessage(pg, at)!, /^disk full at \/srv\/scratch \(3 MB free, needed 500 MB\): the restored copy .* No space left on device$/);
  });

  test('a bare "could not write" is a full disk only when the free space is short', () => {
    const text = 'FATAL: could not extend file "base/5/16390": wrote only 4096 of 8192 bytes at block 9';
    assert.match(diskFullMessage(text, at)!, /^disk full at \/srv\/scratch/);
    assert.equal(diskFullMessage(text, { ...at, freeBytes: 900 * MB }), null);
    // pgBackRest 2.45 from a restore process: the errno text does not reach the first error line.
    const pgbr = "pgbackrest restore failed for stanza \"main\": [064] raised from local-2 protocol: unable to write '/srv/scratch/x/data/base/5/16402'";
    assert.match(diskFullMessage(pgbr, at)!, /^disk full at \/srv\/scratch \(3 MB free, needed 500 MB\): pgbackrest restore failed .*unable to write/);
    assert.equal(diskFullMessage(pgbr, { ...at, freeBytes: 900 * MB }), null);
    assert.match(diskFullMessage('ENOSPC', { ...at, neededBytes: 0 })!, /needed unknown/);
  });

  test('a damaged backup is not called a full disk', () => {
    assert.equal(diskFullMessage("pgbackrest restore failed: [039] invalid checksum for file 'base/5/2655'", at), null);
    assert.equal(diskFullMessage('recovery ended before configured recovery target was reached', at), null);
  });
});

describe('drill input', () => {
  test('validation SQL in the workflow input is refused, naming where it belongs', () => {
    const r = checkInput(drillInputSchema, { cluster: 'main', validations: [{ name: 'x', sql: "COPY (SELECT 1) TO PROGRAM 'id'", expect: '1' }] }, 'verifyDrill');
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.message, /^verifyDrill: invalid input: validations: validation queries are not accepted in the workflow input; configure them in the config file \(clusters\[\]\.drill\.validations\)$/);
    assert.equal(checkInput(drillInputSchema, { cluster: 'main', target: { type: 'time' } }, 'verifyDrill').ok, true);
  });
});
