import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { MalformedError, PolicyError, UsageError, VerificationError } from '../../errors/index.js';
import {
  evaluateAciReceipt,
  parseAciReceipt,
  tdxTeeVerifier,
  trustedKeysetFrom,
  verifyAciAttestation,
  verifyAciReceipt,
  type AciTrustedKeyset,
  type TeeVerifier,
} from '../../aci/index.js';
import { loadIntelSgxRoots, type TdxCollateral, type TdxPolicy } from '../../evidence/tdx/index.js';
import { tdxPolicyFromArgs, tdxPolicyOptions, type TdxPolicyArgs } from './tdx.js';
import { parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';

interface AciArgs extends TdxPolicyArgs {
  receipt: string;
  attestation?: string;
  keyset?: string;
  nonce?: string;
  'request-body'?: string;
  'response-body'?: string;
  at?: string;
  json: boolean;
}

const readFileOr = async (path: string) =>
  new Uint8Array(
    await readFile(path).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${path}: ${e.code ?? e.message}`);
    }),
  );

function json(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new MalformedError('ERR_ACI_RECEIPT_MALFORMED', `expected ${what} to be a JSON object`);
}

/** The receipt itself, the legacy `/v1/signature` wrapper (`receipt`), or a spec-vector file (`receipt.document`). */
export function receiptFromJson(o: Record<string, unknown>): unknown {
  if (o.signature !== undefined && o.event_log !== undefined) return o;
  const inner = o.receipt as Record<string, unknown> | undefined;
  if (inner && typeof inner === 'object') return inner.document ?? inner;
  return o;
}

/** A bare keyset, or any object holding one under `workload_keyset` (e.g. the spec-vector file). */
export function keysetFromJson(o: Record<string, unknown>): unknown {
  return o.workload_keyset ?? o;
}

/**
 * TEE verifiers available offline: TDX against the pinned Intel root, with the TDX policy flags and
 * `--collateral` (as `tresor-verify tdx`). SEV-SNP reports need the SNP module.
 */
const offlineTee = (policy: TdxPolicy, collateral: TdxCollateral | undefined): TeeVerifier => async (input) => {
  if (input.teeType === 'tdx') return tdxTeeVerifier({ roots: loadIntelSgxRoots(), policy, ...(collateral ? { collateral: () => collateral } : {}) })(input);
  throw new VerificationError('ERR_ACI_TEE_UNSUPPORTED', `expected attestation.tee_type "tdx" (the one this command verifies offline), got ${JSON.stringify(input.teeType)}`);
};

export const aciCommand: CommandModule<object, AciArgs> = {
  command: 'aci <receipt>',
  describe: 'Verify an ACI (aci/1) receipt against an attestation report or a pinned keyset (- for stdin)',
  builder: (y: Argv) =>
    tdxPolicyOptions(y)
      .positional('receipt', { type: 'string', demandOption: true, describe: 'The receipt from /v1/aci/receipts/{id}, or - for standard input' })
      .option('attestation', { type: 'string', describe: 'The /v1/aci/attestation report (its TEE evidence is verified; the keyset comes from it)' })
      .option('keyset', { type: 'string', describe: 'A workload keyset you already trust (offline)' })
      .option('nonce', { type: 'string', describe: 'The nonce (64 hex) sent with the attestation request; without it the unchallenged form is expected' })
      .option('request-body', { type: 'string', describe: 'The exact request body sent: checked against request.received.body_hash' })
      .option('response-body', { type: 'string', describe: 'The exact response bytes received (whole SSE stream): checked against response.returned' })
      .option('at', { type: 'string', describe: 'Verify at this ISO 8601 time (default: now)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .check((a) => {
        if (!a.attestation === !a.keyset) throw new UsageError('ERR_USAGE_BAD_FLAG', 'give exactly one of --attestation or --keyset');
        if (a.nonce !== undefined && !a.attestation) throw new UsageError('ERR_USAGE_BAD_FLAG', '--nonce applies to --attestation');
        if (a.collateral !== undefined && !a.attestation) throw new UsageError('ERR_USAGE_BAD_FLAG', '--collateral applies to --attestation (its TDX quote)');
        return true;
      }) as Argv<AciArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const at = parseAt(args.at) ?? new Date();
      let trust: AciTrustedKeyset;
      let tee: Record<string, unknown> | undefined;
      if (args.attestation) {
        const { collateral, policy } = await tdxPolicyFromArgs(args);
        const id = await verifyAciAttestation(json(await readFileOr(args.attestation), 'the attestation report'), { nonce: args.nonce ?? null, at, teeVerifier: offlineTee(policy, collateral) });
        trust = id;
        tee = id.tee;
      } else {
        trust = trustedKeysetFrom(keysetFromJson(json(await readFileOr(args.keyset as string), 'the keyset')));
      }
      const receipt = verifyAciReceipt(parseAciReceipt(receiptFromJson(json(await readInput(args.receipt), 'the receipt'))), trust);
      const verdict = evaluateAciReceipt(receipt, {
        ...(args['request-body'] ? { requestBody: await readFileOr(args['request-body']) } : {}),
        ...(args['response-body'] ? { responseBody: await readFileOr(args['response-body']) } : {}),
      });
      const fields = { ...verdict, keyset_digest: trust.keysetDigest, ...(trust.workloadId ? { workload_id: trust.workloadId } : {}), ...(tee ? { tee } : {}) };
      const failed = verdict.checks.filter((c) => c.result === 'fail');
      if (failed.length > 0) {
        throw new PolicyError(failed.map((c) => ({ code: c.code as string /* every failing check carries its code */, message: `${c.name}: ${c.detail ?? 'failed'}` })), { detail: fields });
      }
      const state = (name: string) => {
        const c = verdict.checks.find((x) => x.name === name);
        return c?.result === 'pass' ? 'match' : 'not checked';
      };
      const up = verdict.upstream;
      const lines: [string, string][] = [
        ['Generation', verdict.generation === 'C' ? 'current (flat key_id)' : 'older (signature object, seq)'],
        ['Receipt', verdict.receipt_id],
        ['Key ID', `${verdict.key_id} (${verdict.algo})`],
        ['Keyset digest', trust.keysetDigest],
        ['Keyset source', args.attestation ? `attested (${String(tee?.tee_type ?? '')})` : 'pinned file (not attested)'],
        ['Request hash', state('request_body_hash')],
        ['Response hash', state('response_body_hash')],
        ['Upstream', up ? `${String(up.result)}${up.session_id ? ` (session ${String(up.session_id)})` : ''}` : 'none (direct)'],
        ['Rewrites', verdict.rewrites.length ? verdict.rewrites.join('; ') : 'none'],
      ];
      if (tee?.tee_type === 'tdx') {
        const advisories = Array.isArray(tee.advisory_ids) ? ` (advisories: ${(tee.advisory_ids as string[]).join(', ') || 'none'})` : '';
        lines.push(['TCB status', tee.tcb_status === 'unknown' ? 'unknown (no Intel collateral given: --collateral)' : `${String(tee.tcb_status)}${advisories}`]);
      }
      if (verdict.route) lines.push(['Route', verdict.route]);
      return { lines, fields };
    }),
};
