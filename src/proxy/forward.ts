import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { util as undiciUtil, type Dispatcher } from 'undici';
import { describeCause, TresorError, UpstreamError } from '../errors/index.js';
import { sendError } from './errors-to-http.js';
import { downstreamResponseHeaders, isEventStream, requestBudgetSeconds, upstreamRequestHeaders } from './headers.js';
import { CONNECTION_NOTE, type ConnectionNote, type DaemonHooks, type ExchangeDecision, type ExchangeObserver, type ExchangeOutcome } from '../transport/hooks.js';
import { DoneHolder } from './sse-hold.js';
import { MAX_JSON_BODY } from '../receipts/extract.js';
import { LOCAL_TOKEN_HEADER } from './local-auth.js';
import type { Upstream } from './upstream.js';
import { ClientGone, collectBody, IdleTimer, RequestBodyTimeout, RequestTooLarge, SMALL_BODY_BYTES, type CollectedBody } from './request-body.js';
import type { DaemonMetrics } from '../metrics/metrics.js';
import type { AccessLog } from '../log/access-line.js';

/**
 * Grace past the router's own budget, so we never cut a request the router still serves
 * (its own timeout answer arrives first): 10 % of the budget, between 0.1 s and 15 s.
 */
export function budgetWithGraceMs(budgetSeconds: number): number {
  return Math.round((budgetSeconds + Math.min(15, Math.max(0.1, budgetSeconds * 0.1))) * 1000);
}

export interface ForwardContext {
  upstream: Upstream;
  hooks: DaemonHooks;
  logger: Logger;
  /** Where the one access line per request goes (unredacted: its fields are the daemon's own; see accessLogger). */
  accessLog: AccessLog;
  requestId: string;
  /** Path and query to forward (already stripped of any /upstreams/<name> prefix). */
  path: string;
  shuttingDown: () => boolean;
  /** Told once per exchange, when it ends, and of each verdict header the router sent (Prometheus metrics). */
  metrics?: (Pick<DaemonMetrics, 'observeRequest'> & Partial<Pick<DaemonMetrics, 'verdictHeaderDropped'>>) | undefined;
}

/** Largest non-stream answer strict mode holds until its receipt verifies (the receipt extractor's JSON bound). */
const MAX_HELD_BYTES = MAX_JSON_BODY;


/**
 * One exchange's state, shared by its phases (admit → dispatch → relay → finish), and undici's
 * handler of its upstream request. A class, so that its methods live on the prototype (nothing is
 * built per request but its fields).
 */
