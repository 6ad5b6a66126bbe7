import { createHash, verify as cryptoVerify } from 'node:crypto';
import { MalformedError, VerificationError } from '../errors/index.js';
import { asVerified, type Verified } from '../types.js';
import { parseJws } from '../util/jws.js';
import type { TrustBundle } from './verify-bundle.js';

export const MAX_MANIFEST_BYTES = 16 * 1024;
export const MANIFEST_SCHEMA = 'workload-identity/v1';

export interface WorkloadManifest {
  readonly workload: string;
  readonly version: string;
  readonly imageDigest: string;
  readonly binaryDigest: string;
  readonly buildMetadata: Readonly<Record<string, unknown>>;
  /** hex(SHA-256(ASCII bytes of the compact JWS)): the workload identity tag. */
  readonly tag: string;
  readonly kid: string;
}

export const manifestTag = (jws: string) => createHash('sha256').update(jws.trim(), 'ascii').digest('hex');

/** Verify a workload identity manifest with a key the verified trust bundle lists (by kid). */
export function verifyManifest(jws: string, bundle: Verified<TrustBundle>): Verified<WorkloadManifest> {
  const parsed = parseJws(jws, { code: 'ERR_MANIFEST_MALFORMED', maxBytes: MAX_MANIFEST_BYTES, what: 'workload identity manifest' });
  if (parsed.header.alg !== 'EdDSA') throw new VerificationError('ERR_ATTEST_MANIFEST_INVALID', `expected manifest alg EdDSA, got ${JSON.stringify(parsed.header.alg)}`);
  const kid = parsed.header.kid;
  const key = typeof kid === 'string' ? bundle.workloadIdentityKeys.get(kid) : undefined;
  if (!key) throw new VerificationError('ERR_ATTEST_MANIFEST_INVALID', `the manifest key ${JSON.stringify(kid)} is not a workload identity key of the trust bundle`);
  if (!cryptoVerify(null, Buffer.from(parsed.signingInput, 'ascii'), key, parsed.signature)) {
    throw new VerificationError('ERR_ATTEST_MANIFEST_INVALID', 'the workload identity manifest signature does not verify');
  }
  const p = parsed.payload;
  if (p.schema !== MANIFEST_SCHEMA) throw new MalformedError('ERR_MANIFEST_MALFORMED', `expected manifest schema ${MANIFEST_SCHEMA}, got ${JSON.stringify(p.schema)}`);
  for (const f of ['workload', 'version', 'image_digest', 'binary_digest']) {
    if (typeof p[f] !== 'string' || (p[f] as string).length === 0) throw new MalformedError('ERR_MANIFEST_MALFORMED', `manifest ${f} must be a non-empty string`);
  }
  return asVerified({
    workload: p.workload as string,
    version: p.version as string,
    imageDigest: p.image_digest as string,
    binaryDigest: p.binary_digest as string,
    buildMetadata: (typeof p.build_metadata === 'object' && p.build_metadata !== null ? p.build_metadata : {}) as Record<string, unknown>,
    tag: manifestTag(jws),
    kid: kid as string,
  });
}
