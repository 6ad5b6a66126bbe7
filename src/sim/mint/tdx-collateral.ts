import '../../x509/certificate.js'; // installs the WebCrypto provider for @peculiar/x509
import { createPrivateKey, sign, webcrypto } from 'node:crypto';
import * as px from '@peculiar/x509';
import { INTEL_TD_QE_IDENTITY } from '../../evidence/tdx/constants.js';
import { toHex } from '../../util/bytes.js';
import { toPem } from '../../x509/certificate.js';
import type { TdxTestPki } from './tdx.js';

/**
 * DCAP collateral (`QuoteCollateralV3` JSON) for a simulated platform, signed by the test PKI's
 * root exactly as Intel PCS signs: a "TCB Signing" certificate under the root signs the TCB info
 * and QE identity (ECDSA-P256 r‖s over the JSON text), the root issues the root CA CRL and the PCK
 * CA issues the PCK CRL. Test only; reaches a verifier only through explicit configuration.
 */
export interface TdxCollateralJson {
  tcb_info_issuer_chain: string;
  tcb_info: string;
  tcb_info_signature: string;
  qe_identity_issuer_chain: string;
  qe_identity: string;
  qe_identity_signature: string;
  pck_crl_issuer_chain: string;
  root_ca_crl: string;
  pck_crl: string;
}

type Json = Record<string, unknown>;

export interface MintCollateralOptions {
  now: Date;
  /** Days from `now - 1 day` to nextUpdate of every part. Default 30. */
  validDays?: number;
  /** Edit the TCB info / QE identity objects before they are serialized and signed. */
  editTcbInfo?: (info: Json) => void;
  editQeIdentity?: (identity: Json) => void;
  /** Serial numbers (hex) the PCK CRL lists as revoked. */
  revokedPckSerials?: string[];
}

const svns = (list: number[]) => list.map((svn) => ({ svn }));

/** A TDX TCB info v3 for the PKI's platform: UpToDate at its TCB, OutOfDate (with advisories) below. */
export function defaultTcbInfo(pki: TdxTestPki, issue: Date, next: Date): Json {
  const p = pki.platform;
  const lower = p.sgx.map((s) => Math.max(0, s - 1));
  const zero48 = '00'.repeat(48);
  return {
    id: 'TDX',
    version: 3,
    issueDate: issue.toISOString().replace(/\.\d+Z$/, 'Z'),
    nextUpdate: next.toISOString().replace(/\.\d+Z$/, 'Z'),
    fmspc: p.fmspc.toUpperCase(),
    pceId: p.pceId,
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tdxModule: { mrsigner: zero48, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' },
    tdxModuleIdentities: [
      {
        id: 'TDX_01',
        mrsigner: zero48,
        attributes: '0000000000000000',
        attributesMask: 'FFFFFFFFFFFFFFFF',
        tcbLevels: [
          { tcb: { isvsvn: 4 }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' },
          { tcb: { isvsvn: 2 }, tcbDate: '2023-08-09T00:00:00Z', tcbStatus: 'OutOfDate' },
        ],
      },
    ],
    tcbLevels: [
      { tcb: { sgxtcbcomponents: svns(p.sgx), pcesvn: p.pcesvn, tdxtcbcomponents: svns([5, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' },
      {
        tcb: { sgxtcbcomponents: svns(lower), pcesvn: Math.max(0, p.pcesvn - 2), tdxtcbcomponents: svns([3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) },
        tcbDate: '2018-01-04T00:00:00Z',
        tcbStatus: 'OutOfDate',
        advisoryIDs: ['INTEL-SA-00106', 'INTEL-SA-00837'],
      },
    ],
  };
}

export function defaultQeIdentity(issue: Date, next: Date): Json {
  const id = INTEL_TD_QE_IDENTITY;
  return {
    id: 'TD_QE',
    version: 2,
    issueDate: issue.toISOString().replace(/\.\d+Z$/, 'Z'),
    nextUpdate: next.toISOString().replace(/\.\d+Z$/, 'Z'),
    tcbEvaluationDataNumber: 17,
    miscselect: id.miscselect.toUpperCase(),
    miscselectMask: id.miscselectMask.toUpperCase(),
    attributes: id.attributes.toUpperCase(),
    attributesMask: id.attributesMask.toUpperCase(),
    mrsigner: id.mrsigner.toUpperCase(),
    isvprodid: id.isvprodid,
    tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' }],
  };
}

const ES256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function mintTdxCollateral(pki: TdxTestPki, o: MintCollateralOptions): Promise<TdxCollateralJson> {
  const issue = new Date(o.now.getTime() - 86_400_000);
  const next = new Date(issue.getTime() + (o.validDays ?? 30) * 86_400_000);
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const signer = await px.X509CertificateGenerator.create({
    serialNumber: '0a',
    subject: 'CN=Intel SGX TCB Signing, O=Simulated Intel (test only), L=Santa Clara, ST=CA, C=US',
    issuer: pki.root.subject,
    notBefore: issue,
    notAfter: new Date(issue.getTime() + 7 * 365 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: pki.rootSigningKey,
    signingAlgorithm: ES256,
    extensions: [new px.BasicConstraintsExtension(false, undefined, true), new px.KeyUsagesExtension(px.KeyUsageFlags.digitalSignature | px.KeyUsageFlags.nonRepudiation, true)],
  });
  const signerKey = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
  const signText = (text: string) => toHex(new Uint8Array(sign('sha256', Buffer.from(text, 'utf8'), { key: signerKey, dsaEncoding: 'ieee-p1363' })));
  const tcbInfo = defaultTcbInfo(pki, issue, next);
  o.editTcbInfo?.(tcbInfo);
  const qeIdentity = defaultQeIdentity(issue, next);
  o.editQeIdentity?.(qeIdentity);
  const tcbText = JSON.stringify(tcbInfo);
  const qeText = JSON.stringify(qeIdentity);
  const crl = async (issuer: string, key: webcrypto.CryptoKey, serials: string[]) =>
    toHex(
      new Uint8Array(
        (
          await px.X509CrlGenerator.create({
            issuer,
            thisUpdate: issue,
            nextUpdate: next,
            entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: issue })),
            signingKey: key,
            signingAlgorithm: ES256,
          })
        ).rawData,
      ),
    );
  const signerChain = `${toPem(new Uint8Array(signer.rawData))}${toPem(pki.root)}`;
  return {
    tcb_info_issuer_chain: signerChain,
    tcb_info: tcbText,
    tcb_info_signature: signText(tcbText),
    qe_identity_issuer_chain: signerChain,
    qe_identity: qeText,
    qe_identity_signature: signText(qeText),
    pck_crl_issuer_chain: `${toPem(pki.pckCa)}${toPem(pki.root)}`,
    root_ca_crl: await crl(pki.root.subject, pki.rootSigningKey, ['7f']),
    pck_crl: await crl(pki.pckCa.subject, pki.pckCaSigningKey, ['7e', ...(o.revokedPckSerials ?? [])]),
  };
}