class Exchange implements Dispatcher.DispatchHandler {
  requestBytes = 0;
  responseBytes = 0;
  status = 0;
  obs: ExchangeObserver | undefined = undefined;
  /** The connection the request is written on, noted for the observer (when there is one). */
  connection: ConnectionNote | undefined = undefined;
  clientGone = false;
  /** A streamed request body's idle limit, while it lasts. */
  idle: IdleTimer | undefined = undefined;
  /** The body forwarded (a stream is destroyed when the request fails, as undici's request() does). */
  body: RequestBody = undefined;
  /** Whether (and why) the upstream request was aborted; undici's abort once it is connected. */
  private aborted = false;
  private abortReason: Error | undefined = undefined;
  private upAbort: ((reason?: Error) => void) | undefined = undefined;
  /** The answer's head arrived: how its end is released, and undici's resume (backpressure). */
  release: Release | undefined = undefined;
  resumeUp: (() => void) | undefined = undefined;
  /** The answer's end was handled (a later error is undici's catch of our own throw). */
  private ended = false;
  private readonly started = process.hrtime.bigint();

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly ctx: ForwardContext,
  ) {
    ctx.upstream.counters.requests++;
    ctx.upstream.counters.inFlight++;
  }

  /**
   * Headers of an answer the daemon makes itself for this exchange (an error): what was verified,
   * and X-Request-Id (the handler sets it only on answers it makes itself, see daemon.ts).
   */
  answerHeaders(extra?: Record<string, string>): Record<string, string> {
    return { ...this.ctx.hooks.responseHeaders?.(this.ctx.upstream.name), 'x-request-id': this.ctx.requestId, ...extra };
  }

  /** Count and log the exchange (once). */
  finished(error?: string): void {
    const { req, ctx, requestBytes, responseBytes, status } = this;
    const { upstream } = ctx;
    upstream.counters.inFlight--;
    upstream.counters.bytesIn += requestBytes;
    upstream.counters.bytesOut += responseBytes;
    if (error) upstream.counters.errors++;
    const ms = Number(process.hrtime.bigint() - this.started) / 1e6;
    ctx.metrics?.observeRequest({ upstream: upstream.name, method: req.method, path: ctx.path, status, seconds: ms / 1000, requestBytes, responseBytes, error });
    const q = ctx.path.indexOf('?');
    ctx.accessLog({ reqId: ctx.requestId, upstream: upstream.name, method: req.method, path: q < 0 ? ctx.path : ctx.path.slice(0, q), status, requestBytes, responseBytes, ms, error });
  }

  /** Abort the upstream request (the app left, or its body stalled or grew past the limit). */
  abortUpstream(reason?: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    this.upAbort?.(reason);
  }

  // The exchange is undici's handler of its upstream request (its native form: no promise, no
  // response stream, no signal listener per request as with request()). undici calls these as the
  // request is written and its answer arrives; the phases below do the work.

  onConnect(abort: (reason?: Error) => void): void {
    if (this.aborted) return abort(this.abortReason);
    this.upAbort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // an interim answer (1xx): the real one follows
    this.resumeUp = resume;
    relayHead(this, statusCode, undiciUtil.parseHeaders(rawHeaders) as Record<string, string | string[]>);
    return true;
  }

  onData(chunk: Buffer): boolean {
    return relayChunk(this, this.release as Release, chunk);
  }

  onComplete(): void {
    this.ended = true;
    void finish(this, this.release as Release);
  }

  onError(err: Error): void {
    if (this.ended) {
      this.ctx.logger.error({ reqId: this.ctx.requestId, err: { message: err.message } }, 'unexpected error while forwarding');
      return;
    }
    this.ended = true;
    destroyBody(this.body, err);
    // Later, as request() reported it: after undici has finished its own bookkeeping of the failure.
    const r = this.release;
    queueMicrotask(() => (r ? relayFailed(this, r, err) : dispatchFailed(this, err)));
  }
}

type RequestBody = Buffer | IncomingMessage | undefined;

/**
 * Forward one request to its upstream and stream the response back byte for byte.
 * Nothing is re-serialised or buffered whole (but a small request body, read before an upstream
 * connection is taken): each upstream chunk is written to the app as it arrives (with
 * backpressure), and the optional observer sees the same bytes. Resolves once the request is
 * dispatched; the exchange goes on in undici's calls of its handler (the Exchange).
 */
export async function forward(req: IncomingMessage, res: ServerResponse, ctx: ForwardContext): Promise<void> {
  const x = new Exchange(req, res, ctx);
  const admitted = await admit(x);
  if (admitted) dispatch(x, admitted.body);
}

/**
 * Admit: the size limit, a small body read whole (no upstream connection is held meanwhile; a
 * stalled one is refused with 408 after timeouts.body_idle_seconds), the dispatch gate, the
 * observer. Answers the app itself and returns undefined when the request goes no further.
 */
