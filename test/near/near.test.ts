import { readFileSync } from 'node:fs';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { eip191Digest, ethereumAddress, parseNearSignature, verifyNearSignature } from '../../src/near/index.js';
import { MalformedError } from '../../src/errors/index.js';
import { sha256Hex, toHex } from '../../src/util/bytes.js';
import { code } from '../helpers/errors.js';

const vec = JSON.parse(readFileSync(new URL('../vectors/nearai-chat-signature-example.json', import.meta.url), 'utf8'));
const sse = new Uint8Array(Buffer.from((vec.response_sse_lines as string[]).map((l) => `${l}\n\n`).join(''), 'utf8'));
const N = secp256k1.Point.CURVE().n;


/** Sign text with EIP-191 personal_sign using our own key; returns the served object. */
function personalSign(text: string, secret: Uint8Array, edit?: (r: bigint, s: bigint, rec: number) => [bigint, bigint, number]) {
  const sig = secp256k1.Signature.fromBytes(secp256k1.sign(eip191Digest(text), secret, { prehash: false, format: 'recovered' }), 'recovered');
  let [r, s, rec] = [sig.r, sig.s, sig.recovery as number];
  if (edit) [r, s, rec] = edit(r, s, rec);
  const hex = (x: bigint) => x.toString(16).padStart(64, '0');
  return { text, signature: `0x${hex(r)}${hex(s)}${(rec + 27).toString(16).padStart(2, '0')}`, signing_address: ethereumAddress(secp256k1.getPublicKey(secret, false)), signing_algo: 'ecdsa' };
}

describe('the real NEAR AI Cloud example', () => {
  test('the EIP-191 digest and the recovered address; the response hash reproduces from the SSE bytes', () => {
    const sig = parseNearSignature(vec);
    expect(toHex(eip191Digest(sig.text))).toBe(vec.eip191_digest_keccak256);
    expect(sse.length).toBe(1312);
    const v = verifyNearSignature(sig, { responseBody: sse, expectedAddress: '0x319F1B8BB3B723A5D098FFB67005BDF7BB579ACA' });
    expect(v.signer).toBe('0x319f1b8bb3b723a5d098ffb67005bdf7bb579aca');
    expect(v.responseSha256).toBe(sha256Hex(sse));
    expect(v.checked).toEqual({ request: false, response: true, attestedAddress: true });
    // The bare object is accepted too.
    expect(verifyNearSignature(parseNearSignature(JSON.stringify(vec.signature_response))).signer).toBe(v.signer);
  });
  test('a different response, attested address, or any change to text or signature fails', () => {
    const sig = parseNearSignature(vec);
    expect(code(() => verifyNearSignature(sig, { responseBody: sse.subarray(0, sse.length - 1) }))).toBe('ERR_NEAR_RESPONSE_HASH');
    expect(code(() => verifyNearSignature(sig, { requestBody: new Uint8Array(0) }))).toBe('ERR_NEAR_REQUEST_HASH');
    expect(code(() => verifyNearSignature(sig, { expectedAddress: `0x${'11'.repeat(20)}` }))).toBe('ERR_NEAR_ATTESTED_ADDRESS');
    const text: string = vec.signature_response.text;
    for (let i = 0; i < text.length; i += 4) {
      if (text[i] === ':') continue;
      const t = text.slice(0, i) + (text[i] === '0' ? '1' : '0') + text.slice(i + 1);
      expect(code(() => verifyNearSignature(parseNearSignature({ ...vec.signature_response, text: t })))).toMatch(/^ERR_NEAR_(ADDRESS_MISMATCH|SIGNATURE)$/);
    }
    const s: string = vec.signature_response.signature;
    for (let i = 2; i < 130; i += 5) {
      const m = s.slice(0, i) + (s[i] === '0' ? '1' : '0') + s.slice(i + 1);
      expect(code(() => verifyNearSignature(parseNearSignature({ ...vec.signature_response, signature: m })))).toMatch(/^ERR_NEAR_(ADDRESS_MISMATCH|SIGNATURE|HIGH_S)$/);
    }
  });
});

