import type { RouterAttestation } from './verify.js';

/** Label/value lines (printed after PASS, in order) and the decoded fields (`--json`) of a verification. */
export interface Described {
  lines: [string, string][];
  fields: Record<string, unknown>;
}

/**
 * What `tresor-verify attest` prints for a verified router attestation (and `tresor-verify audit
 * --evidence` for an archived `tresor` pin). `testRootsFile` names the test roots, when given.
 */
export function describeRouterAttestation(a: RouterAttestation, nonce: string | undefined, testRootsFile: string | undefined): Described {
  return {
    lines: [
      ['TLS SPKI SHA-256', a.spkiSha256],
      [a.kind === 'snp' ? 'SNP MEASUREMENT' : 'Nitro PCR0', a.measurement],
      ['Workload identity tag', a.tag],
      ['Trust bundle version', `${a.bundle.version} (valid until ${a.bundle.validUntil.replace(/\.000Z$/, 'Z')})`],
      ['Freshness', a.nonceBound ? 'nonce-bound' : 'not freshness-bound'],
      ...(testRootsFile ? [['Trust roots', `pinned vendor roots and test roots from ${testRootsFile}`] as [string, string]] : []),
    ],
    fields: { tls_spki_sha256: a.spkiSha256, kind: a.kind, measurement: a.measurement, ...(a.pcrs ? { pcrs: a.pcrs } : {}), workload_identity_tag: a.tag, manifest: a.manifest, trust_bundle: a.bundle, issued_at: a.issuedAt, expires_at: a.expiresAt, ...(nonce ? { nonce } : {}), freshness: a.nonceBound ? 'nonce-bound' : 'not freshness-bound', test_roots: testRootsFile !== undefined },
  };
}
