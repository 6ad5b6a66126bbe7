import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLoopbackHost } from '../config/load.js';
import type { UpstreamConfig } from '../config/types.js';
import { TresorError } from '../errors/index.js';
import { boundedMemo } from '../util/memo.js';

/**
 * Request admission (docs/wire.md §8.2): before anything else, a listener checks that the
 * request is meant for it and comes from where it should. A web page in a browser must not be
 * able to use the daemon (it holds the real key):
 *
 * - `Host` must name the listener: `localhost` or a loopback address, the listener's configured
 *   host or the address the connection reached, or a name in `allowed_hosts`. Anything else is a
 *   DNS-rebinding page (or a misrouted request): 421. The port is not compared (port forwards
 *   and container port maps change it).
 * - `Origin`, when present, must be the daemon's own (`http://<Host>`: its status page) or in
 *   `allowed_origins`; anything else (`null` included) is 403. So is a browser request that
 *   says it comes from another site (`Sec-Fetch-Site: cross-site | same-site`) without an
 *   `Origin`, except a plain navigation to one of the daemon's own pages.
 * - The path is normalised as the router will (RFC 3986 §6.2.2: unreserved characters
 *   percent-decoded, dot segments removed); a path that cannot be normalised unambiguously, or
 *   whose dot segments lead out of `/v1`, is 400 and never reaches the router.
 */

/** Who may use one listener. */
export interface ListenerDoor {
  /** Extra names the listener answers to (lower-case, no brackets, no port). */
  readonly hosts: ReadonlySet<string>;
  /** Browser origins allowed to call it (lower-case `scheme://host[:port]`). */
  readonly origins: ReadonlySet<string>;
  /**
   * The configured listen host, as written: a name, a specific address, or the wildcard the daemon
   * itself advertises (`http://0.0.0.0:8787/v1`; an address literal cannot be rebound to another
   * site, and a page at that origin would be the daemon's own).
   */
  readonly listenHost: string;
}

export function listenerDoor(u: Pick<UpstreamConfig, 'listen' | 'allowed_hosts' | 'allowed_origins'>): ListenerDoor {
  return {
    hosts: new Set(u.allowed_hosts.map(bareHost)),
    origins: new Set(u.allowed_origins.map((o) => o.toLowerCase())),
    listenHost: bareHost(u.listen.host),
  };
}

/** Lower-case, without IPv6 brackets, a trailing dot or an IPv4-mapped prefix. */
function bareHost(h: string): string {
  const v = h.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(v) ? v.slice(7) : v;
}

/** The host name of a Host header value (`name`, `name:port`, `[v6]:port`), or undefined if malformed. */
export function hostName(value: string): string | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::\d{1,5})?$/.exec(value.trim());
  return m ? bareHost((m[1] ?? m[2]) as string) : undefined;
}

/**
 * `hostName` and `isLoopbackHost` of a Host value (`null`: malformed), worked out once per value:
 * apps send the same one or two values on every request. Bounded, so hostile values cannot grow it.
 */
const parsedHost = boundedMemo(256, (value): { name: string; loopback: boolean } | null => {
  const name = hostName(value);
  return name === undefined ? null : { name, loopback: isLoopbackHost(name) };
});

/** Exactly one Host header that names this listener (see above). */
export function hostAllowed(req: IncomingMessage, door: ListenerDoor): boolean {
  let value: string | undefined;
  let count = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      count++;
      value = raw[i + 1];
    }
  }
  if (count !== 1 || value === undefined) return false;
  const host = parsedHost(value);
  if (host === null) return false;
  const { name } = host;
  if (host.loopback || door.hosts.has(name) || name === door.listenHost) return true;
  const local = req.socket.localAddress;
  return local !== undefined && name === bareHost(local);
}

export type OriginVerdict =
  | { readonly kind: 'none' }
  | { readonly kind: 'same' }
  | { readonly kind: 'allowed'; readonly origin: string }
  | { readonly kind: 'refused'; readonly origin: string };

/**
 * Whether the request's browser origin may use this listener. `localPage`: the request is for
 * one of the daemon's own pages (a plain cross-site navigation to them is fine; nothing is
 * forwarded and the linking page cannot read the answer).
 */
