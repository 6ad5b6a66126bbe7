import type { Dispatcher } from 'undici';
import { UpstreamError } from '../errors/index.js';

/**
 * The last pin gate of a request on a multiplexed (HTTP/2) connection, and its retry when the
 * router says it never processed it. undici calls a handler's `onConnect` (`onRequestStart` in
 * the controller form) just before it opens the request's stream; the gate refuses there when
 * the connection may no longer carry a new stream (its pin lapsed, or it is being retired after a
 * lapse or a GOAWAY). Throwing there makes undici fail the request before any stream exists and
 * without touching its body, and the request goes out again through the pool, on another
 * connection that is attested before it carries a byte (or refused with the failing check).
 *
 * A stream the router refused (RST_STREAM REFUSED_STREAM, which is also how a client learns that a
 * GOAWAY's last-stream-id lies below its stream) was not processed (RFC 9113 §8.7): it goes out
 * again the same way, when its body can be sent again (none, or held whole in memory).
 */
export interface StreamGate {
  /** May a new stream be opened on this connection now? (a lookup; runs once per request) */
  mayOpenStream(): boolean;
  /** Dispatch again through the pool (never back onto this connection). */
  redispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

/** How often one request may be taken back and sent again before it fails. */
const MAX_ATTEMPTS = 3;

/** Raised by the gate inside undici; never reaches an app (the request is sent again, or fails with PIN_LAPSED). */
class NotOpened extends Error {}

const attempts = new WeakMap<object, number>();
type Fn = (...a: unknown[]) => unknown;

/** undici's handler callbacks, in the legacy and in the controller form. */
const CALLBACKS = ['onConnect', 'onUpgrade', 'onHeaders', 'onData', 'onComplete', 'onError', 'onResponseStarted', 'onBodySent', 'onRequestSent',
  'onRequestStart', 'onRequestUpgrade', 'onResponseStart', 'onResponseData', 'onResponseEnd', 'onResponseError'] as const;

/** Whether the router refused the stream unprocessed (Node reports RST_STREAM(REFUSED_STREAM) so). */
function refusedUnprocessed(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return e?.code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(e.message ?? '');
}

/** A body undici can send a second time: none, or held whole in memory. */
function replayable(body: Dispatcher.DispatchOptions['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

/** The handler, unchanged but for the gate and the retry. */
export function gatedHandler(gate: StreamGate, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
  let responded = false;
  const open = () => {
    if (!gate.mayOpenStream()) throw new NotOpened('the connection may not open a new stream');
  };
  /** True when the failure was taken over (the request goes out again). */
  const again = (err: unknown): boolean => {
    const n = attempts.get(handler) ?? 1;
    const notOpened = err instanceof NotOpened;
    if (!notOpened && (responded || !refusedUnprocessed(err) || !replayable(opts.body))) return false;
    if (n >= MAX_ATTEMPTS) return false;
    attempts.set(handler, n + 1);
    queueMicrotask(() => gate.redispatch(opts, handler));
    return true;
  };
  const final = (err: Error): Error =>
    err instanceof NotOpened ? new UpstreamError('ERR_ATTEST_PIN_LAPSED', `no attested connection could take the request after ${MAX_ATTEMPTS} tries: each one lapsed or was closed first`) : err;
  const h = handler as Record<string, Fn | undefined>;
  const wrapped: Record<string, Fn> = {};
  // Every callback the handler has is passed on with the handler itself as `this` (its private state stays its own).
  for (const name of CALLBACKS) {
    const f = h[name];
    if (typeof f === 'function') wrapped[name] = (...a) => f.apply(handler, a);
  }
  const on = (name: string, f: Fn) => {
    if (wrapped[name]) wrapped[name] = f;
  };
  on('onConnect', (abort, ctx) => (open(), h.onConnect?.call(handler, abort, ctx)));
  on('onRequestStart', (c, ctx) => (open(), h.onRequestStart?.call(handler, c, ctx)));
  on('onHeaders', (...a) => ((responded = true), h.onHeaders?.apply(handler, a)));
  on('onResponseStart', (...a) => ((responded = true), h.onResponseStart?.apply(handler, a)));
  on('onError', (err) => (again(err) ? undefined : h.onError?.call(handler, final(err as Error))));
  on('onResponseError', (c, err) => (again(err) ? undefined : h.onResponseError?.call(handler, c, final(err as Error))));
  return wrapped as Dispatcher.DispatchHandler;
}
