import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `audit`.
export const auditCommand: CommandModule = {
  command: 'audit',
  describe: false,
  handler: () => {
    process.stderr.write('audit: not available in this build\n');
    process.exitCode = 2;
  },
};
