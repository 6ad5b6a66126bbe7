import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT } from './exit-codes.js';

/** Both programs: the same strictness, help, version and usage-error handling (exit 2, no stack trace). */
// Each command has its own argument type; the list is heterogeneous by design.
type AnyCommand = CommandModule<object, any>;

export async function runProgram(name: string, usage: string, commands: readonly AnyCommand[]): Promise<void> {
  let y = yargs(hideBin(process.argv)).scriptName(name).usage(usage);
  for (const c of commands) y = y.command(c);
  await y
    .demandCommand(1, 'Name a command (see --help).')
    .strict()
    .recommendCommands()
    .fail((msg, err) => {
      process.stderr.write(`error: ${msg ?? err?.message ?? 'invalid usage'}\nRun with --help for usage.\n`);
      process.exit(EXIT.usage);
    })
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .parseAsync();
}
