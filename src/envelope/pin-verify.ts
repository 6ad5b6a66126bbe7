import type { KeyObject } from 'node:crypto';
import { VerificationError } from '../errors/index.js';
import type { Certificate } from '../x509/certificate.js';
import type { Described } from './describe.js';
import { tresorPinReverifier } from './pin-verify-tresor.js';
import { aciPinReverifier } from './pin-verify-aci.js';
import { nearPinReverifier } from './pin-verify-near.js';
import { pinaivuPinReverifier } from './pin-verify-pinaivu.js';
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
  /** Record fields the evidence proves (compared with the attestation record). */
  summary: Record<string, unknown>;
  /** What `tresor-verify audit --evidence` prints for it (after the pin's own lines). */
  described: Described;
  /** What the offline check could not repeat. */
  notRechecked: string[];
}

/** The trust an offline re-verification is given: pinned vendor roots always; the rest only when passed. */
export interface ReverifyOptions {
  /** The release root the trust bundle must be signed by (`--release-root`). */
  releaseRoot?: KeyObject | undefined;
  /** Test roots, only when passed explicitly (`--test-roots`). */
  testRoots?: readonly Certificate[] | undefined;
  /** How the test roots are named in the output (their file). */
  testRootsLabel?: string | undefined;
}

/** One profile's offline re-verification of its archived pins. */
export interface PinReverifier {
  /** Whether it needs the release root (a trust bundle is part of the evidence); without it the pin is checked against its hashes only. */
  needsReleaseRoot: boolean;
  /** Verify the pin again at its own `verified_at`; throws (or rejects with) the verifier's typed error. */
  reverify(pin: ArchivedPin, o: ReverifyOptions): PinVerification | Promise<PinVerification>;
}

/** The profiles whose pins are re-verified offline, by profile name. */
const REVERIFIERS: Readonly<Record<string, PinReverifier>> = {
  tresor: tresorPinReverifier,
  aci: aciPinReverifier,
  near: nearPinReverifier,
  pinaivu: pinaivuPinReverifier,
};

/** The re-verifier of `profile`'s pins, or undefined when its pins cannot be re-verified offline. */
export const pinReverifier = (profile: string): PinReverifier | undefined => (Object.hasOwn(REVERIFIERS, profile) ? REVERIFIERS[profile] : undefined);

/**
 * Verify an archived pin again, as of its own `verified_at`, against the pinned vendor roots, the
 * release root given and (only when given) test roots: the same algorithm the daemon ran, on the
 * bytes it received, with the policy it applied. Throws the verifier's typed error
 * (`ERR_AUDIT_EVIDENCE_UNSUPPORTED` for a profile no re-verifier knows).
 */
export async function reverifyPin(pin: ArchivedPin, o: ReverifyOptions): Promise<PinVerification> {
  const r = pinReverifier(pin.doc.profile);
  if (!r) throw new VerificationError('ERR_AUDIT_EVIDENCE_UNSUPPORTED', `pins of profile ${JSON.stringify(pin.doc.profile).slice(0, 40)} cannot be re-verified offline`);
  return r.reverify(pin, o);
}
