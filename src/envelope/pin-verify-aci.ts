import { snpTeeVerifier, teeVerifierByType, tdxTeeVerifier, verifyAciAttestation } from '../aci/index.js';
import { PolicyError } from '../errors/index.js';
import { pinnedAmdArks } from '../evidence/snp/roots.js';
import type { SnpKnobs } from '../evidence/snp/index.js';
import type { ArchivedPin, PinReverifier, PinVerification, ReverifyOptions } from './pin-verify.js';
import { archivedCollateral, CONNECTION_NOT_RECHECKED, intelRoots, pinInputs, rootsLine, tcbLine, type TdxPinPolicy } from './pin-verify-tdx.js';

/** An `aci` pin's policy as its document records it (src/attestation/aci.ts `aciPinPolicy`). */
interface AciPinPolicy extends TdxPinPolicy {
  hostname?: string;
  snp?: SnpKnobs;
  snpCrl?: boolean;
}

/**
 * An `aci` pin verified again, as of its own `verified_at`: the `/v1/aci/attestation` body as
 * received, through `verifyAciAttestation` with our archived nonce, the archived leaf's SPKI and
 * hostname, the TEE verifier of its type (SEV-SNP: the pinned AMD roots; TDX: the pinned Intel
 * root and the archived collateral), test roots only when given, then `aci.allowed_measurements`.
 */
async function reverifyAciPin(pin: ArchivedPin, o: ReverifyOptions): Promise<PinVerification> {
  const { report, at, nonce, spkiSha256, policy } = pinInputs(pin, 'aci');
  const p = policy as AciPinPolicy;
  const arks = o.testRoots?.length ? [...pinnedAmdArks(), ...o.testRoots] : undefined;
  const teeVerifier = teeVerifierByType({
    sev_snp: snpTeeVerifier({ ...(arks ? { arks } : {}), policy: { ...p.snp, allowDebug: p.allowDebug === true } }),
    tdx: tdxTeeVerifier({ roots: intelRoots(o), ...(p.tdx ? { policy: p.tdx } : {}), collateral: archivedCollateral(pin, p) }),
  });
  const id = await verifyAciAttestation(report, { nonce, at, teeVerifier, liveSpkiSha256: spkiSha256, ...(p.hostname ? { hostname: p.hostname } : {}), source: '/v1/aci/attestation' });
  const measurement = String(id.tee.measurement ?? id.tee.mrtd ?? '');
  if (!(p.allowedMeasurements ?? []).includes(measurement)) {
    throw new PolicyError([{ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', message: `${id.teeType} measurement ${measurement || '(none)'} is not in the archived aci.allowed_measurements` }]);
  }
  const expiresAt = new Date(Math.min(id.notAfter * 1000, at.getTime() + (p.maxAgeSeconds ?? 0) * 1000)).toISOString();
  const tdx = id.teeType === 'tdx';
  return {
    summary: { upstream: pin.doc.upstream, profile: 'aci', verified_at: pin.doc.verified_at, expires_at: expiresAt, kind: id.teeType, measurement, tag: id.keysetDigest, tls_spki_sha256: spkiSha256, freshness: 'nonce-bound', channel: 'bound', test_roots: pin.doc.test_roots },
    described: {
      lines: [
        ['TLS SPKI SHA-256', spkiSha256],
        ['TEE type', id.teeType],
        [tdx ? 'TDX MRTD' : 'SNP MEASUREMENT', measurement],
        ...(tdx ? [tcbLine(id.tee.tcb_status, id.tee.advisory_ids)] : [['Reported TCB', String(id.tee.reported_tcb)] as [string, string]]),
        ['Keyset digest', `${id.keysetDigest} (generation ${id.generation}, not after ${new Date(id.notAfter * 1000).toISOString()})`],
        ['Freshness', 'nonce-bound'],
        ...rootsLine(o.testRootsLabel),
      ],
      fields: { tls_spki_sha256: spkiSha256, tee_type: id.teeType, measurement, tee: id.tee, keyset_digest: id.keysetDigest, generation: id.generation, not_after: id.notAfter, nonce, freshness: 'nonce-bound', expires_at: expiresAt, test_roots: o.testRootsLabel !== undefined },
    },
    notRechecked: [CONNECTION_NOT_RECHECKED, ...(p.snpCrl ? ["AMD's CRL (snp.crl_file was configured; the CRL is not archived)"] : [])],
  };
}

export const aciPinReverifier: PinReverifier = { needsReleaseRoot: false, reverify: reverifyAciPin };
