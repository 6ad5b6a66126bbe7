import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, test } from 'vitest';
import {
  attestationStatement,
  reportDataFor,
  tdxTeeVerifier,
  verifyAciAttestation,
  verifyAciReceipt,
  parseAciReceipt,
  workloadIdFor,
  keysetDigest,
  type JsonObject,
  type TeeVerifier,
} from '../../src/aci/index.js';
import { loadIntelSgxRoots } from '../../src/evidence/tdx/index.js';
import { PolicyError, TresorError, VerificationError } from '../../src/errors/index.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { canonicalBytes } from '../../src/jcs/index.js';
import { sha256, toHex } from '../../src/util/bytes.js';
import { clone, genABKeyset, seed, vectors } from './mint.js';

const st = vectors.attestation_statement;
const AT = new Date('2026-06-01T00:00:00Z');

/**
 * A TEE verifier for tests: the "hardware" is an Ed25519 key that signs the 64-byte report-data
 * slot. It exercises the same contract as the TDX/SNP verifiers (verify evidence, return the slot)
 * with real signatures, because no real quote can bind a report_data of our choosing.
 */
const HW = seed(0x42);
const hwEvidence = (slot: Uint8Array) => ({ report_data_slot: toHex(slot), sig: toHex(ed25519.sign(slot, HW)) });
const testTee: TeeVerifier = async ({ teeType, evidence }) => {
  if (teeType !== 'sev_snp') throw new VerificationError('ERR_ACI_TEE_UNSUPPORTED', `unsupported ${teeType}`);
  const slot = Buffer.from(String(evidence.report_data_slot), 'hex');
  if (!ed25519.verify(Buffer.from(String(evidence.sig), 'hex'), slot, ed25519.getPublicKey(HW))) throw new VerificationError('ERR_TEST_TEE_SIGNATURE', 'bad');
  return { reportData: new Uint8Array(slot), summary: { tee_type: teeType } };
};

/** Gen A/B endorsement by the secp256k1 identity key: 64-byte r‖s over SHA-256(JCS({purpose, workload_keyset_digest})). */
function endorse(digest: string, secret: Uint8Array = seed(9)) {
  const payload = canonicalBytes({ purpose: 'aci.keyset.endorsement.v1', workload_keyset_digest: digest });
  return { algo: 'ecdsa-secp256k1', value: toHex(secp256k1.sign(sha256(payload), secret, { prehash: false })) };
}

function report(opts: { nonce?: string | null; keyset?: JsonObject; slot?: Uint8Array; extra?: JsonObject; endorser?: Uint8Array } = {}): JsonObject {
  const keyset = opts.keyset ?? clone(vectors.workload_keyset);
  const digest = keysetDigest(keyset);
  const ab = keyset.workload_identity !== undefined;
  const wid = ab ? workloadIdFor((keyset.workload_identity as JsonObject).public_key as JsonObject) : undefined;
  const rd = reportDataFor(digest, opts.nonce === undefined ? st.nonce : opts.nonce, ab ? 'AB' : 'C', wid);
  const slot = opts.slot ?? Buffer.concat([rd, Buffer.alloc(32)]);
  return {
    api_version: 'aci/1',
    workload_keyset_digest: digest,
    ...(wid ? { workload_id: wid } : {}),
    attestation: { tee_type: 'sev_snp', workload_keyset: keyset, report_data: toHex(rd), evidence: hwEvidence(slot), ...(ab ? { keyset_endorsement: endorse(digest, opts.endorser) } : {}) },
    service_capabilities: { supported_e2ee_versions: ['2'], serving: 'aggregator' },
    ...opts.extra,
  };
}

async function rejects(p: Promise<unknown>): Promise<TresorError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TresorError);
    return e as TresorError;
  }
  throw new Error('expected a rejection');
}

describe('statement and report_data: the spec vectors', () => {
  test('with and without a nonce', () => {
    expect(attestationStatement(vectors.workload_keyset_digest, st.nonce)).toBe(st.statement);
    expect(toHex(reportDataFor(vectors.workload_keyset_digest, st.nonce))).toBe(st.report_data);
    expect(attestationStatement(vectors.workload_keyset_digest, null)).toBe(st.statement_nonce_null);
    expect(toHex(reportDataFor(vectors.workload_keyset_digest, null))).toBe(st.report_data_nonce_null);
    expect(toHex(Buffer.concat([reportDataFor(vectors.workload_keyset_digest, st.nonce), Buffer.alloc(32)]))).toBe(st.report_data_slot_64);
  });
});

