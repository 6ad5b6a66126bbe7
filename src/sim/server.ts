import https from 'node:https';
import http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * The simulator's TLS listener: HTTP/2 and HTTP/1.1 on one port (ALPN decides, as a router's
 * edge does), or HTTP/1.1 only. Both hand the same handler Node's request/response API.
 */
export interface SimServer {
  server: https.Server | http2.Http2SecureServer;
  setSecureContext(ctx: { cert: string; key: string }): void;
  /** Close idle HTTP/1.1 connections and tell every HTTP/2 session to go away (new streams use a new connection). */
  closeIdle(): void;
  closeAll(): void;
  /** TLS connections accepted so far. */
  connections(): number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The HTTP/2 flow-control window the simulator advertises, per stream and per connection: 1 MiB,
 * as Go's net/http2 server does (Envoy advertises 256 MiB). Node's default, HTTP/2's initial
 * 65,535 bytes, made a client wait for a WINDOW_UPDATE round trip every 64 KiB of a request body:
 * an upload through the daemon paid in CPU and MB/s for the simulator, not for a router.
 */
export const SIM_HTTP2_WINDOW_BYTES = 1024 * 1024;

export interface SimServerOptions {
  http1Only: boolean;
  /** HTTP/2 receive window per stream and per connection (65,535: Node's and HTTP/2's default). */
  http2WindowBytes?: number | undefined;
}

export function createSimServer(tls: { cert: string; key: string }, opts: SimServerOptions, handler: Handler): SimServer {
  let accepted = 0;
  const window = opts.http2WindowBytes ?? SIM_HTTP2_WINDOW_BYTES;
  if (opts.http1Only) {
    const server = https.createServer({ ...tls, noDelay: true, ALPNProtocols: ['http/1.1'] }, handler);
    server.keepAliveTimeout = 65_000;
    server.on('secureConnection', () => accepted++);
    return {
      connections: () => accepted,
      server,
      setSecureContext: (c) => server.setSecureContext(c),
      closeIdle: () => server.closeIdleConnections(),
      closeAll: () => server.closeAllConnections(),
    };
  }
  // Busy HTTP/1.1 sockets (a request in progress) and the HTTP/2 sessions, so that a key rotation
  // closes only what is idle and close() ends everything.
  const sockets = new Map<TLSSocket, number>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createSecureServer({ ...tls, allowHTTP1: true, settings: { maxConcurrentStreams: 1000, initialWindowSize: window } }, (req, res) => {
    if (req.httpVersionMajor === 1) {
      const s = req.socket as TLSSocket;
      sockets.set(s, (sockets.get(s) ?? 0) + 1);
      res.once('close', () => sockets.set(s, Math.max(0, (sockets.get(s) ?? 1) - 1)));
    }
    handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  server.on('secureConnection', (s: TLSSocket) => {
    accepted++;
    s.setNoDelay(true);
    if (s.alpnProtocol === 'h2') return;
    sockets.set(s, sockets.get(s) ?? 0);
    s.once('close', () => sockets.delete(s));
  });
  server.on('session', (session) => {
    // The connection's window starts at 65,535 whatever the settings say; only a WINDOW_UPDATE raises it.
    if (window > 65_535) session.setLocalWindowSize(window);
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  return {
    server,
    connections: () => accepted,
    setSecureContext: (c) => server.setSecureContext(c),
    closeIdle: () => {
      for (const [s, busy] of sockets) if (busy === 0) s.destroy();
      for (const session of sessions) session.close();
    },
    closeAll: () => {
      for (const s of sockets.keys()) s.destroy();
      for (const session of sessions) session.destroy();
    },
  };
}

/** Reset the response's transport abruptly (a router crashing mid-answer): the TCP connection on HTTP/1.1, the stream on HTTP/2. */
export function resetResponse(res: ServerResponse): void {
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else res.socket?.resetAndDestroy();
}

/** Whether the client is gone (the response can no longer be written). */
export function responseGone(res: ServerResponse): boolean {
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  return stream ? stream.destroyed : res.destroyed;
}

/**
 * Refuse this HTTP/2 request unprocessed: GOAWAY(NO_ERROR) with the last-stream-id just below its
 * stream, and the stream reset with REFUSED_STREAM. False on HTTP/1.1 (nothing done).
 */
export function goAwayBefore(res: ServerResponse): boolean {
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (!stream?.id) return false;
  stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, Math.max(0, stream.id - 2));
  stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  return true;
}
