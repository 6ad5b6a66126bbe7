import '../../x509/certificate.js'; // installs the WebCrypto provider for @peculiar/x509
import { createPrivateKey, createPublicKey, sign, webcrypto, type KeyObject } from 'node:crypto';
import * as px from '@peculiar/x509';
import {
  ATT_KEY_TYPE_ECDSA_P256,
  BODY_TYPE_TD15,
  CERT_TYPE_PCK_CHAIN,
  CERT_TYPE_QE_REPORT,
  INTEL_QE_VENDOR_ID,
  INTEL_TD_QE_IDENTITY,
  QE,
  QE_REPORT_BYTES,
  QE_REPORT_DATA_OFFSET,
  QUOTE_VERSION,
  QUOTE_VERSION_5,
  TD,
  TD15,
  TD15_REPORT_BYTES,
  TD_REPORT_BYTES,
  TEE_TYPE_TDX,
} from '../../evidence/tdx/constants.js';
import { DSTACK_RUNTIME_EVENT_TYPE, eventDigest, replayRtmr, type DstackEvent } from '../../evidence/tdx/eventlog.js';
import { concatBytes, fromBase64Url, fromHex, sha256, toHex, utf8 } from '../../util/bytes.js';
import { parseCertificate, toPem, type Certificate } from '../../x509/certificate.js';

/**
 * An Intel-like DCAP PKI for the simulator and tests: a self-signed "SGX Root CA" (P-256) → a
 * "PCK Platform CA" → a PCK leaf, and a Quoting Enclave attestation key. Quotes minted with it
 * have Intel's exact v4 layout and verify with `verifyTdxQuote` given `root` as the only anchor.
 * Never a default of the daemon: it reaches a verifier only through explicit configuration.
 */
export interface TdxTestPki {
  root: Certificate;
  pckCa: Certificate;
  pck: Certificate;
  pckKey: KeyObject;
  /** Signing keys of the root and the PCK CA (for collateral: TCB signing certificate, CRLs). */
  rootSigningKey: webcrypto.CryptoKey;
  pckCaSigningKey: webcrypto.CryptoKey;
  /** What the PCK leaf's Intel SGX extension says. */
  platform: PckPlatform;
  attestationKey: KeyObject;
  /** Raw x‖y of the attestation key, as the quote carries it. */
  attestationKeyRaw: Uint8Array;
}

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ES256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

async function exportPrivate(key: webcrypto.CryptoKey): Promise<KeyObject> {
  return createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)), format: 'der', type: 'pkcs8' });
}

/** The platform a PCK certificate describes (its Intel SGX extension). */
export interface PckPlatform {
  fmspc: string;
  pceId: string;
  sgx: number[];
  pcesvn: number;
}
/** The FMSPC and TCB of the real dcap-qvl sample platform (test/vectors/tdx-dcap-qvl-quote-2025-06.*). */
export const TEST_PLATFORM: PckPlatform = { fmspc: 'b0c06f000000', pceId: '0000', sgx: [3, 3, 25, 27, 4, 255, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0], pcesvn: 13 };

