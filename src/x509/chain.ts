import 'reflect-metadata';
import { createHash } from 'node:crypto';
import * as px from '@peculiar/x509';
import { VerificationError } from '../errors/index.js';
import type { Certificate } from './certificate.js';

/**
 * RFC 5280-style path validation for the short, fixed chains attestation uses
 * (Nitro leaf → 3 intermediates → AWS root; VCEK → ASK → ARK; PCK → PCK CA → Intel root).
 *
 * node:crypto checks signatures only, so everything else is checked here: issuer/subject
 * chaining, validity of *every* certificate at the injected time (inclusive, whole seconds),
 * basicConstraints CA and pathLenConstraint, keyUsage keyCertSign on CAs, and that the path
 * ends at a pinned anchor compared by DER SHA-256, never by name.
 */
export interface ChainOptions {
  /** Verification time (injected; recorded vectors verify at their own time). */
  at: Date;
  /** Pinned trust anchors. The top of the path must be byte-identical to one of them, or be issued by one. */
  anchors: readonly Certificate[];
  /** Require the leaf to be an end-entity (no CA:TRUE). Default true. */
  leafMustNotBeCa?: boolean;
  /** Key usages the leaf must carry when it has a keyUsage extension (and must have it if `requireLeafKeyUsage`). */
  leafKeyUsage?: readonly ('digitalSignature' | 'nonRepudiation' | 'keyCertSign')[];
  requireLeafKeyUsage?: boolean;
  /** Require keyUsage keyCertSign on every CA certificate. Default true (AMD's ARK/ASK and AWS/Intel CAs all carry it). */
  requireCaKeyUsage?: boolean;
  /** Label used in messages, e.g. `Nitro`, `VCEK`, `PCK`. */
  label?: string;
  /**
   * Signature algorithms every certificate of the path may be signed with (`SIGNATURE_ALGORITHMS`
   * names, e.g. `ECDSA-SHA384`). Absent: any algorithm node:crypto verifies.
   */
  signatureAlgorithms?: readonly SignatureAlgorithm[];
}

/** The signature algorithms attestation chains use, as @peculiar/x509 names them (RSA-PSS with its hash and salt). */
export const SIGNATURE_ALGORITHMS = {
  'ECDSA-SHA256': { name: 'ECDSA', hash: 'SHA-256' },
  'ECDSA-SHA384': { name: 'ECDSA', hash: 'SHA-384' },
  'RSA-PSS-SHA384': { name: 'RSA-PSS', hash: 'SHA-384', saltLength: 48 },
} as const;
export type SignatureAlgorithm = keyof typeof SIGNATURE_ALGORITHMS;

/** Per chain (the issue's allowlist): AMD signs with RSA-PSS SHA-384, AWS with ECDSA P-384/SHA-384, Intel with ECDSA P-256/SHA-256. */
export const CHAIN_ALGORITHMS = {
  amd: ['RSA-PSS-SHA384'],
  aws: ['ECDSA-SHA384'],
  intel: ['ECDSA-SHA256'],
} as const satisfies Record<string, readonly SignatureAlgorithm[]>;

/**
 * Critical extensions this validator processes (RFC 5280 §4.2: a certificate with a critical
 * extension the validator does not recognise must be rejected): basicConstraints, keyUsage.
 */
export const PROCESSED_CRITICAL_EXTENSIONS: ReadonlySet<string> = new Set(['2.5.29.19', '2.5.29.15']);

function algorithmName(cert: Certificate): string {
  const a = cert.parsed.signatureAlgorithm as { name?: string; hash?: { name?: string }; saltLength?: number };
  return `${a.name ?? '?'}${a.hash?.name ? `-${a.hash.name.replace('-', '')}` : ''}${a.saltLength !== undefined ? ` (salt ${a.saltLength})` : ''}`;
}

function algorithmAllowed(cert: Certificate, allowed: readonly SignatureAlgorithm[]): boolean {
  const a = cert.parsed.signatureAlgorithm as { name?: string; hash?: { name?: string }; saltLength?: number };
  return allowed.some((k) => {
    const want = SIGNATURE_ALGORITHMS[k] as { name: string; hash: string; saltLength?: number };
    return a.name === want.name && a.hash?.name === want.hash && (want.saltLength === undefined || a.saltLength === want.saltLength);
  });
}

