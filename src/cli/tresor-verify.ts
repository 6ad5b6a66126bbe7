import { attestCommand } from './verify/attest.js';
import { auditCommand } from './verify/audit.js';
import { nitroCommand } from './verify/nitro.js';
import { receiptCommand } from './verify/receipt.js';
import { aciCommand } from './verify/aci.js';
import { nearSignatureCommand } from './verify/near-signature.js';
import { tdxCommand } from './verify/tdx.js';
import { pinaivuCommand } from './verify/pinaivu.js';
import { snpCommand } from './verify/snp.js';
import { runProgram } from './program.js';

await runProgram(
  'tresor-verify',
  '$0 <command> [options]\n\nOne-shot and offline checks of router attestation, evidence, receipts and audit logs.\n' +
    'Exit codes: 0 pass, 1 internal error, 2 usage, 3 malformed input, 4 signature/chain, 5 policy, 6 fetch, 7 upstream connection.',
  [attestCommand, nitroCommand, snpCommand, receiptCommand, auditCommand, aciCommand, nearSignatureCommand, tdxCommand, pinaivuCommand],
);
