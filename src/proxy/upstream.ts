import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Client, Pool, type buildConnector, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../config/types.js';
import { describeCause, ConfigError, UpstreamError } from '../errors/index.js';
import { dispatchGet, type BoundedResponse } from '../util/fetch.js';
import { createConnector, openTlsSocket, proxyFor, type ConnectorOptions } from '../transport/connector.js';
import type { DaemonHooks } from '../transport/hooks.js';
import { PinnedClient } from './pinned-client.js';

/** Concurrent streams per HTTP/2 connection to the router (undici's default; a Node h2 server's own limit is 100 too). */
const H2_STREAMS_PER_CONNECTION = 100;

/** Whether undici will stream `body` (a stream or async iterable, e.g. fetch's multipart upload) rather than write it at once. */
const isStreamedBody = (body: unknown): boolean => body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array);

const STREAM_MEMBER = Buffer.from('"stream"');

/**
 * Whether a whole request body asks for a streamed answer: a member `"stream": true` (JSON
 * whitespace allowed around the colon). Only chooses the connection (`pool.http2: 'streams'`),
 * never what is sent or checked, so a look at the bytes is enough: `"stream"` followed by a colon
 * is a member name (an escaped quote inside a string is `\"`), at any depth.
 */
export function asksForStream(body: unknown): boolean {
  const b = typeof body === 'string' ? Buffer.from(body) : Buffer.isBuffer(body) ? body : body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : undefined;
  if (b === undefined) return false;
  for (let at = b.indexOf(STREAM_MEMBER); at >= 0; at = b.indexOf(STREAM_MEMBER, at + 1)) {
    let i = skipSpace(b, at + STREAM_MEMBER.length);
    if (b[i] !== 0x3a) continue; // ':'
    i = skipSpace(b, i + 1);
    if (b[i] === 0x74 && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65) return true; // true
  }
  return false;
}

function skipSpace(b: Buffer, i: number): number {
  while (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09) i++;
  return i;
}

/** One upstream: its undici pools (keep-alive), API key, counters. */
export class Upstream {
  readonly name: string;
  readonly origin: string;
  /** The Host header for requests the daemon makes itself (receipts, JWKS). */
  private readonly host: string;
  /** Path prefix of the configured URL (no trailing slash), prepended to forwarded paths. */
  readonly prefix: string;
  readonly hostname: string;
  readonly port: number;
  readonly authorization: string | undefined;
  private pool: Pool;
  /**
   * With `pool.http2: true`: the HTTP/1.1 pool for request bodies streamed as they arrive
   * (uploads), created on first use. undici writes a streamed body only once no other request is
   * in flight on its connection, and queues every later request for that connection behind it:
   * on a shared h2 connection an upload waited for every open stream (an SSE answer can last
   * minutes) and held up the requests after it. Its connections are attested and pinned like
   * the others (same connector, same per-request pin gate).
   */
  private uploads: Pool | undefined;
  /**
   * With `pool.http2: 'streams'`: the HTTP/2 pool for requests asking for a streamed answer, created
   * on first use. Everything else (JSON answers, receipt and JWKS fetches, uploads) stays on the
   * HTTP/1.1 main pool, where undici's per-request cost is lower; a stream's many small chunks are
   * cheaper as frames of a shared session than as reads on a socket each.
   */
  private streams: Pool | undefined;
  private readonly connectorOptions: ConnectorOptions;
  /** The per-request pin check (attestation): may a request be written on this socket now? */
  private readonly usable: ((socket: TLSSocket) => boolean) | undefined;
  /** The pool's connection slots, when each request is gated on its socket's pin. */
  private readonly clients = new Set<PinnedClient>();
  /** The extra CA the operator configured (also trusted for the trust bundle fetch). */
  readonly caPem: string | undefined;
  readonly counters = { requests: 0, errors: 0, inFlight: 0, bytesIn: 0, bytesOut: 0 };
  /** Whether the router's last connection negotiated HTTP/2 (learnt at start-up attestation and on each connection). */
  private speaksH2 = false;

