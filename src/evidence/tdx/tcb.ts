import { MalformedError, VerificationError } from '../../errors/index.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { children, oidText, readTlv, smallInt } from '../../x509/der.js';
import type { IsvLevel, QeIdentityInfo, TcbInfo, TcbStatus, TdxModuleIdentity } from './collateral.js';
import type { QeReportBody, TdReportBody } from './parse.js';

/** Intel SGX extension of a PCK certificate (Intel "SGX PCK Certificate and CRL Profile"). */
const SGX_EXTENSION = '1.2.840.113741.1.13.1';
const SGX = (n: string) => `${SGX_EXTENSION}.${n}`;

export interface PckTcb {
  /** SGX TCB components 01..16. */
  sgx: number[];
  pcesvn: number;
  /** Lowercase hex. */
  fmspc: string;
  pceId: string;
}

/** FMSPC, PCE-ID and the platform TCB (16 component SVNs, PCESVN) from the PCK leaf. */
export function readPckTcb(pck: Certificate): PckTcb {
  const code = 'ERR_TDX_PCK_EXTENSION';
  const ext = pck.parsed.getExtension(SGX_EXTENSION);
  if (!ext) throw new MalformedError(code, `expected the PCK certificate to carry the Intel SGX extension ${SGX_EXTENSION}, got none`);
  const entries = new Map<string, ReturnType<typeof readTlv>>();
  const read = (tlv: ReturnType<typeof readTlv>) => {
    for (const item of children(tlv, code)) {
      const [oid, value] = children(item, code);
      if (!oid || oid.tag !== 0x06 || !value) throw new MalformedError(code, 'expected each SGX extension entry to be (OID, value)');
      entries.set(oidText(oid.content), value);
    }
  };
  read(readTlv(new Uint8Array(ext.value), 0, code));
  const tcb = entries.get(SGX('2'));
  if (!tcb) throw new MalformedError(code, 'expected the SGX extension to carry the TCB (…13.1.2)');
  read(tcb);
  const int = (oid: string, name: string) => {
    const v = entries.get(oid);
    if (!v || v.tag !== 0x02) throw new MalformedError(code, `expected the SGX extension to carry ${name} (${oid}) as an INTEGER`);
    return smallInt(v.content, name, code);
  };
  const octets = (oid: string, name: string, n: number) => {
    const v = entries.get(oid);
    if (!v || v.tag !== 0x04 || v.content.length !== n) throw new MalformedError(code, `expected the SGX extension to carry ${name} (${oid}) as ${n} bytes`);
    return toHex(v.content);
  };
  return {
    sgx: Array.from({ length: 16 }, (_, i) => int(SGX(`2.${i + 1}`), `SGX TCB comp${String(i + 1).padStart(2, '0')}`)),
    pcesvn: int(SGX('2.17'), 'PCESVN'),
    fmspc: octets(SGX('4'), 'FMSPC', 6),
    pceId: octets(SGX('3'), 'PCE-ID', 2),
  };
}

/** The FMSPC (lowercase hex) of a quote's PCK certificate: which platform's collateral it needs. */
export function quoteFmspc(pckChainPem: string): string {
  const [leaf] = parsePemCertificates(pckChainPem, 'PCK chain');
  if (!leaf) throw new MalformedError('ERR_TDX_PCK_CHAIN', 'expected a PCK certificate chain in the quote, got none');
  return readPckTcb(leaf).fmspc;
}

/** The identity a QE report must match: Intel's signed QE identity, or its pinned production values. */
export type QeIdentityRule = Pick<QeIdentityInfo, 'mrsigner' | 'isvprodid' | 'miscselect' | 'miscselectMask' | 'attributes' | 'attributesMask'>;

const masked = (v: Uint8Array, mask: Uint8Array) => v.map((b, i) => b & (mask[i] as number));
const le32hex = (n: number) => toHex(Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff));

/** MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES (each under its mask) of the QE report. */
export function checkQeIdentity(qe: QeReportBody, rule: QeIdentityRule, source: string): void {
  const fail = (field: string, expected: string, got: string) => {
    throw new VerificationError('ERR_TDX_QE_IDENTITY', `expected QE report ${field} ${expected} (${source}), got ${got}`, { detail: { field, expected, got, source } });
  };
  if (toHex(qe.mrSigner) !== rule.mrsigner) fail('MRSIGNER', rule.mrsigner, toHex(qe.mrSigner));
  if (qe.isvProdId !== rule.isvprodid) fail('ISVPRODID', String(rule.isvprodid), String(qe.isvProdId));
  const miscMask = fromHex(rule.miscselectMask);
  const misc = toHex(masked(fromHex(le32hex(qe.miscSelect)), miscMask));
  const wantMisc = toHex(masked(fromHex(rule.miscselect), miscMask));
  if (misc !== wantMisc) fail('MISCSELECT (masked)', wantMisc, misc);
  const attrMask = fromHex(rule.attributesMask);
  const attrs = toHex(masked(qe.attributes, attrMask));
  const wantAttrs = toHex(masked(fromHex(rule.attributes), attrMask));
  if (attrs !== wantAttrs) fail('ATTRIBUTES (masked)', wantAttrs, attrs);
}

/** The first (highest) level whose ISVSVN the given SVN reaches. */
function isvLevel(levels: readonly IsvLevel[], svn: number, what: string): IsvLevel {
  const level = levels.find((l) => svn >= l.isvsvn);
  if (!level) throw new VerificationError('ERR_TDX_TCB_LEVEL', `expected ${what} ISVSVN ${svn} to reach a TCB level of Intel's collateral, lowest is ${levels[levels.length - 1]?.isvsvn ?? 'none'}`);
  return level;
}

export interface TcbEvaluation {
  /** The converged status (platform, QE and TDX module). */
  status: TcbStatus;
  advisoryIds: string[];
  platformStatus: TcbStatus;
  qeStatus: TcbStatus;
  /** Absent when the TDX module version (TEE_TCB_SVN[1]) is 0: no separate module identity. */
  tdxModuleStatus?: TcbStatus;
  tcbDate: string;
  tcbEvaluationDataNumber: number;
  fmspc: string;
}

/**
 * Intel's convergence of a component's status into the platform's (Intel DCAP QVL, "TCB status
 * convergence"): a Revoked component revokes; an OutOfDate one makes UpToDate/SWHardeningNeeded
 * OutOfDate and the configuration statuses OutOfDateConfigurationNeeded.
 */
export function convergeStatus(platform: TcbStatus, component: TcbStatus): TcbStatus {
  if (platform === 'Revoked' || component === 'Revoked') return 'Revoked';
  if (component !== 'OutOfDate') return platform;
  if (platform === 'ConfigurationNeeded' || platform === 'ConfigurationAndSWHardeningNeeded') return 'OutOfDateConfigurationNeeded';
  if (platform === 'UpToDate' || platform === 'SWHardeningNeeded') return 'OutOfDate';
  return platform;
}

/** QE identity match and the QE's TCB level from its ISVSVN. */
export function evaluateQe(qe: QeReportBody, identity: QeIdentityInfo): IsvLevel {
  if (identity.id !== 'TD_QE' || identity.version !== 2) {
    throw new VerificationError('ERR_TDX_COLLATERAL_KIND', `expected a TD_QE identity version 2 for a TDX quote, got ${identity.id} version ${identity.version}`);
  }
  checkQeIdentity(qe, identity, "Intel's signed QE identity");
  return isvLevel(identity.levels, qe.isvSvn, 'QE');
}

