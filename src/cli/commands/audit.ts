import type { Argv, CommandModule } from 'yargs';
import pino from 'pino';
import { mkdir } from 'node:fs/promises';
import { AuditLog } from '../../audit/log.js';
import { loadConfig } from '../../config/load.js';
import { toTresorError } from '../../errors/index.js';
import { auditSigner } from '../../proxy/receipts.js';
import { lockDir } from '../../util/dir-lock.js';
import { exitCodeFor } from '../exit-codes.js';

interface RepairArgs {
  config?: string;
  'state-dir'?: string;
}

/**
 * `tresor-attest audit repair`: when the daemon refuses to start because the log does not match
 * `audit.head` (truncated, rewritten, head missing), record that loss as a chained `gap` record
 * (signed over by a checkpoint when audit.signing_key_file is set) so that the daemon can start and
 * every auditor sees the loss. Takes the state directory's lock: never while a daemon runs.
 */
async function repair(args: RepairArgs): Promise<void> {
  const config = await loadConfig({ file: args.config, overrides: { state_dir: args['state-dir'] } });
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  const lock = await lockDir(config.state_dir, pino({ level: 'silent' }));
  try {
    const log = await AuditLog.open({ dir: config.audit.dir, clock: () => new Date(), repair: true, signer: await auditSigner(config) });
    await log.close();
    for (const m of log.recovered.movedAside) process.stdout.write(`moved aside: ${m.file}.torn (${m.bytes} bytes, ${m.reason})\n`);
    const gap = log.recovered.gap;
    process.stdout.write(gap ? `recorded gap (${gap.reason}) in ${config.audit.dir}: ${gap.detail}\n` : `nothing to repair: ${config.audit.dir} matches audit.head\n`);
  } finally {
    await lock.release();
  }
}

export const auditCommand: CommandModule<object, RepairArgs> = {
  command: 'audit <action>',
  describe: 'Audit log maintenance',
  builder: (y: Argv) =>
    y
      .command({
        command: 'repair',
        describe: 'Record a loss the daemon refuses to start over (the log does not match audit.head) as a chained gap record',
        builder: (c: Argv) =>
          c
            .option('config', { type: 'string', describe: 'YAML config file (default: $TRESOR_ATTEST_CONFIG)' })
            .option('state-dir', { type: 'string', describe: 'State directory (default from the config)' }),
        handler: async (args) => {
          try {
            await repair(args as RepairArgs);
          } catch (e) {
            const err = toTresorError(e);
            process.stderr.write(`tresor-attest: ${err.message}\n`);
            process.exitCode = exitCodeFor(err.phase);
          }
        },
      })
      .demandCommand(1, 'Name an action: repair') as Argv<RepairArgs>,
  handler: () => undefined,
};
