import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  BcsWriter,
  evaluateDocumentedReceipt,
  evaluateRoutingReceipt,
  nitroCoordinatorBinder,
  parseDocumentedReceipt,
  parseRoutingReceipt,
  routingIntentMessage,
  verifyRoutingReceipt,
  type CoordinatorKeyBinder,
} from '../../src/pinaivu/index.js';
import { loadNitroRoots } from '../../src/evidence/nitro/index.js';
import { MalformedError, PolicyError, TresorError } from '../../src/errors/index.js';
import { toHex } from '../../src/util/bytes.js';

const SK = new Uint8Array(32).fill(0x21);
const PK = ed25519.getPublicKey(SK);
const AT = new Date('2026-06-22T12:00:00Z');
const TS = Date.parse('2026-06-22T11:59:00Z');

/** A coordinator proof as the explorer serves it (serde: byte arrays as number arrays), signed with our key. */
function mint(edit: (o: Record<string, unknown>) => void = () => {}, secret = SK) {
  const o: Record<string, unknown> = {
    request_id: '0190a5f4-3b7c-7d2e-9a41-5f6e7d8c9b0a',
    client_id: 'client-42',
    primary_peer_id: '12D3KooWPrimary',
    helper_peer_ids: ['12D3KooWHelper'],
    bid_set_hash: Array.from({ length: 32 }, (_, i) => i),
    proof_ids: [Array.from({ length: 32 }, () => 7)],
    aggregated_output_hash: Array.from({ length: 32 }, (_, i) => 255 - i),
    payouts: [
      { sui_address: '0x2', amount_nanox: 42000 },
      { sui_address: `0x${'ab'.repeat(32)}`, amount_nanox: 1 },
    ],
    timestamp_ms: TS,
    coordinator_pubkey: Array.from(PK),
    signature: Array.from({ length: 64 }, () => 0),
  };
  edit(o);
  const unsignedView = parseRoutingReceipt(o);
  o.signature = Array.from(ed25519.sign(routingIntentMessage(unsignedView), secret));
  return o;
}

async function rejects(p: Promise<unknown> | (() => unknown)): Promise<TresorError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TresorError);
    return e as TresorError;
  }
  throw new Error('expected a rejection');
}

describe('BCS intent message', () => {
  test('ULEB128 lengths and u64 little-endian', () => {
    expect(toHex(new BcsWriter().uleb128(0).uleb128(127).uleb128(128).uleb128(300).uleb128(16384).finish())).toBe('007f8001ac02808001');
    expect(toHex(new BcsWriter().u64(0x0102030405060708n).finish())).toBe('0807060504030201');
  });
  test('the exact layout: intent, timestamp, request_id (16), output hash (32), payouts (address 32 left-padded, amount)', () => {
    const r = parseRoutingReceipt(mint());
    const le64 = (n: number | bigint) => Buffer.from(new BigUint64Array([BigInt(n)]).buffer).toString('hex');
    const expected =
      '01' +
      le64(TS) +
      '10' + '0190a5f43b7c7d2e9a415f6e7d8c9b0a' +
      '20' + toHex(Uint8Array.from({ length: 32 }, (_, i) => 255 - i)) +
      '02' +
      '00'.repeat(31) + '02' + le64(42000) +
      'ab'.repeat(32) + le64(1);
    expect(toHex(routingIntentMessage(r))).toBe(expected);
  });
});

