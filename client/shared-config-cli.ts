/**
 * `pgdr config check` (the file, and whether its shared part agrees with the one published in Temporal) and
 * `pgdr config publish` (make this file's shared part the reference every worker must agree with).
 * See common/shared-config.ts for what is shared and workflows/shared-config.ts for the record.
 */
import type { Command } from 'commander';
import type { LoadedConfig } from '../common/config';
import { fingerprintOf, mismatchMessage, publishRecord, readPublished, sharedDifferences, sharedPart, sharedRecord, whoAmI, type SharedConfig } from '../common/shared-config';
import { checkTemporalConnection, CliError, connectClient } from './temporal';

interface Deps {
  config: () => LoadedConfig;
  print: (text: string, json: unknown) => void;
}

export function registerSharedConfigCommands(configCmd: Command, { config, print }: Deps): void {
  configCmd
    .command('check')
    .description('validate the config file, connect to Temporal, and compare its shared part with the one published there')
    .option('--offline', 'only validate the file (no connection): for CI and for checking a file before it is deployed')
    .action(async (o: { offline?: boolean }) => {
      const cfg = config();
      const shared = sharedPart(cfg);
      const fingerprint = fingerprintOf(shared);
      if (o.offline) {
        print(`${cfg.file}: ok — ${cfg.clusters.length} cluster(s): ${cfg.clusters.map((c) => `${c.name} (host ${c.host}, stanza ${c.stanza})`).join(', ')}\nshared configuration ${fingerprint} (not compared: --offline)`, {
          file: cfg.file,
          ok: true,
          fingerprint,
          offline: true,
        });
        return;
      }
      // The Temporal server as configured (DNS, TCP, TLS/mTLS, version, namespace); a failure says which step.
      const temporal = await checkTemporalConnection(cfg);
      const valid = `${cfg.file}: ok — ${cfg.clusters.length} cluster(s): ${cfg.clusters.map((c) => `${c.name} (host ${c.host}, stanza ${c.stanza})`).join(', ')}\n${temporal.line}`;
      let published: Awaited<ReturnType<typeof readPublished>>;
      try {
        const client = await connectClient(cfg);
        published = await readPublished(client, cfg.temporal.taskQueue);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        print(`${valid}\nshared configuration ${fingerprint}: not compared with the published one (${why})`, { file: cfg.file, ok: true, temporal: temporal.report, fingerprint, published: null, agrees: null });
        return;
      }
      if (!published) {
        print(`${valid}\nshared configuration ${fingerprint}: nothing is published yet (the first worker to start publishes its file's)`, {
          file: cfg.file,
          ok: true,
          temporal: temporal.report,
          fingerprint,
          published: null,
          agrees: null,
        });
        return;
      }
      const p = published.record;
      if (p.fingerprint === fingerprint) {
        print(`${valid}\nshared configuration ${fingerprint}: agrees with the published one (by ${p.publishedBy} at ${p.publishedAt})`, {
          file: cfg.file,
          ok: true,
          temporal: temporal.report,
          fingerprint,
          published: { fingerprint: p.fingerprint, publishedBy: p.publishedBy, publishedAt: p.publishedAt, file: p.file },
          agrees: true,
          differences: [],
        });
        return;
      }
      throw new CliError(
        `${cfg.file} is valid, but ${mismatchMessage(cfg, p, shared)}`,
        `a worker started with this file refuses to start; differing: ${sharedDifferences(shared, p.shared as SharedConfig).join(', ')}`,
        'config',
      );
    });

  configCmd
    .command('publish')
    .description("make this file's shared part the reference every worker must agree with (workers that disagree stop serving the shared queue)")
    .action(async () => {
      const cfg = config();
      const client = await connectClient(cfg);
      const record = sharedRecord(cfg, `${whoAmI()} (pgdr config publish)`);
      const before = await readPublished(client, cfg.temporal.taskQueue);
      if (before?.record.fingerprint === record.fingerprint) {
        print(`shared configuration ${record.fingerprint} is already the published one (by ${before.record.publishedBy} at ${before.record.publishedAt}); nothing changed`, {
          fingerprint: record.fingerprint,
          changed: false,
          previous: before.record.fingerprint,
        });
        return;
      }
      const differences = before ? sharedDifferences(sharedPart(cfg), before.record.shared as SharedConfig) : [];
      const out = await publishRecord(client, cfg.temporal.taskQueue, record);
      print(
        [
          `published shared configuration ${record.fingerprint} from ${cfg.file}${out.previous ? ` (replacing ${out.previous}; changed: ${differences.join(', ')})` : ' (the first one)'}`,
          ...(out.note ? [out.note] : []),
          'Workers whose file disagrees stop serving the shared task queue at their next decision, and refuse to start.',
        ].join('\n'),
        { fingerprint: record.fingerprint, changed: true, previous: out.previous ?? null, differences, how: out.how, note: out.note ?? null },
      );
    });
}
