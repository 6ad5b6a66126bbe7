import { describe, expect, test } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  aciSigningInput,
  evaluateAciReceipt,
  keysetDigest,
  parseAciReceipt,
  trustedKeysetFrom,
  verifyAciReceipt,
  type AciTrustedKeyset,
  type JsonObject,
} from '../../src/aci/index.js';
import { MalformedError, VerificationError } from '../../src/errors/index.js';
import { sha256Hex, toHex } from '../../src/util/bytes.js';
import { N, REQ, SSE, clone, edPub, genABDocument, genABKeyset, rsv, secpSign, seed, signGenAB, signGenC, vectors } from './mint.js';
import { code } from '../helpers/errors.js';

const trust: AciTrustedKeyset = trustedKeysetFrom(vectors.workload_keyset);
const receiptSeed = Buffer.from(vectors.keys['receipt-1'].seed_hex, 'hex');
const enc = (s: string) => new Uint8Array(Buffer.from(s));
const verify = (doc: unknown, t: AciTrustedKeyset = trust) => verifyAciReceipt(parseAciReceipt(doc), t);

const failedCodes = (v: { checks: { result: string; code?: string }[] }) => v.checks.filter((c) => c.result === 'fail').map((c) => c.code);

describe('gen C: the spec vector', () => {
  test('keyset digest, signing input and the Ed25519 signature reproduce byte-exactly', () => {
    expect(trust.keysetDigest).toBe(vectors.workload_keyset_digest);
    const r = parseAciReceipt(vectors.receipt.document);
    expect(r.generation).toBe('C');
    expect(Buffer.from(aciSigningInput(r)).toString()).toBe(vectors.receipt.signing_input_jcs);
    const v = verifyAciReceipt(r, trust);
    expect(v.signingInputSha256).toBe(vectors.receipt.signing_input_sha256);
    expect(toHex(v.signature)).toBe(vectors.receipt.signature);
    expect(v.key.keyId).toBe('receipt-1');
  });
  test('the served encoding does not matter (pretty-printed JSON text verifies)', () => {
    expect(() => verify(JSON.stringify(vectors.receipt.document, null, 2))).not.toThrow();
  });
  test('the verdict: body hashes against our bytes, upstream session, no rewrites', () => {
    const v = evaluateAciReceipt(verify(vectors.receipt.document), { requestBody: enc(vectors.receipt.request_body_ascii), responseBody: enc(vectors.receipt.response_body_ascii), receiptId: 'rcpt-0001', chatId: 'chatcmpl-123', model: 'demo-model' }, { requireUpstreamVerified: true, allowedSessionIds: [vectors.session.session_id] });
    expect(v.verdict).toBe('verified');
    expect(failedCodes(v)).toEqual([]);
    expect(v.upstream?.session_id).toBe(vectors.session.session_id);
    expect(v.rewrites).toEqual([]);
    expect(v.digests.response?.computed).toBe(`sha256:${sha256Hex(enc(vectors.receipt.response_body_ascii))}`);
    expect(v.checks.find((c) => c.name === 'event_seq')?.result).toBe('skip');
  });
  test('single-byte changes across the served receipt all fail (parse or signature), none verifies', () => {
    // Every 2nd byte: each failure also costs the non-canonical-form diagnosis (several Ed25519 verifies).
    const text = JSON.stringify(vectors.receipt.document);
    let reachedVerifier = 0;
    for (let i = 0; i < text.length; i += 2) {
      const mutated = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 0x01) + text.slice(i + 1);
      try {
        verify(mutated);
      } catch (e) {
        expect(e instanceof MalformedError || e instanceof VerificationError).toBe(true);
        if (e instanceof VerificationError) reachedVerifier++;
        continue;
      }
      throw new Error(`byte ${i} changed and the receipt still verified`);
    }
    expect(reachedVerifier).toBeGreaterThan(text.length / 4);
  }, 30_000);
});

