import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `sim`.
export const simCommand: CommandModule = {
  command: 'sim',
  describe: false,
  handler: () => {
    process.stderr.write('sim: not available in this build\n');
    process.exitCode = 2;
  },
};
