import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `attest`.
export const attestCommand: CommandModule = {
  command: 'attest',
  describe: false,
  handler: () => {
    process.stderr.write('attest: not available in this build\n');
    process.exitCode = 2;
  },
};
