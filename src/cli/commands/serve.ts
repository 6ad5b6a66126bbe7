import type { CommandModule } from 'yargs';

// PLACEHOLDER: replaced by the module that implements `serve`.
export const serveCommand: CommandModule = {
  command: 'serve',
  describe: false,
  handler: () => {
    process.stderr.write('serve: not available in this build\n');
    process.exitCode = 2;
  },
};
