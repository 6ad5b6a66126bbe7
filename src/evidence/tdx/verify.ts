import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, VerificationError } from '../../errors/index.js';
import { asVerified, type Verified } from '../../types.js';
import { bytesEqual, isAllZero, sha256, toBase64Url, toHex } from '../../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { CHAIN_ALGORITHMS, verifyChain } from '../../x509/chain.js';
import { checkNotRevoked, verifyCrl } from '../../x509/crl.js';
import type { TcbStatus, TdxCollateral } from './collateral.js';
import { INTEL_QE_VENDOR_ID, INTEL_SGX_ROOT_SHA256, INTEL_TD_QE_IDENTITY, QE_REPORT_DATA_OFFSET } from './constants.js';
import type { TdxQuote } from './parse.js';
import { checkQeIdentity, evaluateTcb, readPckTcb, type TcbEvaluation } from './tcb.js';

export interface VerifiedTdxQuote extends TdxQuote {
  /** [PCK leaf, PCK CA, Intel SGX Root CA] as validated. */
  readonly pckChain: readonly Certificate[];
  /** The converged TCB status from Intel's collateral, or `unknown` when none was given. */
  readonly tcbStatus: TcbStatus | 'unknown';
  /** Present when collateral was given and verified. */
  readonly tcb?: TcbEvaluation;
}

/** The pinned Intel SGX Root CA shipped in certs/, checked against its DER fingerprint at load. */
export function loadIntelSgxRoots(path: URL | string = new URL('../../../certs/intel-sgx-root-ca.pem', import.meta.url)): Certificate[] {
  const roots = parsePemCertificates(readFileSync(path, 'utf8'), 'intel-sgx-root-ca.pem');
  if (roots.length !== 1 || roots[0]?.sha256 !== INTEL_SGX_ROOT_SHA256) {
    throw new ConfigError('ERR_CONFIG_TRUST_ROOT', `certs/intel-sgx-root-ca.pem is not the Intel SGX Root CA (expected DER SHA-256 ${INTEL_SGX_ROOT_SHA256})`);
  }
  return roots;
}

/** A raw P-256 public key x‖y (64 bytes) as a KeyObject. */
function p256Key(raw: Uint8Array): KeyObject {
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: toBase64Url(raw.subarray(0, 32)), y: toBase64Url(raw.subarray(32, 64)) },
      format: 'jwk',
    });
  } catch (cause) {
    throw new VerificationError('ERR_TDX_QUOTE_SIGNATURE', 'expected the attestation key to be a point on P-256, got an invalid point', { cause });
  }
}

function stale(what: string, issued: Date, next: Date, at: Date): void {
  if (at.getTime() < issued.getTime() || at.getTime() > next.getTime()) {
    throw new VerificationError('ERR_TDX_COLLATERAL_STALE', `expected ${what} current at ${at.toISOString()}, got issueDate ${issued.toISOString()} nextUpdate ${next.toISOString()}`, {
      detail: { what, issueDate: issued.toISOString(), nextUpdate: next.toISOString(), at: at.toISOString() },
    });
  }
}

/**
 * Every signature of the collateral to the pinned root, the CRLs against the PCK chain, and the
 * freshness of each part at `at` (stale collateral: `ERR_TDX_COLLATERAL_STALE`).
 */
export function verifyTdxCollateral(c: TdxCollateral, o: { at: Date; roots: readonly Certificate[]; pckChain: readonly Certificate[] }): void {
  const root = o.pckChain[o.pckChain.length - 1] as Certificate;
  verifyCrl(c.rootCaCrl, root, o.at, { field: 'root CA CRL', staleCode: 'ERR_TDX_COLLATERAL_STALE' });
  const signed = (what: string, chainCerts: readonly Certificate[], text: string, sig: Uint8Array) => {
    const [leaf, ...rest] = chainCerts as [Certificate, ...Certificate[]];
    const chain = verifyChain(leaf, rest, { at: o.at, anchors: o.roots, label: what, signatureAlgorithms: CHAIN_ALGORITHMS.intel });
    for (const cert of chain.path.slice(0, -1)) if (cert.issuer === root.subject) checkNotRevoked(cert, c.rootCaCrl, what);
    if (!es256(Buffer.from(text, 'utf8'), leaf.node.publicKey, sig)) {
      throw new VerificationError('ERR_TDX_COLLATERAL_SIGNATURE', `${what} signature does not verify with its signing certificate (${leaf.subject})`);
    }
  };
  signed('TCB info', c.tcbInfoChain, c.tcbInfoText, c.tcbInfoSignature);
  stale('TCB info', c.tcbInfo.issueDate, c.tcbInfo.nextUpdate, o.at);
  signed('QE identity', c.qeIdentityChain, c.qeIdentityText, c.qeIdentitySignature);
  stale('QE identity', c.qeIdentity.issueDate, c.qeIdentity.nextUpdate, o.at);
  const [crlSigner, ...crlRest] = c.pckCrlChain as [Certificate, ...Certificate[]];
  verifyChain(crlSigner, crlRest, { at: o.at, anchors: o.roots, label: 'PCK CRL issuer', leafMustNotBeCa: false, signatureAlgorithms: CHAIN_ALGORITHMS.intel });
  verifyCrl(c.pckCrl, crlSigner, o.at, { field: 'PCK CRL', staleCode: 'ERR_TDX_COLLATERAL_STALE' });
  // The PCK CA is revoked (or not) by the root's CRL, the PCK leaf by its CA's CRL.
  const [pck, pckCa] = o.pckChain as [Certificate, Certificate];
  checkNotRevoked(pckCa, c.rootCaCrl, 'PCK CA');
  checkNotRevoked(pck, c.pckCrl, 'PCK');
}

