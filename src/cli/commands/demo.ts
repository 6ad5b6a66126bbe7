import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `demo`.
export const demoCommand: CommandModule = {
  command: 'demo',
  describe: false,
  handler: () => {
    process.stderr.write('demo: not available in this build\n');
    process.exitCode = 2;
  },
};
