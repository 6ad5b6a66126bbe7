import { describeCause, FetchError, MalformedError } from '../../errors/index.js';
import { toHex } from '../../util/bytes.js';
import { MAX_COLLATERAL_BYTES, parseTdxCollateral, type TdxCollateral } from './collateral.js';

/**
 * Intel PCS / PCCS API v4 (the shape a PCCS serves; docs/wire.md §4a): the four requests that make
 * up a TDX platform's `QuoteCollateralV3`, and the answers assembled into it. Parse layer only:
 * signatures, chains, CRLs and freshness are checked by `verifyTdxCollateral` like any collateral.
 *
 * - `GET /tdx/certification/v4/tcb?fmspc=<hex>` → `{"tcbInfo":{…},"signature":"<hex r‖s>"}`,
 *   header `TCB-Info-Issuer-Chain` (URL-encoded PEM)
 * - `GET /tdx/certification/v4/qe/identity` → `{"enclaveIdentity":{…},"signature":"<hex>"}`,
 *   header `SGX-Enclave-Identity-Issuer-Chain`
 * - `GET /sgx/certification/v4/pckcrl?ca=platform&encoding=der` → the PCK CRL (DER; PEM or hex
 *   text accepted), header `SGX-PCK-CRL-Issuer-Chain`. TDX PCK certificates are issued by the
 *   Platform CA (a Processor CA chain fails the CRL issuer check, `ERR_CRL_ISSUER`).
 * - `GET /sgx/certification/v4/rootcacrl` → the Intel SGX Root CA CRL (PCCS: hex text; DER or PEM
 *   accepted).
 */
export const PCS_PATHS = {
  tcbInfo: (fmspc: string) => `/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}`,
  qeIdentity: '/tdx/certification/v4/qe/identity',
  pckCrl: '/sgx/certification/v4/pckcrl?ca=platform&encoding=der',
  rootCaCrl: '/sgx/certification/v4/rootcacrl',
} as const;

export const PCS_HEADERS = {
  tcbInfo: 'TCB-Info-Issuer-Chain',
  qeIdentity: 'SGX-Enclave-Identity-Issuer-Chain',
  pckCrl: 'SGX-PCK-CRL-Issuer-Chain',
} as const;

/** One PCS answer as fetched: its body and the issuer-chain header (if the endpoint has one). */
export interface PcsAnswer {
  body: Uint8Array;
  issuerChain?: string | null;
}

const CODE = 'ERR_TDX_COLLATERAL_MALFORMED';

/**
 * The exact text of a top-level member's object value in `text` (Intel signs those bytes, so they
 * are cut out of the answer, never re-serialized). `text` must already parse as JSON.
 */
export function rawJsonMember(text: string, key: string): string {
  const needle = `"${key}"`;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (depth === 1 && text.slice(i, end + 1) === needle) {
        let j = end + 1;
        while (/\s/.test(text[j] ?? '')) j++;
        if (text[j] !== ':') break;
        j++;
        while (/\s/.test(text[j] ?? '')) j++;
        if (text[j] !== '{') break;
        return text.slice(j, objectEnd(text, j) + 1);
      }
      i = end;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  throw new MalformedError(CODE, `expected the PCS answer to hold an object member "${key}"`);
}

function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  throw new MalformedError(CODE, 'expected a terminated JSON string in the PCS answer');
}

function objectEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') i = stringEnd(text, i);
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i;
  }
  throw new MalformedError(CODE, 'expected a closed JSON object in the PCS answer');
}

function signedMember(answer: PcsAnswer, key: string, what: string): { text: string; signature: string } {
  if (answer.body.length > MAX_COLLATERAL_BYTES) throw new MalformedError(CODE, `${what}: expected at most ${MAX_COLLATERAL_BYTES} bytes`);
  const body = Buffer.from(answer.body).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (cause) {
    throw new MalformedError(CODE, `${what}: expected a JSON answer`, { cause });
  }
  const signature = (parsed as Record<string, unknown> | null)?.signature;
  if (typeof signature !== 'string') throw new MalformedError(CODE, `${what}: expected a "signature" string`);
  return { text: rawJsonMember(body, key), signature };
}

