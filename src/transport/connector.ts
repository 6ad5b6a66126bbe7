import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { buildConnector } from 'undici';
import { describeCause, TresorError, UpstreamError } from '../errors/index.js';
import { splitPemBlocks } from '../util/pem.js';

/**
 * How the daemon opens upstream connections. Every socket goes through here — direct or
 * through an HTTPS_PROXY CONNECT tunnel — so the attestation pin is enforced end to end in one
 * place (`verifyConnection` runs after the TLS handshake and before the pool may write a
 * single byte). TLS sessions are never resumed: every connection presents and proves its key.
 */
export interface ConnectorOptions {
  /** Extra trusted CA certificates (PEM), on top of the system store. */
  caPem?: string | undefined;
  connectTimeoutMs: number;
  /** An http://host:port forward proxy for CONNECT tunnelling, or undefined for direct. */
  proxy?: URL | undefined;
  /** ALPN protocols offered, in order of preference (default `['http/1.1']`). */
  alpn?: readonly string[] | undefined;
  /** Runs on the established TLS socket before it is used; throw to refuse it. */
  verifyConnection?: ((socket: TLSSocket) => Promise<void>) | undefined;
}

/**
 * The upstream socket's stream buffer (`highWaterMark`, both directions; Node's default is 16 KiB):
 * one read of the app's socket (Node's HTTP parser hands a request body over in chunks of up to
 * 64 KiB). undici pauses the body whenever `write()` reports the buffer at this mark, so an upload
 * keeps about one chunk queued. From #20's fourth round to its ninth it was 256 KiB (fewer pauses),
 * and that was dear in a busy daemon: every ~30 MB uploaded, external memory started a mark-compact
 * of the whole heap (30 in one full bench run's upload, against 8 at 64 KiB; docs/benchmarks.md, the
 * ninth round), most of it marked on V8's helper threads. The ninth round read the cause as chunks
 * queued behind a TLS write being promoted; the tenth found the count of external memory staying up
 * after each scavenge under V8's concurrent ArrayBuffer sweeping (src/util/heap.ts). The deeper
 * queue made those mark-compacts more frequent either way.
 */
export const UPSTREAM_SOCKET_HIGH_WATER_MARK = 64 * 1024;

let systemCas: string[] | undefined;

/** Mozilla's bundled roots plus NODE_EXTRA_CA_CERTS (which `ca:` would otherwise drop). */
function systemCaList(): string[] {
  if (!systemCas) {
    systemCas = [...tls.rootCertificates];
    const extra = process.env.NODE_EXTRA_CA_CERTS;
    if (extra) {
      try {
        systemCas.push(readFileSync(extra, 'utf8'));
      } catch {
        // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS at start-up.
      }
    }
  }
  return systemCas;
}

/**
 * One TLS context per extra CA, built once: a context holding ~150 roots costs tens of ms of CPU
 * and about a megabyte, so building it per connection made `ca_file` upstreams slow to connect.
 */
const contexts = new Map<string, tls.SecureContext>();
function secureContextFor(caPem: string): tls.SecureContext {
  let ctx = contexts.get(caPem);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: [...systemCaList(), ...splitPemBlocks(caPem)] });
    contexts.set(caPem, ctx);
  }
  return ctx;
}

/** Open a TLS socket to host:port (validated against the system CAs plus `caPem`) and run the hook. */
export async function openTlsSocket(
  host: string,
  port: number,
  servername: string,
  opts: ConnectorOptions,
): Promise<TLSSocket> {
  const deadline = Date.now() + opts.connectTimeoutMs;
  const raw = opts.proxy ? await connectTunnel(opts.proxy, host, port, opts.connectTimeoutMs) : undefined;
  const options: tls.ConnectionOptions & { highWaterMark: number } = {
    ...(raw ? { socket: raw } : { host, port }),
    servername: net.isIP(servername) ? '' : servername,
    ...(opts.caPem ? { secureContext: secureContextFor(opts.caPem) } : {}),
    ALPNProtocols: [...(opts.alpn ?? ['http/1.1'])],
    highWaterMark: UPSTREAM_SOCKET_HIGH_WATER_MARK,
    // Hostname verification against the URL host, also when connecting by IP.
    checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(servername, cert),
  };
  // (`highWaterMark` is a documented option of tls.connect that @types/node does not list.)
  const socket = tls.connect(options);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new UpstreamError('ERR_UPSTREAM_CONNECT', `no connection to ${host}:${port} within ${opts.connectTimeoutMs} ms`)),
        Math.max(1, deadline - Date.now()),
      );
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(classify(e, host, port));
      });
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    if (opts.verifyConnection) await opts.verifyConnection(socket);
    return socket;
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

