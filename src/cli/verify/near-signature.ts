import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import { parseNearSignature, verifyNearSignature } from '../../near/index.js';
import { readInput } from '../input.js';
import { runCommand } from '../output.js';

interface NearArgs {
  input: string;
  'request-body'?: string;
  'response-body'?: string;
  json: boolean;
}

const readFileOr = async (path: string) =>
  new Uint8Array(
    await readFile(path).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${path}: ${e.code ?? e.message}`);
    }),
  );

export const nearSignatureCommand: CommandModule<object, NearArgs> = {
  command: 'near-signature <input>',
  describe: 'Verify a NEAR AI Cloud / ACI legacy per-chat signature (EIP-191; - for stdin)',
  builder: (y: Argv) =>
    y
      .positional('input', { type: 'string', demandOption: true, describe: 'The /v1/signature/{id} response ({text, signature, signing_address}), or - for standard input' })
      .option('request-body', { type: 'string', describe: 'The exact request body sent: its SHA-256 must be the first hash of text' })
      .option('response-body', { type: 'string', describe: 'The exact response bytes received (raw SSE for streams): its SHA-256 must be the second hash' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }) as Argv<NearArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const sig = parseNearSignature(await readInput(args.input));
      const v = verifyNearSignature(sig, {
        ...(args['request-body'] ? { requestBody: await readFileOr(args['request-body']) } : {}),
        ...(args['response-body'] ? { responseBody: await readFileOr(args['response-body']) } : {}),
      });
      const fields = { signer: v.signer, signing_algo: v.signingAlgo, text: v.text, request_sha256: v.requestSha256, response_sha256: v.responseSha256, ...(v.model ? { model: v.model } : {}), checked: v.checked };
      return {
        lines: [
          ['Signer', `${v.signer} (${v.signingAlgo === 'ecdsa' ? 'EIP-191 personal_sign' : 'ed25519'})`],
          ...(v.model ? ([['Model', v.model]] as [string, string][]) : []),
          ['Request hash', v.checked.request ? `match ${v.requestSha256}` : `not checked (${v.requestSha256})`],
          ['Response hash', v.checked.response ? `match ${v.responseSha256}` : `not checked (${v.responseSha256})`],
          ['Attested address', 'not checked (compare with the attestation report\'s signing_address)'],
        ],
        fields,
      };
    }),
};
