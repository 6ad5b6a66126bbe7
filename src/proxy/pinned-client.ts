import type { EventEmitter } from 'node:events';
import type { ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Client, type Dispatcher } from 'undici';
import { UpstreamError } from '../errors/index.js';
import { connectionNote } from '../transport/hooks.js';
import { gatedHandler, type StreamGate } from './gated-handler.js';

type Connector = (options: object, callback: (err: Error | null, socket: Socket | null) => void) => void;

/** What a connection slot needs from its upstream besides undici's options. */
export interface PinnedClientOptions {
  /** The per-request pin check (a lookup): may a request be written on this socket now? */
  usable: (socket: TLSSocket) => boolean;
  /** Dispatch through the pool again (a request this slot may not carry goes out on another connection). */
  redispatch: Dispatcher['dispatch'];
  /** Whether this slot may turn out HTTP/2 (`pool.http2`): then each request is also gated when its stream opens. */
  h2: boolean;
}

/**
 * One connection slot of an upstream's pool. Before each request is written, the slot asks
 * whether its socket's key still has a fresh verified pin (`usable`: a map lookup, not a
 * verification).
 *
 * - HTTP/1.1: if not, the socket is closed first, so the request goes out on a new connection,
 *   which the connector attests before it may carry a byte (or refuses, naming the failing check).
 * - HTTP/2: a session whose pin lapsed, or that the router sent a GOAWAY, is retired: taken out of
 *   the pool and closed gracefully, so the streams running on it finish while no new stream is
 *   ever opened on it (the gate of `gated-handler.ts` runs when each stream opens); requests go out
 *   through the pool on another, attested connection. Streams the router refused unprocessed are
 *   sent again there.
 */
export class PinnedClient extends Client implements StreamGate {
  private readonly slot: { socket?: Socket | undefined };
  private readonly pin: PinnedClientOptions;
  /** Out of the pool: no new stream; closed once the exchanges on it have ended. */
  private retired = false;

  constructor(origin: URL, opts: object, pin: PinnedClientOptions) {
    const slot: { socket?: Socket | undefined } = {};
    const connect = (opts as { connect: Connector }).connect;
    super(origin, {
      ...opts,
      connect: (o: object, cb: (err: Error | null, socket: Socket | null) => void) =>
        connect(o, (err, socket) => {
          slot.socket = socket ?? undefined;
          cb(err, socket);
        }),
    } as Client.Options);
    this.slot = slot;
    this.pin = pin;
    if (pin.h2) this.on('connect', () => this.takeGoaway());
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.retired) return this.pin.redispatch(opts, handler);
    const s = this.slot.socket;
    if (s && !s.destroyed && !this.pin.usable(s as TLSSocket)) {
      if (isH2(s)) {
        this.retire('its attestation pin lapsed');
        return this.pin.redispatch(opts, handler);
      }
      s.destroy();
    }
    // An exchange that records a receipt notes its connection as its request is written (HTTP/1.1 too).
    const note = connectionNote(opts);
    const accepted = super.dispatch(opts, this.pin.h2 || note ? gatedHandler(this, opts, handler, note) : handler);
    return accepted || this.takesMoreWhileConnecting();
  }

  /**
   * undici counts a client busy while any request waits for its connection, so a burst that
   * arrives while the first connection to an HTTP/2 router is being opened and attested got one
   * new connection per request (the pool opens another for each "busy" answer): 300 sessions for
   * 1,000 streams under load, each with its TLS and nghttp2 state. A slot expected to be HTTP/2
   * (its `pipelining` raised because the router spoke h2 before) takes up to `pipelining`
   * requests while it connects instead; once connected undici's own answer stands. (Should that
   * connection turn out HTTP/1.1 after all, the requests it took wait their turn on it.)
   */
  private takesMoreWhileConnecting(): boolean {
    const s = this.slot.socket;
    return this.pin.h2 && (!s || s.destroyed) && this.pipelining > 1 && this.stats.size < this.pipelining;
  }

  get socket(): TLSSocket | undefined {
    return this.slot.socket as TLSSocket | undefined;
  }

  mayOpenStream(): boolean {
    const s = this.slot.socket;
    return !this.retired && (!s || this.pin.usable(s as TLSSocket));
  }

  redispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.pin.redispatch(opts, handler);
  }

  /**
   * A pin lapsed: an HTTP/2 session to that key is retired (its streams finish, none is opened);
   * an idle HTTP/1.1 socket to it is closed (a busy one finishes, and is closed before its next request).
   */
  closeIfUnusable(): void {
    const s = this.slot.socket;
    if (!s || s.destroyed || this.pin.usable(s as TLSSocket)) return;
    if (isH2(s)) this.retire('its attestation pin lapsed');
    else if (this.stats.running === 0 && this.stats.pending === 0) s.destroy();
  }

  /**
   * Out of the pool (undici's pool forgets a client that reports a connection error), then closed
   * once the exchanges queued on it have ended: undici's `close()` lets them finish.
   */
  private retire(why: string): void {
    if (this.retired) return;
    this.retired = true;
    (this as unknown as EventEmitter).emit('connectionError', undefined, [this], new UpstreamError('ERR_UPSTREAM_FAILED', `HTTP/2 connection retired: ${why}`));
    this.close().catch(() => undefined);
  }

  /**
   * A router's GOAWAY: undici's own handler destroys the socket at once, cutting the streams the
   * router is still answering. Instead the session is retired: Node closes it gracefully (NO_ERROR)
   * or at once (an error code), the streams at or below the last-stream-id finish, those above it
   * are reported as refused and go out again on another connection.
   */
  private takeGoaway(): void {
    const session = sessionOf(this.slot.socket);
    if (!session) return;
    session.removeAllListeners('goaway');
    session.on('goaway', () => this.retire('the router sent GOAWAY'));
  }
}

function isH2(s: Socket): boolean {
  return (s as TLSSocket).alpnProtocol === 'h2';
}

/** The HTTP/2 session undici runs over this socket (undici keeps it on the socket under its own symbol). */
function sessionOf(socket: Socket | undefined): ClientHttp2Session | undefined {
  if (!socket || !isH2(socket)) return undefined;
  const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === 'http2Session');
  return key ? ((socket as unknown as Record<symbol, ClientHttp2Session | undefined>)[key] ?? undefined) : undefined;
}
