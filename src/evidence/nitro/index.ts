import type { Verified } from '../../types.js';
import type { Certificate } from '../../x509/certificate.js';
import { parseNitroDocument } from './parse.js';
import { evaluateNitroPolicy, type NitroPolicy } from './policy.js';
import { verifyNitroDocument, type VerifiedNitro } from './verify.js';

export { parseNitroDocument, type NitroDocument } from './parse.js';
export { verifyNitroDocument, loadNitroRoots, sigStructure, type VerifiedNitro } from './verify.js';
export { evaluateNitroPolicy, type NitroPolicy, type PcrSet } from './policy.js';

/** parse → verify → policy, in that order, in one call. */
export function verifyNitroAttestation(bytes: Uint8Array, opts: { at: Date; roots: readonly Certificate[]; policy: NitroPolicy }): Verified<VerifiedNitro> {
  const verified = verifyNitroDocument(parseNitroDocument(bytes), opts);
  evaluateNitroPolicy(verified, opts.policy, opts);
  return verified;
}