  constructor(
    readonly config: UpstreamConfig,
    hooks: DaemonHooks,
    env: Record<string, string | undefined> = process.env,
  ) {
    this.name = config.name;
    const url = new URL(config.url);
    this.origin = url.origin;
    this.host = url.host;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.hostname = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    this.authorization = readApiKey(config, env);
    const verify = hooks.verifyConnection;
    this.caPem = config.ca_file ? readCa(config) : undefined;
    this.connectorOptions = {
      caPem: this.caPem,
      connectTimeoutMs: config.timeouts.connect_seconds * 1000,
      alpn: config.pool.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      proxy: url.protocol === 'https:' ? proxyFor(this.hostname, env) : undefined,
      verifyConnection: verify ? (socket) => verify(config.name, socket) : undefined,
    };
    const usable = hooks.connectionUsable;
    this.usable = usable && url.protocol === 'https:' ? (socket) => usable(config.name, socket) : undefined;
    this.pool = this.createPool(config.pool.http2 === true, () => this.pool);
  }

  /**
   * A pool of attested, pinned connections; `http2`: offered in ALPN and used when the router picks
   * it. `current`: the pool a request goes out on again when its connection may not carry it.
   */
  private createPool(http2: boolean, current: () => Pool): Pool {
    const connect = this.connectFunction(http2);
    const usable = this.usable;
    const clients = this.clients;
    const h2Pipelining = () => (http2 && this.speaksH2 ? H2_STREAMS_PER_CONNECTION : 1);
    return new Pool(this.origin, {
      connections: this.config.pool.connections,
      pipelining: 1,
      // HTTP/2 when the router offers it (ALPN): one pinned connection carries many streams.
      allowH2: http2,
      maxConcurrentStreams: H2_STREAMS_PER_CONNECTION,
      keepAliveTimeout: this.config.pool.keep_alive_seconds * 1000,
      keepAliveMaxTimeout: this.config.pool.keep_alive_seconds * 1000,
      headersTimeout: this.config.timeouts.request_seconds * 1000,
      bodyTimeout: this.config.timeouts.stream_idle_seconds * 1000,
      connect,
      // undici caps a connection's concurrent requests at `pipelining` whatever the protocol:
      // 1 on HTTP/1.1 (no pipelining), many streams once a connection turns out to be HTTP/2.
      // A new connection to a router known to speak HTTP/2 takes many requests while it connects
      // (else a burst would open one connection each); if it turns out HTTP/1.1, back to one.
      factory: (origin, opts) => {
        let h2 = false;
        const clientOpts = {
          ...opts,
          pipelining: h2Pipelining(),
          connect: (o: buildConnector.Options, cb: buildConnector.Callback) =>
            connect(o, (err, socket) => {
              if (socket && http2) h2 = this.learnProtocol(socket as TLSSocket);
              cb(err as Error, socket as never);
            }),
        };
        // Every request, h1 or each h2 stream, is checked against its connection's pin just before it is dispatched (a lookup).
        const redispatch = (o: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) => current().dispatch(o, h);
        const client = usable ? new PinnedClient(origin, clientOpts, { usable, redispatch, h2: http2 }) : new Client(origin, clientOpts);
        if (client instanceof PinnedClient) clients.add(client);
        client.on('connect', () => {
          client.pipelining = h2 ? H2_STREAMS_PER_CONNECTION : 1;
        });
        client.on('disconnect', () => {
          client.pipelining = h2Pipelining();
        });
        return client;
      },
    });
  }

