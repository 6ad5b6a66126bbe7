import 'reflect-metadata';
import { constants, verify as cryptoVerify } from 'node:crypto';
import * as px from '@peculiar/x509';
import { MalformedError, VerificationError } from '../errors/index.js';
import type { Certificate } from './certificate.js';
import { children, oidText, readTlv } from './der.js';

/** A parsed X.509 CRL (RFC 5280 §5): what revocation checks need, and the bytes its signature covers. */
export interface Crl {
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers, lowercase hex without leading zeros. */
  readonly revoked: ReadonlySet<string>;
  readonly tbs: Uint8Array;
  readonly signatureOid: string;
  readonly signature: Uint8Array;
}

export const MAX_CRL_BYTES = 1024 * 1024;
/**
 * Signature algorithms a CRL may use, by OID: ECDSA with SHA-256 / SHA-384 (Intel signs with
 * P-256/SHA-256) and RSASSA-PSS, verified as SHA-384 with a 48-byte salt only (AMD's ARK).
 */
const CRL_SIGNATURE_HASH: Record<string, string> = { '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.113549.1.1.10': 'sha384' };
const RSA_PSS_OID = '1.2.840.113549.1.1.10';

export const normalizeSerial = (hex: string) => hex.toLowerCase().replace(/^0+(?=.)/, '');

/** Parse DER. Throws only MalformedError(`code`). */
export function parseCrl(der: Uint8Array, field: string, code: string): Crl {
  if (der.length === 0 || der.length > MAX_CRL_BYTES) throw new MalformedError(code, `expected ${field} of 1..${MAX_CRL_BYTES} bytes, got ${der.length}`);
  try {
    const outer = readTlv(der, 0, code);
    if (outer.raw.length !== der.length) throw new MalformedError(code, `${field} has trailing bytes after the CRL`);
    const [tbs, alg, sig] = children(outer, code);
    if (!tbs || !alg || !sig || sig.tag !== 0x03) throw new MalformedError(code, `${field} is not a CertificateList`);
    const algOid = children(alg, code)[0];
    if (!algOid || algOid.tag !== 0x06) throw new MalformedError(code, `${field} has no signature algorithm`);
    const crl = new px.X509Crl(der);
    return Object.freeze({
      issuer: crl.issuer,
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      revoked: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
      tbs: tbs.raw,
      signatureOid: oidText(algOid.content),
      signature: sig.content.subarray(1),
    });
  } catch (cause) {
    if (cause instanceof MalformedError) throw cause;
    throw new MalformedError(code, `${field} is not a valid DER X.509 CRL`, { cause });
  }
}

/**
 * The CRL is issued by `issuer` (name and signature, from an allowlisted algorithm) and current
 * at `at` (thisUpdate ≤ at ≤ nextUpdate; a CRL without nextUpdate is refused).
 */
export function verifyCrl(crl: Crl, issuer: Certificate, at: Date, o: { field: string; staleCode: string }): void {
  if (crl.issuer !== issuer.subject) {
    throw new VerificationError('ERR_CRL_ISSUER', `expected ${o.field} issued by "${issuer.subject}", got issuer "${crl.issuer}"`);
  }
  const hash = CRL_SIGNATURE_HASH[crl.signatureOid];
  if (!hash) throw new VerificationError('ERR_CRL_SIGNATURE', `expected ${o.field} signed with ECDSA-SHA256/384 or RSA-PSS-SHA384, got algorithm ${crl.signatureOid}`);
  let ok = false;
  try {
    const key = crl.signatureOid === RSA_PSS_OID ? { key: issuer.node.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 } : issuer.node.publicKey;
    ok = cryptoVerify(hash, crl.tbs, key, crl.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new VerificationError('ERR_CRL_SIGNATURE', `${o.field} signature does not verify with the key of "${issuer.subject}"`);
  const t = Math.floor(at.getTime() / 1000);
  if (t < Math.floor(crl.thisUpdate.getTime() / 1000) || !crl.nextUpdate || t > Math.floor(crl.nextUpdate.getTime() / 1000)) {
    throw new VerificationError(
      o.staleCode,
      `expected ${o.field} current at ${at.toISOString()}, got thisUpdate ${crl.thisUpdate.toISOString()} nextUpdate ${crl.nextUpdate?.toISOString() ?? 'absent'}`,
      { detail: { field: o.field, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString() ?? null, at: at.toISOString() } },
    );
  }
}

/** Refuse a certificate the CRL lists. The CRL must have been verified against the certificate's issuer. */
export function checkNotRevoked(cert: Certificate, crl: Crl, label: string): void {
  if (cert.issuer !== crl.issuer) {
    throw new VerificationError('ERR_CRL_ISSUER', `expected a CRL from "${cert.issuer}" for ${label} (${cert.subject}), got one from "${crl.issuer}"`);
  }
  const serial = normalizeSerial(cert.parsed.serialNumber);
  if (crl.revoked.has(serial)) {
    throw new VerificationError('ERR_CHAIN_REVOKED', `${label} certificate (${cert.subject}, serial ${serial}) is revoked by the CRL of "${crl.issuer}"`, { detail: { serial } });
  }
}
