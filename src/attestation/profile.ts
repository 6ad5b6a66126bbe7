import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/types.js';
import type { Clock } from '../types.js';
import { aciTeeVerifier, createAciAttester, type AciAttester } from './aci.js';
import type { AttestedIdentity } from './identity.js';
import { AttestationManager, type AttestationEvent, type AttestOverSocket } from './manager.js';
import { createNearAttester, type NearAttester } from './near.js';
import { createPinaivuAttester, pinaivuNitroRoots, type PinaivuAttester } from './pinaivu.js';
import { tdxRoots } from './tdx.js';
import { createTresorAttester, type TresorAttester } from './tresor.js';
import { loadTestRoots } from './test-roots.js';
import { warnTrustExceptions } from './exceptions.js';

/** Each upstream's profile attester, by upstream name (the receipt formats need them). */
export interface AttesterRegistry {
  attesters: Map<string, TresorAttester>;
  aciAttesters: Map<string, AciAttester>;
  pinaivuAttesters: Map<string, PinaivuAttester>;
  nearAttesters: Map<string, NearAttester>;
}

export function emptyAttesterRegistry(): AttesterRegistry {
  return { attesters: new Map(), aciAttesters: new Map(), pinaivuAttesters: new Map(), nearAttesters: new Map() };
}

export interface UpstreamAttestationDeps {
  clock: Clock;
  stateDir: string;
  logger: Logger;
  env?: Record<string, string | undefined> | undefined;
  onEvent?: ((e: AttestationEvent) => void) | undefined;
  onBundleFetch?: ((result: 'ok' | 'error') => void) | undefined;
  circuit?: { threshold: number; baseMs: number; maxMs: number } | undefined;
  /** Record a new pin (the receipt pipeline's `recordPin`): returns its evidence id when archived. */
  onPin?: ((pin: PinEvent) => string | undefined) | undefined;
}

/** A successful verification of an upstream, for its `attestation` audit record. */
export interface PinEvent {
  upstream: string;
  profile: UpstreamConfig['profile'];
  mode: string;
  reason: AttestationEvent['reason'];
  testRoots: boolean;
  identity: AttestedIdentity;
}

/** What attestation needs of an upstream's connection pool (the proxy's `Upstream`). */
export interface AttestedPool {
  readonly caPem: string | undefined;
  /** A fresh TLS socket, validated like pooled ones but not pooled and not yet pinned. */
  openSocket(): Promise<TLSSocket>;
  /** A pin lapsed: close the idle pooled connections whose key may no longer be used. */
  closeUnusable(): void;
}

/**
 * The pinning manager for one upstream, with its profile's attester (tresor, aci, pinaivu, near)
 * registered in `registry`: what the daemon runs per upstream, and what the library's
 * `AttestedAgent` runs for its one upstream.
 */
export async function createUpstreamAttestation(u: UpstreamConfig, upstream: AttestedPool, deps: UpstreamAttestationDeps, registry: AttesterRegistry): Promise<AttestationManager> {
  const { clock } = deps;
  // Not a child bound to { upstream }: every manager and warning line names its upstream itself, and
  // a binding would write the key twice (invalid for strict JSON readers).
  const logger = deps.logger;
  if (u.attestation.mode === 'off') {
    return new AttestationManager({ upstream: u.name, mode: 'off', attest: () => Promise.reject(new Error('attestation is off')), clock, logger, refreshAheadMs: 0 });
  }
  // Test roots only when the operator named them (attestation.test_roots_file, or a deprecated per-profile key): warned, shown, recorded.
  const testRoots = loadTestRoots(u);
  warnTrustExceptions(u, testRoots, logger);
  let attest: AttestOverSocket;
  if (u.profile === 'aci') {
    const aci = createAciAttester(u, { clock, teeVerifierFor: aciTeeVerifier(u, testRoots, { stateDir: deps.stateDir, clock, logger }) });
    registry.aciAttesters.set(u.name, aci);
    attest = aci.attest;
  } else if (u.profile === 'pinaivu') {
    const p = createPinaivuAttester(u, { clock, roots: pinaivuNitroRoots(testRoots) });
    registry.pinaivuAttesters.set(u.name, p);
    attest = p.attest;
  } else if (u.profile === 'near') {
    const n = createNearAttester(u, { clock, stateDir: deps.stateDir, logger, roots: tdxRoots(testRoots) });
    registry.nearAttesters.set(u.name, n);
    attest = n.attest;
  } else {
    const attester = await createTresorAttester(u, {
      clock,
      stateDir: deps.stateDir,
      caPem: upstream.caPem,
      ...(deps.env ? { env: deps.env } : {}),
      ...(deps.onBundleFetch ? { onBundleFetch: deps.onBundleFetch } : {}),
      testRoots: testRoots.certs,
    });
    registry.attesters.set(u.name, attester);
    attest = attester.attest;
  }
  return new AttestationManager({
    upstream: u.name,
    mode: u.attestation.mode,
    attest,
    openSocket: () => upstream.openSocket(),
    clock,
    logger,
    refreshAheadMs: u.attestation.refresh_ahead_seconds * 1000,
    onRevoke: () => upstream.closeUnusable(),
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
    ...(deps.circuit ? { circuit: deps.circuit } : {}),
    testRootsFiles: testRoots.files,
    ...(deps.onPin ? { onPin: (identity: AttestedIdentity, reason: AttestationEvent['reason']) => deps.onPin?.({ upstream: u.name, profile: u.profile, mode: u.attestation.mode, reason, testRoots: testRoots.files.length > 0, identity }) } : {}),
  });
}
