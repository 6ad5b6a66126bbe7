import { X509Certificate } from 'node:crypto';
import { PIN_FORMAT } from '../../src/audit/evidence.js';
import type { ArchivedPin } from '../../src/envelope/pin-verify.js';
import { generateTlsIdentity, type GeneratedTlsIdentity } from '../../src/x509/selfsigned.js';

/** A TLS leaf the way a pin records it: the certificate (its SPKI is what the evidence binds) and its DER, base64. */
export async function tlsLeaf(): Promise<GeneratedTlsIdentity & { derB64: string }> {
  const id = await generateTlsIdentity();
  return { ...id, derB64: new X509Certificate(id.certPem).raw.toString('base64') };
}

/** An archived pin as `readPin` returns it, from a report and the fields its document carries. */
export function archivedPin(o: { profile: string; report: unknown; nonce: string; leafDerB64: string; at: Date; policy: Record<string, unknown>; parts?: Record<string, Buffer> }): ArchivedPin {
  return {
    id: 'f'.repeat(64),
    doc: { format: PIN_FORMAT, profile: o.profile, upstream: 'u', verified_at: o.at.toISOString(), nonce: o.nonce, tls_chain_der_b64: [o.leafDerB64], policy: o.policy, test_roots: true, blobs: {} },
    parts: { report: Buffer.from(JSON.stringify(o.report)), ...o.parts },
  };
}
