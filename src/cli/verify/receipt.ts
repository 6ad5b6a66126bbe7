import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `receipt`.
export const receiptCommand: CommandModule = {
  command: 'receipt',
  describe: false,
  handler: () => {
    process.stderr.write('receipt: not available in this build\n');
    process.exitCode = 2;
  },
};