async function admit(x: Exchange): Promise<{ body: RequestBody } | undefined> {
  const { req, res, ctx } = x;
  const { upstream, hooks } = ctx;
  const cfg = upstream.config;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > cfg.max_body_bytes) {
    x.status = sendError(res, new RequestTooLarge(cfg.max_body_bytes), { 'x-request-id': ctx.requestId, connection: 'close' }).status;
    x.finished('ERR_REQUEST_TOO_LARGE');
    return undefined;
  }
  res.on('close', () => {
    if (!res.writableFinished) {
      x.clientGone = true;
      x.abortUpstream();
    }
  });

  const hasBody = req.headers['content-length'] !== undefined ? declared > 0 : req.headers['transfer-encoding'] !== undefined;
  let collected: CollectedBody | undefined;
  if (hasBody && !(declared > SMALL_BODY_BYTES)) {
    try {
      collected = await collectBody(req, { bound: SMALL_BODY_BYTES, limit: cfg.max_body_bytes, idleSeconds: cfg.timeouts.body_idle_seconds });
    } catch (e) {
      if (e instanceof ClientGone) {
        x.status = 499;
        x.finished('client_closed');
        return undefined;
      }
      x.status = sendError(res, e, x.answerHeaders({ connection: 'close' })).status;
      x.finished((e as TresorError).code ?? 'ERR_INTERNAL');
      return undefined;
    }
    x.requestBytes = collected.bytes;
  }

  try {
    // Awaited only when there is something to wait for (no promise and microtask turn per request otherwise).
    const gate = hooks.beforeDispatch?.(upstream.name);
    if (gate) await gate;
  } catch (e) {
    x.status = sendError(res, e, x.answerHeaders()).status;
    x.finished((e as TresorError).code ?? 'ERR_INTERNAL');
    req.resume();
    return undefined;
  }
  x.obs = observe(x);
  return { body: hasBody ? requestBody(x, collected) : undefined };
}

function observe(x: Exchange): ExchangeObserver | undefined {
  const { req, ctx } = x;
  if (!ctx.hooks.onExchange) return undefined;
  const tresorHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith('x-tresor-') && k !== LOCAL_TOKEN_HEADER && typeof v === 'string') tresorHeaders[k] = v;
  }
  x.connection = {};
  return ctx.hooks.onExchange({
    connection: x.connection,
    upstream: ctx.upstream.name,
    requestId: ctx.requestId,
    method: req.method ?? 'GET',
    path: ctx.path,
    tresorHeaders,
    ...(typeof req.headers.authorization === 'string' ? { authorization: req.headers.authorization } : {}),
    startedAt: new Date(),
  });
}

/** The body to forward. What is hashed (onRequestChunk) is exactly what is forwarded, chunk for chunk. */
function requestBody(x: Exchange, collected: CollectedBody | undefined): RequestBody {
  const { req, res } = x;
  const onRequestChunk = x.obs?.onRequestChunk?.bind(x.obs);
  if (collected?.complete) {
    for (const chunk of collected.chunks) onRequestChunk?.(chunk);
    x.obs?.onRequestEnd?.();
    return collected.chunks.length === 1 ? collected.chunks[0] : Buffer.concat(collected.chunks, collected.bytes);
  }
  // A large body streams: the idle limit still holds, enforced by aborting the upstream request.
  const { max_body_bytes: limit, timeouts } = x.ctx.upstream.config;
  const idle = new IdleTimer(timeouts.body_idle_seconds * 1000, () => x.abortUpstream(new RequestBodyTimeout(timeouts.body_idle_seconds)));
  x.idle = idle;
  req.once('end', () => {
    idle.clear();
    x.obs?.onRequestEnd?.(); // after every 'data' (each hashed by the listener below)
  });
  res.once('close', () => idle.clear());
  if (collected) {
    // Chunked and past the small bound: the chunks read so far go back to the front of the
    // request stream, to be counted, hashed and forwarded like the rest.
    for (let i = collected.chunks.length - 1; i >= 0; i--) req.unshift(collected.chunks[i]);
    x.requestBytes = 0;
  }
  // undici reads the request stream itself ('data' events, pausing it for backpressure), with no
  // copy, transform or promise per chunk of ours. This listener, registered first, sees every
  // chunk before undici writes it: the count, the digest, and the limit for a body without a
  // declared length (a declared one was checked before, and Node's parser delivers exactly that
  // many bytes). The chunk that crosses the limit is never written: aborting destroys undici's
  // HTTP/1.1 socket or ends its HTTP/2 stream at once, before its own listener sees the chunk.
  // The stream is paused first so that no chunk flows before undici listens.
  req.pause();
  req.on('data', (chunk: Buffer) => {
    idle.touch();
    x.requestBytes += chunk.length;
    if (x.requestBytes > limit) return x.abortUpstream(new RequestTooLarge(limit));
    onRequestChunk?.(chunk);
  });
  return req;
}

