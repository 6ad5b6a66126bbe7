import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { describeCause, FetchError } from '../errors/index.js';

/**
 * A single, bounded HTTP/1.1 GET written directly on an already-established (TLS) socket,
 * BEFORE the socket is handed to the connection pool. This is how the daemon obtains the
 * attestation envelope over the very connection it is about to trust: the evidence binds
 * the TLS key of this socket's peer, not of some other pod behind a load balancer.
 *
 * Deliberately minimal: `Connection: keep-alive`, a response framed by Content-Length or
 * chunked encoding, bounded header and body sizes, a deadline. Anything else fails closed.
 *
 * On a socket that negotiated HTTP/2 (ALPN `h2`) the GET is one stream of an HTTP/2 session of
 * its own, which uses the socket up: it is destroyed afterwards, and the connector opens the
 * pool's connection anew (its key is pinned by then, so that one is verified at once).
 */
export interface InbandResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

export const MAX_INBAND_HEADER_BYTES = 16 * 1024;

export function inbandGet(
  socket: Duplex,
  opts: { host: string; path: string; headers?: Record<string, string>; maxBodyBytes: number; timeoutMs: number },
): Promise<InbandResponse> {
  if ((socket as TLSSocket).alpnProtocol === 'h2') return inbandGetH2(socket as TLSSocket, opts);
  return new Promise((resolve, reject) => {
    const head =
      `GET ${opts.path} HTTP/1.1\r\nHost: ${opts.host}\r\nAccept: application/json\r\nConnection: keep-alive\r\n` +
      Object.entries(opts.headers ?? {})
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      '\r\n';
    let buf: Buffer = Buffer.alloc(0);
    let headerEnd = -1;
    let status = 0;
    const headers = new Map<string, string>();
    let settled = false;

    const finish = (err: Error | null, res?: InbandResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(res as InbandResponse);
    };
    const onError = (e: Error) =>
      finish(new FetchError('ERR_ATTEST_FETCH', `attestation request failed on the new connection: ${describeCause(e)}`, { cause: e }));
    const onClose = () => finish(new FetchError('ERR_ATTEST_FETCH', 'connection closed before the attestation response completed'));
    const timer = setTimeout(
      () => finish(new FetchError('ERR_ATTEST_TIMEOUT', `no complete attestation response within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );

    const tryComplete = () => {
      if (headerEnd < 0) {
        headerEnd = buf.indexOf('\r\n\r\n');
        if (headerEnd < 0) {
          if (buf.length > MAX_INBAND_HEADER_BYTES) finish(new FetchError('ERR_ATTEST_TOO_LARGE', 'attestation response headers too large'));
          return;
        }
        const lines = buf.subarray(0, headerEnd).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (!m) return finish(new FetchError('ERR_ATTEST_FETCH', 'attestation response is not HTTP/1.1'));
        status = Number(m[1]);
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          if (i <= 0) return finish(new FetchError('ERR_ATTEST_FETCH', 'malformed header line in attestation response'));
          headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
        }
      }
      const rest = buf.subarray(headerEnd + 4);
      const te = headers.get('transfer-encoding');
      if (te !== undefined) {
        if (te.toLowerCase() !== 'chunked') return finish(new FetchError('ERR_ATTEST_FETCH', `unsupported transfer-encoding ${te}`));
        const body = decodeChunked(rest, opts.maxBodyBytes);
        if (body === 'too-large') return finish(new FetchError('ERR_ATTEST_TOO_LARGE', `attestation response exceeds ${opts.maxBodyBytes} bytes`));
        if (body === 'malformed') return finish(new FetchError('ERR_ATTEST_FETCH', 'malformed chunked attestation response'));
        if (body) finish(null, { status, headers, body });
        return;
      }
      const cl = headers.get('content-length');
      if (cl === undefined || !/^\d+$/.test(cl)) {
        return finish(new FetchError('ERR_ATTEST_FETCH', 'attestation response has no usable Content-Length'));
      }
      const len = Number(cl);
      if (len > opts.maxBodyBytes) return finish(new FetchError('ERR_ATTEST_TOO_LARGE', `attestation response exceeds ${opts.maxBodyBytes} bytes`));
      if (rest.length > len) return finish(new FetchError('ERR_ATTEST_FETCH', 'unexpected bytes after the attestation response'));
      if (rest.length === len) finish(null, { status, headers, body: new Uint8Array(rest) });
    };

    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length > MAX_INBAND_HEADER_BYTES + opts.maxBodyBytes + 64 * 1024) {
        return finish(new FetchError('ERR_ATTEST_TOO_LARGE', `attestation response exceeds ${opts.maxBodyBytes} bytes`));
      }
      tryComplete();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(head);
    socket.resume();
  });
}

/** The same GET as one HTTP/2 stream on `socket`; the socket is destroyed when it ends. */
function inbandGetH2(socket: TLSSocket, opts: { host: string; path: string; headers?: Record<string, string>; maxBodyBytes: number; timeoutMs: number }): Promise<InbandResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${opts.host}`, { createConnection: () => socket, settings: { enablePush: false } });
    const chunks: Buffer[] = [];
    let total = 0;
    let status = 0;
    const headers = new Map<string, string>();
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      socket.destroy();
      if (err) reject(err);
      else resolve({ status, headers, body: new Uint8Array(Buffer.concat(chunks, total)) });
    };
    const timer = setTimeout(() => finish(new FetchError('ERR_ATTEST_TIMEOUT', `no complete attestation response within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onError = (e: Error) => finish(new FetchError('ERR_ATTEST_FETCH', `attestation request failed on the new connection: ${describeCause(e)}`, { cause: e }));
    session.once('error', onError);
    const extra = Object.fromEntries(Object.entries(opts.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const stream = session.request({ ...extra, ':method': 'GET', ':path': opts.path, ':authority': opts.host, accept: 'application/json' }, { endStream: true });
    stream.once('error', onError);
    stream.once('response', (h) => {
      status = Number(h[':status']);
      for (const [k, v] of Object.entries(h)) if (!k.startsWith(':') && v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : String(v));
    });
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > opts.maxBodyBytes) finish(new FetchError('ERR_ATTEST_TOO_LARGE', `attestation response exceeds ${opts.maxBodyBytes} bytes`));
      else chunks.push(chunk);
    });
    stream.once('end', () => finish(status === 0 ? new FetchError('ERR_ATTEST_FETCH', 'the attestation stream ended without a response') : null));
    stream.once('close', () => finish(new FetchError('ERR_ATTEST_FETCH', 'the attestation stream closed before the response completed')));
  });
}

/** Decode a complete chunked body; undefined while incomplete. */
function decodeChunked(data: Buffer, max: number): Uint8Array | undefined | 'too-large' | 'malformed' {
  const parts: Buffer[] = [];
  let total = 0;
  let pos = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', pos);
    if (eol < 0) return undefined;
    const sizeText = data.subarray(pos, eol).toString('latin1').split(';')[0]?.trim() ?? '';
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return 'malformed';
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      // Last chunk: no trailers are accepted; require the final CRLF.
      if (data.length < eol + 4) return undefined;
      if (data.subarray(eol + 2, eol + 4).toString('latin1') !== '\r\n') return 'malformed';
      if (data.length > eol + 4) return 'malformed';
      return new Uint8Array(Buffer.concat(parts));
    }
    total += size;
    if (total > max) return 'too-large';
    if (data.length < eol + 2 + size + 2) return undefined;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    if (data.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') return 'malformed';
    pos = eol + 4 + size;
  }
}
