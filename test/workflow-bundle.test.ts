/**
 * The runbooks' bundle that `npm run build` makes (worker/workflow-bundle.ts): a worker uses it only while it
 * is at least as new as every compiled module a runbook may import; otherwise it bundles the runbooks itself.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { builtWorkflowBundle } from '../worker/workflow-bundle';

const dist = mkdtempSync(join(tmpdir(), 'pgdr-bundle-'));
after(() => rmSync(dist, { recursive: true, force: true }));
const file = (path: string, secondsAgo: number) => {
  writeFileSync(join(dist, path), '');
  const t = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(join(dist, path), t, t);
};

describe('the built workflow bundle', () => {
  test('used when newer than the runbooks and common/; not when a runbook or common/ module was rebuilt after it; not when missing', () => {
    mkdirSync(join(dist, 'workflows'));
    mkdirSync(join(dist, 'common'));
    file('workflows/backup.js', 60);
    file('common/inputs.js', 60);
    assert.equal(builtWorkflowBundle(dist), undefined, 'no bundle yet');
    file('workflow-bundle.js', 30);
    assert.deepEqual(builtWorkflowBundle(dist), { codePath: join(dist, 'workflow-bundle.js') });
    file('common/inputs.js', 10);
    assert.equal(builtWorkflowBundle(dist), undefined, 'common/inputs.js is newer');
    file('workflow-bundle.js', 5);
    assert.ok(builtWorkflowBundle(dist));
    file('workflows/backup.js', 1);
    assert.equal(builtWorkflowBundle(dist), undefined, 'workflows/backup.js is newer');
    file('workflows/notes.txt', 0);
    file('workflow-bundle.js', 0.5);
    assert.ok(builtWorkflowBundle(dist), 'only compiled modules count');
  });
});
