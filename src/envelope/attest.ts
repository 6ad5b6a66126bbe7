import { randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { describeCause, FetchError, UsageError, VerificationError } from '../errors/index.js';
import { inbandGet } from '../transport/inband.js';
import { openTlsSocket, proxyFor } from '../transport/connector.js';
import { loadNitroRoots } from '../evidence/nitro/index.js';
import type { RollbackStore } from '../trust/rollback.js';
import { verifyTrustBundle, type TrustBundle } from '../trust/verify-bundle.js';
import type { Clock, Verified } from '../types.js';
import { boundedFetcher, checkFetchUrl } from '../util/fetch.js';
import { peerCertificate, spkiSha256, type Certificate } from '../x509/certificate.js';
import { MAX_ENVELOPE_BYTES, parseEnvelope } from './parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy, type RouterAttestation } from './verify.js';

export const DEFAULT_BUNDLE_URL = 'https://trust.tresor.co/api/router.json';
const MAX_BUNDLE_FETCH_BYTES = 256 * 1024;
/** Re-read the bundle at least this often (a newer version may revoke a release). */
const BUNDLE_CACHE_MS = 5 * 60_000;

/** Whether a trust bundle location is a URL (else a file). */
export const isUrl = (s: string) => /^https?:\/\//i.test(s);

/** The pinned AWS Nitro root, read once (used when the trust bundle carries no `nitro.root_pem`). */
let awsNitroRoots: Certificate[] | undefined;
export const pinnedNitroRoots = () => (awsNitroRoots ??= loadNitroRoots());

export interface BundleSource {
  /**
   * The verified bundle for an envelope that names `envelopeUrl`, fetched only from an allowed
   * location. `fresh` skips the cache (a pin's refresh: a newer bundle may revoke the release).
   */
  get(envelopeUrl: string, opts?: { fresh?: boolean }): Promise<Verified<TrustBundle>>;
  /** What `get(envelopeUrl)` would answer at once from its cache, or undefined when it would fetch (or refuse). */
  cached(envelopeUrl: string): Verified<TrustBundle> | undefined;
}

/**
 * Trust bundles from the locations the operator allows: https URLs (plain http only to loopback),
 * which the envelope's `trust_bundle_url` must name, or a file, used as is. A hostile router cannot
 * make the daemon fetch arbitrary (internal) addresses. Verified bundles are cached briefly and
 * pass the rollback store.
 */
export function createBundleSource(o: {
  locations: readonly string[];
  rootKey: KeyObject;
  caPem?: string | undefined;
  rollback?: RollbackStore | undefined;
  clock: Clock;
  timeoutMs: number;
  /** The forward proxy for a host (HTTPS_PROXY / NO_PROXY), as for the router connection. */
  proxy?: ((hostname: string) => URL | undefined) | undefined;
  /** Told after each fetch-and-verify of the bundle (not for cache hits): metrics. */
  onFetch?: ((result: 'ok' | 'error') => void) | undefined;
}): BundleSource {
  for (const l of o.locations) if (isUrl(l)) checkFetchUrl(l, 'trust bundle location');
  const fetcher = boundedFetcher({ maxBytes: MAX_BUNDLE_FETCH_BYTES, timeoutMs: o.timeoutMs, ca: o.caPem, proxy: o.proxy });
  let cached: { bundle: Verified<TrustBundle>; source: string; at: number } | undefined;
  const fetchAndVerify = async (file: string | undefined, source: string, now: Date): Promise<Verified<TrustBundle>> => {
    let jws: string;
    if (file) {
      jws = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new FetchError('ERR_BUNDLE_FETCH', `cannot read the trust bundle ${file}: ${describeCause(e, { code: true })}`);
      });
    } else {
      const res = await fetcher(source).catch((e: unknown) => {
        throw e instanceof FetchError ? e : new FetchError('ERR_BUNDLE_FETCH', `cannot fetch the trust bundle from ${source}: ${describeCause(e)}`, { cause: e });
      });
      if (res.status !== 200) throw new FetchError('ERR_BUNDLE_FETCH', `the trust bundle at ${source} answered HTTP ${res.status}`);
      jws = Buffer.from(res.body).toString('utf8');
    }
    const bundle = verifyTrustBundle(jws, { rootKey: o.rootKey, at: now });
    await o.rollback?.accept(source, bundle);
    return bundle;
  };
  /** The allowed location an envelope naming `envelopeUrl` is given its bundle from (a file wins). */
  const sourceOf = (envelopeUrl: string) => {
    const file = o.locations.find((l) => !isUrl(l));
    const source = file ?? envelopeUrl;
    if (!file && !o.locations.includes(envelopeUrl)) {
      throw new VerificationError('ERR_BUNDLE_URL_NOT_ALLOWED', `the envelope's trust_bundle_url ${envelopeUrl} is not an allowed bundle location`);
    }
    return { file, source };
  };
  const fromCache = (source: string, now: number) => (cached && cached.source === source && now - cached.at < BUNDLE_CACHE_MS && now <= cached.bundle.validUntil.getTime() ? cached.bundle : undefined);
  return {
    async get(envelopeUrl, opts = {}) {
      const { file, source } = sourceOf(envelopeUrl);
      const now = o.clock();
      const hit = opts.fresh ? undefined : fromCache(source, now.getTime());
      if (hit) return hit;
      const bundle = await fetchAndVerify(file, source, now).then(
        (b) => {
          o.onFetch?.('ok');
          return b;
        },
        (e: unknown) => {
          o.onFetch?.('error');
          throw e;
        },
      );
      cached = { bundle, source, at: now.getTime() };
      return bundle;
    },
    cached(envelopeUrl) {
      try {
        return fromCache(sourceOf(envelopeUrl).source, o.clock().getTime());
      } catch {
        return undefined; // not an allowed location: `get` refuses it
      }
    },
  };
}

