import { randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FetchError, UsageError, VerificationError } from '../errors/index.js';
import { inbandGet } from '../attestation/inband.js';
import { openTlsSocket, proxyFor } from '../proxy/connector.js';
import { loadNitroRoots } from '../evidence/nitro/index.js';
import type { RollbackStore } from '../trust/rollback.js';
import { verifyTrustBundle } from '../trust/verify-bundle.js';
import type { Verified } from '../types.js';
import { boundedFetcher, checkFetchUrl } from '../util/fetch.js';
import { spkiSha256 } from '../x509/certificate.js';
import { MAX_ENVELOPE_BYTES, parseEnvelope } from './parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy, type RouterAttestation } from './verify.js';

export const DEFAULT_BUNDLE_URL = 'https://trust.tresor.co/api/router.json';
const MAX_BUNDLE_FETCH_BYTES = 256 * 1024;

export interface AttestRouterOptions {
  /** The router's base URL (https). */
  url: string;
  releaseRootKey: KeyObject;
  /** Extra CA (PEM) for the router's TLS certificate. */
  caPem?: string;
  /**
   * Where the trust bundle may come from: https URLs (plain http only to loopback) or local
   * files. The envelope's `trust_bundle_url` must be one of the URLs; a file is used as is.
   * Default: the public Tresor bundle URL.
   */
  bundleLocations?: readonly string[];
  rollback?: RollbackStore;
  /** Send a fresh nonce (default) or this one (hex); `false` for none. */
  nonce?: string | false;
  at: Date;
  policy?: EnvelopePolicy;
  timeoutMs?: number;
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/**
 * Attest a router once, as the docs' verifier algorithm describes: open TLS to it, GET
 * /attestation over that very connection (so the SPKI checked is the one presented), fetch the
 * trust bundle only from an allowed location, verify everything, close the connection.
 */
export async function attestRouter(o: AttestRouterOptions): Promise<{ attestation: Verified<RouterAttestation>; nonce?: string }> {
  const base = checkFetchUrl(o.url, '--url');
  if (base.protocol !== 'https:') throw new UsageError('ERR_USAGE_BAD_URL', '--url: attestation binds a TLS key, so the router URL must be https');
  const locations = o.bundleLocations && o.bundleLocations.length > 0 ? o.bundleLocations : [DEFAULT_BUNDLE_URL];
  for (const l of locations) if (isUrl(l)) checkFetchUrl(l, 'trust bundle location');
  const timeoutMs = o.timeoutMs ?? 15_000;
  const host = base.hostname.replace(/^\[|\]$/g, '');
  const port = Number(base.port) || 443;
  const nonce = o.nonce === false ? undefined : (o.nonce ?? randomBytes(32).toString('hex'));
  const socket = await openTlsSocket(host, port, host, { caPem: o.caPem, connectTimeoutMs: timeoutMs, proxy: proxyFor(host) });
  let envelopeBytes: Uint8Array;
  let live: string;
  try {
    const cert = socket.getPeerX509Certificate();
    if (!cert) throw new VerificationError('ERR_ATTEST_NO_PEER_CERTIFICATE', 'the router presented no TLS certificate');
    live = spkiSha256(cert);
    const path = `${base.pathname.replace(/\/+$/, '')}/attestation${nonce ? `?nonce=${nonce}` : ''}`;
    const res = await inbandGet(socket, { host: base.host, path, maxBodyBytes: MAX_ENVELOPE_BYTES, timeoutMs });
    if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /attestation answered HTTP ${res.status}`);
    envelopeBytes = res.body;
  } finally {
    socket.destroy();
  }
  const envelope = parseEnvelope(envelopeBytes);
  const fileLocation = locations.find((l) => !isUrl(l));
  let bundleJws: string;
  let source: string;
  if (fileLocation) {
    source = fileLocation;
    bundleJws = await readFile(fileLocation, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read the trust bundle ${fileLocation}: ${e.code ?? e.message}`);
    });
  } else {
    // A hostile router must not make us fetch arbitrary (internal) addresses.
    if (!locations.includes(envelope.trustBundleUrl)) {
      throw new VerificationError('ERR_BUNDLE_URL_NOT_ALLOWED', `the envelope's trust_bundle_url ${envelope.trustBundleUrl} is not an allowed bundle location`);
    }
    source = envelope.trustBundleUrl;
    const res = await boundedFetcher({ maxBytes: MAX_BUNDLE_FETCH_BYTES, timeoutMs, ca: o.caPem })(source).catch((e: unknown) => {
      throw e instanceof FetchError ? e : new FetchError('ERR_BUNDLE_FETCH', `cannot fetch the trust bundle from ${source}: ${(e as Error).message}`, { cause: e });
    });
    if (res.status !== 200) throw new FetchError('ERR_BUNDLE_FETCH', `the trust bundle at ${source} answered HTTP ${res.status}`);
    bundleJws = Buffer.from(res.body).toString('utf8');
  }
  const bundle = verifyTrustBundle(bundleJws, { rootKey: o.releaseRootKey, at: o.at });
  await o.rollback?.accept(source, bundle);
  const attestation = verifyRouterEnvelope(envelope, {
    liveSpkiSha256: live,
    bundle,
    at: o.at,
    nitroRoots: loadNitroRoots(),
    ...(nonce ? { nonce } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
  });
  return { attestation, ...(nonce ? { nonce } : {}) };
}
