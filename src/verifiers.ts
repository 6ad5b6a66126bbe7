import { toAttestationError } from './errors/attestation.js';
import { verifyAuditFiles, type AuditReport } from './audit/verify.js';
import { evaluateNitroPolicy, loadNitroRoots, parseNitroDocument, verifyNitroDocument as verifyParsedNitro, type NitroPolicy, type VerifiedNitro } from './evidence/nitro/index.js';
import { evaluateSnpPolicy, parseSnpReport, verifySnpReport as verifyParsedSnp, type Product, type SnpPolicy, type VerifiedSnp } from './evidence/snp/index.js';
import { evaluateTdxPolicy, loadIntelSgxRoots, parseTdxQuote, verifyTdxQuote as verifyParsedTdx, type TdxPolicy, type TdxPolicyReport, type VerifiedTdxQuote } from './evidence/tdx/index.js';
import { createStaticJwks } from './receipts/jwks.js';
import { evaluateReceipt, type ReceiptExpectations, type ReceiptHooks, type ReceiptVerdict } from './receipts/verdict.js';
import { verifyReceiptJws } from './receipts/verify.js';
import { loadReleaseRootKey } from './trust/release-root.js';
import { verifyTrustBundle as verifyBundleJws, type TrustBundle } from './trust/verify-bundle.js';
import type { Verified } from './types.js';
import { parseCertificate, parsePemCertificates, type Certificate } from './x509/certificate.js';

/**
 * The verifiers `tresor-verify` runs, as functions: bytes in, parse → verify → policy, time and
 * trust roots injected (`at`; roots as PEM text, the pinned vendor roots when absent). Every
 * failure is thrown as an `AttestationError` subclass with the taxonomy's stable `code`.
 */
function mapped<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => {
    let out: R;
    try {
      out = fn(...args);
    } catch (e) {
      throw toAttestationError(e);
    }
    return out instanceof Promise ? (out.catch((e: unknown) => Promise.reject(toAttestationError(e))) as R) : out;
  };
}

const pem = (text: string | undefined, label: string): Certificate[] | undefined => (text === undefined ? undefined : parsePemCertificates(text, label));

/**
 * An AWS Nitro Enclaves attestation document (COSE_Sign1, CBOR): certificate chain to the pinned
 * AWS Nitro root (or `roots`, PEM) valid at `at`, the ES384 signature, then the policy (allowed
 * PCR sets, debug enclaves refused, nonce / user data / public key, age: default 600 s).
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { verifyNitroDocument } from 'tresor-attest'
 * const doc = verifyNitroDocument(readFileSync('attestation.cbor'), { at: new Date(), policy: { allowedPcrs: [{ 0: pcr0Hex }] } })
 * console.log(doc.moduleId, doc.pcrs.get(0))
 * ```
 */
export const verifyNitroDocument = mapped(
  (document: Uint8Array, opts: { at: Date; roots?: string; policy?: NitroPolicy }): Verified<VerifiedNitro> => {
    const verified = verifyParsedNitro(parseNitroDocument(document), { at: opts.at, roots: pem(opts.roots, 'roots') ?? loadNitroRoots() });
    evaluateNitroPolicy(verified, opts.policy ?? {}, { at: opts.at });
    return verified;
  },
);

/**
 * An AMD SEV-SNP attestation report (1184 bytes): VCEK → ASK → ARK to the pinned AMD roots (or
 * `arks`, PEM) valid at `at`, the VCEK's TCB and chip id matching the report, the ECDSA P-384
 * signature, then the policy (measurements, REPORT_DATA, `minTcb`, debug, VMPL).
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { verifySnpReport } from 'tresor-attest'
 * const report = verifySnpReport(readFileSync('report.bin'), {
 *   at: new Date(), vcek: readFileSync('vcek.pem', 'utf8'), policy: { measurements: [measurementHex] },
 * })
 * ```
 */
export const verifySnpReport = mapped(
  (report: Uint8Array, opts: { at: Date; vcek: string | Uint8Array; chain?: string; arks?: string; product?: Product; policy?: SnpPolicy }): Verified<VerifiedSnp> => {
    const vcek = typeof opts.vcek === 'string' ? (parsePemCertificates(opts.vcek, 'vcek')[0] as Certificate) : parseCertificate(opts.vcek, 'vcek');
    const chain = pem(opts.chain, 'chain');
    const arks = pem(opts.arks, 'arks');
    const verified = verifyParsedSnp(parseSnpReport(report), { at: opts.at, vcek, ...(chain ? { chain } : {}), ...(arks ? { arks } : {}), ...(opts.product ? { product: opts.product } : {}) });
    evaluateSnpPolicy(verified, opts.policy ?? {});
    return verified;
  },
);