function es256(data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean {
  try {
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

/**
 * DCAP quote verification without collateral (Intel DCAP QVL §"quote verification", checks 1–4 of
 * shared/reference/tdx.md):
 *  1. the PCK chain in the quote validates to a pinned Intel SGX Root CA at `at`;
 *  2. the QE report is signed by the PCK leaf's key;
 *  3. QE_report.REPORTDATA = SHA-256(attestation_key ‖ qe_auth_data) ‖ 0^32 (binds the attestation key to the QE);
 *  4. the quote signature over quote[0:632] verifies with the attestation key.
 * Then the Quoting Enclave's identity (MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES): against Intel's
 * signed QE identity when collateral is given, else against Intel's production TD QE (pinned).
 * With collateral, every part of it is verified (`verifyTdxCollateral`) and the TCB level is
 * evaluated; without, TCB status is reported as `unknown`.
 */
export function verifyTdxQuote(quote: TdxQuote, opts: { at: Date; roots: readonly Certificate[]; collateral?: TdxCollateral }): Verified<VerifiedTdxQuote> {
  if (quote.qeVendorId !== INTEL_QE_VENDOR_ID) {
    throw new VerificationError('ERR_TDX_QE_VENDOR', `expected header.qe_vendor_id ${INTEL_QE_VENDOR_ID} (Intel), got ${quote.qeVendorId}`);
  }
  const certs = parsePemCertificates(quote.pckChainPem, 'PCK chain');
  const [leaf, ...rest] = certs;
  if (!leaf) throw new VerificationError('ERR_TDX_PCK_CHAIN', 'expected a PCK certificate chain in the quote, got none');
  // Intel's PCK Platform/Processor CA and Root CA carry keyUsage keyCertSign|cRLSign, so the default CA key-usage check applies.
  const chain = verifyChain(leaf, rest, { at: opts.at, anchors: opts.roots, label: 'PCK', signatureAlgorithms: CHAIN_ALGORITHMS.intel });
  const pckKey = leaf.node.publicKey;
  if (pckKey.asymmetricKeyType !== 'ec' || pckKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    // Unreachable for a chain Intel issued; kept so a wrong key type can never be "verified".
    throw new VerificationError('ERR_TDX_QE_REPORT_SIGNATURE', `expected the PCK certificate to hold a P-256 key, got ${pckKey.asymmetricKeyType} ${pckKey.asymmetricKeyDetails?.namedCurve ?? ''}`);
  }
  if (!es256(quote.qeReport, pckKey, quote.qeReportSignature)) {
    throw new VerificationError('ERR_TDX_QE_REPORT_SIGNATURE', 'the QE report signature does not verify with the PCK certificate key');
  }
  const expectedBinding = sha256(quote.attestationKey, quote.qeAuthData);
  const qeReportData = quote.qeReport.subarray(QE_REPORT_DATA_OFFSET, QE_REPORT_DATA_OFFSET + 64);
  if (!bytesEqual(qeReportData.subarray(0, 32), expectedBinding) || !isAllZero(qeReportData.subarray(32))) {
    throw new VerificationError(
      'ERR_TDX_QE_BINDING',
      `expected QE report REPORTDATA = SHA-256(attestation_key ‖ qe_auth_data) ‖ 0^32 = ${toHex(expectedBinding)}…, got ${toHex(qeReportData.subarray(0, 32))}…`,
    );
  }
  if (!es256(quote.signedBytes, p256Key(quote.attestationKey), quote.quoteSignature)) {
    throw new VerificationError('ERR_TDX_QUOTE_SIGNATURE', 'the quote signature over header ‖ TD report does not verify with the attestation key');
  }
  if (!opts.collateral) {
    checkQeIdentity(quote.qeReportBody, INTEL_TD_QE_IDENTITY, "Intel's production TD QE, pinned");
    return asVerified({ ...quote, pckChain: chain.path, tcbStatus: 'unknown' as const });
  }
  if (chain.path.length !== 3) throw new VerificationError('ERR_TDX_PCK_CHAIN', `expected a PCK chain of leaf, PCK CA and root, got ${chain.path.length} certificates`);
  verifyTdxCollateral(opts.collateral, { at: opts.at, roots: opts.roots, pckChain: chain.path });
  const tcb = evaluateTcb({ body: quote.body, qe: quote.qeReportBody, pck: readPckTcb(leaf), tcbInfo: opts.collateral.tcbInfo, qeIdentity: opts.collateral.qeIdentity });
  return asVerified({ ...quote, pckChain: chain.path, tcbStatus: tcb.status, tcb });
}
