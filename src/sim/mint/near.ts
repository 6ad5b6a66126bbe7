import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { eip191Digest, ethereumAddress } from '../../near/eip191.js';
import { gatewayBinding, paddedIdentity } from '../../near/verify-report.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { createTdxTestPki, mintDstackEventLog, mintTdxQuote, type TdxTestPki } from './tdx.js';

/** Switches that make one check of the `near` profile fail (simulator fault knobs). */
export interface NearFaults {
  /** Chat signatures by a key no attestation names. */
  unattestedSigner?: boolean;
  /** `text` hashes other bytes than the request / the response that flowed. */
  requestHashMismatch?: boolean;
  responseHashMismatch?: boolean;
  /** Quotes bind a nonce other than the one asked for. */
  wrongNonce?: boolean;
  /** The gateway quote binds its address only (padded), not the TLS key. */
  tlsUnbound?: boolean;
  /** A TD with another MRTD than the one the operator allows. */
  wrongMeasurement?: boolean;
  /** A broken quote signature (the DCAP check fails). */
  badQuote?: boolean;
  /** The event log does not replay to RTMR3. */
  rtmr3Mismatch?: boolean;
}

export const NEAR_FAULTS = ['unattestedSigner', 'requestHashMismatch', 'responseHashMismatch', 'wrongNonce', 'tlsUnbound', 'wrongMeasurement', 'badQuote', 'rtmr3Mismatch'] as const satisfies readonly (keyof NearFaults)[];
export type NearFaultName = (typeof NEAR_FAULTS)[number];

export interface NearDeployment {
  pki: TdxTestPki;
  /** The MRTD (96 hex) the daemon should allow. */
  mrtd: string;
  composeHash: string;
  /** The gateway's and the model node's signing addresses (lowercase `0x`). */
  gatewayAddress: string;
  modelAddress: string;
  faults: NearFaults;
  /**
   * `GET /v1/attestation/report?nonce=[&model=]` in NEAR's shape: the gateway attestation, and the
   * model's node attestations only when a model is asked for (as NEAR serves them).
   */
  report(spkiSha256: string, nonceHex: string | null, model?: string | null): object;
  /** `GET /v1/signature/{chat_id}`: EIP-191 over `<request sha256>:<response sha256>` by the model node's key. */
  signature(o: { requestSha256: string; responseSha256: string }): object;
}

/** `0x` r ‖ s ‖ v (27/28) EIP-191 personal_sign, as NEAR serves it. */
function personalSign(text: string, secret: Uint8Array): string {
  const sig = secp256k1.Signature.fromBytes(secp256k1.sign(eip191Digest(text), secret, { prehash: false, format: 'recovered' }), 'recovered');
  const hex = (x: bigint) => x.toString(16).padStart(64, '0');
  return `0x${hex(sig.r)}${hex(sig.s)}${((sig.recovery as number) + 27).toString(16)}`;
}

/**
 * A NEAR AI Cloud-like deployment from the simulator's own test roots: a gateway whose dstack TDX
 * quote binds SHA-256(address ‖ TLS SPKI SHA-256) ‖ nonce, one model node (listed when a model is
 * asked for) whose quote binds its padded address ‖ nonce, both with an event log and `app_compose`, and chat signatures by the
 * model node's secp256k1 key (docs/wire/aci.md §7).
 */
export async function createNearDeployment(): Promise<NearDeployment> {
  const pki = await createTdxTestPki();
  const mrtd = randomBytes(48);
  const appCompose = JSON.stringify({ manifest_version: 2, name: 'tresor-sim-near', docker_compose_file: 'services: {vllm: {image: sim}}' });
  const log = mintDstackEventLog(appCompose);
  const gatewayKey = secp256k1.utils.randomSecretKey();
  const modelKey = secp256k1.utils.randomSecretKey();
  const address = (k: Uint8Array) => ethereumAddress(secp256k1.getPublicKey(k, false));
  const gatewayAddress = address(gatewayKey);
  const modelAddress = address(modelKey);
  const faults: NearFaults = {};
  const attest = (signingAddress: string, head: Uint8Array, nonce: Uint8Array) => ({
    signing_address: signingAddress,
    signing_algo: 'ecdsa',
    intel_quote: toHex(
      mintTdxQuote(pki, {
        reportData: Buffer.concat([head, faults.wrongNonce ? randomBytes(32) : nonce]),
        mrtd: faults.wrongMeasurement ? randomBytes(48) : mrtd,
        rtmr3: faults.rtmr3Mismatch ? randomBytes(48) : log.rtmr3,
        ...(faults.badQuote ? { breakQuoteSignature: true } : {}),
      }),
    ),
    event_log: JSON.stringify(log.events),
    info: { tcb_info: { app_compose: appCompose } },
  });
  return {
    pki,
    mrtd: toHex(mrtd),
    composeHash: log.composeHash,
    gatewayAddress,
    modelAddress,
    faults,
    report(spki, nonceHex, model) {
      // Like dstack: an absent nonce gets a random one.
      const nonce = nonceHex ? fromHex(nonceHex) : randomBytes(32);
      const gatewayId = fromHex(gatewayAddress.slice(2));
      return {
        gateway_attestation: { ...attest(gatewayAddress, faults.tlsUnbound ? paddedIdentity(gatewayId) : gatewayBinding(gatewayId, spki), nonce), request_nonce: toHex(nonce) },
        model_attestations: model ? [{ model_name: model, ...attest(modelAddress, paddedIdentity(fromHex(modelAddress.slice(2))), nonce), nvidia_payload: '' }] : [],
      };
    },
    signature(o) {
      const other = (s: string) => toHex(fromHex(s).map((b) => b ^ 0xff));
      const text = `${faults.requestHashMismatch ? other(o.requestSha256) : o.requestSha256}:${faults.responseHashMismatch ? other(o.responseSha256) : o.responseSha256}`;
      const key = faults.unattestedSigner ? secp256k1.utils.randomSecretKey() : modelKey;
      return { text, signature: personalSign(text, key), signing_address: address(key), signing_algo: 'ecdsa' };
    },
  };
}