/** TDX module identity (TDX_<version> of the TCB info) and, for versions > 0, its TCB level. */
function evaluateModule(body: TdReportBody, info: TcbInfo): IsvLevel | undefined {
  const version = body.teeTcbSvn[1] as number;
  const id = `TDX_${version.toString(16).toUpperCase().padStart(2, '0')}`;
  const identity = version === 0 ? info.tdxModule : info.tdxModuleIdentities.find((m) => m.id === id);
  if (!identity) throw new VerificationError('ERR_TDX_MODULE_IDENTITY', `expected Intel's TCB info to list TDX module identity ${version === 0 ? 'tdxModule' : id}, got none`);
  const mrSignerSeam = toHex(body.mrSignerSeam);
  if (mrSignerSeam !== identity.mrsigner) {
    throw new VerificationError('ERR_TDX_MODULE_IDENTITY', `expected MRSIGNERSEAM ${identity.mrsigner} (${id}), got ${mrSignerSeam}`);
  }
  const mask = fromHex(identity.attributesMask);
  const got = toHex(masked(body.seamAttributes, mask));
  const want = toHex(masked(fromHex(identity.attributes), mask));
  if (got !== want) throw new VerificationError('ERR_TDX_MODULE_IDENTITY', `expected SEAMATTRIBUTES (masked) ${want} (${id}), got ${got}`);
  return version === 0 ? undefined : isvLevel((identity as TdxModuleIdentity).levels, body.teeTcbSvn[0] as number, `TDX module ${id}`);
}

/**
 * The platform's TCB level (Intel DCAP QVL): the first level of the TCB info whose SGX components
 * and PCESVN the PCK certificate reaches and whose TDX components TEE_TCB_SVN reaches (components
 * 01-02 are the module's SVN and version: judged by the module identity when its version is > 0).
 * Then the QE's and the module's levels converge into it; advisories are the union.
 */
export function evaluateTcb(o: { body: TdReportBody; qe: QeReportBody; pck: PckTcb; tcbInfo: TcbInfo; qeIdentity: QeIdentityInfo }): TcbEvaluation {
  const { tcbInfo: info, pck, body } = o;
  if (info.id !== 'TDX' || info.version !== 3) throw new VerificationError('ERR_TDX_COLLATERAL_KIND', `expected TDX TCB info version 3 for a TDX quote, got ${info.id} version ${info.version}`);
  if (pck.fmspc !== info.fmspc) throw new VerificationError('ERR_TDX_COLLATERAL_FMSPC', `expected collateral for the PCK certificate's FMSPC ${pck.fmspc}, got TCB info for ${info.fmspc}`);
  if (pck.pceId !== info.pceId) throw new VerificationError('ERR_TDX_COLLATERAL_FMSPC', `expected TCB info for PCE-ID ${pck.pceId}, got ${info.pceId}`);
  const qeLevel = evaluateQe(o.qe, o.qeIdentity);
  const moduleLevel = evaluateModule(body, info);
  const skip = (body.teeTcbSvn[1] as number) > 0 ? 2 : 0;
  const level = info.levels.find(
    (l) =>
      l.sgx.every((svn, i) => (pck.sgx[i] as number) >= svn) &&
      pck.pcesvn >= l.pcesvn &&
      l.tdx.length === 16 &&
      l.tdx.every((svn, i) => i < skip || (body.teeTcbSvn[i] as number) >= svn),
  );
  if (!level) {
    throw new VerificationError('ERR_TDX_TCB_LEVEL', `expected the platform TCB (PCK components ${pck.sgx.join('.')}, PCESVN ${pck.pcesvn}, TEE_TCB_SVN ${toHex(body.teeTcbSvn)}) to reach a TCB level of Intel's collateral, got none`);
  }
  let status = convergeStatus(level.status, qeLevel.status);
  if (moduleLevel) status = convergeStatus(status, moduleLevel.status);
  const advisoryIds = [...new Set([...level.advisoryIds, ...qeLevel.advisoryIds, ...(moduleLevel?.advisoryIds ?? [])])];
  return {
    status,
    advisoryIds,
    platformStatus: level.status,
    qeStatus: qeLevel.status,
    ...(moduleLevel ? { tdxModuleStatus: moduleLevel.status } : {}),
    tcbDate: level.tcbDate,
    tcbEvaluationDataNumber: Math.min(info.tcbEvaluationDataNumber, o.qeIdentity.tcbEvaluationDataNumber),
    fmspc: info.fmspc,
  };
}
