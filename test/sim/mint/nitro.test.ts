import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { evaluateNitroPolicy, loadNitroRoots, parseNitroDocument, verifyNitroAttestation, verifyNitroDocument } from '../../../src/evidence/nitro/index.js';
import { createNitroTestPki, mintNitroDocument, renewNitroLeaf, type NitroTestPki } from '../../../src/sim/mint/nitro.js';
import { decodeCbor } from '../../../src/util/cbor.js';
import { toHex } from '../../../src/util/bytes.js';
import { code } from '../../helpers/errors.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const pcrs = new Map<number, Uint8Array>(Array.from({ length: 16 }, (_, i) => [i, i <= 4 ? randomBytes(48) : new Uint8Array(48)]));
let pki: NitroTestPki;
beforeAll(async () => {
  pki = await createNitroTestPki({ now: NOW });
});
const mint = (o: Partial<Parameters<typeof mintNitroDocument>[1]> = {}) => mintNitroDocument(pki, { pcrs, timestamp: NOW.getTime(), ...o });

describe('simulated AWS Nitro attestation documents', () => {
  test('laid out like a real document: untagged COSE_Sign1, {1: -35}, NSM field order, nulls for absent fields', () => {
    const bytes = mint();
    expect(toHex(bytes.subarray(0, 6))).toBe('8444a1013822');
    const [, unprotected, payload, sig] = decodeCbor(bytes) as [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array];
    expect(unprotected.size).toBe(0);
    expect(sig).toHaveLength(96);
    const p = decodeCbor(payload) as Map<string, unknown>;
    expect([...p.keys()]).toEqual(['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);
    expect(p.get('public_key')).toBeNull();
    const doc = parseNitroDocument(bytes);
    expect(doc).toMatchObject({ digest: 'SHA384', timestamp: NOW.getTime(), moduleId: pki.moduleId, tagged: false });
    expect(doc.moduleId).toMatch(/^i-0[0-9a-f]{16}-enc0[0-9a-f]{14}$/);
    expect([...doc.pcrs.keys()]).toEqual([...pcrs.keys()]);
    expect(doc.cabundle.map((c) => toHex(c))).toEqual([toHex(pki.root.der), toHex(pki.intermediate.der)]);
    for (const c of [doc.certificate, ...doc.cabundle]) expect(c.length).toBeLessThanOrEqual(1024);
    expect(parseNitroDocument(mint({ tagged: true })).tagged).toBe(true);
  });

  test('verifyNitroDocument accepts it with the simulator root, with the binding fields and PCRs as minted', () => {
    const userData = randomBytes(32);
    const nonce = randomBytes(32);
    const doc = verifyNitroAttestation(mint({ userData, nonce }), {
      at: NOW,
      roots: [pki.root],
      policy: { allowedPcrs: [{ 0: toHex(pcrs.get(0) as Uint8Array), 1: toHex(pcrs.get(1) as Uint8Array), 2: toHex(pcrs.get(2) as Uint8Array) }], expectedUserData: userData, expectedNonce: nonce },
    });
    expect(doc.chain.map((c) => c.sha256)).toEqual([pki.leaf.sha256, pki.intermediate.sha256, pki.root.sha256]);
  });

  test('the real AWS Nitro root (the default) refuses it: the simulator is never trusted by default', () => {
    expect(code(() => verifyNitroDocument(parseNitroDocument(mint()), { at: NOW, roots: loadNitroRoots() }))).toBe('ERR_CHAIN_UNTRUSTED');
  });

  test('a flipped byte anywhere in the signed payload fails the signature or the chain, never passes', () => {
    const bytes = mint();
    const doc = parseNitroDocument(bytes);
    const start = bytes.length - 96 - 2 - doc.payloadBytes.length;
    for (let i = 0; i < 200; i++) {
      const at = start + Math.floor(Math.random() * doc.payloadBytes.length);
      const b = Uint8Array.from(bytes);
      b[at] = (b[at] as number) ^ (1 << i % 8);
      let c: string;
      try {
        c = code(() => verifyNitroDocument(parseNitroDocument(b), { at: NOW, roots: [pki.root] }));
      } catch {
        c = 'pass';
      }
      expect(c).not.toBe('pass');
    }
  });

  test('all-zero PCR0..2 (a debug enclave) are rejected by the default policy', () => {
    const debug = new Map(pcrs);
    for (const i of [0, 1, 2]) debug.set(i, new Uint8Array(48));
    const doc = verifyNitroDocument(parseNitroDocument(mint({ pcrs: debug })), { at: NOW, roots: [pki.root] });
    expect(code(() => evaluateNitroPolicy(doc, {}, { at: NOW }))).toBe('ERR_POLICY_DEBUG_ENCLAVE');
    expect(() => evaluateNitroPolicy(doc, { allowDebug: true }, { at: NOW })).not.toThrow();
  });

  test('the leaf lives about 3 hours like AWS leaves; renewNitroLeaf issues the next one from the same intermediate', async () => {
    const later = new Date(NOW.getTime() + 4 * 3_600_000);
    expect(code(() => verifyNitroDocument(parseNitroDocument(mint({ timestamp: later.getTime() })), { at: later, roots: [pki.root] }))).toBe('ERR_CHAIN_EXPIRED');
    const own = await createNitroTestPki({ now: NOW });
    const first = own.leaf.sha256;
    await renewNitroLeaf(own, NOW);
    expect(own.leaf.sha256).toBe(first);
    await renewNitroLeaf(own, later);
    expect(own.leaf.sha256).not.toBe(first);
    const doc = verifyNitroDocument(parseNitroDocument(mintNitroDocument(own, { pcrs, timestamp: later.getTime() })), { at: later, roots: [own.root] });
    expect(doc.chain[1]?.sha256).toBe(own.intermediate.sha256);
  });
});
