import { randomBytes } from 'node:crypto';
import type { UpstreamConfig } from '../config/types.js';
import { FetchError, PolicyError } from '../errors/index.js';
import { snpTeeVerifier, tdxTeeVerifier, teeVerifierByType, verifyAciAttestation, type AciTrustedKeyset, type TeeVerifier } from '../aci/index.js';
import { pinnedAmdArks } from '../evidence/snp/roots.js';
import { withTestRoots, type TestRoots } from './test-roots.js';
import { snpCrlSource, snpPolicy } from './snp.js';
import { tdxCollateralKind, tdxCollateralSource, tdxPolicy, tdxRoots, type TdxCollateralDeps } from './tdx.js';
import { loggedCollateral } from './tdx-collateral-log.js';
import { peerChainBase64 } from '../x509/certificate.js';
import type { Clock } from '../types.js';
import { inbandGet } from '../transport/inband.js';
import type { AttestedIdentity } from './identity.js';
import type { AttestOverSocket } from './manager.js';

/**
 * The TEE verifiers an `aci` upstream accepts: SEV-SNP (the pinned AMD roots) and TDX (the pinned
 * Intel root; `tdx` RTMR and compose-hash policy), each also to the operator's test roots if any.
 * Built once; each attestation gets its own verifier, which notes the Intel collateral it used in
 * `collateralUsed` (to archive with the pin).
 */
export function aciTeeVerifier(u: UpstreamConfig, testRoots: TestRoots, deps: TdxCollateralDeps): (collateralUsed?: Map<string, Uint8Array | string>) => TeeVerifier {
  // Without test roots the SNP verifier uses the pinned ASK and ARK of the report's product line.
  const arks = testRoots.certs.length > 0 ? withTestRoots(pinnedAmdArks(), testRoots) : undefined;
  const allowDebug = u.attestation.allow_debug;
  const snp = snpTeeVerifier({ ...(arks ? { arks } : {}), policy: { ...snpPolicy(u), allowDebug }, crl: snpCrlSource(u) });
  const roots = tdxRoots(testRoots);
  const policy = tdxPolicy(u);
  const collateral = tdxCollateralSource(u, deps);
  return (used) =>
    teeVerifierByType({
      sev_snp: snp,
      tdx: tdxTeeVerifier({ roots, policy, collateral: used ? loggedCollateral(collateral, used) : collateral }),
    });
}

/**
 * The policy an `aci` pin was verified under, as data (archived in its pin document and re-applied
 * by `tresor-verify audit`; AMD's CRL file is not archived, only whether one was configured).
 */
export function aciPinPolicy(u: UpstreamConfig): Record<string, unknown> {
  return {
    hostname: new URL(u.url).hostname.replace(/^\[|\]$/g, ''),
    allowedMeasurements: [...u.aci.allowed_measurements],
    maxAgeSeconds: u.attestation.max_age_seconds,
    allowDebug: u.attestation.allow_debug,
    tdx: tdxPolicy(u),
    tdxCollateral: tdxCollateralKind(u),
    snp: snpPolicy(u),
    snpCrl: u.snp.crl_file !== null,
  };
}

/** Bound on an ACI attestation report (a keyset plus TEE evidence, e.g. a TDX quote and event log). */
export const MAX_ACI_REPORT_BYTES = 256 * 1024;

export interface AciAttester {
  attest: AttestOverSocket;
  /** The keysets this daemon established, by their digest (what an ACI receipt must name). Bounded. */
  keysetByDigest(digest: string): AciTrustedKeyset | undefined;
}

/**
 * The `aci` profile's attestation step for the connection pinning manager (aci/1 §1.8 step 1):
 * `GET /v1/aci/attestation?nonce=<fresh 64 hex>` over the new connection itself (no API key is
 * sent before the router is trusted), the keyset digest and our nonce bound by the TEE evidence,
 * `not_after` respected, the connection's TLS key listed in `tls_public_keys`, and the TEE's
 * measurement in `aci.allowed_measurements`. The legacy `/v1/attestation/report` is never used.
 */
export function createAciAttester(u: UpstreamConfig, deps: { clock: Clock; teeVerifierFor: ReturnType<typeof aciTeeVerifier> }): AciAttester {
  const url = new URL(u.url);
  const base = url.pathname.replace(/\/+$/, '');
  const timeoutMs = u.timeouts.connect_seconds * 1000 + 10_000;
  const keysets = new Map<string, AciTrustedKeyset>();
  const policy = aciPinPolicy(u);
  const hostname = String(policy.hostname);
  return {
    keysetByDigest: (d) => keysets.get(d),
    async attest({ socket, spkiSha256 }) {
      const at = deps.clock();
      const tlsChain = peerChainBase64(socket);
      const nonce = randomBytes(32).toString('hex');
      const path = `${base}/v1/aci/attestation?nonce=${nonce}`;
      const res = await inbandGet(socket, { host: url.host, path, maxBodyBytes: MAX_ACI_REPORT_BYTES, timeoutMs });
      if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /v1/aci/attestation answered HTTP ${res.status}`);
      const collateralUsed = new Map<string, Uint8Array | string>();
      const id = await verifyAciAttestation(res.body, { nonce, at, teeVerifier: deps.teeVerifierFor(collateralUsed), liveSpkiSha256: spkiSha256, hostname, source: path });
      const measurement = String(id.tee.measurement ?? id.tee.mrtd ?? '');
      if (!u.aci.allowed_measurements.includes(measurement)) {
        throw new PolicyError([{ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', message: `${id.teeType} measurement ${measurement || '(none)'} is not in aci.allowed_measurements` }]);
      }
      keysets.delete(id.keysetDigest);
      keysets.set(id.keysetDigest, { generation: id.generation, keysetDigest: id.keysetDigest, ...(id.workloadId ? { workloadId: id.workloadId } : {}), receiptKeys: id.receiptKeys });
      if (keysets.size > 64) keysets.delete(keysets.keys().next().value as string);
      const expires = Math.min(id.notAfter * 1000, at.getTime() + u.attestation.max_age_seconds * 1000);
      const identity: AttestedIdentity = {
        spkiSha256,
        kind: id.teeType,
        measurement,
        tag: id.keysetDigest,
        verifiedAt: at.toISOString(),
        expiresAt: new Date(expires).toISOString(),
        // verifyAciAttestation requires our nonce in report_data and the connection's key in tls_public_keys.
        freshness: 'nonce-bound',
        channel: 'bound',
        summary: { profile: 'aci', tee_type: id.teeType, keyset_digest: id.keysetDigest, generation: id.generation, not_after: id.notAfter, tee: id.tee },
        // The report as received (an SNP report and VCEK chain, or a TDX quote and event log, are inside it).
        evidence: { profile: 'aci', blobs: { report: res.body, ...Object.fromEntries(collateralUsed) }, nonce, tlsChain, policy },
      };
      return identity;
    },
  };
}