describe('coordinator proof (/v1/proofs/{uuid})', () => {
  test('a proof minted with a test key verifies; the verdict is unverifiable until the key is bound', async () => {
    const v = await verifyRoutingReceipt(parseRoutingReceipt(JSON.stringify(mint())), { at: AT });
    const verdict = evaluateRoutingReceipt(v, { at: AT, requestId: '0190A5F4-3B7C-7D2E-9A41-5F6E7D8C9B0A', exchangeAt: new Date(TS) });
    expect(verdict.verdict).toBe('unverifiable');
    expect(verdict.checks.find((c) => c.name === 'coordinator_key')?.result).toBe('unverifiable');
    expect(verdict.payouts).toEqual([{ sui_address: '0x2', amount_nanox: '42000' }, { sui_address: `0x${'ab'.repeat(32)}`, amount_nanox: '1' }]);
  });
  test('with a binder that pins the PCRs, the verdict is verified', async () => {
    const seen: string[] = [];
    const binder: CoordinatorKeyBinder = async (key) => {
      seen.push(toHex(key));
      return { pcrPinned: true, summary: { pcr0: 'test' } };
    };
    const v = await verifyRoutingReceipt(parseRoutingReceipt(mint()), { at: AT, bindKey: binder });
    expect(seen).toEqual([toHex(PK)]);
    expect(evaluateRoutingReceipt(v, { at: AT }).verdict).toBe('verified');
    const unpinned = await verifyRoutingReceipt(parseRoutingReceipt(mint()), { at: AT, bindKey: async () => ({ pcrPinned: false, summary: {} }) });
    expect(evaluateRoutingReceipt(unpinned, { at: AT }).verdict).toBe('unverifiable');
  });
  test('changing any signed field fails the signature', async () => {
    const signed = mint();
    const edits: [string, (o: Record<string, unknown>) => void][] = [
      ['request_id', (o) => (o.request_id = '0190a5f4-3b7c-7d2e-9a41-5f6e7d8c9b0b')],
      ['timestamp_ms', (o) => (o.timestamp_ms = TS + 1)],
      ['aggregated_output_hash', (o) => ((o.aggregated_output_hash as number[])[31] = 0)],
      ['payout amount', (o) => ((o.payouts as { amount_nanox: number }[])[0]!.amount_nanox = 42001)],
      ['payout address', (o) => ((o.payouts as { sui_address: string }[])[0]!.sui_address = '0x3')],
      ['payout removed', (o) => (o.payouts as unknown[]).pop()],
      ['coordinator_pubkey', (o) => (o.coordinator_pubkey = Array.from(ed25519.getPublicKey(new Uint8Array(32).fill(9))))],
      ['signature', (o) => ((o.signature as number[])[0] = ((o.signature as number[])[0] as number) ^ 1)],
    ];
    for (const [name, edit] of edits) {
      const o = structuredClone(signed);
      edit(o);
      expect((await rejects(verifyRoutingReceipt(parseRoutingReceipt(o), { at: AT }))).code, name).toBe('ERR_PINAIVU_SIGNATURE');
    }
  });
  test('unsigned fields (client_id, peer ids, proof_ids, bid_set_hash) do not affect the signature: documented, never trusted', async () => {
    const o = structuredClone(mint());
    o.client_id = 'someone-else';
    o.primary_peer_id = 'x';
    o.helper_peer_ids = [];
    o.proof_ids = [];
    (o.bid_set_hash as number[])[0] = 99;
    const v = await verifyRoutingReceipt(parseRoutingReceipt(o), { at: AT });
    expect(evaluateRoutingReceipt(v, { at: AT }).checks.find((c) => c.name === 'unsigned_fields')?.detail).toContain('client_id');
  });
  test('request id and timestamp plausibility', async () => {
    const v = await verifyRoutingReceipt(parseRoutingReceipt(mint()), { at: AT });
    expect(evaluateRoutingReceipt(v, { at: AT, requestId: '00000000-0000-0000-0000-000000000000' }).code).toBe('ERR_PINAIVU_REQUEST_ID');
    expect(evaluateRoutingReceipt(v, { at: new Date(TS - 3600_000) }).code).toBe('ERR_PINAIVU_TIMESTAMP');
    expect(evaluateRoutingReceipt(v, { at: AT, exchangeAt: new Date(TS + 3600_000) }).code).toBe('ERR_PINAIVU_TIMESTAMP');
  });
  test('malformed proofs; the parser only throws MalformedError', async () => {
    for (const edit of [
      (o: Record<string, unknown>) => (o.request_id = 'req_01j9'),
      (o: Record<string, unknown>) => (o.signature = [1, 2]),
      (o: Record<string, unknown>) => ((o.aggregated_output_hash as number[])[0] = 256),
      (o: Record<string, unknown>) => ((o.payouts as { sui_address: string }[])[0]!.sui_address = `0x${'a'.repeat(65)}`),
      (o: Record<string, unknown>) => (o.timestamp_ms = -1),
    ]) {
      const o = structuredClone(mint());
      edit(o);
      expect((await rejects(() => parseRoutingReceipt(o))).code).toBe('ERR_PINAIVU_MALFORMED');
    }
    const big = structuredClone(mint());
    big.timestamp_ms = 2 ** 60;
    expect((await rejects(() => parseRoutingReceipt(big))).code).toBe('ERR_PINAIVU_U64_PRECISION');
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
        try {
          parseRoutingReceipt(v);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
    );
  });
});

