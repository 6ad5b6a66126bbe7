import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `snp`.
export const snpCommand: CommandModule = {
  command: 'snp',
  describe: false,
  handler: () => {
    process.stderr.write('snp: not available in this build\n');
    process.exitCode = 2;
  },
};
