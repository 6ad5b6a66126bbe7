import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `config`.
export const configCommand: CommandModule = {
  command: 'config',
  describe: false,
  handler: () => {
    process.stderr.write('config: not available in this build\n');
    process.exitCode = 2;
  },
};