  /** The pool's `connect`: attested TLS (every socket verified before use), or plain TCP to loopback. */
  private connectFunction(http2: boolean): buildConnector.connector {
    const tlsConnect = createConnector(http2 ? this.connectorOptions : { ...this.connectorOptions, alpn: ['http/1.1'] });
    const connectTimeoutMs = this.connectorOptions.connectTimeoutMs;
    return (options, callback) => {
      if (options.protocol === 'https:') return tlsConnect(options, callback);
      // Plain http is only ever allowed to loopback (checked by the config loader).
      const socket = net.connect({ host: options.hostname, port: Number(options.port) || 80 });
      const timer = setTimeout(() => socket.destroy(new UpstreamError('ERR_UPSTREAM_CONNECT', `no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        callback(null, socket);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        callback(e instanceof UpstreamError ? e : new UpstreamError('ERR_UPSTREAM_CONNECT', `cannot connect to ${options.hostname}:${options.port}: ${describeCause(e, { code: true })}`), null);
      });
    };
  }

  private learnProtocol(socket: TLSSocket | net.Socket): boolean {
    if (!this.config.pool.http2) return false;
    this.speaksH2 = (socket as TLSSocket).alpnProtocol === 'h2';
    return this.speaksH2;
  }

  /**
   * Where a forwarded request goes, by its body:
   * - `pool.http2: 'streams'`: a whole body asking for a stream (`asksForStream`) takes the
   *   HTTP/2 pool (see `streams`); everything else the main pool (HTTP/1.1).
   * - `pool.http2: true`, once the router is known to speak h2: a body that streams in as it
   *   arrives (`isStreamedBody`, an upload) takes an HTTP/1.1 connection of its own (see
   *   `uploads`); everything else the main pool (HTTP/2).
   */
  dispatcherFor(body: unknown): Pool {
    const use = this.config.pool.http2;
    // (Streams take their pool even before the router was seen to speak h2, which its connections
    // offer: the library learns it there. Over HTTP/1.1 it is just a pool of its own.)
    if (use === 'streams') return asksForStream(body) ? this.streamPool() : this.pool;
    return use && this.speaksH2 && isStreamedBody(body) ? this.uploadPool() : this.pool;
  }

  private uploadPool(): Pool {
    return (this.uploads ??= this.createPool(false, () => this.uploadPool()));
  }

  private streamPool(): Pool {
    return (this.streams ??= this.createPool(true, () => this.streamPool()));
  }

  /**
   * A fresh TLS socket to this upstream, validated like pooled ones (CA, proxy) but without the
   * attestation hook and not pooled: the pinning manager attests over it (start-up, refresh).
   */
  openSocket() {
    return openTlsSocket(this.hostname, this.port, this.hostname, { ...this.connectorOptions, verifyConnection: undefined }).then((socket) => {
      this.learnProtocol(socket);
      return socket;
    });
  }

  /**
   * A size- and time-bounded GET on the attested pool (receipts, JWKS): same connections, same
   * pin, same CA as the app's traffic. Never follows redirects. The whole exchange is bounded by
   * timeoutMs (util/fetch.ts dispatchGet).
   */
  get(path: string, init: { headers: Record<string, string>; timeoutMs: number; maxBytes: number }): Promise<BoundedResponse> {
    return dispatchGet(this.pool, { path: this.prefix + path, headers: { ...init.headers, host: this.host }, timeoutMs: init.timeoutMs, maxBytes: init.maxBytes, what: `GET ${path}` });
  }

  /**
   * A pin lapsed: close the idle pooled connections whose key may no longer be used. Busy ones
   * finish the exchanges in flight (sent while the pin was good): an HTTP/1.1 one is closed before
   * its next request, an HTTP/2 one is retired at once (no new stream; closed when its streams end).
   */
  closeUnusable(): void {
    for (const c of this.clients) {
      if (c.closed || c.destroyed) this.clients.delete(c);
      else c.closeIfUnusable();
    }
  }

  /** Drop every pooled connection; new requests reconnect and re-verify. */
  async resetConnections(): Promise<void> {
    const old = [this.pool, this.uploads, this.streams];
    this.clients.clear();
    this.pool = this.createPool(this.config.pool.http2 === true, () => this.pool);
    this.uploads = undefined;
    this.streams = undefined;
    await Promise.all(old.map((p) => p?.destroy().catch(() => undefined)));
  }

  async close(): Promise<void> {
    await Promise.all([this.pool, this.uploads, this.streams].map((p) => p?.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    await Promise.all([this.pool, this.uploads, this.streams].map((p) => p?.destroy().catch(() => undefined)));
  }
}

export function readCa(config: UpstreamConfig): string {
  try {
    return readFileSync(config.ca_file as string, 'utf8');
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_CA_FILE', `upstreams.${config.name}.ca_file: cannot read ${config.ca_file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** The real API key, read once at start from the key file or the named environment variable. */
export function readApiKey(config: UpstreamConfig, env: Record<string, string | undefined>): string | undefined {
  let key: string | undefined;
  if (config.api_key_file) {
    try {
      key = readFileSync(config.api_key_file, 'utf8').trim();
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_API_KEY_FILE', `upstreams.${config.name}.api_key_file: cannot read ${config.api_key_file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (!key) throw new ConfigError('ERR_CONFIG_API_KEY_FILE', `upstreams.${config.name}.api_key_file: ${config.api_key_file} is empty`);
  } else if (config.api_key_env) {
    key = env[config.api_key_env]?.trim() || undefined;
  }
  if (key !== undefined && /[\r\n]/.test(key)) {
    throw new ConfigError('ERR_CONFIG_API_KEY', `upstreams.${config.name}: the API key contains a line break`);
  }
  return key === undefined ? undefined : `Bearer ${key}`;
}
