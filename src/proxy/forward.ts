import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { describeCause, TresorError, UpstreamError } from '../errors/index.js';
import { AbortFlag } from './abort-flag.js';
import { sendError } from './errors-to-http.js';
import { downstreamResponseHeaders, isEventStream, requestBudgetSeconds, upstreamRequestHeaders } from './headers.js';
import { CONNECTION_NOTE, type ConnectionNote, type DaemonHooks, type ExchangeDecision, type ExchangeObserver, type ExchangeOutcome } from '../transport/hooks.js';
import { DoneHolder } from './sse-hold.js';
import { MAX_JSON_BODY } from '../receipts/extract.js';
import { LOCAL_TOKEN_HEADER } from './local-auth.js';
import { isStreamedBody, type Upstream } from './upstream.js';
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
 * One exchange's state, shared by its phases (admit → dispatch → relay → finish). A class, so that
 * its methods live on the prototype (nothing is built per request but its fields).
 */
class Exchange {
  requestBytes = 0;
  responseBytes = 0;
  status = 0;
  obs: ExchangeObserver | undefined = undefined;
  /** The connection the request is written on, noted for the observer (when there is one). */
  connection: ConnectionNote | undefined = undefined;
  readonly abort = new AbortFlag();
  clientGone = false;
  /** A streamed request body's idle limit, while it lasts. */
  idle: IdleTimer | undefined = undefined;
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
}

type RequestBody = Buffer | IncomingMessage | undefined;

/**
 * Forward one request to its upstream and stream the response back byte for byte.
 * Nothing is re-serialised or buffered whole (but a small request body, read before an upstream
 * connection is taken): each upstream chunk is written to the app as it arrives (with
 * backpressure), and the optional observer sees the same bytes.
 */
export async function forward(req: IncomingMessage, res: ServerResponse, ctx: ForwardContext): Promise<void> {
  const x = new Exchange(req, res, ctx);
  const admitted = await admit(x);
  if (!admitted) return;
  const up = await dispatch(x, admitted.body);
  if (up) await relay(x, up);
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
      x.abort.abort();
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
  const idle = new IdleTimer(timeouts.body_idle_seconds * 1000, () => x.abort.abort(new RequestBodyTimeout(timeouts.body_idle_seconds)));
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
    if (x.requestBytes > limit) return x.abort.abort(new RequestTooLarge(limit));
    onRequestChunk?.(chunk);
  });
  return req;
}

/** Dispatch: the upstream request; its failure is answered here (undefined: nothing to relay). */
async function dispatch(x: Exchange, body: RequestBody): Promise<Dispatcher.ResponseData | undefined> {
  const { req, res, ctx, obs } = x;
  const { upstream, logger } = ctx;
  const cfg = upstream.config;
  const budget = requestBudgetSeconds(req.headers['x-tresor-timeout-seconds'], cfg.timeouts.request_seconds, cfg.timeouts.max_request_seconds);
  try {
    // A streamed body (an upload) is not held behind the streams of a shared HTTP/2 connection.
    const opts: Dispatcher.RequestOptions & { [CONNECTION_NOTE]?: ConnectionNote } = {
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
      signal: x.abort,
      headersTimeout: budgetWithGraceMs(budget),
      bodyTimeout: cfg.timeouts.stream_idle_seconds * 1000,
    };
    if (obs && x.connection) opts[CONNECTION_NOTE] = x.connection;
    return await upstream.dispatcherFor(isStreamedBody(body)).request(opts);
  } catch (e) {
    x.idle?.clear();
    const err = classifyUpstreamError(e);
    const { requestBytes, responseBytes } = x;
    if (x.clientGone) {
      x.status = 499;
      x.finished('client_closed');
      await endObserver(obs, logger, ctx.requestId, { ok: false, status: x.status, error: 'client_closed', requestBytes, responseBytes });
      return undefined;
    }
    const extra = x.answerHeaders();
    // The rest of a refused body is not read: the connection closes after the answer.
    const refusedBody = err.code === 'ERR_REQUEST_TOO_LARGE' || err.code === 'ERR_REQUEST_BODY_TIMEOUT';
    if (refusedBody) extra.connection = 'close';
    x.status = sendError(res, err, extra).status;
    x.finished(err.code);
    await endObserver(obs, logger, ctx.requestId, { ok: false, status: x.status, error: err.code, requestBytes, responseBytes });
    if (refusedBody) req.resume();
    return undefined;
  }
}

