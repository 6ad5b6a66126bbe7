import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../../src/errors/index.js';
import { evaluateNitroPolicy, loadNitroRoots, parseNitroDocument, verifyNitroAttestation, verifyNitroDocument } from '../../../src/evidence/nitro/index.js';
import { toHex } from '../../../src/util/bytes.js';
import { vector } from '../../helpers/vectors.js';

const roots = loadNitroRoots();
const PROD = ['nitro-anjuna-prod-2021-03-17.cbor', 'nitro-evervault-beta-prod-2022-10-13.cbor'];
const DEBUG = ['nitro-evervault-ga-2023-09-18.cbor', 'nitro-anjuna-debug-full-2024-01-24.cbor'];
const at = (name: string) => new Date(parseNitroDocument(vector(name)).timestamp);
const recorded = { maxAgeSeconds: null };

describe('real AWS Nitro documents', () => {
  test.each(PROD)('%s verifies at its own time and passes the default policy', (name) => {
    const doc = verifyNitroAttestation(vector(name), { at: at(name), roots, policy: recorded });
    expect(doc.chain).toHaveLength(5);
    expect(doc.chain[4]?.sha256).toBe('641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b');
    expect(doc.pcrs.size).toBe(16);
  });

  test.each([...PROD, ...DEBUG])('%s fails today: its certificates have expired', (name) => {
    expect(() => verifyNitroDocument(parseNitroDocument(vector(name)), { at: new Date('2026-11-22T00:00:00Z'), roots })).toThrowError(
      expect.objectContaining({ code: 'ERR_CHAIN_EXPIRED', phase: 'verify' }),
    );
  });

  test.each(DEBUG)('%s is a debug enclave: signature valid, default policy rejects, --allow-debug accepts', (name) => {
    const doc = verifyNitroDocument(parseNitroDocument(vector(name)), { at: at(name), roots });
    expect(() => evaluateNitroPolicy(doc, recorded, { at: at(name) })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_DEBUG_ENCLAVE', phase: 'policy' }));
    expect(() => evaluateNitroPolicy(doc, { ...recorded, allowDebug: true }, { at: at(name) })).not.toThrow();
  });

  test('the values the vectors README asserts', () => {
    const beta = parseNitroDocument(vector('nitro-evervault-beta-prod-2022-10-13.cbor'));
    expect(toHex(beta.pcrs.get(0) as Uint8Array)).toBe('f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b');
    expect(beta.publicKey).toBeUndefined();
    expect(beta.userData).toBeUndefined();
    expect(beta.nonce?.length).toBe(256);
    const ga = parseNitroDocument(vector('nitro-evervault-ga-2023-09-18.cbor'));
    expect(ga.moduleId).toBe('i-0918f6c55e3b61d89-enc018aa8b8e2285d13');
    expect(toHex(ga.pcrs.get(4) as Uint8Array)).toBe('d0531b1400dd43288c82c226c16bf647c637dd5e4d9b4f7a8aaadc6d6760b854a06c7008cca0d15ca80094dd33a65065');
    expect(ga.userData?.length).toBe(91);
    const full = parseNitroDocument(vector('nitro-anjuna-debug-full-2024-01-24.cbor'));
    expect(Buffer.from(full.userData as Uint8Array).toString()).toBe('Hello World!\n');
    expect(Buffer.from(full.nonce as Uint8Array).toString()).toBe('Nonce\n');
    expect(full.publicKey?.length).toBe(294);
  });

  test('inclusive validity: the Anjuna document verifies at a timestamp equal to its leaf notBefore (second precision)', () => {
    const name = 'nitro-anjuna-prod-2021-03-17.cbor';
    const doc = verifyNitroDocument(parseNitroDocument(vector(name)), { at: at(name), roots });
    expect(Math.floor(doc.timestamp / 1000) * 1000).toBe(doc.chain[0]?.notBefore.getTime());
  });

  test('the NEGATIVE Marlin document fails at the root pin, also at its own time', () => {
    const name = 'NEGATIVE-nitro-marlin-mock-ca-2024-12-13.cbor';
    const doc = parseNitroDocument(vector(name));
    expect(doc.cabundle).toHaveLength(1);
    expect(() => verifyNitroDocument(doc, { at: at(name), roots })).toThrowError(expect.objectContaining({ code: 'ERR_CHAIN_UNTRUSTED' }));
  });

  test('policy: PCR allowlists (any index), nonce, user_data, public_key, maximum age', () => {
    const name = 'nitro-anjuna-debug-full-2024-01-24.cbor';
    const t = at(name);
    const doc = verifyNitroDocument(parseNitroDocument(vector(name)), { at: t, roots });
    const pcr4 = toHex(doc.pcrs.get(4) as Uint8Array);
    const base = { allowDebug: true, maxAgeSeconds: null };
    expect(() => evaluateNitroPolicy(doc, { ...base, allowedPcrs: [{ '0': '00'.repeat(48), '4': pcr4 }] }, { at: t })).not.toThrow();
    expect(() => evaluateNitroPolicy(doc, { ...base, allowedPcrs: [{ '4': '11'.repeat(48) }, { '0': '22'.repeat(48) }] }, { at: t })).toThrowError(
      expect.objectContaining({ code: 'ERR_POLICY_PCR_MISMATCH' }),
    );
    expect(() => evaluateNitroPolicy(doc, { ...base, allowedPcrs: [{ '16': '00'.repeat(48) }] }, { at: t })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_PCR_MISMATCH' }));
    expect(() => evaluateNitroPolicy(doc, { ...base, expectedNonce: Buffer.from('Nonce\n'), expectedUserData: Buffer.from('Hello World!\n') }, { at: t })).not.toThrow();
    expect(() => evaluateNitroPolicy(doc, { ...base, expectedNonce: Buffer.from('other') }, { at: t })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_NONCE' }));
    expect(() => evaluateNitroPolicy(doc, { ...base, expectedUserData: Buffer.from('x') }, { at: t })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_USER_DATA' }));
    expect(() => evaluateNitroPolicy(doc, { ...base, expectedPublicKey: Buffer.from('x') }, { at: t })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_PUBLIC_KEY' }));
    expect(() => evaluateNitroPolicy(doc, { allowDebug: true, maxAgeSeconds: 60 }, { at: new Date(t.getTime() + 61_000) })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_STALE' }));
    expect(() => evaluateNitroPolicy(doc, { allowDebug: true }, { at: new Date(t.getTime() - 3_600_000) })).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_STALE' }));
    try {
      evaluateNitroPolicy(doc, { expectedNonce: Buffer.from('x'), maxAgeSeconds: null }, { at: t });
    } catch (e) {
      expect((e as { violations: { code: string }[] }).violations.map((x) => x.code)).toEqual(['ERR_POLICY_DEBUG_ENCLAVE', 'ERR_POLICY_NONCE']);
    }
  });
});

describe('tampering is always caught', () => {
  const name = 'nitro-anjuna-prod-2021-03-17.cbor';
  const bytes = vector(name);
  const t = at(name);
  const verdict = (b: Uint8Array): string => {
    try {
      verifyNitroDocument(parseNitroDocument(b), { at: t, roots });
      return 'pass';
    } catch (e) {
      return (e as TresorError).code;
    }
  };

  test('every single-byte flip inside the signed region (protected header and payload) fails', () => {
    const doc = parseNitroDocument(bytes);
    const start = bytes.indexOf(0x44); // the protected header bstr follows the array header
    expect(start).toBe(1);
    const signedEnd = bytes.length - 2 - 96;
    const results = new Map<string, number>();
    for (let i = start; i < signedEnd; i++) {
      const b = new Uint8Array(bytes);
      b[i] = (b[i] as number) ^ 0x01;
      const r = verdict(b);
      results.set(r, (results.get(r) ?? 0) + 1);
      if (r === 'pass') throw new Error(`flip at byte ${i} passed`);
    }
    expect(doc.payloadBytes.length).toBeGreaterThan(4000);
    // Flips in the certificates break the chain, the rest break the COSE signature or the parse.
    expect(results.get('ERR_NITRO_SIGNATURE')).toBeGreaterThan(500);
    expect([...results.keys()].every((k) => k.startsWith('ERR_'))).toBe(true);
  }, 180_000);

  test('signature flips, tag 18, other tags, trailing bytes, ES256 header, reordered cabundle', () => {
    const last = new Uint8Array(bytes);
    last[last.length - 1] = (last[last.length - 1] as number) ^ 0x80;
    expect(verdict(last)).toBe('ERR_NITRO_SIGNATURE');
    expect(verdict(new Uint8Array([0xd2, ...bytes]))).toBe('pass');
    expect(verdict(new Uint8Array([0xd1, ...bytes]))).toBe('ERR_NITRO_COSE_MALFORMED');
    expect(verdict(new Uint8Array([...bytes, 0x00]))).toBe('ERR_NITRO_COSE_MALFORMED');
    const es256 = new Uint8Array(bytes);
    es256[5] = 0x26; // a1 01 38 22 → a1 01 38 26 (alg -39)
    expect(verdict(es256)).toBe('ERR_NITRO_PROTECTED_HEADER');
    // Re-encode the COSE array with the cabundle reversed: the chain no longer builds.
    const doc = parseNitroDocument(bytes);
    const swapped = { ...doc, cabundle: [...doc.cabundle].reverse() };
    expect(() => verifyNitroDocument(swapped, { at: t, roots })).toThrowError(TresorError);
  });

  test('random bytes and mutated documents only ever raise MalformedError or a verification error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        try {
          parseNitroDocument(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(bytes.length), (pos, x, cut) => {
        const b = new Uint8Array(bytes);
        b[pos] = (b[pos] as number) ^ x;
        for (const input of [b, b.subarray(0, cut)]) {
          try {
            parseNitroDocument(input);
          } catch (e) {
            expect(e).toBeInstanceOf(MalformedError);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});