export interface AttestSocketOptions {
  /** Host header and path prefix of the router. */
  host: string;
  basePath: string;
  bundles: BundleSource;
  /** Re-read the trust bundle instead of using the cached copy (a pin's refresh). */
  freshBundle?: boolean;
  /** A fresh random nonce by default; `false` for none. */
  nonce?: string | false;
  at: Date;
  policy?: EnvelopePolicy;
  /** The operator's test roots, which a bundle may name besides the pinned vendor roots. */
  testRoots?: readonly Certificate[];
  timeoutMs: number;
}

/**
 * GET /attestation over `socket` (the connection about to be trusted) and verify the envelope
 * against that socket's own TLS key. Leaves the socket open and idle for reuse.
 */
export async function attestOverSocket(socket: TLSSocket, o: AttestSocketOptions): Promise<AttestedRouter> {
  const cert = peerCertificate(socket);
  if (!cert) throw new VerificationError('ERR_ATTEST_NO_PEER_CERTIFICATE', 'the router presented no TLS certificate');
  const live = spkiSha256(cert);
  const nonce = o.nonce === false ? undefined : (o.nonce ?? randomBytes(32).toString('hex'));
  const path = `${o.basePath.replace(/\/+$/, '')}/attestation${nonce ? `?nonce=${nonce}` : ''}`;
  const res = await inbandGet(socket, { host: o.host, path, maxBodyBytes: MAX_ENVELOPE_BYTES, timeoutMs: o.timeoutMs });
  if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /attestation answered HTTP ${res.status}`);
  const envelope = parseEnvelope(res.body);
  const bundle = await o.bundles.get(envelope.trustBundleUrl, { fresh: o.freshBundle === true });
  const attestation = verifyRouterEnvelope(envelope, {
    liveSpkiSha256: live,
    bundle,
    at: o.at,
    nitroRoots: pinnedNitroRoots(),
    ...(o.testRoots ? { testRoots: o.testRoots } : {}),
    ...(nonce ? { nonce } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
  });
  return { attestation, ...(nonce ? { nonce } : {}), received: { envelope: res.body, bundleJws: bundle.raw } };
}

/** A verified router attestation, with what it was verified from exactly as received (for the evidence archive). */
export interface AttestedRouter {
  attestation: Verified<RouterAttestation>;
  nonce?: string;
  received: { envelope: Uint8Array; bundleJws: string };
}

export interface AttestRouterOptions {
  url: string;
  releaseRootKey: KeyObject;
  caPem?: string;
  /** Allowed trust bundle locations (default: the public Tresor bundle URL). */
  bundleLocations?: readonly string[];
  rollback?: RollbackStore;
  nonce?: string | false;
  at: Date;
  policy?: EnvelopePolicy;
  testRoots?: readonly Certificate[];
  timeoutMs?: number;
}

/** Attest a router once (for `tresor-verify attest`): open TLS, attest over it, close. */
export async function attestRouter(o: AttestRouterOptions): Promise<AttestedRouter> {
  const base = checkFetchUrl(o.url, '--url');
  if (base.protocol !== 'https:') throw new UsageError('ERR_USAGE_BAD_URL', '--url: attestation binds a TLS key, so the router URL must be https');
  const timeoutMs = o.timeoutMs ?? 15_000;
  const bundles = createBundleSource({
    locations: o.bundleLocations && o.bundleLocations.length > 0 ? o.bundleLocations : [DEFAULT_BUNDLE_URL],
    rootKey: o.releaseRootKey,
    caPem: o.caPem,
    rollback: o.rollback,
    clock: () => o.at,
    timeoutMs,
    proxy: (h) => proxyFor(h),
  });
  const host = base.hostname.replace(/^\[|\]$/g, '');
  const socket = await openTlsSocket(host, Number(base.port) || 443, host, { caPem: o.caPem, connectTimeoutMs: timeoutMs, proxy: proxyFor(host) });
  try {
    return await attestOverSocket(socket, {
      host: base.host,
      basePath: base.pathname,
      bundles,
      ...(o.nonce !== undefined ? { nonce: o.nonce } : {}),
      at: o.at,
      ...(o.policy ? { policy: o.policy } : {}),
      ...(o.testRoots ? { testRoots: o.testRoots } : {}),
      timeoutMs,
    });
  } finally {
    socket.destroy();
  }
}
