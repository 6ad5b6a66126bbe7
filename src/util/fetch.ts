import tls from 'node:tls';
import { Agent, ProxyAgent, request, util as undiciUtil, type Dispatcher } from 'undici';
import { FetchError, UsageError } from '../errors/index.js';
import type { Fetcher } from '../types.js';
import { splitPemBlocks } from './pem.js';

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** https, or plain http only to loopback: trust material never travels in clear over a network. */
export function checkFetchUrl(url: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError('ERR_USAGE_BAD_URL', `${what}: expected an absolute URL, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.test(u.host.replace(/:\d+$/, '')))) {
    throw new UsageError('ERR_USAGE_BAD_URL', `${what}: must be https (plain http only to loopback)`);
  }
  return u;
}

const ignore = () => undefined;

/**
 * Read a response body whole, but never more than `maxBytes` (then the body is destroyed).
 * Event-based: an async iterator over the stream cost more than the rest of a receipt GET's body
 * handling (about 80 µs per call in the daemon's profile).
 */
export function readBounded(body: NodeJS.ReadableStream & { destroy(error?: Error): unknown }, maxBytes: number, what: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        cleanup();
        body.destroy();
        reject(new FetchError('ERR_FETCH_TOO_LARGE', `${what} answered more than ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      // A view, not `new Uint8Array(buffer)` (a copy of the copy Buffer.concat made: ~16 KB
      // allocated per 8 KB receipt); a body that came in one chunk is not copied at all.
      const whole = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      resolve(new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    // A body destroyed without an error (aborted) ends neither way: fail rather than hang (a plain
    // error, as the stream's own premature close was: callers give it their fetch code).
    const onClose = () => {
      cleanup();
      reject(new Error(`${what}: the body was closed before its end`));
    };
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      // An error emitted later (undici's body emits one when destroyed) must not go unhandled.
      body.on('error', ignore);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
  });
}

/** What `dispatchGet` resolves with: the status, the parsed headers and the whole body. */
export interface BoundedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

/**
 * A GET through `dispatcher` read whole into memory, never more than `maxBytes`, the whole exchange
 * bounded by `timeoutMs`: what `request()` + `readBounded` do, with the same results and errors
 * (test/util/fetch.test.ts compares them), as one undici handler. `request()` made a Readable
 * body stream, an async resource and an abort listener per GET, and `readBounded` a promise and
 * four listeners on it: about 5 KB allocated and 5-7 µs of CPU per receipt GET more.
 */
export function dispatchGet(dispatcher: Dispatcher, opts: { path: string; headers: Record<string, string>; timeoutMs: number; maxBytes: number; what: string }): Promise<BoundedResponse> {
  return new Promise((resolve, reject) => {
    const handler = new BoundedGet(opts.maxBytes, opts.what, resolve, reject, opts.timeoutMs);
    dispatcher.dispatch({ path: opts.path, method: 'GET', headers: opts.headers, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs }, handler);
  });
}

/** undici's legacy handler form (what `request()` gives undici too, so a pin gate wraps it the same way). */
class BoundedGet implements Dispatcher.DispatchHandler {
  private status = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private chunks: Buffer[] = [];
  private total = 0;
  private abort: ((err?: Error) => void) | undefined;
  /** Why the exchange is being given up (the timeout, too large): passed to undici's abort. */
  private reason: Error | undefined;
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxBytes: number,
    private readonly what: string,
    private readonly resolve: (r: BoundedResponse) => void,
    private readonly reject: (e: Error) => void,
    timeoutMs: number,
  ) {
    // The reason AbortSignal.timeout gives, which callers (and their tests) know a timed-out GET by.
    this.timer = setTimeout(() => this.giveUp(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), timeoutMs);
    this.timer.unref();
  }

  /** As request() does: a GET given up before undici started it is aborted when it starts (it may sit in the pool's queue until then). */
  onConnect(abort: (err?: Error) => void): void {
    if (this.reason) abort(this.reason);
    else this.abort = abort;
  }

  /** Called for a 1xx (e.g. 103 Early Hints) too: the answer's own call comes after it and replaces it. */
  onHeaders(status: number, rawHeaders: Buffer[]): boolean {
    this.status = status;
    this.headers = undiciUtil.parseHeaders(rawHeaders) as Record<string, string | string[] | undefined>;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.settled) return true;
    this.total += chunk.length;
    if (this.total > this.maxBytes) {
      const e = new FetchError('ERR_FETCH_TOO_LARGE', `${this.what} answered more than ${this.maxBytes} bytes`);
      this.settle(e);
      this.abort?.(e);
      return true;
    }
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    // A view, not a copy; a body that came in one chunk is not copied at all.
    const whole = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    this.settle(undefined, { status: this.status, headers: this.headers, body: new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength) });
  }

  onError(err: Error): void {
    this.settle(err);
  }

  private giveUp(reason: Error): void {
    if (this.settled || this.reason) return;
    this.reason = reason;
    this.abort?.(reason);
  }

  private settle(err: Error | undefined, res?: BoundedResponse): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.chunks = [];
    if (err) this.reject(err);
    else this.resolve(res as BoundedResponse);
  }
}

/**
 * A size- and time-bounded GET, for trust material (JWKS, bundles) fetched outside the pinned
 * pool. `proxy` names the forward proxy for a host (HTTPS_PROXY / NO_PROXY), tunnelled with CONNECT.
 */
export function boundedFetcher(opts: { maxBytes: number; timeoutMs: number; ca?: string | undefined; proxy?: ((hostname: string) => URL | undefined) | undefined }): Fetcher {
  // An extra CA is trusted on top of the system store, never instead of it.
  const tlsOpts = opts.ca ? { ca: [...tls.rootCertificates, ...splitPemBlocks(opts.ca)] } : undefined;
  const direct = tlsOpts ? new Agent({ connect: tlsOpts }) : undefined;
  const tunnels = new Map<string, ProxyAgent>();
  const dispatcherFor = (url: string): Dispatcher | undefined => {
    const proxy = opts.proxy?.(new URL(url).hostname.replace(/^\[|\]$/g, ''));
    if (!proxy) return direct;
    let agent = tunnels.get(proxy.href);
    if (!agent) {
      agent = new ProxyAgent({ uri: proxy.href, ...(tlsOpts ? { requestTls: tlsOpts } : {}) });
      tunnels.set(proxy.href, agent);
    }
    return agent;
  };
  return async (url, init) => {
    const dispatcher = dispatcherFor(url);
    const res = await request(url, {
      ...(dispatcher ? { dispatcher } : {}),
      method: 'GET',
      headers: init?.headers ?? {},
      signal: init?.signal ?? AbortSignal.timeout(opts.timeoutMs),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    const body = await readBounded(res.body, opts.maxBytes, url);
    return {
      status: res.statusCode,
      headers: { get: (name: string) => {
        const v = res.headers[name.toLowerCase()];
        return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
      } },
      body,
    };
  };
}
