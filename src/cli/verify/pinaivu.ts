import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { MalformedError, PolicyError, UsageError } from '../../errors/index.js';
import { loadNitroRoots } from '../../evidence/nitro/index.js';
import {
  evaluateDocumentedReceipt,
  evaluateRoutingReceipt,
  nitroCoordinatorBinder,
  parseDocumentedReceipt,
  parseRoutingReceipt,
  verifyRoutingReceipt,
  type PinaivuVerdict,
} from '../../pinaivu/index.js';
import { parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';
import { parsePcrFlags } from './nitro.js';
import { parsePemCertificates } from '../../x509/certificate.js';

interface PinaivuArgs {
  proof: string;
  attestation?: string;
  root?: string;
  pcr: string[];
  'allow-debug': boolean;
  at?: string;
  json: boolean;
}

export const pinaivuCommand: CommandModule<object, PinaivuArgs> = {
  command: 'pinaivu <proof>',
  describe: 'Verify a Pinaivu coordinator proof (/v1/proofs/{uuid}) or check a documented receipt (- for stdin)',
  builder: (y: Argv) =>
    y
      .positional('proof', { type: 'string', demandOption: true, describe: 'The RoutingReceipt JSON (or a /v1/receipts/{id} document, or the daemon\'s archived {receipt, proof}), or - for standard input' })
      .option('attestation', { type: 'string', describe: "The coordinator's /get_attestation JSON: binds coordinator_pubkey to a Nitro enclave" })
      .option('root', { type: 'string', describe: 'With --attestation: trust this Nitro root (PEM) instead of the pinned AWS Nitro root G1 (e.g. the simulator\'s)' })
      .option('pcr', { type: 'string', array: true, default: [], describe: 'Allowed PCR value N=HEX for the coordinator enclave (repeatable; together one set)' })
      .option('allow-debug', { type: 'boolean', default: false, describe: 'Accept a debug enclave (all-zero PCR0/1/2)' })
      .option('at', { type: 'string', describe: 'Verify at this ISO 8601 time (default: now)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }) as Argv<PinaivuArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const at = parseAt(args.at) ?? new Date();
      let doc: unknown;
      try {
        doc = JSON.parse(Buffer.from(await readInput(args.proof)).toString('utf8'));
      } catch {
        throw new MalformedError('ERR_PINAIVU_MALFORMED', 'expected the proof to be JSON');
      }
      // The daemon's archive keeps `{"receipt": …, "proof": …}`: the proof is what verifies.
      if (typeof doc === 'object' && doc !== null && 'receipt' in doc && 'proof' in doc) doc = (doc as { proof: unknown }).proof;
      let verdict: PinaivuVerdict;
      if (typeof doc === 'object' && doc !== null && 'coordinator_signature' in doc && !('coordinator_pubkey' in doc)) {
        verdict = evaluateDocumentedReceipt(parseDocumentedReceipt(doc), { at });
      } else {
        const pcrSet = parsePcrFlags(args.pcr);
        let bindKey;
        if (args.attestation) {
          const att = await readFile(args.attestation, 'utf8').catch((e: NodeJS.ErrnoException) => {
            throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${args.attestation}: ${e.code ?? e.message}`);
          });
          const roots = args.root ? parsePemCertificates(readFileSync(args.root, 'utf8'), args.root) : loadNitroRoots();
          if (roots.length === 0) throw new UsageError('ERR_USAGE_BAD_ROOT', `--root: no certificate in ${args.root}`);
          bindKey = nitroCoordinatorBinder(att, { roots, ...(Object.keys(pcrSet).length ? { allowedPcrs: [pcrSet] } : {}), allowDebug: args['allow-debug'] });
        } else if (args.pcr.length > 0 || args.root) {
          throw new UsageError('ERR_USAGE_PCR_WITHOUT_ATTESTATION', '--pcr and --root apply to --attestation');
        }
        const verified = await verifyRoutingReceipt(parseRoutingReceipt(doc), { at, ...(bindKey ? { bindKey } : {}) });
        verdict = evaluateRoutingReceipt(verified, { at });
      }
      const fields = { ...verdict };
      const failed = verdict.checks.filter((c) => c.result === 'fail');
      if (failed.length > 0) {
        throw new PolicyError(failed.map((c) => ({ code: c.code as string /* every failing check carries its code */, message: `${c.name}: ${c.detail ?? 'failed'}` })), { detail: fields });
      }
      if (verdict.verdict !== 'verified') {
        const open = verdict.checks.filter((c) => c.result === 'unverifiable');
        throw new PolicyError(open.map((c) => ({ code: 'ERR_PINAIVU_UNVERIFIABLE', message: `${c.name}: ${c.detail ?? 'unverifiable'}` })), { detail: fields });
      }
      return {
        lines: verdict.checks.filter((c) => c.result !== 'skip' || c.detail).map((c): [string, string] => [c.name, `${c.result}${c.detail ? ` (${c.detail})` : ''}`]),
        fields,
      };
    }),
};
