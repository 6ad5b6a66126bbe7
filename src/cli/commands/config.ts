import type { Argv, CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { describeConfig, loadConfig } from '../../config/load.js';
import { toTresorError } from '../../errors/index.js';
import { readLocalToken } from '../../proxy/local-auth.js';
import { exitCodeFor } from '../exit-codes.js';

export const configCommand: CommandModule = {
  command: 'config <action>',
  describe: 'Configuration tools',
  builder: (y: Argv) =>
    y.command({
      command: 'check [file]',
      describe: 'Validate a config file (with the TRESOR_ATTEST_* environment applied) and print the effective settings, secrets masked',
      builder: (c: Argv) => c.positional('file', { type: 'string', describe: 'YAML config file (default: $TRESOR_ATTEST_CONFIG)' }),
      handler: async (args) => {
        try {
          const cfg = await loadConfig({ file: args.file as string | undefined });
          // The local token rules are serve's own (the same function reads and checks each token file).
          for (const u of cfg.upstreams) readLocalToken(u);
          process.stdout.write(`# configuration is valid${cfg.source ? `: ${cfg.source}` : ' (defaults and environment)'}\n`);
          process.stdout.write(stringify(describeConfig(cfg)));
        } catch (e) {
          const err = toTresorError(e);
          process.stderr.write(`tresor-attest: ${err.message}\n`);
          process.exitCode = exitCodeFor(err.phase);
        }
      },
    }).demandCommand(1, 'Name an action: check'),
  handler: () => undefined,
};
