import { X509Certificate } from 'node:crypto';
import { MalformedError, VerificationError } from '../errors/index.js';
import { parseCrl } from '../x509/crl.js';
import { spkiSha256 } from '../x509/certificate.js';
import { verifyTrustBundle } from '../trust/verify-bundle.js';
import { isUrl, pinnedNitroRoots } from './attest.js';
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
  const p = doc.policy as EnvelopePolicy & { snpCrl?: boolean; trustBundleLocation?: string };
  // AMD's CRL as the daemon used it, checked (signature, staleness, revocation) as of verified_at.
  const crlDer = parts.snp_crl;
  const crl = crlDer ? parseCrl(new Uint8Array(crlDer), 'the archived AMD CRL', 'ERR_SNP_CRL_MALFORMED') : undefined;
  const policy: EnvelopePolicy = {
    ...(p.allowDebug !== undefined ? { allowDebug: p.allowDebug } : {}),
    ...(p.maxAgeCapSeconds !== undefined ? { maxAgeCapSeconds: p.maxAgeCapSeconds } : {}),
    ...(p.requireNonce !== undefined ? { requireNonce: p.requireNonce } : {}),
    ...(p.snp ? { snp: p.snp } : {}),
    ...(crl ? { snpCrl: () => crl } : {}),
  };
  const env = parseEnvelope(envelope);
  checkBundleLocation(env.trustBundleUrl, p.trustBundleLocation);
  const a = verifyRouterEnvelope(env, {
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
      ...bundleNotRechecked(p.trustBundleLocation),
      ...(p.snpCrl && !crl && a.kind === 'snp' ? ["AMD's CRL (snp.crl_file was configured; this pin does not archive it)"] : []),
    ],
  };
}

/** The envelope must name the allowed bundle location when it is a URL (a file location is used whatever the envelope names). */
function checkBundleLocation(envelopeUrl: string, location: string | undefined): void {
  if (location === undefined || !isUrl(location) || envelopeUrl === location) return;
  throw new VerificationError('ERR_BUNDLE_URL_NOT_ALLOWED', `the envelope's trust_bundle_url ${envelopeUrl} is not the allowed bundle location ${location} archived with the pin`);
}

/** What stays unchecked about the trust bundle's origin and rollback state (docs/wire.md §7.2). */
function bundleNotRechecked(location: string | undefined): string[] {
  return [
    location === undefined
      ? 'the trust bundle location (this pin does not archive it)'
      : isUrl(location)
        ? `that the bundle was fetched from ${location} (its signature and the envelope's URL are checked)`
        : `that the bundle was read from the file ${location} (its signature is checked)`,
    "bundle versions the daemon accepted before this log's first pin (its rollback store is not archived; successive pins of one upstream are checked across the log)",
  ];
}

export const tresorPinReverifier: PinReverifier = { needsReleaseRoot: true, reverify: reverifyTresorPin };
