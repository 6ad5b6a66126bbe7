/** Test helpers: mint ACI receipts with real keys (Ed25519 and secp256k1), exactly as a gateway would sign them. */
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { canonicalBytes } from '../../src/jcs/index.js';
import { sha256, sha256Hex, toHex } from '../../src/util/bytes.js';
import { keysetDigest, workloadIdFor, type JsonObject } from '../../src/aci/index.js';

export const vectors = JSON.parse(readFileSync(new URL('../vectors/aci-v1-current.json', import.meta.url), 'utf8'));
export const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
export const hashOf = (text: string) => `sha256:${sha256Hex(Buffer.from(text))}`;
export const seed = (byte: number) => new Uint8Array(32).fill(byte);

/** Gen C: signature = Ed25519 over JCS(document without "signature"). */
export function signGenC(doc: JsonObject, secret: Uint8Array): JsonObject {
  const { signature: _s, ...rest } = doc;
  return { ...rest, signature: toHex(ed25519.sign(canonicalBytes(rest), secret)) };
}

export const N = secp256k1.Point.CURVE().n;
const be32 = (x: bigint) => Buffer.from(x.toString(16).padStart(64, '0'), 'hex');

/** r‖s‖v (v = recovery id 0..3) over sha256(input), low-S (noble's default). */
export function secpSign(input: Uint8Array, secret: Uint8Array): { r: bigint; s: bigint; recovery: number } {
  const sig = secp256k1.Signature.fromBytes(secp256k1.sign(sha256(input), secret, { prehash: false, format: 'recovered' }), 'recovered');
  return { r: sig.r, s: sig.s, recovery: sig.recovery as number };
}
export const rsv = (r: bigint, s: bigint, v: number) => toHex(Buffer.concat([be32(r), be32(s), Uint8Array.of(v)]));

/** Gen A/B: signing input = JCS(document with only signature.value removed). */
export function signGenAB(doc: JsonObject, algo: string, keyId: string, secret: Uint8Array, tweak?: (sig: { r: bigint; s: bigint; recovery: number }) => string): JsonObject {
  const { signature: _s, ...rest } = doc;
  const unsigned = { ...rest, signature: { algo, key_id: keyId } };
  const input = canonicalBytes(unsigned);
  let value: string;
  if (algo === 'ed25519') value = toHex(ed25519.sign(input, secret));
  else {
    const sig = secpSign(input, secret);
    value = tweak ? tweak(sig) : rsv(sig.r, sig.s, sig.recovery);
  }
  return { ...rest, signature: { algo, key_id: keyId, value } };
}

export const secpPub = (secret: Uint8Array) => toHex(secp256k1.getPublicKey(secret, false));
export const edPub = (secret: Uint8Array) => toHex(ed25519.getPublicKey(secret));

/** A gen A/B keyset with a secp256k1 identity and both receipt key kinds, as dstack deployments had. */
export function genABKeyset(): JsonObject {
  return {
    workload_identity: { public_key: { algo: 'ecdsa-secp256k1', public_key: secpPub(seed(9)) }, subject: 'dstack-app://legacy' },
    keyset_epoch: { version: 3, not_after: 1800000000 },
    receipt_signing_keys: [
      { key_id: 'dstack-kms-receipt-ed25519-v1', algo: 'ed25519', public_key: edPub(seed(7)) },
      { key_id: 'dstack-kms-receipt-v1', algo: 'ecdsa-secp256k1', public_key: secpPub(seed(8)) },
      { key_id: 'dstack-kms-receipt-v2', algo: 'ecdsa-secp256k1', public_key: secpPub(seed(10)) },
    ],
    e2ee_public_keys: [],
    tls_public_keys: [{ spki_sha256: 'c0'.repeat(32) }],
  };
}

export const REQ = vectors.receipt.request_body_ascii as string;
export const SSE = 'data: {"id":"chatcmpl-9","choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n';

/** A gen A/B receipt document (unsigned) for the keyset above, middleware mode with a rewrite and a verified upstream. */
export function genABDocument(keyset: JsonObject): JsonObject {
  const fwd = '{"messages":[{"content":"hi","role":"user"}],"model":"upstream-model"}';
  return {
    api_version: 'aci/1',
    receipt_id: 'rcpt-00aa11bb22cc33dd44ee55ff',
    chat_id: 'chatcmpl-9',
    model: 'demo-model',
    workload_id: workloadIdFor((keyset.workload_identity as JsonObject).public_key as JsonObject),
    workload_keyset_digest: keysetDigest(keyset),
    endpoint: '/v1/chat/completions',
    method: 'POST',
    served_at: 1750000000,
    event_log: [
      { seq: 0, type: 'request.received', body_hash: hashOf(REQ) },
      { seq: 1, type: 'route.selected', target_route_id: 'route-eu-1' },
      { seq: 2, type: 'request.forwarded', body_hash: hashOf(fwd) },
      { seq: 3, type: 'transparency.request_modified' },
      {
        seq: 4,
        type: 'upstream.verified',
        upstream_name: 'near',
        provider_type: 'near-ai',
        model_id: 'upstream-model',
        url_origin: 'https://upstream.example.com',
        verifier_id: 'near/1',
        result: 'verified',
        required: true,
        reason: null,
        channel_bindings: [{ type: 'tls_spki_sha256', origin: 'https://upstream.example.com', spki_sha256: 'd1'.repeat(32) }],
        provider_claims: {},
        session_id: `as_${'ab'.repeat(32)}`,
        claims: { tee_attested: { status: 'asserted', source: 'hardware_proven' }, gpu_attested: { status: 'unknown' } },
      },
      { seq: 5, type: 'vendor.custom_metric', tokens: 12 },
      { seq: 6, type: 'response.returned', cleartext_hash: hashOf(SSE), wire_hash: hashOf(SSE) },
    ],
    signature: { algo: 'ecdsa-secp256k1', key_id: 'dstack-kms-receipt-v1', value: '' },
  };
}
