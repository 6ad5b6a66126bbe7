import { randomBytes, randomUUID } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadNitroRoots } from '../../src/evidence/nitro/index.js';
import {
  evaluateRoutingReceipt,
  nitroCoordinatorBinder,
  parseDocumentedReceipt,
  parseRoutingReceipt,
  verifyCoordinatorAttestation,
  verifyRoutingReceipt,
} from '../../src/pinaivu/index.js';
import { createPinaivuDeployment, type PinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import { toHex } from '../../src/util/bytes.js';
import { TresorError } from '../../src/errors/index.js';

/** `f` (sync or async) must throw a TresorError with `code`. */
async function expectCode(f: () => unknown, code: string): Promise<void> {
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(TresorError);
  expect((err as TresorError).code).toBe(code);
}

let p: PinaivuDeployment;
beforeAll(async () => {
  p = await createPinaivuDeployment();
});
beforeEach(() => {
  for (const k of Object.keys(p.faults)) delete (p.faults as Record<string, unknown>)[k];
});

const opts = (extra: Partial<Parameters<typeof verifyCoordinatorAttestation>[1]> = {}) => ({
  at: new Date(),
  roots: [p.nitro.root],
  allowedPcr0: [p.pcr0],
  maxAgeSeconds: 600,
  ...extra,
});
const nonce = () => randomBytes(32).toString('hex');

describe('verifyCoordinatorAttestation (the daemon side of /get_attestation)', () => {
  test('a coordinator without nonce support: verified, freshness "timestamp", the signed key returned', async () => {
    const id = verifyCoordinatorAttestation(JSON.stringify(await p.attestation(null)), opts({ nonce: nonce() }));
    expect(toHex(id.coordinatorPubkey)).toBe(p.coordinatorKey);
    expect(id).toMatchObject({ pcr0: p.pcr0, freshness: 'timestamp', moduleId: p.nitro.moduleId });
    expect(id.documentSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a coordinator that signs our nonce: freshness "nonce"; another nonce is refused', async () => {
    p.faults.echoNonce = true;
    const n = nonce();
    expect(verifyCoordinatorAttestation(await p.attestation(n), opts({ nonce: n })).freshness).toBe('nonce');
    await expectCode(async () => verifyCoordinatorAttestation(await p.attestation(n), opts({ nonce: nonce() })), 'ERR_POLICY_NONCE');
    // A signed nonce when we sent none is someone else's answer.
    await expectCode(async () => verifyCoordinatorAttestation(await p.attestation(n), opts()), 'ERR_POLICY_NONCE');
  });

  test('require_nonce refuses a document without one', async () => {
    await expectCode(async () => verifyCoordinatorAttestation(await p.attestation(null), opts({ nonce: nonce(), requireNonce: true })), 'ERR_POLICY_NONCE');
  });

  test('the pinned AWS root does not accept the test PKI; an empty allowlist fails closed', async () => {
    const att = await p.attestation(null);
    await expectCode(() => verifyCoordinatorAttestation(att, opts({ roots: loadNitroRoots() })), 'ERR_CHAIN_UNTRUSTED');
    await expectCode(() => verifyCoordinatorAttestation(att, opts({ allowedPcr0: [] })), 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
    await expectCode(() => verifyCoordinatorAttestation(att, opts({ allowedPcr0: ['ab'.repeat(48)] })), 'ERR_POLICY_PCR_MISMATCH');
  });

  test('age bound, debug enclaves, unsigned public_key disagreeing, malformed answers', async () => {
    const att = await p.attestation(null);
    await expectCode(() => verifyCoordinatorAttestation(att, opts({ at: new Date(Date.now() + 601_000) })), 'ERR_POLICY_STALE');
    p.faults.debugEnclave = true;
    await expectCode(async () => verifyCoordinatorAttestation(await p.attestation(null), opts({ allowedPcr0: ['0'.repeat(96)] })), 'ERR_POLICY_DEBUG_ENCLAVE');
    expect(verifyCoordinatorAttestation(await p.attestation(null), opts({ allowedPcr0: ['0'.repeat(96)], allowDebug: true })).pcr0).toBe('0'.repeat(96));
    p.faults.debugEnclave = false;
    p.faults.attestationKeyMismatch = true;
    await expectCode(async () => verifyCoordinatorAttestation(await p.attestation(null), opts()), 'ERR_PINAIVU_ATTESTATION_KEY');
    await expectCode(() => verifyCoordinatorAttestation('not json', opts()), 'ERR_PINAIVU_ATTESTATION_MALFORMED');
    await expectCode(() => verifyCoordinatorAttestation({ raw_cbor_hex: 42 }, opts()), 'ERR_PINAIVU_ATTESTATION_MALFORMED');
    await expectCode(() => verifyCoordinatorAttestation({ raw_cbor_hex: 'zz' }, opts()), 'ERR_PINAIVU_ATTESTATION_MALFORMED');
    // One flipped byte of the signed document.
    const doc = Buffer.from(att.raw_cbor_hex as string, 'hex');
    doc[doc.length - 5] = (doc[doc.length - 5] as number) ^ 1;
    await expectCode(() => verifyCoordinatorAttestation({ ...att, raw_cbor_hex: doc.toString('hex') }, opts()), 'ERR_NITRO_SIGNATURE');
  });
});

describe("the simulator's Pinaivu documents, checked by the library's own path (tresor-verify pinaivu)", () => {
  const x = () => ({ requestId: randomUUID(), model: 'eu/tresor/gpt-oss-120b', responseSha256: 'ab'.repeat(32) });

  test('proof: Ed25519 over BCS by the key the Nitro attestation binds, PCR0 pinned → verified', async () => {
    const ex = x();
    const at = new Date();
    const bindKey = nitroCoordinatorBinder(await p.attestation(null), { roots: [p.nitro.root], allowedPcrs: [{ 0: p.pcr0 }] });
    const v = evaluateRoutingReceipt(await verifyRoutingReceipt(parseRoutingReceipt(p.proof(ex)), { at, bindKey }), { requestId: ex.requestId, at });
    expect(v.verdict).toBe('verified');
    expect(v.aggregated_output_hash).toBe(ex.responseSha256);
    p.faults.proofForeignKey = true;
    await expectCode(async () => verifyRoutingReceipt(parseRoutingReceipt(p.proof(ex)), { at, bindKey }), 'ERR_PINAIVU_ATTESTATION_KEY');
  });

  test('the documented receipt parses as seed 004 describes', () => {
    const ex = x();
    const d = parseDocumentedReceipt(p.receipt(ex));
    expect(d).toMatchObject({ requestId: ex.requestId, model: ex.model, nodeId: expect.stringMatching(/^node_/) });
    expect(d.coordinatorSignature).toMatch(/^0x[0-9a-f]{128}$/);
  });
});