/** DER: tag, definite length, content. */
export function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concatBytes(...parts);
  const n = body.length;
  const len = n < 0x80 ? Uint8Array.of(n) : n < 0x100 ? Uint8Array.of(0x81, n) : Uint8Array.of(0x82, n >> 8, n & 0xff);
  return concatBytes(Uint8Array.of(tag), len, body);
}
const derOid = (oid: string) => {
  const [a, b, ...rest] = oid.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const v of rest) {
    const bytes = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) bytes.unshift((x & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return der(0x06, Uint8Array.from(out));
};
const derInt = (v: number) => der(0x02, v >= 0x80 ? Uint8Array.of(0, v) : Uint8Array.of(v));

/** Intel's SGX extension (1.2.840.113741.1.13.1) as a PCK certificate carries it. */
export function sgxExtension(p: PckPlatform): px.Extension {
  const base = '1.2.840.113741.1.13.1';
  const entry = (oid: string, value: Uint8Array) => der(0x30, derOid(oid), value);
  const tcb = der(
    0x30,
    ...p.sgx.map((svn, i) => entry(`${base}.2.${i + 1}`, derInt(svn))),
    entry(`${base}.2.17`, derInt(p.pcesvn)),
    entry(`${base}.2.18`, der(0x04, Uint8Array.from(p.sgx))),
  );
  const value = der(0x30, entry(`${base}.1`, der(0x04, new Uint8Array(16).fill(0x5a))), entry(`${base}.2`, tcb), entry(`${base}.3`, der(0x04, fromHex(p.pceId))), entry(`${base}.4`, der(0x04, fromHex(p.fmspc))), entry(`${base}.5`, der(0x0a, Uint8Array.of(0))));
  return new px.Extension(base, false, value);
}

export async function createTdxTestPki(opts: { now?: Date; platform?: PckPlatform } = {}): Promise<TdxTestPki> {
  const now = opts.now ?? new Date();
  const platform = opts.platform ?? TEST_PLATFORM;
  const subtle = webcrypto.subtle;
  const gen = async () => (await subtle.generateKey(P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const [rootKeys, caKeys, pckKeys, attKeys] = await Promise.all([gen(), gen(), gen(), gen()]);
  const name = (cn: string) => `CN=${cn}, O=Simulated Intel (test only), L=Santa Clara, ST=CA, C=US`;
  const notBefore = new Date(now.getTime() - 86_400_000);
  const years = (n: number) => new Date(now.getTime() + n * 365 * 86_400_000);
  const ca = [new px.BasicConstraintsExtension(true, undefined, true), new px.KeyUsagesExtension(px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign, true)];
  const root = await px.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: name('Intel SGX Root CA'), notBefore, notAfter: years(25), keys: rootKeys, signingAlgorithm: ES256, extensions: ca });
  const pckCa = await px.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: name('Intel SGX PCK Platform CA'),
    issuer: root.subject,
    notBefore,
    notAfter: years(15),
    publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ES256,
    extensions: [new px.BasicConstraintsExtension(true, 0, true), ca[1] as px.Extension],
  });
  const pck = await px.X509CertificateGenerator.create({
    serialNumber: '03',
    subject: name('Intel SGX PCK Certificate'),
    issuer: pckCa.subject,
    notBefore,
    notAfter: years(7),
    publicKey: pckKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ES256,
    extensions: [new px.BasicConstraintsExtension(false, undefined, true), new px.KeyUsagesExtension(px.KeyUsageFlags.digitalSignature | px.KeyUsageFlags.nonRepudiation, true), sgxExtension(platform)],
  });
  const attestationKey = await exportPrivate(attKeys.privateKey);
  const jwk = createPublicKey(attestationKey).export({ format: 'jwk' });
  return {
    root: parseCertificate(new Uint8Array(root.rawData)),
    pckCa: parseCertificate(new Uint8Array(pckCa.rawData)),
    pck: parseCertificate(new Uint8Array(pck.rawData)),
    pckKey: await exportPrivate(pckKeys.privateKey),
    rootSigningKey: rootKeys.privateKey,
    pckCaSigningKey: caKeys.privateKey,
    platform,
    attestationKey,
    attestationKeyRaw: concatBytes(fromBase64Url(jwk.x as string), fromBase64Url(jwk.y as string)),
  };
}

export interface MintTdxOptions {
  /** The 64-byte REPORTDATA (the protocol's binding). */
  reportData: Uint8Array;
  /** 48-byte measurements; absent ones are a fixed pattern. */
  mrtd?: Uint8Array;
  rtmr0?: Uint8Array;
  rtmr1?: Uint8Array;
  rtmr2?: Uint8Array;
  rtmr3?: Uint8Array;
  /** Set TDATTRIBUTES.DEBUG. */
  debug?: boolean;
  /** 5: a v5 quote with a TDX 1.5 body (type 3). Default 4. */
  version?: 4 | 5;
  /** TEE_TCB_SVN (16 bytes); default module SVN 5, version 1, microcode 2. */
  teeTcbSvn?: Uint8Array;
  /** TDATTRIBUTES (8 bytes); default SEPT_VE_DISABLE only (DEBUG with `debug`). */
  tdAttributes?: Uint8Array;
  /** v5 only: MRSERVICETD (48 bytes, default zero). */
  mrServiceTd?: Uint8Array;
  /** The QE report's identity; default Intel's production TD QE, ISVSVN 4. */
  qe?: { mrSigner?: Uint8Array; isvProdId?: number; isvSvn?: number; attributes?: Uint8Array; miscSelect?: number };
  /** Fault knobs: break one of the four DCAP checks. */
  breakQuoteSignature?: boolean;
  breakQeBinding?: boolean;
}

const pattern = (seed: number) => new Uint8Array(48).map((_, i) => (i * 31 + seed) & 0xff);
const le16 = (n: number) => Uint8Array.of(n & 0xff, (n >> 8) & 0xff);
const le32 = (n: number) => Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
const p1363 = (data: Uint8Array, key: KeyObject) => new Uint8Array(sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }));

/** The QE report: Intel's production TD QE identity (unless overridden) and REPORTDATA. */
function mintQeReport(o: MintTdxOptions, reportData: Uint8Array): Uint8Array {
  const qe = new Uint8Array(QE_REPORT_BYTES);
  const id = INTEL_TD_QE_IDENTITY;
  qe.set(o.qe?.mrSigner ?? fromHex(id.mrsigner), QE.mrSigner[0]);
  qe.set(le16(o.qe?.isvProdId ?? id.isvprodid), QE.isvProdId[0]);
  qe.set(le16(o.qe?.isvSvn ?? 4), QE.isvSvn[0]);
  qe.set(o.qe?.attributes ?? fromHex('1500000000000000e700000000000000'), QE.attributes[0]);
  qe.set(le32(o.qe?.miscSelect ?? 0), QE.miscSelect[0]);
  qe.set(reportData, QE_REPORT_DATA_OFFSET);
  return qe;
}

