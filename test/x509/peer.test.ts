import 'reflect-metadata';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as px from '@peculiar/x509';
import { describe, expect, test } from 'vitest';
import { peerCertificate, spkiSha256 } from '../../src/x509/certificate.js';

const vcek = readFileSync(new URL('../vectors/snp-go-sev-guest-milan-vcek.der', import.meta.url));
const spkiOf = (c: X509Certificate) => createHash('sha256').update(c.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

async function selfSigned(): Promise<Buffer> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await px.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=router.test',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return Buffer.from(cert.rawData);
}

describe('peerCertificate and spkiSha256', () => {
  test("a socket's own parsed certificate is used when Node hands it over; the DER is read otherwise; each socket is asked once", () => {
    const calls = { x509: 0, legacy: 0 };
    const modern = {
      getPeerX509Certificate: () => (calls.x509++, new X509Certificate(vcek)),
      getPeerCertificate: () => (calls.legacy++, { raw: vcek }),
    };
    const cert = peerCertificate(modern);
    expect(cert?.fingerprint256).toBe(new X509Certificate(vcek).fingerprint256);
    expect(peerCertificate(modern)).toBe(cert);
    expect(calls).toEqual({ x509: 1, legacy: 0 });

    // Node 20 answers getPeerX509Certificate() once per socket: later calls return undefined.
    const answeredBefore = { getPeerX509Certificate: () => undefined, getPeerCertificate: () => ({ raw: vcek }) };
    expect(peerCertificate(answeredBefore)?.fingerprint256).toBe(cert?.fingerprint256);
    expect(peerCertificate({ getPeerCertificate: () => ({}) })).toBeUndefined();
    expect(peerCertificate({ getPeerX509Certificate: () => undefined, getPeerCertificate: () => ({ raw: Buffer.alloc(0) }) })).toBeUndefined();
  });

  test('the SPKI digest is the SHA-256 of the DER SubjectPublicKeyInfo, per certificate, from the cache as from a fresh export', async () => {
    const a = new X509Certificate(vcek);
    const b = new X509Certificate(await selfSigned());
    expect(spkiSha256(a)).toBe(spkiOf(a));
    expect(spkiSha256(b)).toBe(spkiOf(b));
    expect(spkiSha256(b)).not.toBe(spkiSha256(a));
    // Asked again (cached) and for another instance of the same certificate: the same answer.
    expect(spkiSha256(new X509Certificate(vcek))).toBe(spkiOf(a));
    // Past the bound the cache is cleared, never wrong.
    for (let i = 0; i < 300; i++) expect(spkiSha256(new X509Certificate(await selfSigned()))).toMatch(/^[0-9a-f]{64}$/);
    expect(spkiSha256(b)).toBe(spkiOf(b));
  });
});