/** Dispatch: the upstream request, the exchange its handler (its failure: dispatchFailed). */
function dispatch(x: Exchange, body: RequestBody): void {
  const { req, ctx, obs } = x;
  const { upstream } = ctx;
  const cfg = upstream.config;
  const budget = requestBudgetSeconds(req.headers['x-tresor-timeout-seconds'], cfg.timeouts.request_seconds, cfg.timeouts.max_request_seconds);
  x.body = body;
  const opts: Dispatcher.DispatchOptions & { [CONNECTION_NOTE]?: ConnectionNote } = {
    path: upstream.prefix + ctx.path,
    method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: upstreamRequestHeaders(req.rawHeaders, req.headers.connection, {
      authorization: upstream.authorization,
      requestId: ctx.requestId,
    }),
    // undici streams async iterables too (its typings only list Readable).
    body: body as Dispatcher.DispatchOptions['body'],
    // Lets a request share an HTTP/2 connection with others in flight (undici holds back
    // non-idempotent ones); nothing here retries a request, on HTTP/1.1 or HTTP/2.
    idempotent: true,
    headersTimeout: budgetWithGraceMs(budget),
    bodyTimeout: cfg.timeouts.stream_idle_seconds * 1000,
  };
  if (obs && x.connection) opts[CONNECTION_NOTE] = x.connection;
  // The pool by the body: a stream over HTTP/2, an upload never behind a shared session's streams.
  // (undici reports a failure to dispatch, too, through the handler's onError.)
  upstream.dispatcherFor(body).dispatch(opts, x);
}

/**
 * A failed request's body stream is destroyed, as undici's request() does (detached from its
 * socket first, as undici does for an IncomingMessage, so that the app still gets the answer).
 */
function destroyBody(body: RequestBody, err: Error): void {
  if (body === undefined || Buffer.isBuffer(body) || body.destroyed) return;
  body.on('error', noop);
  (body as { socket: unknown }).socket = null;
  body.destroy(err);
}

function noop(): void {}

/** The upstream request failed before its answer began: answered here. */
function dispatchFailed(x: Exchange, e: unknown): void {
  const { req, res, ctx, obs } = x;
  x.idle?.clear();
  const err = classifyUpstreamError(e);
  const { requestBytes, responseBytes } = x;
  if (x.clientGone) {
    x.status = 499;
    x.finished('client_closed');
    void endObserver(obs, ctx.logger, ctx.requestId, { ok: false, status: x.status, error: 'client_closed', requestBytes, responseBytes });
    return;
  }
  const extra = x.answerHeaders();
  // The rest of a refused body is not read: the connection closes after the answer.
  const refusedBody = err.code === 'ERR_REQUEST_TOO_LARGE' || err.code === 'ERR_REQUEST_BODY_TIMEOUT';
  if (refusedBody) extra.connection = 'close';
  x.status = sendError(res, err, extra).status;
  x.finished(err.code);
  void endObserver(obs, ctx.logger, ctx.requestId, { ok: false, status: x.status, error: err.code, requestBytes, responseBytes });
  if (refusedBody) req.resume();
}

/** The answer being relayed: how its end is released, and what is held back until then. */
interface Release {
  headers: Record<string, string | string[]>;
  stream: boolean;
  holdBody: boolean;
  doneHolder: DoneHolder | undefined;
  trailerNames: string[] | undefined;
  /** Set when the chunk completing a declared Content-Length waits for the observer. */
  declaredLength: number | undefined;
  tail: Buffer | undefined;
  /** Strict: the answer held whole (heldBytes long). */
  heldChunks: Buffer[] | undefined;
  heldBytes: number;
}