export function originVerdict(req: IncomingMessage, door: ListenerDoor, localPage: boolean): OriginVerdict {
  const header = req.headers.origin;
  if (header === undefined) {
    const site = req.headers['sec-fetch-site'];
    if (site !== 'cross-site' && site !== 'same-site') return { kind: 'none' };
    const navigation = req.headers['sec-fetch-mode'] === 'navigate' && (req.method === 'GET' || req.method === 'HEAD') && localPage;
    return navigation ? { kind: 'none' } : { kind: 'refused', origin: `(none; Sec-Fetch-Site: ${site})` };
  }
  const origin = header.trim().toLowerCase();
  if (door.origins.has(origin)) return { kind: 'allowed', origin };
  const host = req.headers.host;
  if (host !== undefined && origin === `http://${host.trim().toLowerCase()}`) return { kind: 'same' };
  return { kind: 'refused', origin: origin.slice(0, 200) };
}

/** A CORS preflight (answered by the daemon itself, never forwarded). */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** Headers on every answer to an allowed origin (errors included). */
export function corsHeaders(origin: string): Record<string, string> {
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': '*', vary: 'Origin' };
}

const TOKEN_LIST = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/;

/** 204 to an allowed origin's preflight: the methods the OpenAI API uses, the headers it asked for. */
export function sendPreflight(req: IncomingMessage, res: ServerResponse, origin: string): void {
  const h: Record<string, string> = { ...corsHeaders(origin), 'access-control-allow-methods': 'GET, HEAD, POST, DELETE', 'access-control-max-age': '600' };
  const asked = req.headers['access-control-request-headers'];
  if (typeof asked === 'string' && TOKEN_LIST.test(asked.trim())) h['access-control-allow-headers'] = asked.trim();
  // Chrome's Private Network Access asks before a page reaches a local address.
  if (req.headers['access-control-request-private-network'] === 'true') h['access-control-allow-private-network'] = 'true';
  req.resume();
  res.writeHead(204, h);
  res.end();
}

export class HostNotAllowedError extends TresorError {
  constructor() {
    super('usage', 'ERR_HOST_NOT_ALLOWED', 'this tresor-attest listener does not answer to that Host name (add it to allowed_hosts if it is a name of this listener)');
  }
}

export class OriginNotAllowedError extends TresorError {
  constructor() {
    super('usage', 'ERR_ORIGIN_NOT_ALLOWED', 'requests from this browser origin are not allowed (add it to allowed_origins if this web app may use the daemon)');
  }
}

export class RequestPathError extends TresorError {
  constructor(why: string) {
    super('usage', 'ERR_REQUEST_PATH', `the request path ${why}: refused, nothing was forwarded`);
  }
}

/** The request target, normalised. */
export interface Target {
  /** The path after normalisation (starts with `/`). */
  readonly path: string;
  /** The query, with its `?`, untouched ('' when none). */
  readonly query: string;
  /** Whether the path had dot segments (it must then stay under `/v1`). */
  readonly dotSegments: boolean;
}

const UNRESERVED = /^[A-Za-z0-9._~-]$/;
/** Characters whose meaning in a path differs between servers, raw or percent-encoded. */
const AMBIGUOUS = new Set(['\\', '%', '?', '#', ';', '\0']);

/**
 * Percent-decode the unreserved characters; refuse ambiguous ones (encoded `\`, `%`, ...) and
 * malformed escapes. An encoded `/` stays encoded (`%2F`): SDKs send one inside a slashed model
 * id (`/v1/models/eu%2Ftresor%2Fgpt-oss-120b`); `checkEncodedSlashes` refuses it where a router
 * that decodes it would see an empty or dot segment.
 */
function decodeUnreserved(p: string): string {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === '\\' || c === ';') throw new RequestPathError(`contains ${JSON.stringify(c)}`);
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = p.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new RequestPathError('has a malformed percent-encoding');
    const ch = String.fromCharCode(parseInt(hex, 16));
    if (UNRESERVED.test(ch)) out += ch;
    else if (ch === '/') out += '%2F';
    else if (AMBIGUOUS.has(ch)) throw new RequestPathError(`contains an encoded ${JSON.stringify(ch)} (%${hex})`);
    else out += `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/**
 * A segment holding `%2F` must read the same whether or not the router decodes it: none of its
 * `%2F`-separated parts may be empty, `.` or `..`.
 */
function checkEncodedSlashes(segment: string): void {
  if (!segment.includes('%2F')) return;
  for (const part of segment.split('%2F')) {
    if (part === '' || part === '.' || part === '..') {
      throw new RequestPathError(`contains an encoded "/" (%2F) that would make an empty or dot segment if decoded`);
    }
  }
}

/**
 * A path normalisation leaves as it is: segments of characters that are neither percent-encoded
 * nor refused (unreserved, sub-delims but `;`, `:` and `@`), none empty but the last, none a dot
 * segment. What nearly every request sends; anything else takes the full normalisation.
 */
const NORMAL_PATH = /^(?=\/)(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~!$&'()*+,=:@-]+)*\/?$/;

/**
 * Normalise a request target (origin form only): RFC 3986 §6.2.2.2 then §5.2.4. Empty segments
 * (`//`) and dot segments above the root are refused rather than guessed at.
 */