/** A TDX quote (v4, or v5 with a TDX 1.5 body) with Intel's layout (header ‖ TD report ‖ ECDSA signature data with QE report and PCK chain). */
export function mintTdxQuote(pki: TdxTestPki, o: MintTdxOptions): Uint8Array {
  const v5 = o.version === 5;
  const header = new Uint8Array(48);
  header.set(le16(v5 ? QUOTE_VERSION_5 : QUOTE_VERSION), 0);
  header.set(le16(ATT_KEY_TYPE_ECDSA_P256), 2);
  header.set(le32(TEE_TYPE_TDX), 4);
  header.set(fromHex(INTEL_QE_VENDOR_ID), 12);
  const body = new Uint8Array(v5 ? TD15_REPORT_BYTES : TD_REPORT_BYTES);
  const put = (k: keyof typeof TD, v: Uint8Array) => body.set(v.subarray(0, TD[k][1]), TD[k][0]);
  put('teeTcbSvn', o.teeTcbSvn ?? Uint8Array.of(5, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  put('mrSeam', pattern(1));
  put('tdAttributes', o.tdAttributes ?? Uint8Array.of(o.debug ? 0x01 : 0x00, 0, 0, 0x10, 0, 0, 0, 0));
  put('xfam', Uint8Array.of(0xe7, 0x18, 0x06, 0, 0, 0, 0, 0));
  put('mrTd', o.mrtd ?? pattern(2));
  put('rtmr0', o.rtmr0 ?? pattern(3));
  put('rtmr1', o.rtmr1 ?? pattern(4));
  put('rtmr2', o.rtmr2 ?? pattern(5));
  put('rtmr3', o.rtmr3 ?? new Uint8Array(48));
  put('reportData', o.reportData);
  if (v5) {
    body.set(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), TD15.teeTcbSvn2[0]);
    body.set(o.mrServiceTd ?? new Uint8Array(48), TD15.mrServiceTd[0]);
  }
  const signed = v5 ? concatBytes(header, le16(BODY_TYPE_TD15), le32(body.length), body) : concatBytes(header, body);
  const quoteSignature = p1363(signed, pki.attestationKey);
  if (o.breakQuoteSignature) quoteSignature[5] = (quoteSignature[5] as number) ^ 0x01;
  const qeAuthData = new Uint8Array(32).map((_, i) => i);
  const qeReport = mintQeReport(o, o.breakQeBinding ? sha256(utf8('another attestation key')) : sha256(pki.attestationKeyRaw, qeAuthData));
  const chain = utf8(`${toPem(pki.pck)}${toPem(pki.pckCa)}${toPem(pki.root)}`);
  const certData = concatBytes(qeReport, p1363(qeReport, pki.pckKey), le16(qeAuthData.length), qeAuthData, le16(CERT_TYPE_PCK_CHAIN), le32(chain.length), chain);
  const sigData = concatBytes(quoteSignature, pki.attestationKeyRaw, le16(CERT_TYPE_QE_REPORT), le32(certData.length), certData);
  return concatBytes(signed, le32(sigData.length), sigData);
}

/** A dstack-style RTMR3 event log (runtime events) with its compose hash, and the RTMR3 it replays to. */
export function mintDstackEventLog(appCompose: string, opts: { extraComposeEvent?: boolean } = {}): { events: object[]; rtmr3: Uint8Array; composeHash: string } {
  const composeHash = toHex(sha256(utf8(appCompose)));
  const runtime = (event: string, payload: Uint8Array): DstackEvent => {
    const e: DstackEvent = { imr: 3, eventType: DSTACK_RUNTIME_EVENT_TYPE, digest: new Uint8Array(0), event, payload };
    return { ...e, digest: eventDigest(e) };
  };
  const events = [
    runtime('system-preparing', new Uint8Array(0)),
    runtime('app-id', fromHex('5a'.repeat(20))),
    runtime('compose-hash', fromHex(composeHash)),
    ...(opts.extraComposeEvent ? [runtime('compose-hash', sha256(utf8('another compose')))] : []),
    runtime('instance-id', fromHex('6b'.repeat(20))),
    runtime('system-ready', new Uint8Array(0)),
  ];
  return {
    events: events.map((e) => ({ imr: e.imr, event_type: e.eventType, digest: toHex(e.digest), event: e.event, event_payload: toHex(e.payload) })),
    rtmr3: replayRtmr(events, 3),
    composeHash,
  };
}
