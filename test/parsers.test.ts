/**
 * Pure parsers, no server: what pgdr reads from pgBackRest (INI, info JSON, error lines), from PostgreSQL's log,
 * and from Slack's button clicks. Each case is an input seen on real systems or a malformed one that must be
 * refused with a reason rather than misread.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failureFor, FAILURE, parseError, parseInfoJson, PGBR_ERROR } from '../activities/pgbackrest';
import { parseIni } from '../common/ini';
import { parseRecoveryLog, recoveryFailureReason } from '../activities/recovery';
import type { RunResult } from '../activities/process';
import { encodeButtonValue, SLACK_ACTION } from '../common/approvals';
import { parseClick } from '../client/slack-server';

const result = (over: Partial<RunResult>): RunResult => ({ command: 'pgbackrest', exitCode: 1, stdout: '', stderr: '', durationMs: 5, cancelled: false, ...over });

describe('parseIni (pgBackRest configuration files)', () => {
  it('reads global and stanza sections, ignores comments and blank lines, keeps "=" inside values', () => {
    const ini = parseIni(
      ['# pgdr', '[global]', 'repo1-path=/var/lib/pgbackrest', '  repo2-s3-endpoint = s3.pgdr.test ', '', '[main]', 'pg1-path=/srv/pg/data', 'recovery-option=primary_conninfo=host=a port=5'].join('\n'),
    );
    assert.equal(ini.get('global')?.get('repo1-path'), '/var/lib/pgbackrest');
    assert.equal(ini.get('global')?.get('repo2-s3-endpoint'), 's3.pgdr.test');
    assert.equal(ini.get('main')?.get('pg1-path'), '/srv/pg/data');
    assert.equal(ini.get('main')?.get('recovery-option'), 'primary_conninfo=host=a port=5');
    assert.equal(ini.get('')?.size, 0, 'nothing before the first section');
  });
  it('merges a section named twice, the later key winning', () => {
    const ini = parseIni('[main]\npg1-port=5432\n[global]\nx=1\n[main]\npg1-port=5433\n');
    assert.equal(ini.get('main')?.get('pg1-port'), '5433');
    assert.equal(ini.get('global')?.get('x'), '1');
  });
  it('skips lines without a key', () => {
    const ini = parseIni('[global]\n=value\nnot a setting\nk=v');
    assert.deepEqual([...(ini.get('global') ?? new Map()).entries()], [['k', 'v']]);
  });
});

describe('parseInfoJson (pgbackrest info --output=json)', () => {
  it('parses a stanza and keeps a large system-id exact (as text)', () => {
    const text = '[{"name":"main","db":[{"id":1,"system-id":7440583853211234567,"version":"15"}],"status":{"code":0,"message":"ok"},"backup":[]}]';
    const [stanza] = parseInfoJson(text) as unknown as { name: string; db: { 'system-id': string }[] }[];
    assert.equal(stanza.name, 'main');
    assert.equal(stanza.db[0]['system-id'], '7440583853211234567', 'a 64-bit id would lose digits as a JSON number');
  });
  it('tolerates raw control bytes in messages (a wrong cipher passphrase prints binary)', () => {
    const text = '[{"name":"main","status":{"code":99,"message":"other: \u0001\u0002bad\u007f"}}]';
    const [stanza] = parseInfoJson(text);
    assert.equal(stanza.status.code, 99);
    assert.match(stanza.status.message, /bad/);
  });
  it('refuses something that is not an array', () => {
    assert.throws(() => parseInfoJson('{"name":"main"}'), /not return a JSON array/);
  });
});

describe('parseError and failureFor (pgBackRest error lines)', () => {
  it('takes the first ERROR with its HINT', () => {
    const e = parseError('P00   INFO: x\nP00  ERROR: [055]: unable to load info file\n            HINT: is the stanza created?\nP00  ERROR: [099]: later');
    assert.deepEqual(e, { code: 55, message: 'unable to load info file', hint: 'is the stanza created?' });
  });
  it('a held stanza lock is retryable and says that another backup runs', () => {
    const f = failureFor('backup', 'main', result({ exitCode: 50, stderr: 'P00  ERROR: [050]: unable to acquire lock on file' }));
    assert.equal(f.type, FAILURE.stanzaBusy);
    assert.equal(f.nonRetryable, false);
    assert.match(f.message, /Another backup or expire is running on stanza "main"/);
  });
  it('an invalid option is not retryable and keeps pgBackRest\'s words', () => {
    const f = failureFor('restore', 'main', result({ exitCode: PGBR_ERROR.optionInvalidValue, stderr: "P00  ERROR: [032]: 'xyz' is not a valid value for option 'type'" }));
    assert.equal(f.type, FAILURE.rejected);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /\[032\] 'xyz' is not a valid value/);
  });
  it('without an ERROR line, the last lines of output and the exit code', () => {
    const f = failureFor('check', 'main', result({ exitCode: 137, stderr: '' }));
    assert.match(f.message, /exit code 137/);
  });
});

describe('recoveryFailureReason and parseRecoveryLog (PostgreSQL server log)', () => {
  it('names the FATAL line and the explanation before it', () => {
    const log = [
      '2026-11-22 03:00:01 UTC [42] LOG:  starting point-in-time recovery to 2026-11-22 02:00:00+00',
      '2026-11-22 03:00:02 UTC [42] LOG:  could not open file "pg_wal/000000010000000000000007": No such file or directory',
      '2026-11-22 03:00:02 UTC [42] FATAL:  recovery ended before configured recovery target was reached',
    ].join('\n');
    const why = recoveryFailureReason(log);
    assert.ok(why);
    assert.match(why, /^FATAL: recovery ended before configured recovery target was reached/);
    assert.match(why, /could not open file "pg_wal\/000000010000000000000007"/);
  });
  it('returns null for a clean log', () => {
    assert.equal(recoveryFailureReason('LOG:  database system is ready to accept connections\n'), null);
  });
  it('finds where recovery stopped and where it became consistent (the last of each)', () => {
    const log = [
      'LOG:  consistent recovery state reached at 0/3000100',
      'LOG:  consistent recovery state reached at 0/3000138',
      'LOG:  recovery stopping before commit of transaction 745, time 2026-11-22 02:00:01.5+00',
    ].join('\n');
    assert.deepEqual(parseRecoveryLog(log), { stoppedAt: 'recovery stopping before commit of transaction 745, time 2026-11-22 02:00:01.5+00', consistentAt: '0/3000138' });
    assert.deepEqual(parseRecoveryLog(''), { stoppedAt: null, consistentAt: null });
  });
});

describe('parseClick (Slack block_actions bodies)', () => {
  const body = (payload: unknown) => new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const click = (over: Record<string, unknown> = {}) => ({
    type: 'block_actions',
    user: { id: 'U024BE7LH', username: 'alice' },
    channel: { id: 'C0PGDR' },
    container: { message_ts: '1700000000.000100' },
    actions: [{ action_id: SLACK_ACTION.approve, value: encodeButtonValue({ w: 'restore-in-place-main-1', a: 'a1' }) }],
    ...over,
  });
  it('reads an approve click: workflow, approval, user and message', () => {
    const r = parseClick(body(click()));
    assert.ok('click' in r, JSON.stringify(r));
    assert.deepEqual(
      { d: r.click.decision, w: r.click.workflowId, a: r.click.approvalId, u: r.click.userId, n: r.click.userName, c: r.click.channel, ts: r.click.messageTs },
      { d: 'approve', w: 'restore-in-place-main-1', a: 'a1', u: 'U024BE7LH', n: 'alice', c: 'C0PGDR', ts: '1700000000.000100' },
    );
  });
  it('maps every pgdr button to its decision', () => {
    const seen = Object.values(SLACK_ACTION).map((id) => {
      const r = parseClick(body(click({ actions: [{ action_id: id, value: encodeButtonValue({ w: 'w', a: 'a' }) }] })));
      return 'click' in r ? r.click.decision : `not a click: ${JSON.stringify(r)}`;
    });
    assert.deepEqual(new Set(seen).size, seen.length, `each button a distinct decision: ${seen.join(', ')}`);
    assert.ok(seen.every((d) => !d.startsWith('not a click')), seen.join(', '));
  });
  it('ignores other payload types and other apps\' buttons', () => {
    assert.ok('ignore' in parseClick(body(click({ type: 'view_submission' }))));
    assert.ok('ignore' in parseClick(body(click({ actions: [{ action_id: 'someone_else', value: 'x' }] }))));
  });
  it('refuses malformed bodies with a reason', () => {
    const cases: [string, string][] = [
      ['', 'no payload field'],
      ['payload=%7Bnot-json', 'payload is not JSON'],
      [body(click({ actions: [] })), 'expected exactly one action'],
      [body(click({ actions: [{ action_id: SLACK_ACTION.approve, value: '{"w":""}' }] })), 'button value does not name'],
      [body(click({ user: { id: 'alice' } })), 'no valid user.id'],
      [body(click({ channel: undefined, container: {} })), 'no channel / message_ts'],
    ];
    for (const [raw, reason] of cases) {
      const r = parseClick(raw);
      assert.ok('malformed' in r, `${raw.slice(0, 60)} → ${JSON.stringify(r)}`);
      assert.match(r.malformed, new RegExp(reason.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    }
  });
});
