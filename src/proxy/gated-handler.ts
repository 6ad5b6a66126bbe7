import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { UpstreamError } from '../errors/index.js';
import type { ConnectionNote } from '../transport/hooks.js';

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
  /** The socket the request is being written on (noted for its receipt record). */
  readonly socket: TLSSocket | undefined;
  /** Dispatch again through the pool (never back onto this connection). */
  redispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

/** How often one request may be taken back and sent again before it fails. */
const MAX_ATTEMPTS = 3;

const attempts = new WeakMap<object, number>();
/** What a finished handler points at instead of the caller's (see `release`). */
const RELEASED: AnyHandler = Object.freeze({});
const RELEASED_OPTS = Object.freeze({}) as Dispatcher.DispatchOptions;
type Fn = (...a: unknown[]) => unknown;
type AnyHandler = Record<string, Fn | undefined>;

/** Raised by the gate inside undici; never reaches an app (the request is sent again, or fails with PIN_LAPSED). */
class NotOpened extends Error {}

/** Whether the router refused the stream unprocessed (Node reports RST_STREAM(REFUSED_STREAM) so). */
function refusedUnprocessed(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return e?.code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(e.message ?? '');
}

/** A body undici can send a second time: none, or held whole in memory. */
function replayable(body: Dispatcher.DispatchOptions['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

/**
 * What both handler forms share: the gate, whether a response started, and the decision to send
 * again. One object per request, its methods on the prototype (no closures per request).
 */
class Gated {
  protected responded = false;

  constructor(
    private readonly gate: StreamGate,
    private opts: Dispatcher.DispatchOptions,
    protected inner: AnyHandler,
    private readonly note: ConnectionNote | undefined,
  ) {}

  /**
   * The exchange is over: let go of the caller's handler and options. An HTTP/2 stream outlives
   * its request in Node (its listeners, which hold undici's request and so this handler, stay
   * reachable past the next young-generation collection); without this, each exchange's whole
   * graph (the response body stream, the app's request and response objects) was promoted with it.
   */
  protected release(): void {
    this.inner = RELEASED;
    this.opts = RELEASED_OPTS;
  }

  protected open(): void {
    if (!this.gate.mayOpenStream()) throw new NotOpened('the connection may not open a new stream');
    if (this.note) this.note.socket = this.gate.socket;
  }

  /** The error to pass on, or undefined when the request goes out again instead. */
  protected failure(err: unknown): Error | undefined {
    const n = attempts.get(this.inner) ?? 1;
    const notOpened = err instanceof NotOpened;
    const again = notOpened || (!this.responded && refusedUnprocessed(err) && replayable(this.opts.body));
    if (again && n < MAX_ATTEMPTS) {
      attempts.set(this.inner, n + 1);
      const { gate, opts, inner } = this;
      queueMicrotask(() => gate.redispatch(opts, inner as Dispatcher.DispatchHandler));
      return undefined;
    }
    return notOpened ? new UpstreamError('ERR_ATTEST_PIN_LAPSED', `no attested connection could take the request after ${MAX_ATTEMPTS} tries: each one lapsed or was closed first`) : (err as Error);
  }
}

/** undici's legacy handler form (`onConnect` … `onError`), e.g. `request()`'s. */
class GatedLegacy extends Gated {
  onConnect(...a: unknown[]) {
    this.open();
    return this.inner.onConnect?.apply(this.inner, a);
  }
  onHeaders(...a: unknown[]) {
    this.responded = true;
    return this.inner.onHeaders?.apply(this.inner, a);
  }
  onError(err: unknown) {
    const e = this.failure(err);
    if (!e) return;
    const inner = this.inner;
    this.release();
    inner.onError?.call(inner, e);
  }
  onUpgrade(...a: unknown[]) {
    return this.inner.onUpgrade?.apply(this.inner, a);
  }
  onData(...a: unknown[]) {
    return this.inner.onData?.apply(this.inner, a);
  }
  onComplete(...a: unknown[]) {
    const inner = this.inner;
    this.release();
    return inner.onComplete?.apply(inner, a);
  }
  onResponseStarted(...a: unknown[]) {
    return this.inner.onResponseStarted?.apply(this.inner, a);
  }
  onBodySent(...a: unknown[]) {
    return this.inner.onBodySent?.apply(this.inner, a);
  }
  onRequestSent(...a: unknown[]) {
    return this.inner.onRequestSent?.apply(this.inner, a);
  }
}

/** undici's controller form (`onRequestStart` … `onResponseError`), e.g. an interceptor's. */
class GatedController extends Gated {
  onRequestStart(...a: unknown[]) {
    this.open();
    return this.inner.onRequestStart?.apply(this.inner, a);
  }
  onResponseStart(...a: unknown[]) {
    this.responded = true;
    return this.inner.onResponseStart?.apply(this.inner, a);
  }
  onResponseError(controller: unknown, err: unknown) {
    const e = this.failure(err);
    if (!e) return;
    const inner = this.inner;
    this.release();
    inner.onResponseError?.call(inner, controller, e);
  }
  onRequestUpgrade(...a: unknown[]) {
    return this.inner.onRequestUpgrade?.apply(this.inner, a);
  }
  onResponseData(...a: unknown[]) {
    return this.inner.onResponseData?.apply(this.inner, a);
  }
  onResponseEnd(...a: unknown[]) {
    const inner = this.inner;
    this.release();
    return inner.onResponseEnd?.apply(inner, a);
  }
}

/**
 * The handler, unchanged but for the gate and the retry (in the handler's own form); with a
 * `note`, the socket the request is written on is noted there as it opens.
 */
export function gatedHandler(gate: StreamGate, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, note?: ConnectionNote): Dispatcher.DispatchHandler {
  const h = handler as AnyHandler;
  return (typeof h.onRequestStart === 'function' ? new GatedController(gate, opts, h, note) : new GatedLegacy(gate, opts, h, note)) as unknown as Dispatcher.DispatchHandler;
}
