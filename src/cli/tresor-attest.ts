import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { serveCommand } from './commands/serve.js';
import { simCommand } from './commands/sim.js';
import { demoCommand } from './commands/demo.js';
import { statusCommand } from './commands/status.js';
import { configCommand } from './commands/config.js';
import { EXIT } from './exit-codes.js';

await yargs(hideBin(process.argv))
  .scriptName('tresor-attest')
  .usage('$0 <command> [options]\n\nLocal OpenAI-compatible proxy that verifies a confidential-AI router before any byte leaves.')
  .command(serveCommand)
  .command(simCommand)
  .command(demoCommand)
  .command(statusCommand)
  .command(configCommand)
  .demandCommand(1, 'Name a command (see --help).')
  .strict()
  .recommendCommands()
  .fail((msg, err) => {
    // Bad flags and failed argument checks are usage errors (exit 2), never a stack trace.
    process.stderr.write(`error: ${msg ?? err?.message ?? 'invalid usage'}\nRun with --help for usage.\n`);
    process.exit(EXIT.usage);
  })
  .help()
  .alias('h', 'help')
  .version()
  .wrap(Math.min(110, process.stdout.columns || 110))
  .parseAsync();
