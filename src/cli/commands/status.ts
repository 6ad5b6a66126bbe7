import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `status`.
export const statusCommand: CommandModule = {
  command: 'status',
  describe: false,
  handler: () => {
    process.stderr.write('status: not available in this build\n');
    process.exitCode = 2;
  },
};
