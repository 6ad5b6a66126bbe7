import { MalformedError } from '../../errors/index.js';
import { fromHex } from '../../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { parseCrl, type Crl } from '../../x509/crl.js';

/**
 * Intel DCAP collateral in the `QuoteCollateralV3` JSON shape (Intel PCS / PCCS, as dcap-qvl and
 * go-tdx-guest carry it): the TCB info and QE identity JSON exactly as Intel signed them, their
 * ECDSA-P256 signatures (hex r‖s) and issuer chains (PEM), the PCK CRL with its issuer chain, and
 * the root CA CRL (hex DER). Parse layer only: throws MalformedError(`ERR_TDX_COLLATERAL_MALFORMED`).
 */
export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

export interface TcbLevel {
  /** SGX TCB components 01..16 (compared with the PCK certificate's). */
  sgx: number[];
  pcesvn: number;
  /** TDX TCB components 01..16 (compared with the TD report's TEE_TCB_SVN). */
  tdx: number[];
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface IsvLevel {
  isvsvn: number;
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface TdxModuleIdentity {
  id: string;
  mrsigner: string;
  attributes: string;
  attributesMask: string;
  levels: IsvLevel[];
}

export interface TcbInfo {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  /** Lowercase hex. */
  fmspc: string;
  pceId: string;
  tcbEvaluationDataNumber: number;
  tdxModule: { mrsigner: string; attributes: string; attributesMask: string } | undefined;
  tdxModuleIdentities: TdxModuleIdentity[];
  levels: TcbLevel[];
}

export interface QeIdentityInfo {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  tcbEvaluationDataNumber: number;
  mrsigner: string;
  isvprodid: number;
  miscselect: string;
  miscselectMask: string;
  attributes: string;
  attributesMask: string;
  levels: IsvLevel[];
}

export interface TdxCollateral {
  /** The exact signed text (signatures cover these bytes). */
  tcbInfoText: string;
  tcbInfo: TcbInfo;
  tcbInfoSignature: Uint8Array;
  tcbInfoChain: Certificate[];
  qeIdentityText: string;
  qeIdentity: QeIdentityInfo;
  qeIdentitySignature: Uint8Array;
  qeIdentityChain: Certificate[];
  pckCrlChain: Certificate[];
  pckCrl: Crl;
  rootCaCrl: Crl;
}

/** Intel's collateral for one FMSPC is ~16 KiB; 2 MiB bounds a hostile file (the PCK CRL grows over time). */
export const MAX_COLLATERAL_BYTES = 2 * 1024 * 1024;
const CODE = 'ERR_TDX_COLLATERAL_MALFORMED';

function bad(message: string): never {
  throw new MalformedError(CODE, message);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Obj, k: string, where: string, pattern?: RegExp): string {
  const v = o[k];
  if (typeof v !== 'string' || (pattern && !pattern.test(v))) bad(`expected ${where}.${k} to be a ${pattern ? `string matching ${pattern}` : 'string'}, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}
function uint(o: Obj, k: string, where: string, max = 0xffff): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(`expected ${where}.${k} to be an integer in 0..${max}, got ${JSON.stringify(v)}`);
  return v;
}
function date(o: Obj, k: string, where: string): Date {
  const s = str(o, k, where, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) bad(`expected ${where}.${k} to be an ISO 8601 UTC time, got ${s}`);
  return d;
}
function arr(o: Obj, k: string, where: string, optional = false): unknown[] {
  const v = o[k];
  if (v === undefined && optional) return [];
  if (!Array.isArray(v) || v.length > 1024) bad(`expected ${where}.${k} to be an array (at most 1024 entries)`);
  return v;
}
function obj(v: unknown, where: string): Obj {
  if (!isObj(v)) bad(`expected ${where} to be an object`);
  return v;
}
const hexOf = (n: number) => new RegExp(`^[0-9a-fA-F]{${n}}$`);

function status(o: Obj, where: string): TcbStatus {
  const s = str(o, 'tcbStatus', where);
  if (!(TCB_STATUSES as readonly string[]).includes(s)) bad(`expected ${where}.tcbStatus to be one of ${TCB_STATUSES.join(', ')}, got ${s}`);
  return s as TcbStatus;
}
function advisories(o: Obj, where: string): string[] {
  return arr(o, 'advisoryIDs', where, true).map((a, i) => {
    if (typeof a !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(a)) bad(`expected ${where}.advisoryIDs[${i}] to be an advisory id`);
    return a;
  });
}
function isvLevels(o: Obj, where: string): IsvLevel[] {
  return arr(o, 'tcbLevels', where).map((l, i) => {
    const w = `${where}.tcbLevels[${i}]`;
    const lo = obj(l, w);
    return { isvsvn: uint(obj(lo.tcb, `${w}.tcb`), 'isvsvn', `${w}.tcb`), tcbDate: str(lo, 'tcbDate', w), status: status(lo, w), advisoryIds: advisories(lo, w) };
  });
}
function components(o: Obj, k: string, where: string): number[] {
  const list = arr(o, k, where);
  if (list.length !== 16) bad(`expected ${where}.${k} to hold 16 components, got ${list.length}`);
  return list.map((c, i) => uint(obj(c, `${where}.${k}[${i}]`), 'svn', `${where}.${k}[${i}]`, 255));
}
function moduleIdentity(o: Obj, where: string) {
  return { mrsigner: str(o, 'mrsigner', where, hexOf(96)).toLowerCase(), attributes: str(o, 'attributes', where, hexOf(16)).toLowerCase(), attributesMask: str(o, 'attributesMask', where, hexOf(16)).toLowerCase() };
}

function parseJson(text: string, where: string): Obj {
  try {
    return obj(JSON.parse(text) as unknown, where);
  } catch (cause) {
    if (cause instanceof MalformedError) throw cause;
    throw new MalformedError(CODE, `expected ${where} to be JSON text`, { cause });
  }
}

/** TCB info (Intel PCS "TDX TCB Info" v3). */
export function parseTcbInfo(text: string): TcbInfo {
  const o = parseJson(text, 'tcb_info');
  const w = 'tcb_info';
  const mod = o.tdxModule === undefined ? undefined : moduleIdentity(obj(o.tdxModule, `${w}.tdxModule`), `${w}.tdxModule`);
  return {
    id: str(o, 'id', w),
    version: uint(o, 'version', w),
    issueDate: date(o, 'issueDate', w),
    nextUpdate: date(o, 'nextUpdate', w),
    fmspc: str(o, 'fmspc', w, hexOf(12)).toLowerCase(),
    pceId: str(o, 'pceId', w, hexOf(4)).toLowerCase(),
    tcbEvaluationDataNumber: uint(o, 'tcbEvaluationDataNumber', w, 0xffffffff),
    tdxModule: mod,
    tdxModuleIdentities: arr(o, 'tdxModuleIdentities', w, true).map((m, i) => {
      const mw = `${w}.tdxModuleIdentities[${i}]`;
      const mo = obj(m, mw);
      return { id: str(mo, 'id', mw), ...moduleIdentity(mo, mw), levels: isvLevels(mo, mw) };
    }),
    levels: arr(o, 'tcbLevels', w).map((l, i) => {
      const lw = `${w}.tcbLevels[${i}]`;
      const lo = obj(l, lw);
      const tcb = obj(lo.tcb, `${lw}.tcb`);
      return {
        sgx: components(tcb, 'sgxtcbcomponents', `${lw}.tcb`),
        pcesvn: uint(tcb, 'pcesvn', `${lw}.tcb`),
        tdx: tcb.tdxtcbcomponents === undefined ? [] : components(tcb, 'tdxtcbcomponents', `${lw}.tcb`),
        tcbDate: str(lo, 'tcbDate', lw),
        status: status(lo, lw),
        advisoryIds: advisories(lo, lw),
      };
    }),
  };
}

/** QE identity (Intel PCS "TD QE Identity" v2). */
export function parseQeIdentity(text: string): QeIdentityInfo {
  const o = parseJson(text, 'qe_identity');
  const w = 'qe_identity';
  return {
    id: str(o, 'id', w),
    version: uint(o, 'version', w),
    issueDate: date(o, 'issueDate', w),
    nextUpdate: date(o, 'nextUpdate', w),
    tcbEvaluationDataNumber: uint(o, 'tcbEvaluationDataNumber', w, 0xffffffff),
    mrsigner: str(o, 'mrsigner', w, hexOf(64)).toLowerCase(),
    isvprodid: uint(o, 'isvprodid', w),
    miscselect: str(o, 'miscselect', w, hexOf(8)).toLowerCase(),
    miscselectMask: str(o, 'miscselectMask', w, hexOf(8)).toLowerCase(),
    attributes: str(o, 'attributes', w, hexOf(32)).toLowerCase(),
    attributesMask: str(o, 'attributesMask', w, hexOf(32)).toLowerCase(),
    levels: isvLevels(o, w),
  };
}

const hexField = (o: Obj, k: string) => fromHex(str(o, k, 'collateral', /^[0-9a-fA-F]+$/), { field: `collateral.${k}`, code: CODE });
function chain(o: Obj, k: string): Certificate[] {
  const certs = parsePemCertificates(str(o, k, 'collateral'), `collateral.${k}`);
  if (certs.length < 2) bad(`expected collateral.${k} to hold a signing certificate and its CA, got ${certs.length} certificate(s)`);
  return certs;
}
function signature(o: Obj, k: string): Uint8Array {
  const s = hexField(o, k);
  if (s.length !== 64) bad(`expected collateral.${k} to be a 64-byte ECDSA-P256 r‖s, got ${s.length} bytes`);
  return s;
}

/** The `QuoteCollateralV3` JSON (text or parsed object). */
export function parseTdxCollateral(input: string | unknown): TdxCollateral {
  if (typeof input === 'string' && input.length > MAX_COLLATERAL_BYTES) bad(`expected at most ${MAX_COLLATERAL_BYTES} bytes of collateral, got ${input.length}`);
  const o = typeof input === 'string' ? parseJson(input, 'collateral') : obj(input, 'collateral');
  const tcbInfoText = str(o, 'tcb_info', 'collateral');
  const qeIdentityText = str(o, 'qe_identity', 'collateral');
  return {
    tcbInfoText,
    tcbInfo: parseTcbInfo(tcbInfoText),
    tcbInfoSignature: signature(o, 'tcb_info_signature'),
    tcbInfoChain: chain(o, 'tcb_info_issuer_chain'),
    qeIdentityText,
    qeIdentity: parseQeIdentity(qeIdentityText),
    qeIdentitySignature: signature(o, 'qe_identity_signature'),
    qeIdentityChain: chain(o, 'qe_identity_issuer_chain'),
    pckCrlChain: chain(o, 'pck_crl_issuer_chain'),
    pckCrl: parseCrl(hexField(o, 'pck_crl'), 'collateral.pck_crl', CODE),
    rootCaCrl: parseCrl(hexField(o, 'root_ca_crl'), 'collateral.root_ca_crl', CODE),
  };
}
