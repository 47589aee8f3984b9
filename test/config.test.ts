/** The configuration files shipped in the repository validate. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { run } from '../activities/process';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema, loadConfig } from '../common/config';
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
  // The passphrase is a compose secret (a file), never an environment variable; PostgreSQL is Debian's.
  assert.equal(cfg.clusters[0].repos[0].cipherPassEnv, undefined);
  assert.match(cfg.clusters[0].repos[0].cipherPassFile ?? '', /^\/run\/secrets\//);
  assert.equal(cfg.clusters[0].control.method, 'pg_ctlcluster');
});

test('`pgdr config check --offline` validates a file without a server, and names what is wrong', async () => {
  const cli = join(PROJECT_ROOT, 'bin', 'pgdr');
  const good = await run(process.execPath, [cli, '--config', join(PROJECT_ROOT, 'config', 'pgdr.example.yaml'), '--json', 'config', 'check', '--offline']);
  assert.equal(good.exitCode, 0, good.stderr);
  const j = JSON.parse(good.stdout) as { ok: boolean; offline: boolean; fingerprint: string };
  assert.deepEqual([j.ok, j.offline], [true, true]);
  assert.match(j.fingerprint, /^[0-9a-f]{16}$/);
  const dir = mkdtempSync(join(tmpdir(), 'pgdr-config-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'clusters:\n  - name: main\n    host: db1\n    stanza: main\n    port: 99999\n');
  const r = await run(process.execPath, [cli, '--config', bad, 'config', 'check', '--offline']);
  assert.equal(r.exitCode, 3);
  assert.match(r.stderr, /clusters\[0\]\.port/);
  assert.match(r.stderr, /clusters\[0\]\.dataDir/);
  rmSync(dir, { recursive: true, force: true });
});

/** Every field name the schema accepts (nested objects, lists and unions walked), e.g. "clusters.restore.deltaBy". */
function schemaFields(t: z.ZodTypeAny, prefix = ''): string[] {
  const def = t._def as { typeName: string } & Record<string, unknown>;
  switch (def.typeName) {
    case 'ZodObject':
      return Object.entries((t as z.AnyZodObject).shape).flatMap(([k, v]) => [`${prefix}${k}`, ...schemaFields(v as z.ZodTypeAny, `${prefix}${k}.`)]);
    case 'ZodOptional':
    case 'ZodNullable':
    case 'ZodDefault':
      return schemaFields(def.innerType as z.ZodTypeAny, prefix);
    case 'ZodEffects':
      return schemaFields(def.schema as z.ZodTypeAny, prefix);
    case 'ZodArray':
      return schemaFields(def.type as z.ZodTypeAny, prefix);
    case 'ZodUnion':
    case 'ZodDiscriminatedUnion':
      return [...new Set((def.options as z.ZodTypeAny[]).flatMap((o) => schemaFields(o, prefix)))];
    default:
      return [];
  }
}

test('the example config shows every field of the schema (set, or in a comment)', () => {
  const text = readFileSync(join(PROJECT_ROOT, 'config', 'pgdr.example.yaml'), 'utf8');
  const fields = schemaFields(configSchema);
  assert.ok(fields.length > 80, `walked ${fields.length} fields`);
  // A record's keys are data, not fields (approvals.people, restore.expectTables): their parent is enough.
  const missing = fields.filter((f) => !new RegExp(`(^|[\\s{,#-])${f.split('.').pop()}:`, 'm').test(text));
  assert.deepEqual(missing, [], `fields missing from config/pgdr.example.yaml: ${missing.join(', ')}`);
});
