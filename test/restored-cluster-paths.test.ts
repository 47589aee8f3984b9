/**
 * Where restored clusters may go, and what `dropRestoredCluster` may remove: a new cluster's dataDir must lie
 * inside the restore folder (restore.newClusterDir) after `..` and symlinks, never in a production data
 * directory; a drop takes only a registered restored cluster's name. Refusals create and remove nothing.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serverState } from '../activities/postgres';
import { newClusterActivities } from '../activities/restore-to-new-cluster';
import type { RestoreToNewClusterResult } from '../workflows/restore-to-new-cluster';
import type { LocalCluster } from '../worker/local-cluster';
import { Harness } from './helpers/harness';

const h = new Harness('restored-paths');
let main: LocalCluster;
/** The restore folder: main's own folder, so that its data directory lies inside it. */
let restoreDir: string;
/** A folder outside the restore folder, reachable through a symlink inside it. */
const outside = mkdtempSync(join(tmpdir(), 'pgdr-test-outside-'));

before(async () => {
  await h.startTemporal();
  main = await h.addCluster({ name: 'main' });
  restoreDir = main.dir;
  h.writeConfig({}, { main: { restore: { newClusterDir: restoreDir } } });
  await h.startWorker();
  await h.execute('setupStanza', { cluster: 'main' });
  await h.execute('backup', { cluster: 'main', type: 'full' });
  symlinkSync(outside, join(restoreDir, 'escape'));
  symlinkSync(main.dataDir, join(restoreDir, 'prodlink'));
});
after(async () => {
  await h.teardown();
  rmSync(outside, { recursive: true, force: true });
});

const restoreNew = (name: string, dataDir: string) => ({ cluster: 'main', name, target: { type: 'latest' }, dataDir });

/** The workflow is refused with BadInput at planning: no restore step was ever scheduled. */
async function refused(name: string, dataDir: string, re: RegExp): Promise<void> {
  const f = await h.expectFailure('restoreToNewCluster', restoreNew(name, dataDir));
  assert.equal(f.type, 'BadInput', f.message);
  assert.match(f.message, re);
  const acts = await h.scheduledActivities(f.handle);
  assert.ok(acts.includes('planNewCluster'), acts.join(', '));
  assert.ok(!acts.includes('restoreBackup') && !acts.includes('discardNewCluster'), acts.join(', '));
}

describe('restoreToNewCluster: dataDir', () => {
  test('outside the restore folder is refused, naming the folder, and nothing is created', async () => {
    const folder = new RegExp(`outside the restore folder ${restoreDir}.*restore\\.newClusterDir`);
    await refused('evil', '/etc/pgdr-evil/data', folder);
    assert.equal(existsSync('/etc/pgdr-evil'), false);

    await refused('up', `${restoreDir}/../x`, folder);
    assert.equal(existsSync(join(restoreDir, '..', 'x')), false);

    await refused('sym', join(restoreDir, 'escape', 'data'), new RegExp(`leads to ${outside}/data\\).*${restoreDir}`));
    assert.equal(existsSync(join(outside, 'data')), false);
  });

  test("a production data directory, or a place inside it (also through a symlink), is refused", async () => {
    const prod = /configured cluster main/;
    await refused('prod', main.dataDir, prod);
    await refused('prodsub', join(main.dataDir, 'restored'), prod);
    await refused('prodlink', join(restoreDir, 'prodlink', 'restored'), prod);
    assert.equal(existsSync(join(main.dataDir, 'restored')), false);
    assert.equal(await serverState(main), 'running');
  });

  test('inside the restore folder it restores, and the drop removes it', async () => {
    const dataDir = join(restoreDir, 'copies', 'custom');
    const r = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', restoreNew('custom', dataDir));
    assert.equal(r.dataDir, dataDir);
    assert.ok(existsSync(join(dataDir, 'PG_VERSION')));
    await h.execute('dropRestoredCluster', { name: 'custom' });
    assert.equal(existsSync(dataDir), false);
  });

  test("the drop removes what pgdr put in the cluster's folder, never a file someone else put there", async () => {
    const r = await h.execute<RestoreToNewClusterResult>('restoreToNewCluster', { cluster: 'main', name: 'shared', target: { type: 'latest' } });
    const folder = join(restoreDir, 'shared');
    assert.equal(r.dataDir, join(folder, 'data'));
    writeFileSync(join(folder, 'notes.txt'), 'an analyst keeps notes here\n');
    await h.execute('dropRestoredCluster', { name: 'shared' });
    assert.equal(existsSync(r.dataDir), false, 'the restored data directory is gone');
    assert.equal(existsSync(join(folder, 'log')), false, "pgdr's log folder is gone");
    assert.ok(existsSync(join(folder, 'notes.txt')), 'the file pgdr did not create stays, and its folder with it');
  });
});

describe('dropRestoredCluster: name', () => {
  test('a malformed name, a production cluster and an unknown name are refused; nothing is removed', async () => {
    const bad = await h.expectFailure('dropRestoredCluster', { name: '../main' });
    assert.equal(bad.type, 'BadInput');
    assert.match(bad.message, /dropRestoredCluster: invalid input: name: lowercase letters/);
    assert.deepEqual(await h.scheduledActivities(bad.handle), []);

    const prod = await h.expectFailure('dropRestoredCluster', { name: 'main' });
    assert.equal(prod.type, 'BadInput');
    assert.match(prod.message, /"main": it is a configured production cluster/);
    assert.ok(!(await h.scheduledActivities(prod.handle)).includes('dropRestoredCluster'));

    assert.match((await h.expectFailure('dropRestoredCluster', { name: 'ghost' })).message, /no restored cluster named "ghost" on any host/);
    assert.equal(await serverState(main), 'running');
    assert.ok(existsSync(join(main.dataDir, 'PG_VERSION')));
  });

  test('the host activity validates the name too: "../x" cannot reach a record outside the registry', async () => {
    // A record one level above the registry folder, pointing at a folder that must survive.
    const victim = join(h.root, 'victim');
    mkdirSync(victim);
    writeFileSync(join(victim, 'keep'), 'x');
    const record = { name: 'victim', source: 'main', host: main.host, dir: victim, dataDir: victim, socketDir: join(victim, 's'), logFile: join(victim, 'l'), port: 1, ownsDir: true };
    writeFileSync(join(h.config.stateDirAbs, 'victim.json'), JSON.stringify(record));
    const acts = newClusterActivities({ config: h.config });
    await assert.rejects(acts.dropRestoredCluster({ name: '../victim' }), (e: Error & { type?: string }) => e.type === 'BadInput' && /name: lowercase letters/.test(e.message));
    assert.ok(existsSync(join(victim, 'keep')));
  });
});
