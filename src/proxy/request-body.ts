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

/**
 * The idle limits of the request bodies being read, checked by one coarse timer per limit instead
 * of a timer per request: a sweep every eighth of the limit, running only while a body is watched.
 * Arrivals are stamped with the time of the last sweep (no clock read per chunk), so a body is
 * declared idle only once `ms` plus one sweep have passed since the sweep before its last byte:
 * never before `ms` of silence, at most a quarter of `ms` after it.
 */
class IdleWheel {
  private readonly watched = new Set<IdleTimer>();
  private timer: NodeJS.Timeout | undefined;
  /** The time of the last sweep (ms): what `touch()` records. */
  now = 0;
  private readonly step: number;

  constructor(private readonly ms: number) {
    this.step = Math.max(5, Math.ceil(ms / 8));
  }

  add(t: IdleTimer): void {
    if (!this.timer) {
      this.now = Date.now();
      this.timer = setInterval(() => this.sweep(), this.step);
      this.timer.unref();
    }
    this.watched.add(t);
  }

  delete(t: IdleTimer): void {
    this.watched.delete(t);
  }

  private sweep(): void {
    const now = (this.now = Date.now());
    for (const t of this.watched) {
      if (now - t.last < this.ms + this.step) continue;
      this.watched.delete(t);
      t.fire();
    }
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** One wheel per idle limit (a daemon has one per upstream's `timeouts.body_idle_seconds`). */
const wheels = new Map<number, IdleWheel>();

/** Fires `onIdle` once when `touch()` has not been called for `ms` (see IdleWheel); `clear()` stops it. */
export class IdleTimer {
  private readonly wheel: IdleWheel;
  /** When a byte last arrived, as the wheel's coarse clock knew it. */
  last: number;
  private live = true;

  constructor(
    ms: number,
    private readonly onIdle: () => void,
  ) {
    let wheel = wheels.get(ms);
    if (!wheel) wheels.set(ms, (wheel = new IdleWheel(ms)));
    this.wheel = wheel;
    wheel.add(this);
    this.last = wheel.now;
  }

  /** A byte arrived (cheap: no timer and no clock read per chunk). */
  touch(): void {
    this.last = this.wheel.now;
  }

  clear(): void {
    if (!this.live) return;
    this.live = false;
    this.wheel.delete(this);
  }

  /** Called by the wheel, once. */
  fire(): void {
    if (!this.live) return;
    this.live = false;
    this.onIdle();
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
    // Plain listeners (no once-wrappers): done() removes all four whichever fires first.
    req.on('data', onData).on('end', onEnd).on('error', onClose).on('close', onClose);
    req.resume();
  });
}
