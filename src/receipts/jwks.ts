import type { KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { describeCause, FetchError, MalformedError, VerificationError } from '../errors/index.js';
import type { Clock, Fetcher } from '../types.js';
import { keyFromJwk, type KeyResolver } from './jws.js';

/** Bound on a JWKS document. */
export const MAX_JWKS_BYTES = 64 * 1024;

interface Entry {
  kid: string | undefined;
  thumbprint: string;
  key: KeyObject;
}

/** Keys the trust bundle allows (RFC 7638 thumbprints and/or kids); absent means "any key in the JWKS". */
export interface AllowedKeys {
  thumbprints?: readonly string[];
  kids?: readonly string[];
}

async function parseJwks(bytes: Uint8Array): Promise<Entry[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new MalformedError('ERR_JWKS_MALFORMED', 'the JWKS is not JSON');
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new MalformedError('ERR_JWKS_MALFORMED', 'expected a JWKS object with a "keys" array');
  const out: Entry[] = [];
  for (const jwk of keys) {
    if (typeof jwk !== 'object' || jwk === null) throw new MalformedError('ERR_JWKS_MALFORMED', 'a JWKS entry is not an object');
    const j = jwk as JWK;
    // Only public EC P-256 signing keys are candidates for ES256; others are ignored, not errors.
    if (j.kty !== 'EC' || j.crv !== 'P-256' || j.d !== undefined || (j.use !== undefined && j.use !== 'sig')) continue;
    if (j.alg !== undefined && j.alg !== 'ES256') continue;
    out.push({ kid: typeof j.kid === 'string' ? j.kid : undefined, thumbprint: await calculateJwkThumbprint(j), key: keyFromJwk(j as Record<string, unknown>) });
  }
  return out;
}

function select(entries: Entry[], header: Readonly<Record<string, unknown>>, allowed: AllowedKeys | undefined): KeyObject[] | undefined {
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  // With a kid, exactly that key; without one, every EC P-256 key (the docs' legacy loop).
  const candidates = kid === undefined ? entries : entries.filter((e) => e.kid === kid);
  if (candidates.length === 0) return undefined;
  if (allowed && (allowed.thumbprints || allowed.kids)) {
    const ok = candidates.filter((e) => allowed.thumbprints?.includes(e.thumbprint) || (e.kid !== undefined && allowed.kids?.includes(e.kid)));
    if (ok.length === 0) {
      throw new VerificationError('ERR_RECEIPT_KEY_NOT_IN_BUNDLE', `the JWKS key ${kid ? JSON.stringify(kid) : ''} is not among the receipt signing keys the trust bundle lists`.replace('  ', ' '));
    }
    return ok.map((e) => e.key);
  }
  return candidates.map((e) => e.key);
}

function noKey(header: Readonly<Record<string, unknown>>): VerificationError {
  return new VerificationError('ERR_JWKS_NO_MATCHING_KEY', `no EC P-256 key ${typeof header.kid === 'string' ? `with kid ${JSON.stringify(header.kid)} ` : ''}in the JWKS`);
}

/** A fixed JWKS (a file, or a snapshot archived beside an audit log). */
export async function createStaticJwks(jwks: Uint8Array | string, allowed?: AllowedKeys): Promise<{ resolve: KeyResolver; kids: (string | undefined)[] }> {
  const entries = await parseJwks(typeof jwks === 'string' ? Buffer.from(jwks) : jwks);
  return {
    kids: entries.map((e) => e.kid),
    resolve: async (header) => select(entries, header, allowed) ?? Promise.reject(noKey(header)),
  };
}

export interface RemoteJwksOptions {
  url: string;
  fetcher: Fetcher;
  clock: Clock;
  /** Refetch after this long even if nothing changed. */
  maxAgeMs?: number;
  /** At most one refetch per this interval (an unknown kid cannot make us hammer the router). */
  cooldownMs?: number;
  timeoutMs?: number;
  /** Fixed, or read at each use (the trust bundle in force can change). */
  allowed?: AllowedKeys | (() => AllowedKeys | undefined);
  /** Told after each fetch (metrics). */
  onFetch?: (result: 'ok' | 'error') => void;
}

export interface RemoteJwks {
  /** `allowed`, when given, replaces the `allowed` option for this call. */
  /** The keys at once when the cached JWKS is fresh and has them; a promise when it must be fetched first. */
  resolve: (header: Readonly<Record<string, unknown>>, allowed?: AllowedKeys) => ReturnType<KeyResolver>;
  refresh(): Promise<void>;
  /** Number of fetches made (metrics, tests). */
  readonly fetches: number;
}

/**
 * The router's `/.well-known/jwks.json` through a cache: keys are reused for `maxAgeMs`; an
 * unknown `kid` triggers at most one refetch per `cooldownMs`; concurrent callers share one
 * in-flight fetch; the document is size- and time-bounded.
 */
export function createRemoteJwks(opts: RemoteJwksOptions): RemoteJwks {
  const maxAge = opts.maxAgeMs ?? 600_000;
  const cooldown = opts.cooldownMs ?? 30_000;
  let entries: Entry[] | undefined;
  let fetchedAt = -Infinity;
  let inflight: Promise<void> | undefined;
  let fetches = 0;
  /** The last fetch failed: within the cooldown an unknown kid reports that, not "no such key". */
  let lastError: unknown;

  const fetchNow = (): Promise<void> => {
    inflight ??= (async () => {
      fetches++;
      fetchedAt = opts.clock().getTime();
      const signal = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
      let res;
      try {
        res = await opts.fetcher(opts.url, { headers: { accept: 'application/json' }, signal });
      } catch (cause) {
        const timeout = (cause as Error)?.name === 'TimeoutError' || (cause as Error)?.name === 'AbortError';
        throw new FetchError(timeout ? 'ERR_JWKS_TIMEOUT' : 'ERR_JWKS_FETCH', `cannot fetch the JWKS from ${opts.url}: ${describeCause(cause)}`, { cause });
      }
      if (res.status !== 200) throw new FetchError('ERR_JWKS_FETCH', `the JWKS at ${opts.url} answered HTTP ${res.status}`);
      if (res.body.length > MAX_JWKS_BYTES) throw new FetchError('ERR_JWKS_TOO_LARGE', `the JWKS exceeds ${MAX_JWKS_BYTES} bytes`);
      entries = await parseJwks(res.body);
    })()
      .then(
        () => {
          lastError = undefined;
          opts.onFetch?.('ok');
        },
        (e: unknown) => {
          lastError = e;
          opts.onFetch?.('error');
          throw e;
        },
      )
      .finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  return {
    get fetches() {
      return fetches;
    },
    refresh: fetchNow,
    resolve(header, given) {
      // Fresh keys and the kid among them (nearly every receipt): the keys, not a promise of them.
      if (entries && opts.clock().getTime() - fetchedAt <= maxAge) {
        const found = select(entries, header, given ?? allowedNow());
        if (found) return found;
      }
      return resolveLater(header, given);
    },
  };

  function allowedNow(): AllowedKeys | undefined {
    return typeof opts.allowed === 'function' ? opts.allowed() : opts.allowed;
  }

  async function resolveLater(header: Readonly<Record<string, unknown>>, given: AllowedKeys | undefined): Promise<KeyObject[]> {
    const now = opts.clock().getTime();
    if (!entries || now - fetchedAt > maxAge) await fetchNow();
    const allowed = given ?? allowedNow();
    const found = select(entries ?? [], header, allowed);
    if (found) return found;
    // Unknown kid: the router may have rotated. One refetch, rate limited.
    if (opts.clock().getTime() - fetchedAt >= cooldown || inflight) {
      await fetchNow();
      const again = select(entries ?? [], header, allowed);
      if (again) return again;
    }
    throw lastError ?? noKey(header);
  }
}
