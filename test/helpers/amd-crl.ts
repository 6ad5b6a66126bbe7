import 'reflect-metadata';
import * as px from '@peculiar/x509';
import type { SnpTestPki } from '../../src/sim/mint/snp.js';

/** A CRL (DER) as AMD's KDS serves it: issued by the test PKI's ARK, RSA-PSS SHA-384, revoking `serials` (hex). */
export async function mintAmdCrl(pki: SnpTestPki, o: { serials?: string[]; thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<Uint8Array> {
  const crl = await px.X509CrlGenerator.create({
    issuer: pki.ark.subject,
    thisUpdate: o.thisUpdate ?? new Date(Date.now() - 86_400_000),
    nextUpdate: o.nextUpdate ?? new Date(Date.now() + 86_400_000),
    entries: (o.serials ?? []).map((serialNumber) => ({ serialNumber, revocationDate: new Date(Date.now() - 3_600_000) })),
    signingKey: pki.arkSigningKey,
    signingAlgorithm: { name: 'RSA-PSS', hash: 'SHA-384', saltLength: 48 } as px.X509CrlCreateParams['signingAlgorithm'],
  });
  return new Uint8Array(crl.rawData);
}
