import { X509Certificate } from 'node:crypto';
import { MalformedError } from '../errors/index.js';
import { spkiSha256 } from '../x509/certificate.js';
import { verifyTrustBundle } from '../trust/verify-bundle.js';
import { pinnedNitroRoots } from './attest.js';
import { describeRouterAttestation } from './describe.js';
import { parseEnvelope } from './parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy } from './verify.js';
import type { ArchivedPin, PinReverifier, PinVerification, ReverifyOptions } from './pin-verify.js';

/**
 * A `tresor` pin verified again, as of its own `verified_at`, against the pinned vendor roots, the
 * release root given and (only when given) test roots: the same algorithm the daemon ran, on the
 * bytes it received, with the policy it applied. Throws the verifier's typed error.
 */
function reverifyTresorPin(pin: ArchivedPin, o: ReverifyOptions): PinVerification {
  const { doc, parts } = pin;
  if (!o.releaseRoot) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'a tresor pin is re-verified against the release root (--release-root)');
  const envelope = parts.envelope;
  const bundleJws = parts.trust_bundle;
  const leafDer = doc.tls_chain_der_b64?.[0];
  if (!envelope || !bundleJws || !leafDer) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pin document lacks its envelope, trust bundle or TLS certificate');
  const at = new Date(doc.verified_at);
  if (!Number.isFinite(at.getTime())) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pin document has no valid verified_at');
  const bundle = verifyTrustBundle(bundleJws.toString('utf8'), { rootKey: o.releaseRoot, at });
  const p = doc.policy as EnvelopePolicy & { snpCrl?: boolean };
  const policy: EnvelopePolicy = {
    ...(p.allowDebug !== undefined ? { allowDebug: p.allowDebug } : {}),
    ...(p.maxAgeCapSeconds !== undefined ? { maxAgeCapSeconds: p.maxAgeCapSeconds } : {}),
    ...(p.requireNonce !== undefined ? { requireNonce: p.requireNonce } : {}),
    ...(p.snp ? { snp: p.snp } : {}),
  };
  const a = verifyRouterEnvelope(parseEnvelope(envelope), {
    liveSpkiSha256: spkiSha256(new X509Certificate(Buffer.from(leafDer, 'base64'))),
    bundle,
    at,
    nitroRoots: pinnedNitroRoots(),
    ...(o.testRoots ? { testRoots: o.testRoots } : {}),
    ...(doc.nonce ? { nonce: doc.nonce } : {}),
    policy,
  });
  return {
    described: describeRouterAttestation(a, doc.nonce ?? undefined, o.testRootsLabel),
    summary: {
      upstream: doc.upstream,
      profile: doc.profile,
      verified_at: doc.verified_at,
      expires_at: a.expiresAt,
      kind: a.kind,
      measurement: a.measurement,
      tag: a.tag,
      tls_spki_sha256: a.spkiSha256,
      bundle_version: a.bundle.version,
      freshness: a.nonceBound ? 'nonce-bound' : 'not freshness-bound',
      channel: 'bound',
      test_roots: doc.test_roots,
    },
    notRechecked: [
      'the trust bundle location and rollback state (the daemon checked them when it fetched the bundle)',
      ...(p.snpCrl ? ["AMD's CRL (snp.crl_file was configured; the CRL is not archived)"] : []),
    ],
  };
}

export const tresorPinReverifier: PinReverifier = { needsReleaseRoot: true, reverify: reverifyTresorPin };
