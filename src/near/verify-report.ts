import { PolicyError, VerificationError } from '../errors/index.js';
import { evaluateTdxPolicy, parseDstackEventLog, parseTdxQuote, verifyTdxQuote, quoteFmspc, type TdxCollateralSource, type TdxPolicy, type TdxPolicyReport } from '../evidence/tdx/index.js';
import { asVerified, type Verified } from '../types.js';
import { bytesEqual, fromHex, sha256, toHex } from '../util/bytes.js';
import type { Certificate } from '../x509/certificate.js';
import type { NearAttestation, NearReport } from './report.js';

export interface AttestedSigner {
  role: NearAttestation['role'];
  modelName?: string;
  signingAlgo: NearAttestation['signingAlgo'];
  /** Lowercase, `0x` for ecdsa addresses, bare hex for Ed25519 keys (as signatures are compared). */
  signingAddress: string;
  mrtd: string;
  rtmr: [string, string, string, string];
  composeHash?: string;
  tlsBound: boolean;
  tcbStatus: TdxPolicyReport['tcbStatus'];
  /** Intel advisories of the matched TCB level (only with collateral). */
  advisoryIds?: string[];
}

export interface NearReportOptions {
  /** The 32 bytes we asked with (`nonce=<64 hex>`); every quote must bind them in REPORTDATA[32:64]. */
  nonce: Uint8Array;
  /** SHA-256 (hex) of the live TLS leaf's SPKI: the gateway's quote must bind it (absent: offline check, binding not required). */
  liveSpkiSha256?: string;
  at: Date;
  roots: readonly Certificate[];
  /** TDX policy for every quote (debug bit, RTMR sets, compose-hash pin); REPORTDATA and the event log come from here. */
  policy?: Omit<TdxPolicy, 'expectedReportData' | 'eventLog' | 'appCompose'>;
  /** Intel DCAP collateral for each quote's FMSPC (absent: TCB status unknown). */
  collateral?: TdxCollateralSource | undefined;
  /** MRTDs (96 hex) allowed for every quote; empty or absent = not constrained here. */
  allowedMrtd?: readonly string[];
}

/** REPORTDATA[0:32] for a gateway: SHA-256(identity ‖ SHA-256(TLS SPKI)) (the legacy "v2" binding). */
export function gatewayBinding(identity: Uint8Array, spkiSha256Hex: string): Uint8Array {
  return sha256(identity, fromHex(spkiSha256Hex, { field: 'spki_sha256', length: 32 }));
}

/** REPORTDATA[0:32] for a model node (or an unbound gateway): the identity zero-padded to 32 bytes ("v1"). */
export function paddedIdentity(identity: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  out.set(identity.subarray(0, 32));
  return out;
}

function checkBinding(a: NearAttestation, reportData: Uint8Array, o: NearReportOptions, where: string): boolean {
  if (!bytesEqual(reportData.subarray(32, 64), o.nonce)) {
    throw new VerificationError('ERR_NEAR_NONCE', `expected ${where}'s REPORTDATA[32:64] to be our nonce ${toHex(o.nonce)}, got ${toHex(reportData.subarray(32, 64))}`);
  }
  const head = reportData.subarray(0, 32);
  const padded = paddedIdentity(a.identity);
  if (a.role === 'gateway' && o.liveSpkiSha256 !== undefined) {
    if (bytesEqual(head, gatewayBinding(a.identity, o.liveSpkiSha256))) return true;
    if (bytesEqual(head, padded)) {
      throw new VerificationError('ERR_NEAR_TLS_UNBOUND', `${where}'s quote binds its signing address but not the TLS key this connection presented (SPKI SHA-256 ${o.liveSpkiSha256})`);
    }
    throw new VerificationError('ERR_NEAR_REPORT_DATA', `expected ${where}'s REPORTDATA[0:32] = SHA-256(signing identity ‖ TLS SPKI SHA-256), got ${toHex(head)}`);
  }
  if (bytesEqual(head, padded)) return false;
  if (o.liveSpkiSha256 === undefined && a.role === 'gateway') {
    throw new VerificationError('ERR_NEAR_REPORT_DATA', `expected ${where}'s REPORTDATA[0:32] to be the zero-padded signing identity (no TLS key given to check a TLS binding), got ${toHex(head)}`);
  }
  throw new VerificationError('ERR_NEAR_REPORT_DATA', `expected ${where}'s REPORTDATA[0:32] to be the signing identity ${a.signingAddress} zero-padded, got ${toHex(head)}`);
}

/**
 * Verify every attestation of a report (docs/wire/aci.md §7): the TDX quote to the Intel root
 * (or injected test roots), REPORTDATA = binding ‖ our nonce — for the gateway the binding covers
 * the live TLS key — then TDX policy (debug, RTMRs, RTMR3 replay and compose-hash pin) and the
 * MRTD allowlist. Any attestation failing fails the report (fail closed). With a live TLS key,
 * the report must hold a gateway attestation bound to it.
 */
export function verifyNearReport(report: NearReport, o: NearReportOptions): Verified<{ signers: AttestedSigner[] }> {
  if (o.nonce.length !== 32) throw new VerificationError('ERR_NEAR_NONCE', `expected a 32-byte nonce, got ${o.nonce.length} bytes`);
  if (o.liveSpkiSha256 !== undefined && !report.attestations.some((a) => a.role === 'gateway')) {
    throw new VerificationError('ERR_NEAR_REPORT_NO_GATEWAY', 'expected a gateway attestation (gateway_attestation, or the flat legacy report) to bind the TLS key; the report has only model attestations');
  }
  const signers = report.attestations.map((a, i): AttestedSigner => {
    const where = a.role === 'gateway' ? 'the gateway attestation' : `model_attestations[${i}]${a.modelName ? ` (${a.modelName})` : ''}`;
    const parsed = parseTdxQuote(a.quote);
    const collateral = o.collateral?.(quoteFmspc(parsed.pckChainPem));
    const quote = verifyTdxQuote(parsed, { at: o.at, roots: o.roots, ...(collateral ? { collateral } : {}) });
    const tlsBound = checkBinding(a, quote.body.reportData, o, where);
    const eventLog = a.eventLog === undefined ? undefined : parseDstackEventLog(a.eventLog);
    const tdx = evaluateTdxPolicy(quote, { ...o.policy, ...(eventLog ? { eventLog } : {}), ...(a.appCompose !== undefined ? { appCompose: a.appCompose } : {}) });
    if (o.allowedMrtd && o.allowedMrtd.length > 0 && !o.allowedMrtd.includes(tdx.mrtd)) {
      throw new PolicyError([{ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', message: `${where}: MRTD ${tdx.mrtd} is not in the allowed measurements` }]);
    }
    return {
      role: a.role,
      ...(a.modelName !== undefined ? { modelName: a.modelName } : {}),
      signingAlgo: a.signingAlgo,
      signingAddress: a.signingAlgo === 'ecdsa' ? a.signingAddress.toLowerCase() : a.signingAddress.toLowerCase().replace(/^0x/, ''),
      mrtd: tdx.mrtd,
      rtmr: tdx.rtmr,
      ...(tdx.composeHash ? { composeHash: tdx.composeHash } : {}),
      tlsBound,
      tcbStatus: tdx.tcbStatus,
      ...(tdx.advisoryIds ? { advisoryIds: tdx.advisoryIds } : {}),
    };
  });
  return asVerified({ signers });
}
