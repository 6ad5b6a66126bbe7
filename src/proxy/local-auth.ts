import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { UpstreamConfig } from '../config/types.js';
import { ConfigError, TresorError } from '../errors/index.js';

/** The header an app can always use for the local token; stripped before anything is forwarded. */
export const LOCAL_TOKEN_HEADER = 'x-tresor-local-token';

/** Tokens shorter than this are refused at start-up (a guessable token is no protection). */
export const MIN_LOCAL_TOKEN_LENGTH = 16;

/**
 * The optional local bearer token of one listener. Which header carries it (docs/wire.md §8):
 *
 * - `X-Tresor-Local-Token: <token>` always works (and is never forwarded);
 * - `Authorization: Bearer <token>` too, for local endpoints (/, /status, /metrics, /receipts/...)
 *   and for `/v1` when the daemon injects the real key, because then the app's Authorization is
 *   replaced anyway: the app sets its OpenAI API key to the local token and changes nothing else;
 * - `Authorization: Basic` with the token as password, for local endpoints only (a browser's own
 *   prompt on the status page).
 *
 * When no real key is configured, the app's Authorization is its real key, passed through to the
 * router: then only `X-Tresor-Local-Token` counts on `/v1`. Comparison is constant time
 * (SHA-256 of both sides, `timingSafeEqual`).
 */
export class LocalToken {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = sha256(token);
  }

  matches(candidate: string | undefined): boolean {
    if (candidate === undefined) return false;
    return timingSafeEqual(sha256(candidate), this.digest);
  }

  /** Whether the request presents the token; `authorizationCarriesToken` per the rules above. */
  allows(headers: IncomingHttpHeaders, where: { local: boolean; authorizationCarriesToken: boolean }): boolean {
    const h = headers[LOCAL_TOKEN_HEADER];
    let ok = this.matches(Array.isArray(h) ? h[0] : h);
    const auth = headers.authorization;
    if (where.authorizationCarriesToken && typeof auth === 'string') {
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (bearer) ok = this.matches(bearer[1]) || ok;
      const basic = where.local ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth) : null;
      if (basic) {
        const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        ok = this.matches(colon >= 0 ? decoded.slice(colon + 1) : decoded) || ok;
      }
    }
    return ok;
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** The listener's token from `local_token_file` (read once at start), or undefined. */
export function readLocalToken(u: UpstreamConfig): LocalToken | undefined {
  if (!u.local_token_file) return undefined;
  let text: string;
  try {
    text = readFileSync(u.local_token_file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_LOCAL_TOKEN_FILE', `upstreams.${u.name}.local_token_file: cannot read ${u.local_token_file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (text.length < MIN_LOCAL_TOKEN_LENGTH || /\s/.test(text)) {
    throw new ConfigError(
      'ERR_CONFIG_LOCAL_TOKEN_FILE',
      `upstreams.${u.name}.local_token_file: expected one token of at least ${MIN_LOCAL_TOKEN_LENGTH} characters without whitespace (e.g. openssl rand -hex 32)`,
    );
  }
  return new LocalToken(text);
}

export class LocalAuthError extends TresorError {
  constructor() {
    super('usage', 'ERR_LOCAL_AUTH', `this tresor-attest listener requires its local token (${LOCAL_TOKEN_HEADER} or Authorization: Bearer)`);
  }
}