/**
 * An Intel TDX quote (v4): PCK chain to the pinned Intel SGX Root CA (or `roots`, PEM) valid at
 * `at`, the QE report and quote signatures, then the policy (MRTD, RTMRs, REPORTDATA, debug);
 * returns the verified quote and what the policy checked.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { verifyTdxQuote } from 'tresor-attest'
 * const { quote, report } = verifyTdxQuote(readFileSync('quote.bin'), { at: new Date(), policy: { allowedMeasurements: [{ mrtd: mrtdHex }] } })
 * ```
 */
export const verifyTdxQuote = mapped(
  (quote: Uint8Array, opts: { at: Date; roots?: string; policy?: TdxPolicy }): { quote: Verified<VerifiedTdxQuote>; report: TdxPolicyReport } => {
    const verified = verifyParsedTdx(parseTdxQuote(quote), { at: opts.at, roots: pem(opts.roots, 'roots') ?? loadIntelSgxRoots() });
    return { quote: verified, report: evaluateTdxPolicy(verified, opts.policy ?? {}) };
  },
);

/**
 * A Tresor receipt (compact JWS, ES256 only) against a JWKS given as data, then every claim the
 * caller can check (`expect`: receipt id, request and response body digests, route, `iat`).
 * Resolves with the verdict and its checks; a bad signature or algorithm throws. The verdict
 * follows docs/wire.md §2.1: a receipt that embeds router evidence is `unverifiable`
 * (`ERR_RECEIPT_ATTESTATION_UNCHECKED`) unless `hooks.verifyRouterAttestation` checks it.
 *
 * @example
 * ```ts
 * import { verifyReceipt } from 'tresor-attest'
 * const verdict = await verifyReceipt(jws, { jwks: jwksJson, expect: { receiptId, requestSha256, responseSha256 } })
 * if (verdict.verdict !== 'verified') console.error(verdict.checks)
 * ```
 */
export const verifyReceipt = mapped(
  async (jws: string, opts: { jwks: string | Uint8Array; expect?: ReceiptExpectations; hooks?: ReceiptHooks }): Promise<ReceiptVerdict> => {
    const { resolve } = await createStaticJwks(opts.jwks);
    return evaluateReceipt(await verifyReceiptJws(jws.trim(), { resolveKey: resolve }), opts.expect ?? {}, opts.hooks);
  },
);

/**
 * Re-verify an audit log's hash chain (files, or a directory of rotated files): every line
 * parses, `seq` counts up, `prev` chains, the head matches. Breaks are reported, not thrown.
 *
 * @example
 * ```ts
 * import { verifyAuditLog } from 'tresor-attest'
 * const report = await verifyAuditLog('/var/lib/tresor-attest/audit')
 * if (report.breaks.length > 0) process.exitCode = 4
 * ```
 */
export const verifyAuditLog = mapped((paths: string | readonly string[]): Promise<AuditReport> => verifyAuditFiles(typeof paths === 'string' ? [paths] : paths));

/**
 * A Tresor trust bundle (EdDSA JWS) against the pinned release-root key (PEM, JWK or hex),
 * valid at `at`: the allowlists, `min_tcb`, AMD ARKs and receipt keys it carries.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { verifyTrustBundle } from 'tresor-attest'
 * const bundle = verifyTrustBundle(readFileSync('router.json', 'utf8'), { releaseRoot: readFileSync('release-root.pub'), at: new Date() })
 * console.log(bundle.version, bundle.allowedMeasurements)
 * ```
 */
export const verifyTrustBundle = mapped(
  (jws: string, opts: { releaseRoot: string | Uint8Array; at: Date }): Verified<TrustBundle> =>
    verifyBundleJws(jws.trim(), { rootKey: loadReleaseRootKey(typeof opts.releaseRoot === 'string' ? Buffer.from(opts.releaseRoot) : opts.releaseRoot), at: opts.at }),
);