/** Relay, its head: the answer's headers filtered and sent (or held); the body follows (relayChunk). */
function relayHead(x: Exchange, status: number, upHeaders: Record<string, string | string[]>): void {
  const { res, ctx, obs } = x;
  const { upstream, hooks } = ctx;
  x.status = status;
  // The daemon alone reports what it verified: the router's verdict headers never reach the app.
  const headers = downstreamResponseHeaders(upHeaders, (family) => ctx.metrics?.verdictHeaderDropped?.(upstream.name, family));
  const stream = isEventStream(headers);
  Object.assign(headers, hooks.responseHeaders?.(upstream.name));
  headers['x-request-id'] = ctx.requestId;
  if (stream) {
    headers['x-accel-buffering'] = 'no';
    headers['cache-control'] = 'no-cache';
  }
  if (ctx.shuttingDown()) headers.connection = 'close';
  obs?.onResponseStart?.(status, headers);
  // Strict receipts: a successful non-stream answer is held whole until its receipt verifies;
  // a stream flows except for its final `data: [DONE]`.
  const holding = obs?.hold === true && status >= 200 && status < 300;
  const holdBody = holding && !stream;
  // Durability (every mode): the app must not see the end of an answer whose end the observer
  // waits for (the receipt job's journal entry) before that wait is over. A stream's final
  // `data: [DONE]`, and the chunk that completes a declared Content-Length, go out only after
  // `onEnd`; a chunked answer's end is its terminator, which `res.end()` writes after it anyway.
  const waitsForEnd = !holding && obs?.onEnd !== undefined && status >= 200 && status < 300;
  const doneHolder = (holding || waitsForEnd) && stream ? new DoneHolder() : undefined;
  const declaredLength = waitsForEnd && !stream && headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
  // Values the observer learns only from the body (the receipt id) go out as HTTP trailers on a
  // chunked response; declared up front, as HTTP requires.
  const newTrailers = obs?.trailers?.filter((n) => headers[n] === undefined) ?? [];
  const trailerNames = !holdBody && headers['content-length'] === undefined && newTrailers.length > 0 ? newTrailers : undefined;
  if (trailerNames) headers.trailer = trailerNames.join(', ');
  x.release = { headers, stream, holdBody, doneHolder, trailerNames, declaredLength, tail: undefined, heldChunks: holdBody ? [] : undefined, heldBytes: 0 };
  if (!holdBody) {
    res.writeHead(status, headers);
    if (stream) res.flushHeaders();
  }
}

/** Relay, a chunk of the body: to the app (false: undici pauses until the app drains), or held. */
function relayChunk(x: Exchange, r: Release, chunk: Buffer): boolean {
  const { res, obs } = x;
  x.responseBytes += chunk.length;
  obs?.onResponseChunk?.(chunk);
  if (r.heldChunks) {
    r.heldBytes += chunk.length;
    // A held answer is bounded like everything else: past the limit it fails closed (502).
    if (r.heldBytes > MAX_HELD_BYTES) x.abortUpstream(new UpstreamError('ERR_RESPONSE_TOO_LARGE_TO_HOLD', `receipts.mode strict holds non-stream answers up to ${MAX_HELD_BYTES} bytes; this one is larger`));
    else r.heldChunks.push(chunk);
    return true;
  }
  if (r.declaredLength !== undefined && x.responseBytes >= r.declaredLength) {
    r.tail = r.tail ? Buffer.concat([r.tail, chunk]) : chunk;
    return true;
  }
  const out = r.doneHolder ? r.doneHolder.push(chunk) : chunk;
  if (out.length > 0 && !res.write(out)) {
    res.once('drain', x.resumeUp as () => void);
    return false;
  }
  return true;
}

/**
 * Finish: the observer decides (durability, strict receipts), then the end of the answer goes out.
 * Without an observer waiting for the end, at once (no promise): returns undefined.
 */
function finish(x: Exchange, r: Release): Promise<void> | undefined {
  const { obs, ctx } = x;
  if (!obs?.onEnd) return endAnswer(x, r, undefined);
  return endObserver(obs, ctx.logger, ctx.requestId, { ok: true, status: x.status, requestBytes: x.requestBytes, responseBytes: x.responseBytes }).then((decision) => endAnswer(x, r, decision));
}