/** Unknown critical extensions and signature algorithms outside the allowlist, for one certificate of the path. */
function checkExtensionsAndAlgorithm(cert: Certificate, i: number, opts: ChainOptions, label: string): void {
  let unknown: string[];
  try {
    unknown = cert.parsed.extensions.filter((e) => e.critical && !PROCESSED_CRITICAL_EXTENSIONS.has(e.type)).map((e) => e.type);
    void cert.parsed.signatureAlgorithm;
  } catch (cause) {
    throw new VerificationError('ERR_CHAIN_CONSTRAINTS', `${label} certificate [${i}] (${cert.subject}) has an unreadable extension or signature algorithm`, { cause });
  }
  if (unknown.length > 0) {
    throw new VerificationError('ERR_CHAIN_CRITICAL_EXTENSION', `${label} certificate [${i}] (${cert.subject}) has critical extension(s) this verifier does not process: ${unknown.join(', ')} (RFC 5280 §4.2)`, {
      detail: { index: i, subject: cert.subject, extensions: unknown },
    });
  }
  if (opts.signatureAlgorithms && !algorithmAllowed(cert, opts.signatureAlgorithms)) {
    throw new VerificationError('ERR_CHAIN_ALGORITHM', `${label} certificate [${i}] (${cert.subject}) is signed with ${algorithmName(cert)}, expected ${opts.signatureAlgorithms.join(' or ')}`, {
      detail: { index: i, subject: cert.subject, algorithm: algorithmName(cert) },
    });
  }
}

export interface VerifiedChain {
  /** [leaf, intermediates…, anchor]. */
  readonly path: readonly Certificate[];
  readonly anchor: Certificate;
}

const USAGE_FLAGS: Record<string, number> = {
  digitalSignature: px.KeyUsageFlags.digitalSignature,
  nonRepudiation: px.KeyUsageFlags.nonRepudiation,
  keyCertSign: px.KeyUsageFlags.keyCertSign,
};

/**
 * Signature checks are pure functions of (child DER, parent DER), so verified links are
 * cached: a warm cache makes re-verifying a chain with known intermediates cheap. Time and
 * constraint checks are still done on every call.
 */
const verifiedLinks = new Map<string, true>();
const MAX_CACHED_LINKS = 4096;

function linkKey(child: Certificate, parent: Certificate): string {
  return `${child.sha256}:${parent.sha256}`;
}

function signatureValid(child: Certificate, parent: Certificate): boolean {
  const key = linkKey(child, parent);
  if (verifiedLinks.has(key)) return true;
  let ok = false;
  try {
    ok = child.node.verify(parent.node.publicKey);
  } catch {
    ok = false;
  }
  if (ok) {
    if (verifiedLinks.size >= MAX_CACHED_LINKS) verifiedLinks.clear();
    verifiedLinks.set(key, true);
  }
  return ok;
}

/** For benchmarks: forget cached link verifications (a "cold" run). */
export function clearChainCache(): void {
  verifiedLinks.clear();
}

