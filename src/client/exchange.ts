import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { toAttestationError } from '../errors/attestation.js';
import { endObserver } from '../proxy/forward.js';
import { isEventStream } from '../proxy/headers.js';
import { withConnectionNote, type ConnectionNote, type ExchangeObserver } from '../transport/hooks.js';
import { DoneHolder } from '../proxy/sse-hold.js';
import type { ReceiptPipeline } from '../receipts/pipeline.js';
import type { Upstream } from '../proxy/upstream.js';

/** The response header in which the library names the exchange (what `verdictFor` looks up). */
export const REQUEST_ID_HEADER = 'x-tresor-request-id';

/** How an observed exchange ended: whether a receipt job was journaled for it. */
export interface ExchangeEnd {
  journaled: boolean;
  reason?: string;
}

type Handler = Dispatcher.DispatchHandler;
type Body = Dispatcher.DispatchOptions['body'];

/**
 * The daemon's receipt observer on one library request: the request body as sent and the
 * response body as received are digested (the same `ExchangeObserver` the proxy feeds), the
 * exchange is named in `x-tresor-request-id`, and the end of a successful answer (a stream's
 * final `data: [DONE]`) reaches the app only once its receipt job is journaled; in strict mode
 * only once the receipt verifies, else the body fails with the refusal. `handler` must use the
 * undici 7 controller API (the agent composes it so).
 */
export function observeExchange(
  r: { pipeline: ReceiptPipeline | undefined; upstream: Upstream; logger: Logger },
  opts: Dispatcher.DispatchOptions,
  handler: Handler,
  track: (id: string, end: Promise<ExchangeEnd>) => void,
): { opts: Dispatcher.DispatchOptions; handler: Handler } | undefined {
  const headers = headerEntries(opts.headers);
  const tresorHeaders: Record<string, string> = {};
  let authorization: string | undefined;
  for (const [k, v] of headers) {
    if (k.startsWith('x-tresor-')) tresorHeaders[k] = v;
    else if (k === 'authorization') authorization = v;
  }
  const requestId = randomUUID();
  const prefix = r.upstream.prefix;
  const path = prefix && opts.path.startsWith(`${prefix}/`) ? opts.path.slice(prefix.length) : opts.path;
  const connection: ConnectionNote = {};
  const obs = r.pipeline?.observe({
    connection,
    upstream: r.upstream.name,
    requestId,
    method: opts.method,
    path,
    tresorHeaders,
    ...(authorization !== undefined ? { authorization } : {}),
    startedAt: new Date(),
  });
  if (!obs) return undefined;
  let settle: (e: ExchangeEnd) => void = () => undefined;
  track(requestId, new Promise<ExchangeEnd>((resolve) => (settle = resolve)));
  let status = 0;
  let requestBytes = 0;
  let responseBytes = 0;
  let holder: DoneHolder | undefined;
  let ended = false;
  const end = async (ok: boolean, error?: string) => {
    if (ended) return undefined;
    ended = true;
    const decision = await endObserver(obs, r.logger, requestId, { ok, status, requestBytes, responseBytes, ...(error ? { error } : {}) });
    settle(status >= 200 && status < 300 ? { journaled: true } : { journaled: false, reason: ok ? `the answer's status was ${status}: no receipt` : `the exchange failed (${error}): no receipt` });
    return decision;
  };
  const body = observeBody(opts.body, obs, (n) => (requestBytes += n));
  const wrapped: Handler = {
    onRequestStart: (c, ctx) => handler.onRequestStart?.(c, ctx),
    onRequestUpgrade: (c, s, h, socket) => handler.onRequestUpgrade?.(c, s, h, socket),
    onResponseStart(c, statusCode, h, message) {
      status = statusCode;
      const flat = h as Record<string, string | string[]>;
      obs.onResponseStart?.(statusCode, flat);
      if (statusCode >= 200 && statusCode < 300 && isEventStream(flat)) holder = new DoneHolder();
      handler.onResponseStart?.(c, statusCode, { ...h, [REQUEST_ID_HEADER]: requestId }, message);
    },
    onResponseData(c, chunk) {
      responseBytes += chunk.length;
      obs.onResponseChunk?.(chunk);
      const out = holder ? holder.push(chunk) : chunk;
      if (out.length > 0) handler.onResponseData?.(c, out);
    },
    onResponseEnd(c, trailers) {
      void end(true).then((decision) => {
        if (decision?.reject) return handler.onResponseError?.(c, toAttestationError(decision.reject));
        const held = holder?.release();
        if (held && held.length > 0) handler.onResponseData?.(c, held);
        handler.onResponseEnd?.(c, trailers);
      });
    },
    onResponseError(c, err) {
      void end(false, (err as { code?: string }).code ?? 'ERR_UPSTREAM_FAILED').finally(() => handler.onResponseError?.(c, err));
    },
  };
  // The pinned connection slot notes the socket the request is written on (its receipt record names that pin).
  return { opts: withConnectionNote({ ...opts, body }, connection), handler: wrapped };
}

/**
 * The request body with every chunk shown to the observer as it is sent (same bytes, same order),
 * and its end (`onRequestEnd`, after the last chunk), so that the observer finishes the request
 * digest then instead of holding its hash until the answer ends, as the daemon's forward does.
 */
export function observeBody(body: Body, obs: ExchangeObserver, count: (n: number) => void): Body {
  const see = (c: Uint8Array) => {
    count(c.length);
    obs.onRequestChunk?.(c);
  };
  if (body === null || body === undefined) {
    obs.onRequestEnd?.();
    return body;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    see(typeof body === 'string' ? Buffer.from(body) : body);
    obs.onRequestEnd?.();
    return body;
  }
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (body as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const source = body as AsyncIterable<string | Uint8Array>;
    return (async function* () {
      for await (const chunk of source) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        see(bytes);
        yield bytes;
      }
      obs.onRequestEnd?.();
    })() as unknown as Body;
  }
  // FormData handed to undici directly is encoded inside undici: its bytes cannot be digested here.
  return body;
}

/** Lower-cased header entries from any of undici's header shapes. */
function headerEntries(h: Dispatcher.DispatchOptions['headers']): [string, string][] {
  const out: [string, string][] = [];
  const add = (k: unknown, v: unknown) => {
    if (typeof k === 'string' && v !== undefined && v !== null) out.push([k.toLowerCase(), Array.isArray(v) ? v.join(', ') : String(v)]);
  };
  if (!h) return out;
  if (Array.isArray(h)) {
    if (h.length > 0 && Array.isArray(h[0])) for (const [k, v] of h as unknown as [string, string][]) add(k, v);
    else for (let i = 0; i + 1 < h.length; i += 2) add(h[i], h[i + 1]);
  } else if (typeof (h as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of h as Iterable<[string, string]>) add(k, v);
  } else for (const [k, v] of Object.entries(h)) add(k, v);
  return out;
}
