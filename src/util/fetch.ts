import tls from 'node:tls';
import { Agent, request } from 'undici';
import { FetchError, UsageError } from '../errors/index.js';
import type { Fetcher } from '../types.js';
import { splitPemBlocks } from '../x509/certificate.js';

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

/** A size- and time-bounded GET, for trust material (JWKS, bundles) fetched outside the pinned pool. */
export function boundedFetcher(opts: { maxBytes: number; timeoutMs: number; ca?: string | undefined }): Fetcher {
  // An extra CA is trusted on top of the system store, never instead of it.
  const dispatcher = opts.ca ? new Agent({ connect: { ca: [...tls.rootCertificates, ...splitPemBlocks(opts.ca)] } }) : undefined;
  return async (url, init) => {
    const res = await request(url, {
      ...(dispatcher ? { dispatcher } : {}),
      method: 'GET',
      headers: init?.headers ?? {},
      signal: init?.signal ?? AbortSignal.timeout(opts.timeoutMs),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > opts.maxBytes) {
        res.body.destroy();
        throw new FetchError('ERR_FETCH_TOO_LARGE', `${url} answered more than ${opts.maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return {
      status: res.statusCode,
      headers: { get: (name: string) => {
        const v = res.headers[name.toLowerCase()];
        return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
      } },
      body: new Uint8Array(Buffer.concat(chunks)),
    };
  };
}
