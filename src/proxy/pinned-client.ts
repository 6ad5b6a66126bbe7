import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Client, type Dispatcher } from 'undici';
import { UpstreamError } from '../errors/index.js';

type Connector = (options: object, callback: (err: Error | null, socket: Socket | null) => void) => void;

/**
 * One connection slot of an upstream's pool. Before each request is written, the slot asks
 * whether its socket's key still has a fresh verified pin (`usable`: a map lookup, not a
 * verification). If not, the socket is closed first, so the request goes out on a new connection,
 * which the connector attests before it may carry a byte (or refuses, naming the failing check).
 */
export class PinnedClient extends Client {
  private readonly slot: { socket?: Socket | undefined };

  constructor(origin: URL, opts: object, private readonly usable: (socket: TLSSocket) => boolean) {
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
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.dropIfUnusable();
    return super.dispatch(opts, handler);
  }

  /** Close the socket now if no exchange runs on it and its pin no longer holds. */
  closeIfIdleAndUnusable(): void {
    const { running, pending } = this.stats;
    if (running === 0 && pending === 0) this.dropIfUnusable();
  }

  private dropIfUnusable(): void {
    const s = this.slot.socket;
    if (!s || s.destroyed || this.usable(s as TLSSocket)) return;
    // An HTTP/2 session is ended through undici itself: destroying its TLS socket underneath makes
    // undici's session-close handler throw (an uncaught exception). Its streams end with it.
    if ((s as TLSSocket).alpnProtocol === 'h2') this.destroy(new UpstreamError('ERR_ATTEST_PIN_LAPSED', 'the attestation pin of this HTTP/2 connection lapsed: the session is closed')).catch(() => undefined);
    else s.destroy();
  }
}
