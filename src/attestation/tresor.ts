import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpstreamConfig } from '../config/types.js';
import { describeCause, ConfigError, toTresorError } from '../errors/index.js';
import { parseEnvelope } from '../envelope/parse.js';
import { verifyRouterEnvelope, type RouterAttestation } from '../envelope/verify.js';
import type { Check } from '../checks/check.js';
import { attestOverSocket, createBundleSource, pinnedNitroRoots } from '../envelope/attest.js';
import { proxyFor } from '../transport/connector.js';
import { snpCrlSource, snpPolicy, type CrlWithDer } from './snp.js';
import { loadReleaseRootKey } from '../trust/release-root.js';
import { RollbackStore } from '../trust/rollback.js';
import type { Clock } from '../types.js';
import { peerChainBase64, type Certificate } from '../x509/certificate.js';
import type { AttestedIdentity } from './identity.js';
import type { AttestOverSocket } from './manager.js';

/**
 * The `tresor` profile's attestation step for the connection pinning manager: the router
 * envelope fetched over the new connection, verified against that connection's key, the trust
 * bundle from the configured location (rollback-protected in the state directory).
 */
export interface TresorAttester {
  attest: AttestOverSocket;
  /**
   * The receipt's `router_attestation` block: the router envelope at issuance, verified offline
   * (same bundle source and policy, as of the receipt's `iat`) and matched against an identity
   * the daemon itself verified (same TLS key, measurement and tag). `raw`: the block's exact JSON
   * text in the signed receipt; what is verified then (recognised by those exact bytes).
   */
  checkReceiptBlock(block: unknown, at: Date, known: () => readonly AttestedIdentity[], raw?: string): Omit<Check, 'name'> | Promise<Omit<Check, 'name'>>;
}

/** The upstream's pinned release-root key from `attestation.release_root_file` (read at start, and by `config check`). */
export async function readReleaseRoot(u: UpstreamConfig): Promise<KeyObject> {
  const file = u.attestation.release_root_file as string;
  return loadReleaseRootKey(
    await readFile(file).catch((e: NodeJS.ErrnoException) => {
      throw new ConfigError('ERR_CONFIG_RELEASE_ROOT', `upstreams.${u.name}.attestation.release_root_file: cannot read ${file}: ${describeCause(e, { code: true })}`);
    }),
  );
}

/** A router envelope verified before, by its exact text: valid for receipts issued from `from` to `until` under that bundle version. */
interface VerifiedBlock {
  a: RouterAttestation;
  from: number;
  until: number;
  bundleVersion: number;
  bundleUrl: string;
}