function secondsFloor(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

function checkValidity(cert: Certificate, at: Date, label: string, index: number): void {
  const t = secondsFloor(at);
  if (t < secondsFloor(cert.notBefore)) {
    throw new VerificationError(
      'ERR_CHAIN_NOT_YET_VALID',
      `${label} certificate [${index}] (${cert.subject}) is not valid before ${cert.notBefore.toISOString()}, verification time ${at.toISOString()}`,
      { detail: { index, subject: cert.subject, notBefore: cert.notBefore.toISOString(), at: at.toISOString() } },
    );
  }
  if (t > secondsFloor(cert.notAfter)) {
    throw new VerificationError(
      'ERR_CHAIN_EXPIRED',
      `${label} certificate [${index}] (${cert.subject}) expired at ${cert.notAfter.toISOString()}, verification time ${at.toISOString()}`,
      { detail: { index, subject: cert.subject, notAfter: cert.notAfter.toISOString(), at: at.toISOString() } },
    );
  }
}

function constraintError(label: string, index: number, cert: Certificate, what: string): VerificationError {
  return new VerificationError('ERR_CHAIN_CONSTRAINTS', `${label} certificate [${index}] (${cert.subject}): ${what}`, {
    detail: { index, subject: cert.subject },
  });
}

/**
 * Validate `[leaf, ...intermediates]` up to a pinned anchor.
 * `intermediates` are ordered from the leaf's issuer upward; the anchor itself may be the last
 * element (it is then matched by DER) or omitted (the last element must be issued by an anchor).
 */
export function verifyChain(leaf: Certificate, intermediates: readonly Certificate[], opts: ChainOptions): VerifiedChain {
  const label = opts.label ?? 'X.509';
  if (opts.anchors.length === 0) {
    throw new VerificationError('ERR_CHAIN_UNTRUSTED', `${label} chain: no trust anchor configured`);
  }
  const candidate = [leaf, ...intermediates];
  const last = candidate[candidate.length - 1] as Certificate;
  let path: Certificate[];
  let anchor = opts.anchors.find((a) => a.sha256 === last.sha256);
  if (anchor && candidate.length > 1) {
    path = candidate;
  } else {
    anchor = opts.anchors.find((a) => signatureValid(last, a) && last.node.checkIssued(a.node));
    if (!anchor) {
      throw new VerificationError(
        'ERR_CHAIN_UNTRUSTED',
        `${label} chain does not end at a pinned root: top certificate ${last.subject} (sha256 ${last.sha256}) is neither a pinned anchor nor issued by one`,
        { detail: { top: last.sha256, anchors: opts.anchors.map((a) => a.sha256) } },
      );
    }
    path = [...candidate, anchor];
  }

  // The anchor must be self-signed (a real root), checked like every other link.
  for (let i = 0; i < path.length; i++) {
    const cert = path[i] as Certificate;
    checkExtensionsAndAlgorithm(cert, i, opts, label);
    const issuer = (i + 1 < path.length ? path[i + 1] : cert) as Certificate;
    if (!cert.node.checkIssued(issuer.node)) {
      // OpenSSL's issuer check also refuses an issuer whose keyUsage forbids certificate signing.
      if (cert.issuer === issuer.subject) {
        throw constraintError(label, i + 1 < path.length ? i + 1 : i, issuer, 'is not allowed to issue certificates (keyUsage lacks keyCertSign)');
      }
      throw new VerificationError(
        'ERR_CHAIN_UNTRUSTED',
        `${label} certificate [${i}] issuer "${cert.issuer}" does not match the subject "${issuer.subject}" of the next certificate`,
        { detail: { index: i } },
      );
    }
    if (!signatureValid(cert, issuer)) {
      throw new VerificationError('ERR_CHAIN_SIGNATURE', `${label} certificate [${i}] (${cert.subject}) signature does not verify with its issuer's key`, {
        detail: { index: i, subject: cert.subject },
      });
    }
    checkValidity(cert, opts.at, label, i);
  }

  // Constraints: every certificate above the leaf is a CA with keyCertSign, and its
  // pathLenConstraint admits the number of non-self-issued intermediates below it.
  const ext = <T>(cert: Certificate, i: number, read: () => T): T => {
    try {
      return read();
    } catch (cause) {
      throw new VerificationError('ERR_CHAIN_CONSTRAINTS', `${label} certificate [${i}] (${cert.subject}) has an unreadable extension`, { cause });
    }
  };
  for (let i = 1; i < path.length; i++) {
    const cert = path[i] as Certificate;
    const bc = ext(cert, i, () => cert.parsed.getExtension(px.BasicConstraintsExtension));
    if (!bc || !bc.ca) throw constraintError(label, i, cert, 'is used as a CA but basicConstraints CA is not set');
    const below = i - 1; // intermediates strictly between this CA and the leaf
    if (bc.pathLength !== undefined && below > bc.pathLength) {
      throw constraintError(label, i, cert, `pathLenConstraint ${bc.pathLength} exceeded by ${below} intermediate(s) below it`);
    }
    const ku = ext(cert, i, () => cert.parsed.getExtension(px.KeyUsagesExtension));
    if (opts.requireCaKeyUsage !== false) {
      if (!ku || (ku.usages & px.KeyUsageFlags.keyCertSign) === 0) {
        throw constraintError(label, i, cert, 'CA certificate lacks keyUsage keyCertSign');
      }
    }
  }
  const leafBc = ext(leaf, 0, () => leaf.parsed.getExtension(px.BasicConstraintsExtension));
  if (opts.leafMustNotBeCa !== false && leafBc?.ca) {
    throw constraintError(label, 0, leaf, 'leaf certificate must not be a CA');
  }
  if (opts.leafKeyUsage && opts.leafKeyUsage.length > 0) {
    const ku = ext(leaf, 0, () => leaf.parsed.getExtension(px.KeyUsagesExtension));
    if (!ku) {
      if (opts.requireLeafKeyUsage) throw constraintError(label, 0, leaf, 'leaf certificate has no keyUsage extension');
    } else {
      for (const u of opts.leafKeyUsage) {
        const flag = USAGE_FLAGS[u] as number;
        if ((ku.usages & flag) === 0) throw constraintError(label, 0, leaf, `leaf certificate lacks keyUsage ${u}`);
      }
    }
  }
  return Object.freeze({ path: Object.freeze(path), anchor });
}

/** SHA-256 (hex) of DER bytes: for pinning anchors given as files. */
export function derSha256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}
