import { randomBytes } from 'node:crypto';
import type { UpstreamConfig } from '../config/types.js';
import { FetchError } from '../errors/index.js';
import { loadNitroRoots } from '../evidence/nitro/index.js';
import { MAX_ATTESTATION_BYTES, verifyCoordinatorAttestation } from '../pinaivu/index.js';
import type { Clock } from '../types.js';
import { toHex } from '../util/bytes.js';
import { peerChainBase64, type Certificate } from '../x509/certificate.js';
import type { AttestedIdentity } from './identity.js';
import { inbandGet } from '../transport/inband.js';
import { withTestRoots, type TestRoots } from './test-roots.js';
import type { AttestOverSocket } from './manager.js';
import type { UpstreamGet } from '../transport/hooks.js';
import type { PinaivuPinPolicy } from '../envelope/pin-verify-pinaivu.js';

/** Nitro roots for a `pinaivu` upstream: the pinned AWS root G1, plus the operator's test roots if any. */
export function pinaivuNitroRoots(testRoots: TestRoots): Certificate[] {
  return withTestRoots(loadNitroRoots(), testRoots);
}

/** A coordinator key this daemon verified by Nitro attestation. */
export interface PinnedCoordinator {
  pubkey: string;
  pcr0: string;
  verifiedAt: string;
  summary: Record<string, unknown>;
}

export interface PinaivuAttester {
  attest: AttestOverSocket;
  /** The coordinator key (64 hex), if this daemon established it by attestation. Bounded. */
  coordinator(pubkeyHex: string): PinnedCoordinator | undefined;
  /**
   * The coordinator's key is new at every boot: when a proof names a key not pinned yet, fetch
   * `/get_attestation` again over the upstream's pool (its connections are attested), verify it
   * the same way and pin the key it signs. Single flight, at most once per 10 s.
   */
  refreshCoordinator(get: UpstreamGet): Promise<void>;
}

const REFRESH_COOLDOWN_MS = 10_000;

/** The policy a `pinaivu` pin is verified under, as data (archived, re-applied by `tresor-verify audit`). */
export const pinaivuPinPolicy = (u: UpstreamConfig): PinaivuPinPolicy => ({
  allowed_pcr0: [...u.pinaivu.allowed_pcr0],
  allow_debug: u.attestation.allow_debug,
  require_nonce: u.attestation.require_nonce,
  max_document_age_seconds: u.pinaivu.max_document_age_seconds,
  max_age_seconds: u.attestation.max_age_seconds,
});

/**
 * The `pinaivu` profile's attestation step for the connection pinning manager: over each new
 * connection, before any API key or application byte, `GET /get_attestation?nonce=<fresh 64 hex>`;
 * the answer's NSM document must chain to the Nitro root, carry an allowed PCR0 (no debug
 * enclave), be fresh (our nonce if it signs one — the coordinator takes none today — and at most
 * `pinaivu.max_document_age_seconds` old), and sign the coordinator's Ed25519 key as
 * `public_key`. That key is pinned: routing proofs must be signed by it.
 *
 * What this does not prove: the TLS endpoint (Pinaivu's gateway) is not an enclave and the
 * document binds no TLS key, so the pin says "this upstream served an allowed coordinator's
 * attestation", not "this TLS key belongs to the enclave" (docs/wire/aci.md §6).
 */
export function createPinaivuAttester(u: UpstreamConfig, deps: { clock: Clock; roots: readonly Certificate[] }): PinaivuAttester {
  const url = new URL(u.url);
  const base = url.pathname.replace(/\/+$/, '');
  const timeoutMs = u.timeouts.connect_seconds * 1000 + 10_000;
  const keys = new Map<string, PinnedCoordinator>();
  const policy = pinaivuPinPolicy(u);
  let refreshing: Promise<void> | undefined;
  let lastRefresh = -Infinity;

  /** Verify one `/get_attestation` answer (for `nonce`) and pin the coordinator key it signs. */
  const verifyAndPin = (body: Uint8Array, nonce: string, at: Date) => {
    const id = verifyCoordinatorAttestation(body, {
      at,
      roots: deps.roots,
      allowedPcr0: policy.allowed_pcr0,
      allowDebug: policy.allow_debug,
      nonce,
      requireNonce: policy.require_nonce,
      maxAgeSeconds: policy.max_document_age_seconds,
    });
    const pubkey = toHex(id.coordinatorPubkey);
    const summary = {
      profile: 'pinaivu',
      coordinator_pubkey: pubkey,
      pcr0: id.pcr0,
      pcr1: id.pcr1,
      pcr2: id.pcr2,
      module_id: id.moduleId,
      document_timestamp: new Date(id.timestamp).toISOString(),
      document_sha256: id.documentSha256,
      freshness: id.freshness,
      tls_key_bound: false,
    };
    keys.delete(pubkey);
    keys.set(pubkey, { pubkey, pcr0: id.pcr0, verifiedAt: at.toISOString(), summary });
    if (keys.size > 64) keys.delete(keys.keys().next().value as string);
    return { id, pubkey, summary };
  };

  return {
    coordinator: (hex) => keys.get(hex.toLowerCase()),
    refreshCoordinator(get) {
      const now = deps.clock().getTime();
      if (refreshing) return refreshing;
      if (now - lastRefresh < REFRESH_COOLDOWN_MS) return Promise.resolve();
      lastRefresh = now;
      refreshing = (async () => {
        const nonce = randomBytes(32).toString('hex');
        const res = await get(`/get_attestation?nonce=${nonce}`, { headers: { accept: 'application/json' }, timeoutMs, maxBytes: MAX_ATTESTATION_BYTES });
        if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /get_attestation answered HTTP ${res.status}`);
        verifyAndPin(res.body, nonce, deps.clock());
      })().finally(() => {
        refreshing = undefined;
      });
      return refreshing;
    },
    async attest({ socket, spkiSha256 }) {
      const at = deps.clock();
      const tlsChain = peerChainBase64(socket);
      const nonce = randomBytes(32).toString('hex');
      const path = `${base}/get_attestation?nonce=${nonce}`;
      const res = await inbandGet(socket, { host: url.host, path, maxBodyBytes: MAX_ATTESTATION_BYTES, timeoutMs });
      if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /get_attestation answered HTTP ${res.status}`);
      const { id, pubkey, summary } = verifyAndPin(res.body, nonce, at);
      const identity: AttestedIdentity = {
        spkiSha256,
        kind: 'nitro',
        measurement: id.pcr0,
        tag: pubkey,
        verifiedAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + policy.max_age_seconds * 1000).toISOString(),
        freshness: id.freshness === 'nonce' ? 'nonce-bound' : 'not freshness-bound',
        // The document binds the coordinator's signing key, never the TLS key (allow_unbound_channel).
        channel: 'unbound',
        summary,
        // The answer exactly as received (the NSM document and the coordinator key it signs), for the archive (docs/wire.md §7.2).
        evidence: { profile: 'pinaivu', blobs: { attestation: res.body }, nonce, tlsChain, policy: { ...policy } },
      };
      return identity;
    },
  };
}