/** How the end of a response is released (see relay). */
interface Release {
  headers: Record<string, string | string[]>;
  stream: boolean;
  holdBody: boolean;
  doneHolder: DoneHolder | undefined;
  trailerNames: string[] | undefined;
}

/** Relay: the response head, then its body chunk by chunk; resolves when the exchange is over. */
async function relay(x: Exchange, up: Dispatcher.ResponseData): Promise<void> {
  const { res, ctx, obs } = x;
  const { upstream, hooks } = ctx;
  const status = (x.status = up.statusCode);
  // The daemon alone reports what it verified: the router's verdict headers never reach the app.
  const headers = downstreamResponseHeaders(up.headers, (family) => ctx.metrics?.verdictHeaderDropped?.(upstream.name, family));
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
  if (!holdBody) {
    res.writeHead(status, headers);
    if (stream) res.flushHeaders();
  }

  const release: Release = { headers, stream, holdBody, doneHolder, trailerNames };
  let tail: Buffer | undefined;
  const heldChunks: Buffer[] = [];
  let heldBytes = 0;
  const upBody = up.body;
  // Per open stream: one closure per event and nothing per chunk. 'end' and 'error' each fire at
  // most once (and not both after an error), so plain listeners: no once-wrapper and bound function each.
  await new Promise<void>((resolve) => {
    upBody.on('data', (chunk: Buffer) => {
      x.responseBytes += chunk.length;
      obs?.onResponseChunk?.(chunk);
      if (holdBody) {
        heldBytes += chunk.length;
        // A held answer is bounded like everything else: past the limit it fails closed (502).
        if (heldBytes > MAX_HELD_BYTES) upBody.destroy(new UpstreamError('ERR_RESPONSE_TOO_LARGE_TO_HOLD', `receipts.mode strict holds non-stream answers up to ${MAX_HELD_BYTES} bytes; this one is larger`));
        else heldChunks.push(chunk);
        return;
      }
      if (declaredLength !== undefined && x.responseBytes >= declaredLength) {
        tail = tail ? Buffer.concat([tail, chunk]) : chunk;
        return;
      }
      const out = doneHolder ? doneHolder.push(chunk) : chunk;
      if (out.length > 0 && !res.write(out)) {
        upBody.pause();
        res.once('drain', () => upBody.resume());
      }
    });
    upBody.on('end', () => {
      const observed = finish(x, release, heldChunks, tail);
      if (observed) void observed.then(resolve);
      else resolve();
    });
    upBody.on('error', (e: Error) => {
      relayFailed(x, release, e);
      resolve();
    });
  });
}

/**
 * Finish: the observer decides (durability, strict receipts), then the end of the answer goes out.
 * Without an observer waiting for the end, at once (no promise): returns undefined.
 */
function finish(x: Exchange, r: Release, heldChunks: Buffer[], tail: Buffer | undefined): Promise<void> | undefined {
  const { obs, ctx } = x;
  if (!obs?.onEnd) return endAnswer(x, r, heldChunks, tail, undefined);
  return endObserver(obs, ctx.logger, ctx.requestId, { ok: true, status: x.status, requestBytes: x.requestBytes, responseBytes: x.responseBytes }).then((decision) => endAnswer(x, r, heldChunks, tail, decision));
}

/** The end of the answer (or, strict, the held answer or its refusal), as the observer decided. */
function endAnswer(x: Exchange, r: Release, heldChunks: Buffer[], tail: Buffer | undefined, decision: ExchangeDecision | undefined): undefined {
  const { res } = x;
  if (r.holdBody) {
    if (decision?.reject) x.status = sendError(res, decision.reject, x.answerHeaders()).status;
    else {
      res.writeHead(x.status, { ...r.headers, ...decision?.headers });
      for (const c of heldChunks) res.write(c);
      res.end();
    }
  } else if (r.doneHolder && decision?.reject) {
    res.end(sseError(decision.reject.message, decision.reject.code));
  } else {
    const names = r.trailerNames;
    const trailers = names && decision?.trailers ? Object.fromEntries(Object.entries(decision.trailers).filter(([k]) => names.includes(k))) : undefined;
    if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers);
    res.end(r.doneHolder?.release() ?? tail);
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