/** An undici `connect` function built on `openTlsSocket`. */
export function createConnector(opts: ConnectorOptions): buildConnector.connector {
  return (options, callback) => {
    const host = options.hostname;
    const port = Number(options.port) || 443;
    const servername = options.servername ?? host;
    openPooledSocket(host, port, servername, opts).then(
      (socket) => callback(null, socket),
      (e: Error) => callback(e, null),
    );
  };
}

/**
 * A socket for the pool, verified by the hook. An HTTP/2 socket whose key was not pinned yet is
 * used up by the in-band attestation (its own HTTP/2 session): the key is pinned by then, so the
 * next socket is opened the same way and verified at once. If that one is used up too (another
 * key, or attestation failing in warn mode), the last try offers only http/1.1, whose in-band
 * attestation leaves the socket usable, as for an HTTP/1.1 router.
 */
async function openPooledSocket(host: string, port: number, servername: string, opts: ConnectorOptions): Promise<TLSSocket> {
  for (let attempt = 0; ; attempt++) {
    const socket = await openTlsSocket(host, port, servername, attempt < 2 ? opts : { ...opts, alpn: ['http/1.1'] });
    if (!socket.destroyed) return socket;
    if (attempt >= 2) throw new UpstreamError('ERR_UPSTREAM_CONNECT', `the connection to ${host}:${port} closed right after it was verified`);
  }
}

function classify(e: NodeJS.ErrnoException, host: string, port: number): TresorError {
  if (e instanceof TresorError) return e;
  const tlsCodes = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS/;
  if (e.code && tlsCodes.test(e.code)) {
    return new UpstreamError('ERR_UPSTREAM_TLS', `TLS handshake with ${host}:${port} failed: ${e.code}`, { cause: e });
  }
  return new UpstreamError('ERR_UPSTREAM_CONNECT', `cannot connect to ${host}:${port}: ${describeCause(e, { code: true })}`, { cause: e });
}

/** Plain HTTP CONNECT through a forward proxy (RFC 9110 §9.3.6). */
function connectTunnel(proxy: URL, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.hostname, port: Number(proxy.port) || 80 });
    const timer = setTimeout(() => fail(new UpstreamError('ERR_UPSTREAM_PROXY', `proxy CONNECT to ${host}:${port}: no answer within ${timeoutMs} ms`)), timeoutMs);
    let buf = Buffer.alloc(0);
    const fail = (err: TresorError) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', (e: NodeJS.ErrnoException) =>
      fail(new UpstreamError('ERR_UPSTREAM_PROXY', `cannot reach proxy ${proxy.host}: ${describeCause(e, { code: true })}`, { cause: e })),
    );
    socket.once('connect', () => {
      const auth =
        proxy.username || proxy.password
          ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}\r\n`
          : '';
      const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    });
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16 * 1024) fail(new UpstreamError('ERR_UPSTREAM_PROXY', 'proxy CONNECT response headers too large'));
        return;
      }
      socket.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(buf.subarray(0, end).toString('latin1'));
      if (!status || status[1] !== '200') {
        return fail(new UpstreamError('ERR_UPSTREAM_PROXY', `proxy refused CONNECT to ${host}:${port} (status ${status?.[1] ?? 'unparseable'})`));
      }
      if (buf.length > end + 4) return fail(new UpstreamError('ERR_UPSTREAM_PROXY', 'proxy sent bytes before the TLS handshake'));
      clearTimeout(timer);
      socket.pause();
      resolve(socket);
    };
    socket.on('data', onData);
  });
}

/** The proxy to use for `host`, from HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy. */
export function proxyFor(host: string, env: Record<string, string | undefined> = process.env): URL | undefined {
  const value = env.HTTPS_PROXY ?? env.https_proxy;
  if (!value) return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const h = host.toLowerCase();
  for (const entry of noProxy) {
    if (entry === '*') return undefined;
    const bare = entry.replace(/^\*?\./, '').replace(/:\d+$/, '');
    if (h === bare || h.endsWith(`.${bare}`)) return undefined;
  }
  try {
    const u = new URL(value.includes('://') ? value : `http://${value}`);
    if (u.protocol !== 'http:') return undefined;
    return u;
  } catch {
    return undefined;
  }
}
