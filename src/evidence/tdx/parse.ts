import { MalformedError } from '../../errors/index.js';
import { toHex } from '../../util/bytes.js';
import {
  ATT_KEY_TYPE_ECDSA_P256,
  BODY_TYPE_TD10,
  BODY_TYPE_TD15,
  QE,
  QUOTE_VERSION_5,
  TD15,
  TD15_REPORT_BYTES,
  TD_REPORT_BYTES,
  CERT_TYPE_PCK_CHAIN,
  CERT_TYPE_QE_REPORT,
  ECDSA_KEY_BYTES,
  ECDSA_SIG_BYTES,
  MAX_PCK_CHAIN_BYTES,
  MAX_QE_AUTH_BYTES,
  MAX_QUOTE_BYTES,
  QE_REPORT_BYTES,
  QUOTE_VERSION,
  TD,
  TEE_TYPE_TDX,
} from './constants.js';

export interface TdReportBody {
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmr0: Uint8Array;
  rtmr1: Uint8Array;
  rtmr2: Uint8Array;
  rtmr3: Uint8Array;
  reportData: Uint8Array;
  /** TDX 1.5 (quote v5, body type 3) only. */
  teeTcbSvn2?: Uint8Array;
  /** TDX 1.5 (quote v5, body type 3) only: the service TD bound to this TD (zero when none). */
  mrServiceTd?: Uint8Array;
}

/** The Quoting Enclave's SGX report (384 bytes), the fields its identity is judged by. */
export interface QeReportBody {
  cpuSvn: Uint8Array;
  miscSelect: number;
  attributes: Uint8Array;
  mrEnclave: Uint8Array;
  mrSigner: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  reportData: Uint8Array;
}

export interface TdxQuote {
  /** 4, or 5 (TDX 1.5 layout with a body descriptor). */
  version: number;
  /** v5 body type (2 = TDX 1.0 report, 3 = TDX 1.5 report); 2 for v4 quotes. */
  bodyType: number;
  attKeyType: number;
  teeType: number;
  qeVendorId: string;
  userData: Uint8Array;
  body: TdReportBody;
  /** The bytes the quote signature covers: quote[0:632] (v4), header ‖ body descriptor ‖ body (v5). */
  signedBytes: Uint8Array;
  /** ECDSA-P256 r‖s over signedBytes. */
  quoteSignature: Uint8Array;
  /** Attestation public key, raw x‖y. */
  attestationKey: Uint8Array;
  qeReport: Uint8Array;
  /** The QE report's fields (its identity: MRSIGNER, ISVPRODID, ATTRIBUTES, MISCSELECT, ISVSVN). */
  qeReportBody: QeReportBody;
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  /** The PCK certificate chain as PEM text (leaf first). */
  pckChainPem: string;
  /** Length of the quote proper; any bytes after it were zero padding. */
  quoteLength: number;
}

function bad(code: string, message: string): never {
  throw new MalformedError(code, message);
}