export function normalizeTarget(url: string): Target {
  const q = url.indexOf('?');
  const raw = q < 0 ? url : url.slice(0, q);
  if (NORMAL_PATH.test(raw) && !url.includes('#')) return { path: raw, query: q < 0 ? '' : url.slice(q), dotSegments: false };
  return normalizeTargetFully(url);
}

/** The full normalisation (exported for the test that holds `normalizeTarget`'s shortcut to it). */
export function normalizeTargetFully(url: string): Target {
  if (!url.startsWith('/')) throw new RequestPathError('is not an absolute path (origin-form)');
  if (url.includes('#')) throw new RequestPathError('contains a fragment');
  const q = url.indexOf('?');
  const raw = q < 0 ? url : url.slice(0, q);
  const segments = decodeUnreserved(raw).split('/').slice(1);
  const out: string[] = [];
  let dotSegments = false;
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      dotSegments = true;
      if (s === '..' && out.pop() === undefined) throw new RequestPathError('climbs above the root');
      if (last) out.push('');
      return;
    }
    if (s === '' && !last) throw new RequestPathError('has an empty segment (//)');
    checkEncodedSlashes(s);
    out.push(s);
  });
  return { path: `/${out.join('/')}`, query: q < 0 ? '' : url.slice(q), dotSegments };
}

export function isV1(path: string): boolean {
  return path === '/v1' || path.startsWith('/v1/');
}

const UPSTREAM_PATH = /^\/upstreams\/([^/]+)(\/.*)$/;

/** A request let in, and where it goes. */
export interface Admission<U> {
  readonly target: Target;
  /** The upstream reached: the one named by `/upstreams/<name>/`, else the listener's own. */
  readonly upstream: U;
  /** Set when `/upstreams/<name>/` names no configured upstream. */
  readonly unknownUpstream?: string;
  /** Path under the upstream (no `/upstreams/<name>` prefix), without the query. */
  readonly forwardPath: string;
  readonly toV1: boolean;
  /** An allowed browser origin, to be answered with CORS. */
  readonly corsOrigin?: string;
}

/** A request refused before anything was forwarded (`reason` is a metric label). */
export interface Refusal {
  readonly reason: 'host' | 'path' | 'origin';
  readonly error: TresorError;
  /** What to log about it (the refused Host or Origin, truncated; never other headers). */
  readonly detail: Readonly<Record<string, string>>;
}

/** Host, then the path (normalised and routed), then the Origin: the checks above, in that order. */
export function admit<U>(req: IncomingMessage, door: ListenerDoor, listener: U, upstreams: ReadonlyMap<string, U>): Admission<U> | Refusal {
  if (!hostAllowed(req, door)) return { reason: 'host', error: new HostNotAllowedError(), detail: { host: String(req.headers.host ?? '').slice(0, 200) } };
  let target: Target;
  try {
    target = normalizeTarget(req.url ?? '/');
  } catch (e) {
    return { reason: 'path', error: e as TresorError, detail: {} };
  }
  const m = target.path.startsWith('/upstreams/') ? UPSTREAM_PATH.exec(target.path) : null;
  const named = m ? upstreams.get(m[1] as string) : undefined;
  const forwardPath = m && named ? (m[2] as string) : target.path;
  const toV1 = isV1(forwardPath);
  if (target.dotSegments && !toV1) return { reason: 'path', error: new RequestPathError('leaves /v1 once its dot segments are removed'), detail: {} };
  const origin = originVerdict(req, door, !m && !toV1);
  if (origin.kind === 'refused') return { reason: 'origin', error: new OriginNotAllowedError(), detail: { origin: origin.origin } };
  return {
    target,
    upstream: named ?? listener,
    ...(m && !named ? { unknownUpstream: m[1] as string } : {}),
    forwardPath,
    toV1,
    ...(origin.kind === 'allowed' ? { corsOrigin: origin.origin } : {}),
  };
}
