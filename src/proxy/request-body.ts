import type { IncomingMessage } from 'node:http';
import { TresorError } from '../errors/index.js';

/**
 * Request bodies up to this many bytes are read whole before an upstream connection is taken, so
 * a client sending slowly holds only its own socket, never one of the pool's connections.
 * Larger bodies (uploads) stream through as they arrive.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

export class RequestTooLarge extends TresorError {
  constructor(limit: number) {
    super('usage', 'ERR_REQUEST_TOO_LARGE', `request body exceeds the configured limit of ${limit} bytes`);
  }
}

export class RequestBodyTimeout extends TresorError {
  constructor(seconds: number) {
    super('usage', 'ERR_REQUEST_BODY_TIMEOUT', `the request body stalled: no byte arrived for ${seconds} s (timeouts.body_idle_seconds)`);
  }
}

/** The app closed its connection before its body was complete (nothing to answer). */
export class ClientGone extends Error {}

/** Fires `onIdle` once when `touch()` has not been called for `ms`; `clear()` stops it. */
export class IdleTimer {
  private timer: NodeJS.Timeout | undefined;
  private last = Date.now();

  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.arm(ms);
  }

  /** A byte arrived (cheap: no timer is re-created per chunk). */
  touch(): void {
    this.last = Date.now();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const left = this.last + this.ms - Date.now();
      if (left > 0) this.arm(left);
      else {
        this.timer = undefined;
        this.onIdle();
      }
    }, ms);
    this.timer.unref();
  }
}

/** What `collectBody` read: the whole body (`complete`), or its first chunks with the rest still unread. */
export interface CollectedBody {
  chunks: Buffer[];
  bytes: number;
  complete: boolean;
}

/**
 * Read a request body until it ends or has passed `bound` bytes, failing with RequestBodyTimeout
 * when no byte arrives for `idleSeconds`, RequestTooLarge past `limit`, ClientGone when the app
 * hangs up. When the body is not complete the request is left paused with no listener of ours, so
 * the caller can stream the rest after the chunks read so far.
 */
export function collectBody(req: IncomingMessage, opts: { bound: number; limit: number; idleSeconds: number }): Promise<CollectedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const idle = new IdleTimer(opts.idleSeconds * 1000, () => done(new RequestBodyTimeout(opts.idleSeconds)));
    const onData = (chunk: Buffer) => {
      idle.touch();
      bytes += chunk.length;
      chunks.push(chunk);
      if (bytes > opts.limit) done(new RequestTooLarge(opts.limit));
      else if (bytes > opts.bound) done();
    };
    const onEnd = () => done(undefined, true);
    const onClose = () => done(new ClientGone());
    const done = (err?: Error, complete = false) => {
      idle.clear();
      req.off('data', onData).off('end', onEnd).off('error', onClose).off('close', onClose);
      if (err) return reject(err);
      if (!complete) req.pause();
      resolve({ chunks, bytes, complete });
    };
    req.on('data', onData).once('end', onEnd).once('error', onClose).once('close', onClose);
    req.resume();
  });
}
