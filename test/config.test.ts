/** The configuration files shipped in the repository validate. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { loadConfig } from '../common/config';
import { PROJECT_ROOT } from '../common/paths';

test('config/pgdr.example.yaml is a valid configuration', () => {
  const cfg = loadConfig(join(PROJECT_ROOT, 'config', 'pgdr.example.yaml'));
  assert.equal(cfg.clusters[0].name, 'main');
  assert.deepEqual(
    cfg.clusters[0].repos.map((r) => r.index),
    [1, 2],
  );
  assert.equal(cfg.approvals.fullSiteRecovery.required, 2);
});

test("docker-compose's pgdr.yaml is a valid configuration", () => {
  const cfg = loadConfig(join(PROJECT_ROOT, 'docker', 'pgdr.yaml'));
  assert.equal(cfg.clusters[0].host, 'db1');
  assert.equal(cfg.clusters[0].repos[0].cipherPassEnv, 'PGDR_REPO1_CIPHER_PASS');
});
