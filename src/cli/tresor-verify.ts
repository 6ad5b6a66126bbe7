import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { attestCommand } from './verify/attest.js';
import { nitroCommand } from './verify/nitro.js';
import { receiptCommand } from './verify/receipt.js';
import { aciCommand } from './verify/aci.js';
import { nearSignatureCommand } from './verify/near-signature.js';
import { tdxCommand } from './verify/tdx.js';
import { pinaivuCommand } from './verify/pinaivu.js';
import { snpCommand } from './verify/snp.js';
import { EXIT } from './exit-codes.js';

await yargs(hideBin(process.argv))
  .scriptName('tresor-verify')
  .usage(
    '$0 <command> [options]\n\nOne-shot and offline checks of router attestation, evidence, receipts and audit logs.\n' +
      'Exit codes: 0 pass, 1 internal error, 2 usage, 3 malformed input, 4 signature/chain, 5 policy, 6 fetch.',
  )
  .command(attestCommand)
  .command(nitroCommand)
  .command(snpCommand)
  .command(receiptCommand)
  .command(aciCommand)
  .command(nearSignatureCommand)
  .command(tdxCommand)
  .command(pinaivuCommand)
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
