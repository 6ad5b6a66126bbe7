import { parseNearReport, verifyNearReport, type AttestedSigner } from '../near/index.js';
import type { ArchivedPin, PinReverifier, PinVerification, ReverifyOptions } from './pin-verify.js';
import { archivedCollateral, CONNECTION_NOT_RECHECKED, intelRoots, pinInputs, rootsLine, tcbLine } from './pin-verify-tdx.js';

const describeSigner = (s: AttestedSigner) => `${s.role}${s.modelName ? ` ${s.modelName}` : ''} ${s.signingAddress} MRTD ${s.mrtd}${s.composeHash ? ` compose ${s.composeHash}` : ''} TCB ${s.tcbStatus}`;

/**
 * A `near` pin verified again, as of its own `verified_at`: the `/v1/attestation/report` body as
 * received, through `verifyNearReport` with our archived nonce and the archived leaf's SPKI (the
 * gateway's quote must bind it), the pinned Intel root (test roots only when given), the archived
 * TDX policy, `near.allowed_measurements` and collateral.
 */
function reverifyNearPin(pin: ArchivedPin, o: ReverifyOptions): PinVerification {
  const { report, at, nonce, spkiSha256, policy: p } = pinInputs(pin, 'near');
  const { signers } = verifyNearReport(parseNearReport(report), {
    nonce: Buffer.from(nonce, 'hex'),
    liveSpkiSha256: spkiSha256,
    at,
    roots: intelRoots(o),
    ...(p.tdx ? { policy: p.tdx } : {}),
    allowedMrtd: p.allowedMeasurements ?? [],
    collateral: archivedCollateral(pin, p),
  });
  const gateway = signers.find((s) => s.tlsBound) as AttestedSigner;
  const expiresAt = new Date(at.getTime() + (p.maxAgeSeconds ?? 0) * 1000).toISOString();
  return {
    summary: { upstream: pin.doc.upstream, profile: 'near', verified_at: pin.doc.verified_at, expires_at: expiresAt, kind: 'tdx', measurement: gateway.mrtd, tag: gateway.signingAddress, tls_spki_sha256: spkiSha256, freshness: 'nonce-bound', channel: 'bound', test_roots: pin.doc.test_roots },
    described: {
      lines: [
        ['TLS SPKI SHA-256', spkiSha256],
        ['TEE type', 'tdx'],
        ['Gateway MRTD', gateway.mrtd],
        ['Gateway signer', gateway.signingAddress],
        tcbLine(gateway.tcbStatus, gateway.advisoryIds),
        ['Signers', signers.map(describeSigner).join('; ')],
        ['Freshness', 'nonce-bound'],
        ...rootsLine(o.testRootsLabel),
      ],
      fields: { tls_spki_sha256: spkiSha256, tee_type: 'tdx', measurement: gateway.mrtd, signers, nonce, freshness: 'nonce-bound', expires_at: expiresAt, test_roots: o.testRootsLabel !== undefined },
    },
    notRechecked: [CONNECTION_NOT_RECHECKED, 'model nodes looked up later by signing address (not part of this pin: their reports are not archived)'],
  };
}

export const nearPinReverifier: PinReverifier = { needsReleaseRoot: false, reverify: reverifyNearPin };
