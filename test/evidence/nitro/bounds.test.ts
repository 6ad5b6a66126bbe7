import { describe, expect, test } from 'vitest';
import { evaluateNitroPolicy, loadNitroRoots, parseNitroDocument, verifyNitroDocument } from '../../../src/evidence/nitro/index.js';
import { createNitroTestPki, mintNitroDocument } from '../../../src/sim/mint/nitro.js';
import { vector } from '../../helpers/vectors.js';

describe('an empty PCR set never matches', () => {
  test('on a real document: [{}] refuses, and an empty set beside a matching one does not widen it', () => {
    const name = 'nitro-anjuna-prod-2021-03-17.cbor';
    const doc = parseNitroDocument(vector(name));
    const at = new Date(doc.timestamp);
    const v = verifyNitroDocument(doc, { at, roots: loadNitroRoots() });
    const policy = { maxAgeSeconds: null };
    expect(() => evaluateNitroPolicy(v, { ...policy, allowedPcrs: [{}] }, { at })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_PCR_MISMATCH' }));
    expect(() => evaluateNitroPolicy(v, { ...policy, allowedPcrs: [{}, { '0': '11'.repeat(48) }] }, { at })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_PCR_MISMATCH' }));
    expect(() => evaluateNitroPolicy(v, { ...policy, allowedPcrs: [{}, { '0': Buffer.from(v.pcrs.get(0) as Uint8Array).toString('hex') }] }, { at })).not.toThrow();
  });
});

describe('public_key, user_data and nonce are bounded at 512 bytes (AWS attestation_process.md §3.2.2.2)', () => {
  test.each(['userData', 'nonce', 'publicKey'] as const)('%s: 512 bytes parse, 513 are refused with the field named', async (field) => {
    const pki = await createNitroTestPki();
    const pcrs = new Map([[0, new Uint8Array(48).fill(1)]]);
    expect(parseNitroDocument(mintNitroDocument(pki, { pcrs, [field]: new Uint8Array(512) }))).toBeDefined();
    const wire = { userData: 'user_data', nonce: 'nonce', publicKey: 'public_key' }[field];
    expect(() => parseNitroDocument(mintNitroDocument(pki, { pcrs, [field]: new Uint8Array(513) }))).toThrowError(
      expect.objectContaining({ code: 'ERR_NITRO_FIELD', message: expect.stringContaining(`${wire} of`) }),
    );
  });
});