export async function createTresorAttester(
  u: UpstreamConfig,
  deps: {
    clock: Clock;
    stateDir: string;
    caPem?: string | undefined;
    env?: Record<string, string | undefined>;
    onBundleFetch?: (result: 'ok' | 'error') => void;
    /** The operator's test roots (`attestation.test_roots_file`): roots the bundle may name besides the pinned ones. */
    testRoots?: readonly Certificate[];
  },
): Promise<TresorAttester> {
  const att = u.attestation;
  const rootKey = await readReleaseRoot(u);
  const rollback = await RollbackStore.open(join(deps.stateDir, `trust-bundles-${u.name}.json`));
  const timeoutMs = u.timeouts.connect_seconds * 1000 + 10_000;
  // The bundle is fetched the way the router is reached: through HTTPS_PROXY unless NO_PROXY says otherwise.
  const bundles = createBundleSource({ locations: [att.trust_bundle], rootKey, caPem: deps.caPem, rollback, clock: deps.clock, timeoutMs, proxy: (h) => proxyFor(h, deps.env), onFetch: deps.onBundleFetch });
  const url = new URL(u.url);
  const policy = { allowDebug: att.allow_debug, maxAgeCapSeconds: att.max_age_seconds, snp: snpPolicy(u), snpCrl: snpCrlSource(u) };
  const attest: AttestOverSocket = async ({ socket, refresh }) => {
    const at = deps.clock();
    const tlsChain = peerChainBase64(socket);
    // The CRL this verification used (read only for SNP evidence), archived with the pin.
    let crlUsed: CrlWithDer | undefined;
    const snpCrl = policy.snpCrl && (() => (crlUsed = (policy.snpCrl as () => CrlWithDer)()));
    const { attestation: a, nonce, received } = await attestOverSocket(socket, {
      host: url.host,
      basePath: url.pathname,
      bundles,
      freshBundle: refresh === true,
      at,
      policy: { ...policy, snpCrl, requireNonce: att.require_nonce },
      ...(deps.testRoots ? { testRoots: deps.testRoots } : {}),
      timeoutMs,
    });
    const identity: AttestedIdentity = {
      spkiSha256: a.spkiSha256,
      kind: a.kind,
      measurement: a.measurement,
      tag: a.tag,
      bundleVersion: a.bundle.version,
      bundleValidUntil: a.bundle.validUntil,
      verifiedAt: at.toISOString(),
      expiresAt: a.expiresAt,
      freshness: a.nonceBound ? 'nonce-bound' : 'not freshness-bound',
      channel: 'bound',
      ...(a.bundle.receiptSigningKeys ? { receiptSigningKeys: a.bundle.receiptSigningKeys } : {}),
      summary: { kind: a.kind, measurement: a.measurement, tag: a.tag, manifest: a.manifest, bundle: a.bundle, issuedAt: a.issuedAt },
      evidence: {
        profile: 'tresor',
        blobs: { envelope: received.envelope, trust_bundle: received.bundleJws, ...(crlUsed ? { snp_crl: crlUsed.der } : {}) },
        nonce,
        tlsChain,
        // The policy as data; `trustBundleLocation` is the one allowed location (a URL the envelope must name, or a file).
        policy: { allowDebug: policy.allowDebug, maxAgeCapSeconds: policy.maxAgeCapSeconds, requireNonce: att.require_nonce, snp: policy.snp, snpCrl: policy.snpCrl !== undefined, trustBundleLocation: att.trust_bundle },
      },
    };
    return identity;
  };
  // Receipts embed the same envelope until the router refreshes it: verify each distinct one once
  // (bounded), reusing the result only for `at` inside the window that verification proved fresh.
  const verifiedBlocks = new Map<string, VerifiedBlock>();
  const SKEW_MS = 300_000;
  return {
    attest,
    checkReceiptBlock(block, at, known, raw) {
      // The cache key is the block's exact text in the receipt (no re-serialisation; a block that
      // could not be cut out is serialised): same bytes, same entry; a byte changed, a new block,
      // parsed and verified in full. The text itself, not a SHA-256 of it: no collision to argue
      // about, and no hash of ~5 KB per receipt (the string's own hash is computed once).
      const key = raw ?? JSON.stringify(block ?? null);
      const hit = verifiedBlocks.get(key);
      const t = at.getTime();
      // A byte-identical envelope verified before: only the bundle in force and the time window can
      // differ. With the bundle in force cached, as nearly always, the answer is a value, not a promise.
      if (hit && t >= hit.from && t <= hit.until) {
        const inForce = bundles.cached(hit.bundleUrl);
        if (inForce) return inForce.version === hit.bundleVersion ? matchKnown(hit.a, known) : verifyBlock(key, at, known);
      }
      return verifyBlock(key, at, known, hit);
    },
  };

  /** The block parsed and verified in full (cached by its text), or a cached result once the bundle in force is fetched. */
  async function verifyBlock(key: string, at: Date, known: () => readonly AttestedIdentity[], hit?: VerifiedBlock): Promise<Omit<Check, 'name'>> {
    try {
      const t = at.getTime();
      let a: RouterAttestation;
      if (hit && t >= hit.from && t <= hit.until && (await bundles.get(hit.bundleUrl)).version === hit.bundleVersion) a = hit.a;
      else {
        const env = parseEnvelope(Buffer.from(key, 'utf8'));
        const bundle = await bundles.get(env.trustBundleUrl);
        a = verifyRouterEnvelope(env, { liveSpkiSha256: env.tlsSpkiSha256, bundle, at, nitroRoots: pinnedNitroRoots(), ...(deps.testRoots ? { testRoots: deps.testRoots } : {}), policy });
        verifiedBlocks.delete(key);
        verifiedBlocks.set(key, { a, from: Date.parse(a.issuedAt) - SKEW_MS, until: Date.parse(a.expiresAt), bundleVersion: bundle.version, bundleUrl: env.trustBundleUrl });
        if (verifiedBlocks.size > 256) verifiedBlocks.delete(verifiedBlocks.keys().next().value as string);
      }
      return matchKnown(a, known);
    } catch (e) {
      const err = toTresorError(e);
      return { result: err.phase === 'fetch' ? 'unverifiable' : 'fail', code: err.code, detail: err.message };
    }
  }
}

/** A verified router envelope against the identities the daemon itself verified: same TLS key, measurement and tag. */
function matchKnown(a: RouterAttestation, known: () => readonly AttestedIdentity[]): Omit<Check, 'name'> {
  const match = known().find((k) => k.spkiSha256 === a.spkiSha256);
  if (!match) return { result: 'fail', code: 'ERR_RECEIPT_ROUTER_KEY_UNKNOWN', detail: `the receipt's router evidence binds TLS key ${a.spkiSha256}, which this daemon never verified a connection to` };
  if (match.measurement !== a.measurement || match.tag !== a.tag) {
    return { result: 'fail', code: 'ERR_RECEIPT_ROUTER_ATTESTATION_MISMATCH', detail: `the receipt's router evidence (${a.measurement}, tag ${a.tag}) differs from what the daemon verified for that key` };
  }
  return { result: 'pass', detail: `${a.kind} ${a.measurement}, tag ${a.tag}, TLS key ${a.spkiSha256}` };
}
