import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `nitro`.
export const nitroCommand: CommandModule = {
  command: 'nitro',
  describe: false,
  handler: () => {
    process.stderr.write('nitro: not available in this build\n');
    process.exitCode = 2;
  },
};
