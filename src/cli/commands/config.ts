import type { Argv, CommandModule } from 'yargs';
import { stringify } from 'yaml';
import { describeConfig, loadConfig } from '../../config/load.js';
import { toTresorError } from '../../errors/index.js';
import { preflight } from '../../proxy/preflight.js';
import { exitCodeFor } from '../exit-codes.js';

export const configCommand: CommandModule = {
  command: 'config <action>',
  describe: 'Configuration tools',
  builder: (y: Argv) =>
    y.command({
      command: 'check [file]',
      describe: 'Validate a config file (with the TRESOR_ATTEST_* environment applied), check every file serve reads at start (state and log directories, API key, CA, local token, release-root and trust-root files; warns on a key file others can read), and print the effective settings, secrets masked',
      builder: (c: Argv) => c.positional('file', { type: 'string', describe: 'YAML config file (default: $TRESOR_ATTEST_CONFIG)' }),
      handler: async (args) => {
        try {
          const cfg = await loadConfig({ file: args.file as string | undefined });
          // What `serve` would refuse before listening (files it cannot read), with its codes.
          for (const warning of await preflight(cfg, process.env)) process.stderr.write(`tresor-attest: warning: ${warning}\n`);
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