/** The end of the answer (or, strict, the held answer or its refusal), as the observer decided. */
function endAnswer(x: Exchange, r: Release, decision: ExchangeDecision | undefined): undefined {
  const { res } = x;
  if (r.holdBody) {
    if (decision?.reject) x.status = sendError(res, decision.reject, x.answerHeaders()).status;
    else {
      res.writeHead(x.status, { ...r.headers, ...decision?.headers });
      for (const c of r.heldChunks ?? []) res.write(c);
      res.end();
    }
  } else if (r.doneHolder && decision?.reject) {
    res.end(sseError(decision.reject.message, decision.reject.code));
  } else {
    const names = r.trailerNames;
    const trailers = names && decision?.trailers ? Object.fromEntries(Object.entries(decision.trailers).filter(([k]) => names.includes(k))) : undefined;
    if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers);
    res.end(r.doneHolder?.release() ?? r.tail);
  }
  x.finished(decision?.reject?.code);
  return undefined;
}

/** The upstream body failed midway: tell the app as well as its protocol allows, then the observer. */
function relayFailed(x: Exchange, r: Release, e: Error): void {
  const { res, ctx } = x;
  const err = classifyUpstreamError(e);
  if (x.clientGone) {
    x.finished('client_closed');
  } else if (r.holdBody) {
    x.status = sendError(res, err, x.answerHeaders()).status;
    x.finished(err.code);
  } else if (r.stream) {
    // Headers are out: tell an SSE client in-band (the OpenAI SDKs raise on `event: error`)
    // and end the stream cleanly rather than leaving it hanging.
    res.end(sseError('the upstream stream was interrupted', 'upstream_stream_interrupted'));
    x.finished(err.code);
  } else {
    res.destroy();
    x.finished(err.code);
  }
  void endObserver(x.obs, ctx.logger, ctx.requestId, { ok: false, status: x.status, error: x.clientGone ? 'client_closed' : err.code, requestBytes: x.requestBytes, responseBytes: x.responseBytes });
}

/** An in-band SSE error event (the OpenAI SDKs raise on `event: error`). */
function sseError(message: string, code: string): string {
  const type = code === 'upstream_stream_interrupted' ? 'upstream_error' : 'receipt_error';
  return `event: error\ndata: ${JSON.stringify({ error: { message, type, code } })}\n\n`;
}

export async function endObserver(obs: ExchangeObserver | undefined, logger: Logger, reqId: string, outcome: ExchangeOutcome): Promise<ExchangeDecision | undefined> {
  if (!obs?.onEnd) return undefined;
  try {
    return (await obs.onEnd(outcome)) ?? undefined;
  } catch (e) {
    logger.error({ reqId, err: { message: (e as Error).message, code: (e as TresorError).code } }, 'exchange observer failed');
    // A held answer must not be released on an internal failure (strict mode fails closed).
    return obs.hold ? { reject: new TresorError('internal', 'ERR_RECEIPT_INTERNAL', 'the receipt could not be checked') } : undefined;
  }
}

/** Map undici's errors (and our own thrown through it) to the taxonomy. */
export function classifyUpstreamError(e: unknown): TresorError {
  if (e instanceof TresorError) return e;
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof TresorError) return cause;
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new UpstreamError('ERR_UPSTREAM_TIMEOUT', 'the upstream did not answer within the request budget', { cause: e });
    case 'UND_ERR_BODY_TIMEOUT':
      return new UpstreamError('ERR_UPSTREAM_TIMEOUT', 'the upstream stream was idle for longer than stream_idle_seconds', { cause: e });
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
      return new UpstreamError('ERR_UPSTREAM_CONNECT', `the upstream is unreachable (${code})`, { cause: e });
    default:
      return new UpstreamError('ERR_UPSTREAM_FAILED', `the upstream connection failed (${describeCause(e, { code: true })})`, { cause: e });
  }
}
