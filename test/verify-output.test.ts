/**
 * pgBackRest's own words survive into pgdr's failures: the verify parser and failureFor keep the file or
 * WAL segment, the reason and the error code, and tell an access problem (permissions) from damage.
 * The outputs below are real pgBackRest 2.45 output (a throw-away stanza: a truncated WAL segment, a WAL
 * segment and a backup file made unreadable with chmod 000, a corrupted backup file, a folder chmod 000).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { failureFor, FAILURE, parseVerifyOutput, verifyFailure } from '../activities/pgbackrest';
import type { RunResult } from '../activities/process';

// A WAL segment truncated in the repository (verify exits 0).
const TRUNCATED_WAL = [
      "2026-11-22 00:41:05.083 P01   INFO: invalid result 15-1/0000000100000000/000000010000000000000004-f14c8dfabd9dfcadc1cd6d737550c42cbefd843c.gz: [29] raised from local-1 protocol: unexpected eof in compressed data",
      "                                    [FormatError] on retry after 0ms",
      "                                    [FormatError] on retry after 15000ms",
      "2026-11-22 00:41:05.242 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000005",
      "2026-11-22 00:41:05.242 P00   INFO: stanza: probe",
      "                                    status: error",
      "                                      archiveId: 15-1, total WAL checked: 5, total valid WAL: 4",
      "                                        other: 1",
      "2026-11-22 00:41:05.242 P00   INFO: verify command end: completed successfully (15474ms)",
    ].join('\n');

// A WAL segment chmod 000 in the repository (verify exits 0).
const UNREADABLE_WAL = [
      "2026-11-22 00:41:25.160 P01   INFO: invalid result 15-1/0000000100000000/000000010000000000000003-8b1f6cce9446ba6f8e7a11eb6c48ba33f2cdeea8.gz: [41] raised from local-1 protocol: unable to open file '/tmp/pgdr-verify-probe/c/repo/archive/probe/15-1/0000000100000000/000000010000000000000003-8b1f6cce9446ba6f8e7a11eb6c48ba33f2cdeea8.gz' for read: [13] Permission denied",
      "                                    [FileOpenError] on retry after 0ms",
      "                                    [FileOpenError] on retry after 15000ms",
      "2026-11-22 00:41:25.632 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000005",
      "2026-11-22 00:41:25.632 P00   INFO: stanza: probe",
      "                                    status: error",
      "                                      archiveId: 15-1, total WAL checked: 5, total valid WAL: 4",
      "                                        other: 1",
      "2026-11-22 00:41:25.632 P00   INFO: verify command end: completed successfully (15824ms)",
    ].join('\n');

// A full backup with a corrupted file, a truncated file and a file chmod 000, and a deleted WAL segment.
const MIXED = [
      "2026-11-22 00:41:30.582 P01   INFO: invalid checksum '20261122-004039F/pg_data/base/5/112.gz'",
      "2026-11-22 00:41:45.594 P01   INFO: invalid result 20261122-004039F/pg_data/base/5/1247.gz: [41] raised from local-1 protocol: unable to open file '/tmp/pgdr-verify-probe/c/repo/backup/probe/20261122-004039F/pg_data/base/5/1247.gz' for read: [13] Permission denied",
      "                                    [FileOpenError] on retry after 0ms",
      "                                    [FileOpenError] on retry after 15000ms",
      "2026-11-22 00:41:45.594 P01   INFO: invalid checksum '20261122-004039F/pg_data/base/5/1247_vm.gz'",
      "2026-11-22 00:41:45.630 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000003",
      "2026-11-22 00:41:45.630 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000005, wal stop: 000000010000000000000005",
      "2026-11-22 00:41:45.630 P00   INFO: stanza: probe",
      "                                    status: error",
      "                                      backup: 20261122-004039F, status: invalid, total files checked: 964, total valid files: 961",
      "                                        checksum invalid: 2, other: 1",
      "2026-11-22 00:41:45.630 P00   INFO: verify command end: completed successfully (15593ms)",
    ].join('\n');

// A repository folder chmod 000: verify exits 53.
const UNREADABLE_FOLDER_STDERR = "ERROR: [053]: unable to list file info for path '/tmp/pgdr-verify-probe/c/repo/archive/probe/15-1/0000000100000000': [13] Permission denied\n";

const SEGMENT = '000000010000000000000004';

describe('verify output', () => {
  test('a truncated WAL segment is named, with pgBackRest\'s reason and error code, as damage', () => {
    const r = parseVerifyOutput(TRUNCATED_WAL);
    assert.equal(r.ok, false);
    assert.equal(r.damaged, true);
    assert.deepEqual(r.badFiles, [{ set: null, archiveId: '15-1', file: SEGMENT, problem: 'unexpected eof in compressed data', code: 29, access: false }]);
    assert.deepEqual(r.problems, [`WAL of 15-1: 1 of 5 segments not valid (other: 1) — ${SEGMENT} ([029] unexpected eof in compressed data)`]);
    const f = verifyFailure('probe', undefined, r)!;
    assert.equal(f.type, FAILURE.repoDamaged);
    assert.match(f.message, /found damage in the repository of stanza "probe": WAL of 15-1: .*000000010000000000000004 \(\[029\] unexpected eof in compressed data\)/);
    assert.doesNotMatch(f.message, /: other: 1$/);
  });

  test('an unreadable WAL segment is an access problem, not damage', () => {
    const r = parseVerifyOutput(UNREADABLE_WAL);
    assert.equal(r.ok, false);
    assert.equal(r.damaged, false);
    assert.equal(r.badFiles[0].file, '000000010000000000000003');
    assert.equal(r.badFiles[0].code, 41);
    assert.equal(r.badFiles[0].access, true);
    const f = verifyFailure('probe', 2, r)!;
    assert.equal(f.type, FAILURE.accessDenied);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /could not read files in the repository of stanza "probe" \(repo2\) — an access problem/);
    assert.match(f.message, /000000010000000000000003 \(\[041\] unable to open file '.*' for read: \[13\] Permission denied\)/);
    assert.doesNotMatch(f.message, /found damage/);
  });

  test('damage next to an access problem is still damage, and every file is named', () => {
    const r = parseVerifyOutput(MIXED);
    assert.equal(r.damaged, true);
    assert.deepEqual(r.invalidSets, ['20261122-004039F']);
    assert.deepEqual(
      r.badFiles.map((f) => [f.set, f.file, f.code ?? null, f.access]),
      [
        ['20261122-004039F', 'pg_data/base/5/112.gz', null, false],
        ['20261122-004039F', 'pg_data/base/5/1247.gz', 41, true],
        ['20261122-004039F', 'pg_data/base/5/1247_vm.gz', null, false],
      ],
    );
    assert.match(r.problems[0], /^backup set 20261122-004039F: invalid \(checksum invalid: 2, other: 1\) — pg_data\/base\/5\/112\.gz \(invalid checksum\); pg_data\/base\/5\/1247\.gz \(\[041\] unable to open .*\[13\] Permission denied\); pg_data\/base\/5\/1247_vm\.gz \(invalid checksum\)$/);
    assert.match(r.problems[1], /WAL missing in 15-1 after 000000010000000000000003 up to 000000010000000000000005/);
    assert.equal(verifyFailure('probe', undefined, r)!.type, FAILURE.repoDamaged);
  });

  test('a healthy repository: no failure', () => {
    const r = parseVerifyOutput('2026-11-22 00:41:45.630 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000005');
    assert.equal(r.ok, true);
    assert.equal(verifyFailure('probe', undefined, r), undefined);
  });
});

describe('pgBackRest errors', () => {
  const result = (exitCode: number, stderr: string): RunResult => ({ command: 'pgbackrest', exitCode, stdout: '', stderr, durationMs: 1, cancelled: false });

  test('Permission denied on the repository is an access problem, with pgBackRest\'s code and message', () => {
    const f = failureFor('verify', 'probe', result(53, UNREADABLE_FOLDER_STDERR));
    assert.equal(f.type, FAILURE.accessDenied);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /access denied .*\[053\] unable to list file info for path '\/tmp\/pgdr-verify-probe\/c\/repo\/archive\/probe\/15-1\/0000000100000000': \[13\] Permission denied/);
    assert.deepEqual(f.details, [{ code: 53, error: "unable to list file info for path '/tmp/pgdr-verify-probe/c/repo/archive/probe/15-1/0000000100000000': [13] Permission denied", hint: null }]);
  });

  test('other errors keep their code and stay rejected or retryable', () => {
    const f = failureFor('restore', 'probe', result(75, 'ERROR: [075]: unable to find backup set with stop time less than \'2020-01-01 00:00:00+00\''));
    assert.equal(f.type, FAILURE.rejected);
    assert.match(f.message, /\[075\] unable to find backup set/);
    assert.equal((f.details as { code: number }[])[0].code, 75);
    assert.equal(failureFor('backup', 'probe', result(50, 'ERROR: [050]: unable to acquire lock')).type, FAILURE.stanzaBusy);
  });
});