/** Bounds-checked little-endian reader over the quote. */
class Reader {
  constructor(
    private readonly b: Uint8Array,
    public pos = 0,
  ) {}
  take(n: number, field: string): Uint8Array {
    if (n < 0 || this.pos + n > this.b.length) {
      bad('ERR_TDX_TRUNCATED', `expected ${n} bytes of ${field} at offset ${this.pos}, got ${Math.max(0, this.b.length - this.pos)}`);
    }
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u16(field: string): number {
    const v = this.take(2, field);
    return (v[0] as number) | ((v[1] as number) << 8);
  }
  u32(field: string): number {
    const v = this.take(4, field);
    return ((v[0] as number) | ((v[1] as number) << 8) | ((v[2] as number) << 16) | ((v[3] as number) << 24)) >>> 0;
  }
}

const copy = (b: Uint8Array) => new Uint8Array(b);
const u16le = (b: Uint8Array, off: number) => (b[off] as number) | ((b[off + 1] as number) << 8);

/** The QE report's identity fields (fixed offsets of the 384-byte SGX report body). */
export function parseQeReportBody(qe: Uint8Array): QeReportBody {
  const f = (k: keyof typeof QE) => copy(qe.subarray(QE[k][0], QE[k][0] + QE[k][1]));
  const misc = f('miscSelect');
  return {
    cpuSvn: f('cpuSvn'),
    miscSelect: new DataView(misc.buffer).getUint32(0, true),
    attributes: f('attributes'),
    mrEnclave: f('mrEnclave'),
    mrSigner: f('mrSigner'),
    isvProdId: u16le(qe, QE.isvProdId[0]),
    isvSvn: u16le(qe, QE.isvSvn[0]),
    reportData: f('reportData'),
  };
}

/** v5: the body descriptor; v4: the fixed TDX 1.0 body. Returns the body type and its size. */
function readBodyDescriptor(r: Reader, version: number): { bodyType: number; size: number } {
  if (version === QUOTE_VERSION) return { bodyType: BODY_TYPE_TD10, size: TD_REPORT_BYTES };
  const bodyType = r.u16('body.type');
  const size = r.u32('body.size');
  const expected = bodyType === BODY_TYPE_TD10 ? TD_REPORT_BYTES : bodyType === BODY_TYPE_TD15 ? TD15_REPORT_BYTES : undefined;
  if (expected === undefined) bad('ERR_TDX_BODY_TYPE', `expected body.type ${BODY_TYPE_TD10} (TDX 1.0) or ${BODY_TYPE_TD15} (TDX 1.5), got ${bodyType}`);
  if (size !== expected) bad('ERR_TDX_LENGTH', `expected body.size ${expected} for body.type ${bodyType}, got ${size}`);
  return { bodyType, size };
}

/**
 * Parse a TDX quote v4 or v5 (ECDSA-P256 attestation key, QE report certification data wrapping a PCK
 * chain). Pure; throws only MalformedError (`ERR_TDX_*`). Sizes come from the length fields; bytes
 * after the quote are accepted only if they are all zero (quote files are often padded).
 */
export function parseTdxQuote(bytes: Uint8Array): TdxQuote {
  if (!(bytes instanceof Uint8Array)) bad('ERR_TDX_MALFORMED', 'expected the quote as bytes');
  if (bytes.length > MAX_QUOTE_BYTES) bad('ERR_TDX_TOO_LARGE', `expected at most ${MAX_QUOTE_BYTES} bytes of quote, got ${bytes.length}`);
  const r = new Reader(bytes);
  const version = r.u16('header.version');
  if (version !== QUOTE_VERSION && version !== QUOTE_VERSION_5) bad('ERR_TDX_VERSION', `expected header.version ${QUOTE_VERSION} or ${QUOTE_VERSION_5}, got ${version}`);
  const attKeyType = r.u16('header.att_key_type');
  if (attKeyType !== ATT_KEY_TYPE_ECDSA_P256) bad('ERR_TDX_KEY_TYPE', `expected header.att_key_type ${ATT_KEY_TYPE_ECDSA_P256} (ECDSA-256 with P-256), got ${attKeyType}`);
  const teeType = r.u32('header.tee_type');
  if (teeType !== TEE_TYPE_TDX) bad('ERR_TDX_TEE_TYPE', `expected header.tee_type 0x81 (TDX), got 0x${teeType.toString(16)}`);
  r.take(4, 'header.reserved');
  const qeVendorId = toHex(r.take(16, 'header.qe_vendor_id'));
  const userData = copy(r.take(20, 'header.user_data'));
  const { bodyType, size } = readBodyDescriptor(r, version);
  const rawBody = r.take(size, 'td_report_body');
  const field = (k: keyof typeof TD) => copy(rawBody.subarray(TD[k][0], TD[k][0] + TD[k][1]));
  const body: TdReportBody = {
    teeTcbSvn: field('teeTcbSvn'),
    mrSeam: field('mrSeam'),
    mrSignerSeam: field('mrSignerSeam'),
    seamAttributes: field('seamAttributes'),
    tdAttributes: field('tdAttributes'),
    xfam: field('xfam'),
    mrTd: field('mrTd'),
    mrConfigId: field('mrConfigId'),
    mrOwner: field('mrOwner'),
    mrOwnerConfig: field('mrOwnerConfig'),
    rtmr0: field('rtmr0'),
    rtmr1: field('rtmr1'),
    rtmr2: field('rtmr2'),
    rtmr3: field('rtmr3'),
    reportData: field('reportData'),
  };
  if (bodyType === BODY_TYPE_TD15) {
    body.teeTcbSvn2 = copy(rawBody.subarray(TD15.teeTcbSvn2[0], TD15.teeTcbSvn2[0] + TD15.teeTcbSvn2[1]));
    body.mrServiceTd = copy(rawBody.subarray(TD15.mrServiceTd[0], TD15.mrServiceTd[0] + TD15.mrServiceTd[1]));
  }
  // The quote signature covers header ‖ (v5: body descriptor ‖) body: everything up to here.
  const signedLength = r.pos;
  const sigDataLen = r.u32('signature_data_len');
  const sigStart = r.pos;
  if (sigStart + sigDataLen > bytes.length) {
    bad('ERR_TDX_TRUNCATED', `expected signature_data_len ${sigDataLen} bytes after offset ${sigStart}, got ${bytes.length - sigStart}`);
  }
  const quoteSignature = copy(r.take(ECDSA_SIG_BYTES, 'quote_signature'));
  const attestationKey = copy(r.take(ECDSA_KEY_BYTES, 'attestation_key'));
  const certType = r.u16('certification_data.type');
  if (certType !== CERT_TYPE_QE_REPORT) bad('ERR_TDX_CERT_TYPE', `expected certification_data.type ${CERT_TYPE_QE_REPORT} (QE report), got ${certType}`);
  const certSize = r.u32('certification_data.size');
  const certEnd = r.pos + certSize;
  if (certEnd !== sigStart + sigDataLen) {
    bad('ERR_TDX_LENGTH', `expected certification_data.size ${sigStart + sigDataLen - r.pos} (to end at signature_data_len), got ${certSize}`);
  }
  const qeReport = copy(r.take(QE_REPORT_BYTES, 'qe_report'));
  const qeReportSignature = copy(r.take(ECDSA_SIG_BYTES, 'qe_report_signature'));
  const authLen = r.u16('qe_auth_data.size');
  if (authLen > MAX_QE_AUTH_BYTES) bad('ERR_TDX_TOO_LARGE', `expected qe_auth_data.size <= ${MAX_QE_AUTH_BYTES}, got ${authLen}`);
  const qeAuthData = copy(r.take(authLen, 'qe_auth_data'));
  const innerType = r.u16('qe_certification_data.type');
  if (innerType !== CERT_TYPE_PCK_CHAIN) bad('ERR_TDX_CERT_TYPE', `expected qe_certification_data.type ${CERT_TYPE_PCK_CHAIN} (PCK chain), got ${innerType}`);
  const chainLen = r.u32('qe_certification_data.size');
  if (chainLen > MAX_PCK_CHAIN_BYTES) bad('ERR_TDX_TOO_LARGE', `expected qe_certification_data.size <= ${MAX_PCK_CHAIN_BYTES}, got ${chainLen}`);
  if (r.pos + chainLen !== certEnd) {
    bad('ERR_TDX_LENGTH', `expected qe_certification_data.size ${certEnd - r.pos} (to end with certification_data), got ${chainLen}`);
  }
  const chainBytes = r.take(chainLen, 'pck_chain');
  // PEM is ASCII; the chain is NUL-terminated in some quotes.
  let end = chainBytes.length;
  while (end > 0 && chainBytes[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) {
    const c = chainBytes[i] as number;
    if (c > 0x7e || (c < 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09)) bad('ERR_TDX_PCK_CHAIN', `expected a PEM (ASCII) PCK chain, got byte 0x${c.toString(16)} at ${i}`);
  }
  const pckChainPem = Buffer.from(chainBytes.subarray(0, end)).toString('ascii');
  const quoteLength = r.pos;
  for (let i = quoteLength; i < bytes.length; i++) {
    if (bytes[i] !== 0) bad('ERR_TDX_TRAILING', `expected only zero padding after the ${quoteLength}-byte quote, got 0x${(bytes[i] as number).toString(16)} at ${i}`);
  }
  return {
    version,
    bodyType,
    attKeyType,
    teeType,
    qeVendorId,
    userData,
    body,
    signedBytes: copy(bytes.subarray(0, signedLength)),
    quoteSignature,
    attestationKey,
    qeReport,
    qeReportBody: parseQeReportBody(qeReport),
    qeReportSignature,
    qeAuthData,
    pckChainPem,
    quoteLength,
  };
}
