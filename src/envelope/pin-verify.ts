import { X509Certificate, type KeyObject } from 'node:crypto';
import { MalformedError, VerificationError } from '../errors/index.js';
import { pinnedNitroRoots } from './attest.js';
import { parseEnvelope } from './parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy, type RouterAttestation } from './verify.js';
import { verifyTrustBundle } from '../trust/verify-bundle.js';
import type { Verified } from '../types.js';
import { spkiSha256, type Certificate } from '../x509/certificate.js';
import { PIN_FORMAT, readBlob, type BlobProblem, type PinDocument } from '../audit/evidence.js';

/** A pin document and its parts, read from the archive and checked against their hashes. */
export interface ArchivedPin {
  id: string;
  doc: PinDocument;
  parts: Record<string, Buffer>;
}

/** Read pin `id` and every part it names; the first missing or edited blob is the problem. */
export async function readPin(auditDir: string, id: string): Promise<ArchivedPin | BlobProblem | { code: 'ERR_AUDIT_EVIDENCE_INVALID'; message: string }> {
  const blob = await readBlob(auditDir, id);
  if (!('bytes' in blob)) return blob;
  let doc: PinDocument;
  try {
    doc = JSON.parse(blob.bytes.toString('utf8')) as PinDocument;
  } catch {
    return { code: 'ERR_AUDIT_EVIDENCE_INVALID', message: `evidence ${id.slice(0, 16)}… is not a pin document (not JSON)` };
  }
  if (doc?.format !== PIN_FORMAT || typeof doc.blobs !== 'object' || doc.blobs === null) {
    return { code: 'ERR_AUDIT_EVIDENCE_INVALID', message: `evidence ${id.slice(0, 16)}… is not a ${PIN_FORMAT} pin document` };
  }
  const parts: Record<string, Buffer> = {};
  for (const [role, sha] of Object.entries(doc.blobs)) {
    const part = await readBlob(auditDir, String(sha));
    if (!('bytes' in part)) return { code: part.code, message: `${role} of pin ${id.slice(0, 16)}…: ${part.message}` };
    parts[role] = part.bytes;
  }
  return { id, doc, parts };
}

/** What a pin re-verified to, in the terms of its attestation record. */
export interface PinVerification {
  attestation: Verified<RouterAttestation>;
  /** Record fields the evidence proves (compared with the attestation record). */
  summary: Record<string, unknown>;
  /** What the offline check could not repeat. */
  notRechecked: string[];
}

/**
 * Verify an archived pin again, as of its own `verified_at`, against the pinned vendor roots, the
 * release root given and (only when given) test roots: the same algorithm the daemon ran, on the
 * bytes it received, with the policy it applied. Throws the verifier's typed error.
 */
export function reverifyPin(pin: ArchivedPin, o: { releaseRoot: KeyObject; testRoots?: readonly Certificate[] }): PinVerification {
  const { doc, parts } = pin;
  if (doc.profile !== 'tresor') throw new VerificationError('ERR_AUDIT_EVIDENCE_UNSUPPORTED', `pins of profile ${doc.profile} cannot be re-verified offline yet`);
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
    attestation: a,
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