function chainHeader(answer: PcsAnswer, header: string, what: string): string {
  const v = answer.issuerChain;
  if (typeof v !== 'string' || v.length === 0) throw new MalformedError(CODE, `${what}: expected a ${header} header`);
  try {
    return decodeURIComponent(v);
  } catch (cause) {
    throw new MalformedError(CODE, `${what}: expected the ${header} header to be a URL-encoded PEM chain`, { cause });
  }
}

/** A CRL answer as hex DER: DER bytes, PEM, or hex text (PCCS serves the root CA CRL as hex). */
export function crlAnswerHex(body: Uint8Array, what: string): string {
  if (body[0] === 0x30) return toHex(body);
  const text = Buffer.from(body).toString('latin1').trim();
  if (/^([0-9a-fA-F]{2})+$/.test(text)) return text.toLowerCase();
  const pem = /^-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----$/.exec(text);
  if (pem?.[1]) return Buffer.from(pem[1].replace(/\s+/g, ''), 'base64').toString('hex');
  throw new MalformedError(CODE, `${what}: expected a CRL (DER, PEM or hex), got ${body.length} bytes of something else`);
}

/** The four PCS answers assembled into `QuoteCollateralV3` JSON (the collateral file's shape). */
export function collateralFromPcs(a: { tcbInfo: PcsAnswer; qeIdentity: PcsAnswer; pckCrl: PcsAnswer; rootCaCrl: PcsAnswer }): Record<string, string> {
  const tcb = signedMember(a.tcbInfo, 'tcbInfo', 'TCB info');
  const qe = signedMember(a.qeIdentity, 'enclaveIdentity', 'QE identity');
  return {
    tcb_info_issuer_chain: chainHeader(a.tcbInfo, PCS_HEADERS.tcbInfo, 'TCB info'),
    tcb_info: tcb.text,
    tcb_info_signature: tcb.signature,
    qe_identity_issuer_chain: chainHeader(a.qeIdentity, PCS_HEADERS.qeIdentity, 'QE identity'),
    qe_identity: qe.text,
    qe_identity_signature: qe.signature,
    pck_crl_issuer_chain: chainHeader(a.pckCrl, PCS_HEADERS.pckCrl, 'PCK CRL'),
    pck_crl: crlAnswerHex(a.pckCrl.body, 'PCK CRL'),
    root_ca_crl: crlAnswerHex(a.rootCaCrl.body, 'root CA CRL'),
  };
}

/**
 * Fetch a platform's collateral from a PCCS base URL with `get` (bounded and timed by the caller).
 * A transport failure or a non-200 answer is a FetchError(`ERR_TDX_COLLATERAL_FETCH`); a malformed
 * answer a MalformedError. Returns the JSON (to cache) and its parse.
 */
export async function fetchPcsCollateral(
  base: string,
  fmspc: string,
  get: (url: string) => Promise<{ status: number; headers: { get(name: string): string | null }; body: Uint8Array }>,
): Promise<{ json: Record<string, string>; collateral: TdxCollateral }> {
  const one = async (path: string, header?: string): Promise<PcsAnswer> => {
    const url = `${base.replace(/\/+$/, '')}${path}`;
    let res;
    try {
      res = await get(url);
    } catch (cause) {
      throw new FetchError('ERR_TDX_COLLATERAL_FETCH', `GET ${path} from the PCCS failed: ${describeCause(cause)}`, { cause });
    }
    if (res.status !== 200) throw new FetchError('ERR_TDX_COLLATERAL_FETCH', `GET ${path} from the PCCS answered HTTP ${res.status}`);
    return { body: res.body, ...(header ? { issuerChain: res.headers.get(header) } : {}) };
  };
  const [tcbInfo, qeIdentity, pckCrl, rootCaCrl] = await Promise.all([
    one(PCS_PATHS.tcbInfo(fmspc), PCS_HEADERS.tcbInfo),
    one(PCS_PATHS.qeIdentity, PCS_HEADERS.qeIdentity),
    one(PCS_PATHS.pckCrl, PCS_HEADERS.pckCrl),
    one(PCS_PATHS.rootCaCrl),
  ]);
  const json = collateralFromPcs({ tcbInfo, qeIdentity, pckCrl, rootCaCrl });
  return { json, collateral: parseTdxCollateral(json) };
}