describe('minted signatures', () => {
  const secret = new Uint8Array(32).fill(3);
  const req = Buffer.from('{"model":"m","messages":[]}');
  const res = Buffer.from('data: {"x":1}\n\ndata: [DONE]\n\n');
  const text = `${sha256Hex(req)}:${sha256Hex(res)}`;
  test('2-part and 3-part text (model ids may contain colons), v as 27/28 or 0/1', () => {
    const v = verifyNearSignature(parseNearSignature(personalSign(text, secret)), { requestBody: req, responseBody: res });
    expect(v.checked.request && v.checked.response).toBe(true);
    const three = parseNearSignature(personalSign(`llama3.2:3b:${text}`, secret));
    expect(three.model).toBe('llama3.2:3b');
    expect(() => verifyNearSignature(three, { requestBody: req, responseBody: res })).not.toThrow();
    const zeroOne = personalSign(text, secret);
    const v01 = zeroOne.signature.slice(0, -2) + (Number.parseInt(zeroOne.signature.slice(-2), 16) - 27).toString(16).padStart(2, '0');
    expect(() => verifyNearSignature(parseNearSignature({ ...zeroOne, signature: v01 }))).not.toThrow();
  });
  test('high-S, bad v, wrong length, a different signer', () => {
    expect(code(() => verifyNearSignature(parseNearSignature(personalSign(text, secret, (r, s, rec) => [r, N - s, rec ^ 1]))))).toBe('ERR_NEAR_HIGH_S');
    expect(code(() => verifyNearSignature(parseNearSignature(personalSign(text, secret, (r, s) => [r, s, 7]))))).toBe('ERR_NEAR_RECOVERY_ID');
    const p = personalSign(text, secret);
    expect(code(() => verifyNearSignature(parseNearSignature({ ...p, signature: p.signature.slice(0, -2) })))).toBe('ERR_NEAR_SIGNATURE_LENGTH');
    const other = personalSign(text, new Uint8Array(32).fill(4));
    expect(code(() => verifyNearSignature(parseNearSignature({ ...other, signing_address: p.signing_address })))).toBe('ERR_NEAR_ADDRESS_MISMATCH');
  });
  test('the ed25519 variant: signature over the text bytes, public key as the address', () => {
    const sk = new Uint8Array(32).fill(5);
    const served = { text, signature: toHex(ed25519.sign(Buffer.from(text), sk)), signing_address: toHex(ed25519.getPublicKey(sk)), signing_algo: 'ed25519' };
    expect(verifyNearSignature(parseNearSignature(served), { responseBody: res }).signer).toBe(served.signing_address);
    expect(code(() => verifyNearSignature(parseNearSignature({ ...served, text: `${sha256Hex(res)}:${sha256Hex(req)}` })))).toBe('ERR_NEAR_SIGNATURE');
  });
  test('malformed inputs', () => {
    for (const bad of ['{', '[]', { text: 'abc', signature: '0x00', signing_address: '0x00' }, { ...personalSign(text, secret), signing_algo: 'rsa' }, { ...personalSign(text, secret), signing_address: 'near.near' }, { ...personalSign(text, secret), signature: '0xzz' }]) {
      expect(code(() => parseNearSignature(bad))).toBe('ERR_NEAR_MALFORMED');
    }
  });
  test('fast-check: the parser only ever throws MalformedError', () => {
    fc.assert(
      fc.property(fc.record({ text: fc.oneof(fc.string(), fc.constant(text)), signature: fc.oneof(fc.string(), fc.uint8Array({ maxLength: 70 }).map((b) => `0x${toHex(b)}`)), signing_address: fc.string(), signing_algo: fc.oneof(fc.constant('ecdsa'), fc.string()) }, { requiredKeys: [] }), (o) => {
        try {
          parseNearSignature(o);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
    );
  });
});
