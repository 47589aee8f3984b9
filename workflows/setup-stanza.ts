/**
 * Runbook: set up a pgBackRest stanza for a cluster.
 * 1. Check the archive settings PostgreSQL needs (archive_mode, wal_level, archive_command).
 *    Wrong settings stop the runbook with the setting to change — unless fixArchiveSettings asks pgdr to
 *    ALTER SYSTEM them (a restart may still be needed, and is not done silently).
 * 2. `pgbackrest stanza-create`.
 * 3. `pgbackrest check`: a WAL segment really reaches the repository.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { setupStanzaInputSchema } from '../common/inputs';
import type { SetupStanzaInput } from '../common/inputs';
import type { SetupStanzaResult } from '../common/types';
import { lookups, onHost } from './activity-options';
import { Runbook, validInput } from './runbook';

export async function setupStanza(input: SetupStanzaInput): Promise<SetupStanzaResult> {
  const req = validInput(setupStanzaInputSchema, input, 'setupStanza');
  const rb = new Runbook(`Stanza setup for cluster ${req.cluster}`);

  const cluster = await rb.step('Look up the cluster', () => lookups.describeCluster({ cluster: req.cluster }));
  const host = onHost(cluster);

  let settings = await rb.step('Check the archive settings', () => host.quick.checkArchiveSettings({ cluster: req.cluster }));
  if (!settings.ok && req.fixArchiveSettings) {
    const fixed = await rb.step('Fix the archive settings with ALTER SYSTEM', () => host.quick.applyArchiveSettings({ cluster: req.cluster }));
    if (fixed.restartNeeded) {
      throw ApplicationFailure.nonRetryable(
        `changed ${fixed.changed.join(', ')} with ALTER SYSTEM; archive_mode/wal_level take effect only after a restart of PostgreSQL — restart it, then run the stanza setup again`,
        'RestartNeeded',
      );
    }
    settings = await rb.step('Check the archive settings again', () => host.quick.checkArchiveSettings({ cluster: req.cluster }));
  }
  if (!settings.ok) {
    const list = settings.problems.map((p) => `${p.setting} is '${p.actual}', must be '${p.expected}'${p.needsRestart ? ' (needs a restart)' : ''}`);
    throw ApplicationFailure.nonRetryable(
      `cluster ${req.cluster} is not ready for pgBackRest: ${list.join('; ')}. Change it in postgresql.conf (or start the setup with fixArchiveSettings: true).`,
      'BadInput',
      settings.problems,
    );
  }

  const created = await rb.step(`Create stanza ${cluster.stanza}`, () => host.quick.createStanza({ cluster: req.cluster }));
  const check = await rb.step(`Check stanza ${cluster.stanza} (WAL reaches the repository)`, () => host.quick.checkStanza({ cluster: req.cluster }));
  return { cluster: req.cluster, stanza: cluster.stanza, settings, created: !/already exists/.test(created.output), checkOutput: check.output };
}
