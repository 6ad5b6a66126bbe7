import { EventEmitter } from 'node:events';

/**
 * An abort signal for undici requests. undici takes an EventEmitter with `aborted` and an 'abort'
 * event as well as an AbortSignal; an AbortController costs about 7–11 µs of CPU per request (an
 * EventTarget and its signal) and `AbortSignal.timeout` 15–20 µs plus a timer and a signal that
 * outlive the request; this costs well under 1 µs. (The daemon's own bounded GETs time out in
 * util/fetch.ts dispatchGet.)
 */
export class AbortFlag extends EventEmitter {
  aborted = false;
  /** What undici fails the request with (undefined: its own RequestAbortedError). */
  reason: unknown;

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}
