import tls from 'node:tls';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
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
