import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { UsageError, VerificationError } from '../../errors/index.js';
import { loadIntelSgxRoots } from '../../evidence/tdx/index.js';
import { tdxPolicyFromArgs, tdxPolicyOptions, type TdxPolicyArgs } from './tdx.js';
import { parseNearReport, parseNearSignature, verifyNearReport, verifyNearSignature, type AttestedSigner } from '../../near/index.js';
import { fromHex } from '../../util/bytes.js';
import { parsePemCertificates } from '../../x509/certificate.js';
import { parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';

interface NearArgs extends TdxPolicyArgs {
  input: string;
  'request-body'?: string;
  'response-body'?: string;
  attestation?: string;
  nonce?: string;
  spki?: string;
  'intel-root'?: string;
  at?: string;
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
    tdxPolicyOptions(y)
      .positional('input', { type: 'string', demandOption: true, describe: 'The /v1/signature/{id} response ({text, signature, signing_address}), or - for standard input' })
      .option('request-body', { type: 'string', describe: 'The exact request body sent: its SHA-256 must be the first hash of text' })
      .option('response-body', { type: 'string', describe: 'The exact response bytes received (raw SSE for streams): its SHA-256 must be the second hash' })
      .option('attestation', { type: 'string', describe: 'The /v1/attestation/report answer the signer must be attested by (its TDX quotes are verified; needs --nonce)' })
      .option('nonce', { type: 'string', describe: 'With --attestation: the 64-hex nonce the report was asked with' })
      .option('spki', { type: 'string', describe: "With --attestation: SHA-256 (hex) of the TLS key the report was fetched over; the gateway's quote must bind it" })
      .option('intel-root', { type: 'string', describe: 'With --attestation: trust this Intel SGX root (PEM) instead of the pinned one (test roots)' })
      .option('at', { type: 'string', describe: 'With --attestation: verify the PCK chains at this ISO 8601 time (default: now)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .check((a) => {
        if ((a.attestation === undefined) !== (a.nonce === undefined)) throw new UsageError('ERR_USAGE_BAD_FLAG', '--attestation and --nonce go together');
        for (const k of ['spki', 'intel-root', 'at', 'collateral'] as const) if (a[k] !== undefined && a.attestation === undefined) throw new UsageError('ERR_USAGE_BAD_FLAG', `--${k} needs --attestation`);
        return true;
      }) as Argv<NearArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const sig = parseNearSignature(await readInput(args.input));
      const v = verifyNearSignature(sig, {
        ...(args['request-body'] ? { requestBody: await readFileOr(args['request-body']) } : {}),
        ...(args['response-body'] ? { responseBody: await readFileOr(args['response-body']) } : {}),
      });
      let attested: AttestedSigner | undefined;
      if (args.attestation !== undefined && args.nonce !== undefined) {
        const roots = args['intel-root'] ? parsePemCertificates(Buffer.from(await readFileOr(args['intel-root'])).toString('utf8'), '--intel-root') : loadIntelSgxRoots();
        const { collateral, policy } = await tdxPolicyFromArgs(args);
        const { signers } = verifyNearReport(parseNearReport(await readFileOr(args.attestation)), {
          policy,
          ...(collateral ? { collateral: () => collateral } : {}),
          nonce: fromHex(args.nonce, { field: '--nonce', length: 32, code: 'ERR_USAGE_BAD_FLAG' }),
          ...(args.spki !== undefined ? { liveSpkiSha256: args.spki.toLowerCase() } : {}),
          at: parseAt(args.at) ?? new Date(),
          roots,
        });
        attested = signers.find((s) => s.signingAddress === v.signer.toLowerCase());
        if (!attested) throw new VerificationError('ERR_NEAR_ATTESTED_ADDRESS', `expected the signer ${v.signer} to be attested by the report, which names ${signers.map((s) => s.signingAddress).join(', ')}`);
      }
      const checked = { ...v.checked, attestedAddress: attested !== undefined };
      const fields = {
        signer: v.signer,
        signing_algo: v.signingAlgo,
        text: v.text,
        request_sha256: v.requestSha256,
        response_sha256: v.responseSha256,
        ...(v.model ? { model: v.model } : {}),
        checked,
        ...(attested ? { attested: { role: attested.role, ...(attested.modelName ? { model: attested.modelName } : {}), mrtd: attested.mrtd, tls_bound: attested.tlsBound, tcb_status: attested.tcbStatus } } : {}),
      };
      return {
        lines: [
          ['Signer', `${v.signer} (${v.signingAlgo === 'ecdsa' ? 'EIP-191 personal_sign' : 'ed25519'})`],
          ...(v.model ? ([['Model', v.model]] as [string, string][]) : []),
          ['Request hash', v.checked.request ? `match ${v.requestSha256}` : `not checked (${v.requestSha256})`],
          ['Response hash', v.checked.response ? `match ${v.responseSha256}` : `not checked (${v.responseSha256})`],
          [
            'Attested address',
            attested
              ? `match: the ${attested.role}${attested.modelName ? ` ${attested.modelName}` : ''} (TDX MRTD ${attested.mrtd}${attested.tlsBound ? ', TLS key bound' : ''}, TCB ${attested.tcbStatus === 'unknown' ? 'unknown: no --collateral' : attested.tcbStatus})`
              : 'not checked (give --attestation REPORT.json --nonce HEX)',
          ],
        ],
        fields,
      };
    }),
};