describe('binding the coordinator key with a real Nitro document', () => {
  const vec = (f: string) => readFileSync(new URL(`../vectors/${f}`, import.meta.url));
  const roots = loadNitroRoots();
  test('an AWS-signed document whose public_key is not the coordinator key is refused (and debug is flagged)', async () => {
    const att = { raw_cbor_hex: vec('nitro-anjuna-debug-full-2024-01-24.cbor').toString('hex') };
    const at = new Date(1706120065635);
    const e = await rejects(verifyRoutingReceipt(parseRoutingReceipt(mint()), { at, bindKey: nitroCoordinatorBinder(att, { roots }) }));
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).violations.map((v) => v.code)).toEqual(['ERR_POLICY_DEBUG_ENCLAVE', 'ERR_POLICY_PUBLIC_KEY']);
    const e2 = await rejects(verifyRoutingReceipt(parseRoutingReceipt(mint()), { at, bindKey: nitroCoordinatorBinder(att, { roots, allowDebug: true }) }));
    expect(e2.code).toBe('ERR_POLICY_PUBLIC_KEY');
  });
  test('a mock-CA document fails at the AWS root pin; the unsigned JSON public_key must agree too', async () => {
    const mock = { raw_cbor_hex: vec('NEGATIVE-nitro-marlin-mock-ca-2024-12-13.cbor').toString('hex') };
    expect((await rejects(verifyRoutingReceipt(parseRoutingReceipt(mint()), { at: AT, bindKey: nitroCoordinatorBinder(mock, { roots }) }))).code).toBe('ERR_CHAIN_UNTRUSTED');
    const wrongKey = { ...mock, public_key: '00'.repeat(32) };
    expect((await rejects(verifyRoutingReceipt(parseRoutingReceipt(mint()), { at: AT, bindKey: nitroCoordinatorBinder(wrongKey, { roots }) }))).code).toBe('ERR_PINAIVU_ATTESTATION_KEY');
    expect((await rejects(() => nitroCoordinatorBinder('{"raw_cbor_hex":5}', { roots }))).code).toBe('ERR_PINAIVU_ATTESTATION_MALFORMED');
  });
});

describe('the documented /v1/receipts/{request_id}', () => {
  const doc = {
    request_id: 'req_01j9z4kxm8vwqe3t5p6n7r2y0c',
    node_id: 'node_9f2a3b7c4d1e6f8a',
    model: 'llama3.2:3b',
    timestamp: '2024-04-25T14:32:07Z',
    payment_amount: 0.000042,
    coordinator_signature: '0x3a7f91bc204de561f83a4c9b2e0d75f18ec3a290b14f6d87c5e02ab9143fd7c821b09e6a4d5c8f3017629ab4e8d1f6c290a37b15e824d96f0c3ab7218fe49d601c',
  };
  test('checks what can be checked; the signature is unverifiable, never verified', () => {
    const v = evaluateDocumentedReceipt(parseDocumentedReceipt(JSON.stringify(doc)), { at: AT, requestId: doc.request_id, model: 'llama3.2:3b' });
    expect(v.verdict).toBe('unverifiable');
    expect(v.checks.find((c) => c.name === 'coordinator_signature')).toEqual({ name: 'coordinator_signature', result: 'unverifiable', detail: 'signature scheme not public' });
    expect(evaluateDocumentedReceipt(parseDocumentedReceipt(doc), { at: AT, model: 'other' }).code).toBe('ERR_PINAIVU_MODEL');
    expect(evaluateDocumentedReceipt(parseDocumentedReceipt(doc), { at: AT, requestId: 'req_x' }).code).toBe('ERR_PINAIVU_REQUEST_ID');
    expect(evaluateDocumentedReceipt(parseDocumentedReceipt(doc), { at: new Date('2024-01-01T00:00:00Z') }).code).toBe('ERR_PINAIVU_TIMESTAMP');
    expect(parseDocumentedReceipt({ ...doc, payment_amount: '0.000042 USDC' }).paymentAmount).toBe('0.000042 USDC');
  });
  test('ill-formed fields', async () => {
    for (const bad of [{ ...doc, timestamp: 'yesterday' }, { ...doc, payment_amount: -1 }, { ...doc, coordinator_signature: 'sig' }, { ...doc, node_id: '' }, '[]']) {
      expect((await rejects(() => parseDocumentedReceipt(bad))).code).toBe('ERR_PINAIVU_RECEIPT_MALFORMED');
    }
  });
});
