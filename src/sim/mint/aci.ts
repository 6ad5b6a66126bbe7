import { createHash, randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { keysetDigest, reportDataFor, type JsonObject } from '../../aci/index.js';
import { canonicalBytes } from '../../jcs/index.js';
import { toHex } from '../../util/bytes.js';
import { toPem } from '../../x509/certificate.js';
import type { Certificate } from '../../x509/certificate.js';
import { createAciTdxEvidence, type AciTdxFaults } from './aci-tdx.js';
import { createSnpTestPki, mintSnpReport, type SnpTestPki } from './snp.js';
import type { TdxTestPki } from './tdx.js';

/** The TEE whose evidence the deployment serves (`attestation.tee_type`). */
export type AciTee = 'sev_snp' | 'tdx';

/** Switches that make one ACI check fail (simulator fault knobs); the TDX ones apply to `tee: 'tdx'`. */
export interface AciFaults extends AciTdxFaults {
  /** Sign receipts with a key id the keyset does not list. */
  unknownKeyId?: boolean;
  /** Sign receipts with a key that is not the listed one (same key id). */
  wrongKey?: boolean;
  /** Receipts name another keyset digest. */
  keysetDigestMismatch?: boolean;
  /** `request.received.body_hash` / `response.returned.body_hash` of other bytes. */
  requestHashMismatch?: boolean;
  responseHashMismatch?: boolean;
  /** Leave `response.returned` out of the event log. */
  missingEvent?: boolean;
  /** `upstream.verified` with result "failed" (required). */
  upstreamFailed?: boolean;
  /** The attestation binds a different nonce than the one asked for. */
  wrongNonce?: boolean;
  /** The keyset lists a TLS key other than the live one. */
  foreignTlsKey?: boolean;
  /** A different TEE measurement, SNP MEASUREMENT or TDX MRTD (not the one the operator allows). */
  wrongMeasurement?: boolean;
}

export interface AciDeployment {
  tee: AciTee;
  /** The AMD-like test PKI (its ARK is `aci.amd_ark_file`); it signs the evidence when `tee` is `sev_snp`. */
  pki: SnpTestPki;
  /** The TEE measurement the daemon should allow (96 hex): SNP MEASUREMENT, or TDX MRTD. */
  measurement: string;
  /** TDX only: the Intel-like test root (`tdx.intel_root_file`), MRTD, RTMR0-2 and the compose hash the quote and event log carry. */
  intelRoot?: Certificate;
  /** TDX only: the whole Intel-like test PKI (to mint DCAP collateral for it: `mintTdxCollateral`). */
  tdxPki?: TdxTestPki;
  mrtd?: string;
  rtmrs?: { rtmr0: string; rtmr1: string; rtmr2: string };
  composeHash?: string;
  faults: AciFaults;
  /** The keyset for the live TLS key (its digest is what receipts name). */
  keyset(spkiSha256: string): JsonObject;
  /** `GET /v1/aci/attestation?nonce=` (generation C, SEV-SNP or TDX evidence binding report_data ‖ 0^32). */
  attestation(spkiSha256: string, nonce: string | null): JsonObject;
  /** A signed generation-C receipt for one exchange (`sha256:` digests of the exact bytes). */
  receipt(o: { spkiSha256: string; receiptId: string; chatId: string; model: string; requestDigest: string; responseDigest: string }): JsonObject;
}

const digestOf = (b: Uint8Array | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * A whole aci/1 deployment from the simulator's own test roots: an Ed25519 receipt key, a keyset
 * naming the live TLS key, attestation reports whose TEE evidence binds the statement with the
 * caller's nonce — SEV-SNP (the AMD-like test PKI, the default) or TDX (a quote v4 from the
 * Intel-like test PKI with a dstack event log and app compose) — and generation-C receipts.
 */
export async function createAciDeployment(opts: { tee?: AciTee } = {}): Promise<AciDeployment> {
  const tee = opts.tee ?? 'sev_snp';
  const [pki, tdx] = await Promise.all([createSnpTestPki(), tee === 'tdx' ? createAciTdxEvidence() : undefined]);
  const measurement = randomBytes(48);
  const receiptSecret = randomBytes(32);
  const receiptPublic = toHex(ed25519.getPublicKey(receiptSecret));
  const notAfter = Math.floor(Date.now() / 1000) + 30 * 24 * 3600;
  const faults: AciFaults = {};
  const keyset = (spki: string): JsonObject => ({
    subject: 'tresor-sim://aci',
    not_after: notAfter,
    receipt_signing_keys: [{ key_id: 'sim-receipt-1', algo: 'ed25519', public_key: receiptPublic }],
    e2ee_public_keys: [],
    tls_public_keys: [{ spki_sha256: faults.foreignTlsKey ? 'c0'.repeat(32) : spki }],
  });
  const evidence = (reportData: Uint8Array): JsonObject => {
    if (tdx) return tdx.evidence(reportData, faults);
    const report = mintSnpReport(pki, { measurement: faults.wrongMeasurement ? randomBytes(48) : measurement, reportData });
    return { snp_report_b64: Buffer.from(report).toString('base64'), vcek_chain_pem: `${toPem(pki.vcek)}${toPem(pki.ask)}` };
  };
  return {
    tee,
    pki,
    measurement: tdx ? tdx.mrtd : toHex(measurement),
    ...(tdx ? { intelRoot: tdx.intelRoot, tdxPki: tdx.pki, mrtd: tdx.mrtd, rtmrs: tdx.rtmrs, composeHash: tdx.composeHash } : {}),
    faults,
    keyset,
    attestation(spki, nonce) {
      const ks = keyset(spki);
      const digest = keysetDigest(ks);
      const bound = reportDataFor(digest, faults.wrongNonce ? 'ff'.repeat(32) : nonce, 'C');
      return {
        api_version: 'aci/1',
        workload_keyset_digest: digest,
        attestation: {
          tee_type: tee,
          workload_keyset: ks,
          report_data: toHex(bound),
          source_provenance: { repo_url: 'https://example.invalid/tresor-sim', repo_commit: '0'.repeat(40), image_digest: `sha256:${'0'.repeat(64)}`, image_provenance: null },
          evidence: evidence(Buffer.concat([bound, Buffer.alloc(32)])),
        },
        service_capabilities: { supported_e2ee_versions: ['2'], serving: 'direct' },
      };
    },
    receipt(o) {
      const events: JsonObject[] = [
        { type: 'request.received', body_hash: (faults.requestHashMismatch ? digestOf('other request') : o.requestDigest) },
        { type: 'route.selected', target_route_id: o.model },
        { type: 'request.forwarded', body_hash: (faults.requestHashMismatch ? digestOf('other request') : o.requestDigest) },
        { type: 'upstream.verified', model_id: o.model, required: true, result: faults.upstreamFailed ? 'failed' : 'verified', session_id: 'ab'.repeat(32) },
        ...(faults.missingEvent ? [] : [{ type: 'response.returned', body_hash: (faults.responseHashMismatch ? digestOf('other response') : o.responseDigest) }]),
      ];
      const doc: JsonObject = {
        api_version: 'aci/1',
        receipt_id: o.receiptId,
        chat_id: o.chatId,
        model: o.model,
        workload_keyset_digest: faults.keysetDigestMismatch ? `sha256:${'ee'.repeat(32)}` : keysetDigest(keyset(o.spkiSha256)),
        endpoint: '/v1/chat/completions',
        method: 'POST',
        served_at: Math.floor(Date.now() / 1000),
        event_log: events,
        key_id: faults.unknownKeyId ? 'sim-receipt-9' : 'sim-receipt-1',
      };
      const secret = faults.wrongKey ? randomBytes(32) : receiptSecret;
      return { ...doc, signature: toHex(ed25519.sign(canonicalBytes(doc), secret)) };
    },
  };
}