describe('gen C: forged or broken receipts, each with its own code', () => {
  const base = () => clone(vectors.receipt.document) as JsonObject;
  test('keyset digest mismatch', () => {
    const d = base();
    d.workload_keyset_digest = `sha256:${'00'.repeat(32)}`;
    expect(code(() => verify(signGenC(d, receiptSeed)))).toBe('ERR_ACI_RECEIPT_KEYSET_MISMATCH');
  });
  test('key not in the keyset (unknown id, or an id of another role)', () => {
    for (const id of ['receipt-9', 'e2ee-1']) {
      const d = base();
      d.key_id = id;
      expect(code(() => verify(signGenC(d, receiptSeed)))).toBe('ERR_ACI_RECEIPT_KEY_UNKNOWN');
    }
  });
  test('wrong key id: signed by another receipt key of the keyset', () => {
    const ks = clone(vectors.workload_keyset);
    ks.receipt_signing_keys.push({ key_id: 'receipt-2', algo: 'ed25519', public_key: edPub(seed(5)) });
    const t = trustedKeysetFrom(ks);
    const d = base();
    d.workload_keyset_digest = t.keysetDigest;
    expect(() => verify(signGenC(d, receiptSeed), t)).not.toThrow();
    expect(code(() => verify(signGenC(d, seed(5)), t))).toBe('ERR_ACI_RECEIPT_KEY_ID_MISMATCH');
  });
  test('signature over a different canonical form', () => {
    const d = base();
    const { signature: _s, ...rest } = d;
    const forged = { ...rest, signature: toHex(ed25519.sign(Buffer.from(JSON.stringify(rest)), receiptSeed)) };
    expect(code(() => verify(forged))).toBe('ERR_ACI_RECEIPT_NOT_CANONICAL');
  });
  test('a signature by a stranger, or of the wrong length', () => {
    expect(code(() => verify(signGenC(base(), seed(6))))).toBe('ERR_ACI_RECEIPT_SIGNATURE');
    const d = base();
    d.signature = (d.signature as string).slice(0, 126);
    expect(code(() => verify(d))).toBe('ERR_ACI_RECEIPT_SIGNATURE_LENGTH');
  });
  test('upper-case hex, floats, wrong api_version and shapes are malformed', () => {
    const d = base();
    d.signature = (d.signature as string).toUpperCase();
    expect(code(() => verify(d))).toBe('ERR_ACI_RECEIPT_MALFORMED');
    const f = base();
    f.served_at = 1750000000.5;
    expect(code(() => verify(f))).toBe('ERR_ACI_RECEIPT_MALFORMED');
    const g = base();
    g.api_version = 'aci/2';
    expect(code(() => verify(g))).toBe('ERR_ACI_API_VERSION');
    expect(code(() => verify('[]'))).toBe('ERR_ACI_RECEIPT_MALFORMED');
    expect(code(() => verify({ ...base(), signature: 5 }))).toBe('ERR_ACI_RECEIPT_MALFORMED');
    expect(code(() => verify({ ...base(), event_log: [{ type: 'request.received', body_hash: 'sha256:XY' }] }))).toBe('ERR_ACI_RECEIPT_MALFORMED');
  });
  test('missing required event, wrong first event, body hash mismatch on either side, upstream failed when required', () => {
    const noFwd = base();
    noFwd.event_log = (noFwd.event_log as JsonObject[]).filter((e) => e.type !== 'request.forwarded');
    expect(failedCodes(evaluateAciReceipt(verify(signGenC(noFwd, receiptSeed))))).toEqual(['ERR_ACI_EVENT_MISSING']);
    // A refusal legitimately has no request.forwarded: the caller says which events it requires.
    expect(evaluateAciReceipt(verify(signGenC(noFwd, receiptSeed)), {}, { requiredEvents: ['request.received', 'response.returned'] }).verdict).toBe('verified');

    const order = base();
    (order.event_log as JsonObject[]).reverse();
    expect(failedCodes(evaluateAciReceipt(verify(signGenC(order, receiptSeed))))).toEqual(['ERR_ACI_EVENT_ORDER']);

    const v = evaluateAciReceipt(verify(base()), { requestBody: enc(`${REQ} `), responseBody: enc('{}') });
    expect(v.verdict).toBe('failed');
    expect(failedCodes(v)).toEqual(['ERR_ACI_REQUEST_HASH', 'ERR_ACI_RESPONSE_HASH']);
    expect(v.code).toBe('ERR_ACI_REQUEST_HASH');

    const up = base();
    (up.event_log as JsonObject[])[2] = { type: 'upstream.verified', result: 'failed', required: true, model_id: 'demo-model', reason: 'quote did not verify' };
    const signed = verify(signGenC(up, receiptSeed));
    expect(failedCodes(evaluateAciReceipt(signed, {}, { requireUpstreamVerified: true }))).toEqual(['ERR_ACI_UPSTREAM_NOT_VERIFIED']);
    expect(evaluateAciReceipt(signed, {}, {}).verdict).toBe('verified'); // recorded, not required
    const notRequired = base();
    ((notRequired.event_log as JsonObject[])[2] as JsonObject).required = false;
    expect(failedCodes(evaluateAciReceipt(verify(signGenC(notRequired, receiptSeed)), {}, { requireUpstreamVerified: true }))).toEqual(['ERR_ACI_UPSTREAM_NOT_VERIFIED']);
    expect(failedCodes(evaluateAciReceipt(verify(base()), {}, { allowedSessionIds: ['00'.repeat(32)] }))).toEqual(['ERR_ACI_UPSTREAM_NOT_VERIFIED']);
  });
  test('receipt id, chat id and model are compared with what the app received', () => {
    const v = evaluateAciReceipt(verify(base()), { receiptId: 'rcpt-0002', chatId: 'chatcmpl-124', model: 'other-model' });
    expect(failedCodes(v)).toEqual(['ERR_ACI_RECEIPT_ID_MISMATCH', 'ERR_ACI_CHAT_ID_MISMATCH', 'ERR_ACI_MODEL_MISMATCH']);
  });
  test('unknown events are ignored by policy but covered by the signature', () => {
    const d = base();
    (d.event_log as JsonObject[]).splice(3, 0, { type: 'vendor.note', text: 'x' });
    const signed = signGenC(d, receiptSeed);
    const v = evaluateAciReceipt(verify(signed));
    expect(v.verdict).toBe('verified');
    expect(v.unknown_events).toEqual(['vendor.note']);
    ((signed.event_log as JsonObject[])[3] as JsonObject).text = 'y';
    expect(code(() => verify(signed))).toBe('ERR_ACI_RECEIPT_SIGNATURE');
  });
});