describe('verifyAciAttestation', () => {
  const base = { nonce: st.nonce as string, at: AT, teeVerifier: testTee };
  test('the vector keyset, our nonce, the TEE slot, the TLS key for the right host', async () => {
    const id = await verifyAciAttestation(report(), { ...base, liveSpkiSha256: 'c0'.repeat(32), hostname: 'API.example.com.' });
    expect(id.keysetDigest).toBe(vectors.workload_keyset_digest);
    expect(id.reportData).toBe(st.report_data);
    expect(id.receiptKeys.map((k) => k.keyId)).toEqual(['receipt-1']);
    // The identity is what receipts are checked against: the vector receipt verifies under it.
    expect(verifyAciReceipt(parseAciReceipt(vectors.receipt.document), id).key.keyId).toBe('receipt-1');
    const unchallenged = await verifyAciAttestation(report({ nonce: null }), { ...base, nonce: null });
    expect(unchallenged.reportData).toBe(st.report_data_nonce_null);
  });
  test('a report answering a different nonce (replay) fails the statement binding', async () => {
    expect((await rejects(verifyAciAttestation(report(), { ...base, nonce: 'ff'.repeat(32) }))).code).toBe('ERR_ACI_REPORT_DATA');
    expect((await rejects(verifyAciAttestation(report(), { ...base, nonce: 'FF'.repeat(32) }))).code).toBe('ERR_ACI_NONCE');
  });
  test('a keyset that does not hash to the digest', async () => {
    const r = report();
    ((r.attestation as JsonObject).workload_keyset as JsonObject).subject = 'dstack-app://other';
    expect((await rejects(verifyAciAttestation(r, base))).code).toBe('ERR_ACI_KEYSET_DIGEST');
  });
  test('TEE evidence whose slot is not report_data ‖ 0^32', async () => {
    const rd = reportDataFor(vectors.workload_keyset_digest, st.nonce);
    const slot = Buffer.concat([rd, Buffer.alloc(31), Buffer.of(1)]);
    expect((await rejects(verifyAciAttestation(report({ slot }), base))).code).toBe('ERR_ACI_TEE_REPORT_DATA');
    const forged = report();
    ((forged.attestation as JsonObject).evidence as JsonObject).sig = '00'.repeat(64);
    expect((await rejects(verifyAciAttestation(forged, base))).code).toBe('ERR_TEST_TEE_SIGNATURE');
  });
  test('the real TDX quote through tdxTeeVerifier: the quote verifies, but its REPORTDATA binds something else', async () => {
    const quote = readFileSync(new URL('../vectors/tdx-tinfoil-quote-v4.bin', import.meta.url)).subarray(0, 4936);
    const r = report();
    (r.attestation as JsonObject).tee_type = 'tdx';
    (r.attestation as JsonObject).evidence = { quote: toHex(quote) };
    const e = await rejects(verifyAciAttestation(r, { ...base, teeVerifier: tdxTeeVerifier({ roots: loadIntelSgxRoots() }) }));
    expect(e).toBeInstanceOf(PolicyError);
    expect(e.code).toBe('ERR_POLICY_TDX_REPORT_DATA');
  });
  test('not_after: expired, and implausibly far', async () => {
    expect((await rejects(verifyAciAttestation(report(), { ...base, at: new Date(1800000000 * 1000) }))).code).toBe('ERR_ACI_KEYSET_EXPIRED');
    expect((await rejects(verifyAciAttestation(report(), { ...base, at: new Date('2020-01-01T00:00:00Z') }))).code).toBe('ERR_ACI_KEYSET_NOT_AFTER');
  });
  test('TLS SPKI: domain-matched entries only', async () => {
    expect((await rejects(verifyAciAttestation(report(), { ...base, liveSpkiSha256: 'c0'.repeat(32), hostname: 'evil.example.com' }))).code).toBe('ERR_ACI_TLS_KEY');
    expect((await rejects(verifyAciAttestation(report(), { ...base, liveSpkiSha256: 'c0'.repeat(32) }))).code).toBe('ERR_ACI_TLS_KEY');
    expect((await rejects(verifyAciAttestation(report(), { ...base, liveSpkiSha256: 'c1'.repeat(32), hostname: 'api.example.com' }))).code).toBe('ERR_ACI_TLS_KEY');
  });
  test('the legacy /v1/attestation/report is refused as a source of receipt keys', async () => {
    expect((await rejects(verifyAciAttestation(report(), { ...base, source: 'https://api.redpill.ai/v1/attestation/report?nonce=00' }))).code).toBe('ERR_ACI_LEGACY_REPORT');
    const legacy = report({ extra: { signing_address: '0x319f1b8bb3b723a5d098ffb67005bdf7bb579aca', intel_quote: '00' } });
    const e = await rejects(verifyAciAttestation(legacy, base));
    expect(e.code).toBe('ERR_ACI_LEGACY_REPORT');
    expect(e.phase).toBe('policy');
  });
  test('gen A/B report: workload_id and the A/B statement', async () => {
    const ks = genABKeyset();
    const nonce = 'any url-decoded string';
    const id = await verifyAciAttestation(report({ keyset: ks, nonce }), { ...base, nonce });
    expect(id.generation).toBe('AB');
    expect(id.workloadId).toBe(workloadIdFor((ks.workload_identity as JsonObject).public_key as JsonObject));
    expect(id.receiptKeys).toHaveLength(3);
    const r = report({ keyset: ks, nonce });
    r.workload_id = `sha256:${'00'.repeat(32)}`;
    expect((await rejects(verifyAciAttestation(r, { ...base, nonce }))).code).toBe('ERR_ACI_WORKLOAD_ID');
    // The identity key must endorse the keyset.
    expect((await rejects(verifyAciAttestation(report({ keyset: ks, nonce, endorser: seed(12) }), { ...base, nonce }))).code).toBe('ERR_ACI_KEYSET_ENDORSEMENT');
    const noEndorsement = report({ keyset: ks, nonce });
    delete (noEndorsement.attestation as JsonObject).keyset_endorsement;
    expect((await rejects(verifyAciAttestation(noEndorsement, { ...base, nonce }))).code).toBe('ERR_ACI_REPORT_MALFORMED');
    const wrongAlgo = report({ keyset: ks, nonce });
    ((wrongAlgo.attestation as JsonObject).keyset_endorsement as JsonObject).algo = 'ed25519';
    expect((await rejects(verifyAciAttestation(wrongAlgo, { ...base, nonce }))).code).toBe('ERR_ACI_KEYSET_ENDORSEMENT');
  });
  test('malformed reports and keysets', async () => {
    expect((await rejects(verifyAciAttestation('{', base))).code).toBe('ERR_ACI_REPORT_MALFORMED');
    expect((await rejects(verifyAciAttestation({ ...report(), api_version: 'aci/0' }, base))).code).toBe('ERR_ACI_API_VERSION');
    const r = report();
    ((r.attestation as JsonObject).workload_keyset as JsonObject).not_after = 1.5;
    expect((await rejects(verifyAciAttestation(r, base))).code).toBe('ERR_ACI_KEYSET_MALFORMED');
    const k = report();
    const keys = ((k.attestation as JsonObject).workload_keyset as JsonObject).receipt_signing_keys as JsonObject[];
    (keys[0] as JsonObject).public_key = 'AB'.repeat(32);
    expect((await rejects(verifyAciAttestation(k, base))).code).toBe('ERR_ACI_KEYSET_MALFORMED');
  });
  test('unknown-algo keyset entries are ignored', async () => {
    const ks = clone(vectors.workload_keyset);
    ks.receipt_signing_keys.push({ key_id: 'pq-1', algo: 'ml-dsa-65', public_key: 'ab' });
    const id = await verifyAciAttestation(report({ keyset: ks }), base);
    expect(id.receiptKeys.map((x) => x.keyId)).toEqual(['receipt-1']);
  });
});
