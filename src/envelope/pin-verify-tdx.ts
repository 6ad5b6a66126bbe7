import { X509Certificate } from 'node:crypto';
import { FetchError, MalformedError } from '../errors/index.js';
import { loadIntelSgxRoots, parseTdxCollateral, type TdxCollateral, type TdxCollateralSource, type TdxPolicy } from '../evidence/tdx/index.js';
import { spkiSha256, type Certificate } from '../x509/certificate.js';
import type { ArchivedPin, ReverifyOptions } from './pin-verify.js';

/**
 * What the `aci` and `near` re-verifiers share (docs/wire.md §7.2): the pin's time, nonce, TLS key
 * and policy read from its document, the Intel collateral archived with it as a collateral
 * source, and the TCB line of `--evidence`.
 */

/** The policy fields a TDX-based pin document carries (written by the attesters as data). */
export interface TdxPinPolicy {
  allowedMeasurements?: string[];
  maxAgeSeconds?: number;
  allowDebug?: boolean;
  tdx?: Omit<TdxPolicy, 'expectedReportData' | 'eventLog' | 'appCompose'>;
  /** Where the daemon's collateral came from (`file`, `dir`, `pccs`), or null: it had none (TCB status unknown). */
  tdxCollateral?: string | null;
}

/** The archived report, the time, our nonce and the leaf SPKI a pin is verified again with. */
export function pinInputs(pin: ArchivedPin, profile: string): { report: Buffer; at: Date; nonce: string; spkiSha256: string; policy: TdxPinPolicy } {
  const { doc, parts } = pin;
  const report = parts.report;
  const leafDer = doc.tls_chain_der_b64?.[0];
  if (!report || !leafDer || typeof doc.nonce !== 'string') throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', `the ${profile} pin document lacks its report, nonce or TLS certificate`);
  const at = new Date(doc.verified_at);
  if (!Number.isFinite(at.getTime())) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pin document has no valid verified_at');
  const policy = (typeof doc.policy === 'object' && doc.policy !== null ? doc.policy : {}) as TdxPinPolicy;
  return { report, at, nonce: doc.nonce, spkiSha256: spkiSha256(new X509Certificate(Buffer.from(leafDer, 'base64'))), policy };
}

/** The evidence role of the collateral used for quotes of platform `fmspc` (as the attesters name it). */
const COLLATERAL_ROLE = /^tdx_collateral_([0-9a-f]{12})$/;

/**
 * The Intel collateral archived with a pin, by the FMSPC it was used for. Undefined when the
 * daemon had none configured (the re-verification then says TCB status unknown, as the daemon
 * did); when it had, a quote whose collateral is not archived fails (ERR_TDX_COLLATERAL_UNAVAILABLE).
 */
export function archivedCollateral(pin: ArchivedPin, policy: TdxPinPolicy): TdxCollateralSource | undefined {
  const byFmspc = new Map<string, TdxCollateral>();
  for (const [role, bytes] of Object.entries(pin.parts)) {
    const m = COLLATERAL_ROLE.exec(role);
    if (m) byFmspc.set(m[1] as string, parseTdxCollateral(bytes.toString('utf8')));
  }
  if (byFmspc.size === 0 && !policy.tdxCollateral) return undefined;
  return (fmspc) => {
    const c = byFmspc.get(fmspc);
    if (!c) throw new FetchError('ERR_TDX_COLLATERAL_UNAVAILABLE', `the daemon used Intel collateral (${String(policy.tdxCollateral)}), but none for FMSPC ${fmspc} is archived with this pin`);
    return c;
  };
}

/** The pinned Intel SGX Root CA, plus the test roots only when given. */
export const intelRoots = (o: ReverifyOptions): Certificate[] => [...loadIntelSgxRoots(), ...(o.testRoots ?? [])];

/** `--evidence`'s TCB status line: what Intel's archived collateral said, or unknown as the daemon saw it. */
export function tcbLine(status: unknown, advisories: unknown): [string, string] {
  if (status === 'unknown' || status === undefined) return ['TCB status', 'unknown (no Intel collateral was configured, none archived)'];
  const ids = Array.isArray(advisories) && advisories.length > 0 ? ` (advisories ${advisories.join(', ')})` : '';
  return ['TCB status', `${String(status)}${ids} per the archived Intel collateral`];
}

/** The `--evidence` line naming the test roots, when given. */
export const rootsLine = (label: string | undefined): [string, string][] => (label ? [['Trust roots', `pinned vendor roots and test roots from ${label}`]] : []);

/** What the daemon saw of the connection the evidence came over, and an offline check cannot see again. */
export const CONNECTION_NOT_RECHECKED = 'that the connection presented this TLS certificate (the daemon saw it in the handshake; the evidence binds its key)';
