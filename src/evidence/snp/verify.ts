import { verify as cryptoVerify } from 'node:crypto';
import { VerificationError } from '../../errors/index.js';
import { asVerified, type Verified } from '../../types.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import type { Certificate } from '../../x509/certificate.js';
import { CHAIN_ALGORITHMS, verifyChain } from '../../x509/chain.js';
import { checkNotRevoked, verifyCrl, type Crl } from '../../x509/crl.js';
import { decodeTcb, SIGNED_LENGTH, type Product, type SnpReport, type TcbVersion } from './abi.js';
import { loadAmdRoots, productFromCpuid } from './roots.js';
import { readVcekExtensions } from './vcek.js';

export interface VerifiedSnp extends SnpReport {
  readonly product: Product;
  readonly reportedTcb: TcbVersion;
  /** [VCEK, ASK, ARK] as validated. */
  readonly chain: readonly Certificate[];
}

export interface SnpVerifyOptions {
  /** The VCEK (or VLEK) for this report. */
  vcek: Certificate;
  /** Certificates supplied alongside (e.g. the envelope's vcek_chain_pem after the VCEK): ASK, optionally ARK. */
  chain?: readonly Certificate[];
  /** Product line; otherwise from the VCEK productName, then CPUID. */
  product?: Product;
  /** ARKs to trust instead of the pinned ones (e.g. carried by a verified trust bundle). */
  arks?: readonly Certificate[];
  /** AMD's CRL for the product (issued by the ARK, from KDS): checked when given, the ASK/ASVK must not be on it. */
  crl?: Crl;
  at: Date;
}

/** From `leaf` up through the supplied certificates by issuer name (KDS serves ASK, ARK; some bundle ASK, ARK, ASVK): the order verifyChain wants, unrelated ones dropped. */
function issuerPath(leaf: Certificate, supplied: readonly Certificate[]): Certificate[] {
  const path: Certificate[] = [];
  for (let cur = leaf; cur.issuer !== cur.subject; ) {
    const next = supplied.find((c) => c.subject === cur.issuer && c.sha256 !== leaf.sha256 && !path.includes(c));
    if (!next) break;
    path.push(next);
    cur = next;
  }
  return path;
}

/**
 * VCEK → ASK → ARK (RSA-PSS) to a pinned or injected ARK, valid at `at`; the VCEK's TCB and
 * hwID extensions must match the report; then ECDSA P-384/SHA-384 over bytes [0, 0x2A0).
 */
export function verifySnpReport(report: SnpReport, opts: SnpVerifyOptions): Verified<VerifiedSnp> {
  if (report.SIGNING_KEY === 'none') throw new VerificationError('ERR_SNP_UNSIGNED', 'the report says it is not signed (SIGNING_KEY = none)');
  const ext = readVcekExtensions(opts.vcek);
  const product = opts.product ?? ext.product ?? productFromCpuid(report.CPUID);
  if (!product) throw new VerificationError('ERR_SNP_PRODUCT_UNKNOWN', 'cannot tell the product line (Milan, Genoa, Turin): give it explicitly');
  if (ext.product && ext.product !== product) {
    throw new VerificationError('ERR_SNP_PRODUCT_MISMATCH', `expected a ${product} VCEK, the certificate says ${ext.productName}`);
  }
  const pinned = loadAmdRoots(product);
  const anchors = opts.arks && opts.arks.length > 0 ? opts.arks : [pinned.ark];
  // The ASK comes from the supplied chain when given (a VLEK's ASVK must be supplied), else the pinned one.
  // Ordered by issuer; when none of them issued the VCEK they go to verifyChain as given, which names the mismatch.
  const ordered = issuerPath(opts.vcek, opts.chain ?? []);
  const supplied = ordered.length > 0 ? ordered : (opts.chain ?? []).filter((c) => c.sha256 !== opts.vcek.sha256);
  const intermediates = supplied.length > 0 ? supplied : [pinned.ask];
  const chain = verifyChain(opts.vcek, intermediates, { at: opts.at, anchors, label: report.SIGNING_KEY === 'vlek' ? 'VLEK' : 'VCEK', signatureAlgorithms: CHAIN_ALGORITHMS.amd });

  const cpuProduct = productFromCpuid(report.CPUID);
  if (cpuProduct && cpuProduct !== product) {
    throw new VerificationError('ERR_SNP_PRODUCT_MISMATCH', `expected a ${product} report (from ${ext.productName ? `the VCEK's productName ${ext.productName}` : 'the caller'}), CPUID says ${cpuProduct}`);
  }
  // Every SPL the product's TCB layout has must be on the certificate (go-sev-guest kds): a VCEK without one cannot vouch for it.
  const missing = (['bootloader', 'tee', 'snp', 'microcode', ...(product === 'turin' ? (['fmc'] as const) : [])] as const).filter((k) => ext.tcb[k] === undefined);
  if (missing.length > 0) throw new VerificationError('ERR_SNP_VCEK_EXTENSION', `expected the ${report.SIGNING_KEY.toUpperCase()} to carry every SPL extension of a ${product} TCB, missing ${missing.join(', ')}`);
  if (opts.crl) {
    const ark = chain.path[chain.path.length - 1] as Certificate;
    verifyCrl(opts.crl, ark, opts.at, { field: 'AMD CRL', staleCode: 'ERR_SNP_CRL_STALE' });
    for (const cert of chain.path.slice(0, -1)) if (cert.issuer === ark.subject) checkNotRevoked(cert, opts.crl, cert === opts.vcek ? 'VCEK' : 'ASK');
  }
  const reportedTcb = decodeTcb(report.REPORTED_TCB, product);
  for (const k of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
    const want = ext.tcb[k];
    if (want !== undefined && want !== reportedTcb[k]) {
      throw new VerificationError('ERR_SNP_VCEK_TCB_MISMATCH', `the VCEK was issued for ${k} SPL ${want}, REPORTED_TCB says ${String(reportedTcb[k])}`);
    }
  }
  if (report.SIGNING_KEY === 'vcek' && !report.MASK_CHIP_KEY) {
    // Turin VCEKs carry an 8-byte hwID (KDS asks for 8 bytes): CHIP_ID[0:8], the rest of CHIP_ID zero (go-sev-guest kds).
    const chip = product === 'turin' && report.CHIP_ID.subarray(8).every((b) => b === 0) ? report.CHIP_ID.subarray(0, 8) : report.CHIP_ID;
    if (!ext.hwId || !bytesEqual(ext.hwId, chip)) {
      throw new VerificationError('ERR_SNP_VCEK_HWID_MISMATCH', `the VCEK hwID does not equal CHIP_ID ${toHex(report.CHIP_ID).slice(0, 16)}…`);
    }
  }
  const key = opts.vcek.node.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new VerificationError('ERR_SNP_VCEK_KEY', 'expected the VCEK to hold a P-384 key');
  }
  if (!cryptoVerify('sha384', report.raw.subarray(0, SIGNED_LENGTH), { key, dsaEncoding: 'ieee-p1363' }, report.signatureP1363)) {
    throw new VerificationError('ERR_SNP_SIGNATURE', 'the report signature does not verify with the VCEK');
  }
  return asVerified({ ...report, product, reportedTcb, chain: chain.path });
}