describe('gen A/B: minted receipts with our own keys', () => {
  const ks = genABKeyset();
  const t = trustedKeysetFrom(ks);
  const doc = genABDocument(ks);
  const secp = (tweak?: Parameters<typeof signGenAB>[4]) => signGenAB(doc, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(8), tweak);

  test('secp256k1 r‖s‖v over sha256(JCS) verifies by public-key recovery; v as 0..3 or 27..30', () => {
    const r = verify(secp(), t);
    expect(r.generation).toBe('AB');
    expect(r.key.keyId).toBe('dstack-kms-receipt-v1');
    expect(() => verify(secp((s) => rsv(s.r, s.s, s.recovery + 27)), t)).not.toThrow();
  });
  test('the verdict: wire_hash, seq, route, declared rewrite, upstream claims', () => {
    const v = evaluateAciReceipt(verify(secp(), t), { requestBody: enc(REQ), responseBody: enc(SSE) }, { requireUpstreamVerified: true, requiredClaims: ['tee_attested'] });
    expect(failedCodes(v)).toEqual([]);
    expect(v.verdict).toBe('verified');
    expect(v.route).toBe('route-eu-1');
    expect(v.rewrites).toEqual(['transparency.request_modified']);
    expect(v.unknown_events).toEqual(['vendor.custom_metric']);
    expect(v.upstream?.channel_bindings).toEqual([{ type: 'tls_spki_sha256', origin: 'https://upstream.example.com', spki_sha256: 'd1'.repeat(32) }]);
    expect(v.checks.find((c) => c.name === 'event_seq')?.result).toBe('pass');
    expect(failedCodes(evaluateAciReceipt(verify(secp(), t), {}, { forbidRewrites: true }))).toEqual(['ERR_ACI_REWRITE']);
    expect(failedCodes(evaluateAciReceipt(verify(secp(), t), {}, { requiredClaims: ['gpu_attested'] }))).toEqual(['ERR_ACI_UPSTREAM_NOT_VERIFIED']);
  });
  test('high-S, bad recovery id and 64-byte signatures are refused', () => {
    expect(code(() => verify(secp((s) => rsv(s.r, N - s.s, s.recovery ^ 1)), t))).toBe('ERR_ACI_RECEIPT_HIGH_S');
    for (const v of [4, 26, 31, 255]) expect(code(() => verify(secp((s) => rsv(s.r, s.s, v)), t))).toBe('ERR_ACI_RECEIPT_RECOVERY_ID');
    expect(code(() => verify(secp((s) => rsv(s.r, s.s, s.recovery).slice(0, 128)), t))).toBe('ERR_ACI_RECEIPT_SIGNATURE_LENGTH');
  });
  test('a flipped recovery id recovers a key that is not in the keyset', () => {
    expect(code(() => verify(secp((s) => rsv(s.r, s.s, s.recovery ^ 1)), t))).toBe('ERR_ACI_RECEIPT_SIGNER_NOT_IN_KEYSET');
    expect(code(() => verify(signGenAB(doc, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(11)), t))).toBe('ERR_ACI_RECEIPT_SIGNER_NOT_IN_KEYSET');
  });
  test('signed by the other secp256k1 receipt key: wrong key id', () => {
    expect(code(() => verify(signGenAB(doc, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(10)), t))).toBe('ERR_ACI_RECEIPT_KEY_ID_MISMATCH');
  });
  test('algo must match the keyset entry; workload_id must match', () => {
    expect(code(() => verify(signGenAB(doc, 'ed25519', 'dstack-kms-receipt-v1', seed(7)), t))).toBe('ERR_ACI_RECEIPT_ALGO');
    expect(() => verify(signGenAB(doc, 'ed25519', 'dstack-kms-receipt-ed25519-v1', seed(7)), t)).not.toThrow();
    const other = { ...doc, workload_id: `sha256:${'11'.repeat(32)}` };
    expect(code(() => verify(signGenAB(other, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(8)), t))).toBe('ERR_ACI_RECEIPT_WORKLOAD_ID');
  });
  test('signature over the whole document minus the signature object (not only .value): non-canonical', () => {
    const { signature: _s, ...rest } = doc;
    const s = secpSign(Buffer.from(JSON.stringify(rest)), seed(8));
    const forged = { ...rest, signature: { algo: 'ecdsa-secp256k1', key_id: 'dstack-kms-receipt-v1', value: rsv(s.r, s.s, s.recovery) } };
    expect(code(() => verify(forged, t))).toBe('ERR_ACI_RECEIPT_NOT_CANONICAL');
  });
  test('seq gaps and missing events', () => {
    const gap = clone(doc);
    ((gap.event_log as JsonObject[])[3] as JsonObject).seq = 4;
    expect(failedCodes(evaluateAciReceipt(verify(signGenAB(gap, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(8)), t)))).toEqual(['ERR_ACI_EVENT_SEQ']);
    const noSeq = clone(doc);
    delete ((noSeq.event_log as JsonObject[])[1] as JsonObject).seq;
    expect(failedCodes(evaluateAciReceipt(verify(signGenAB(noSeq, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(8)), t)))).toEqual(['ERR_ACI_EVENT_SEQ']);
    const noReturn = clone(doc);
    noReturn.event_log = (noReturn.event_log as JsonObject[]).filter((e) => e.type !== 'response.returned');
    expect(failedCodes(evaluateAciReceipt(verify(signGenAB(noReturn, 'ecdsa-secp256k1', 'dstack-kms-receipt-v1', seed(8)), t)))).toEqual(['ERR_ACI_EVENT_MISSING']);
  });
  test('single-byte changes across the signed document all fail (every 5th byte)', () => {
    const text = JSON.stringify(secp());
    for (let i = 0; i < text.length; i += 5) {
      const mutated = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 0x01) + text.slice(i + 1);
      let ok = false;
      try {
        verify(mutated, t);
        ok = true;
      } catch (e) {
        expect(e instanceof MalformedError || e instanceof VerificationError).toBe(true);
      }
      expect(ok, `byte ${i}`).toBe(false);
    }
  }, 60_000);
  test('keyset digest is over the whole gen A/B keyset', () => {
    expect(t.keysetDigest).toBe(keysetDigest(ks));
    expect(t.workloadId).toBe(doc.workload_id);
  });
});
